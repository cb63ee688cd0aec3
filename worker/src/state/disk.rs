//! Keyed state on local disk, for state larger than memory: an LSM tree (fjall) per operator
//! subtask with decoded entries cached in front.
//!
//! Keys on disk are the key group (2 bytes, big-endian) followed by the key, so a key-group
//! range is a contiguous key range and a full snapshot reads the groups in order. Values are
//! the entry in the checkpoint encoding (postcard), so a snapshot copies bytes from disk into
//! the checkpoint records without decoding them, and the records are the same the memory
//! backend writes: a checkpoint of one backend restores into the other.
//!
//! Reads and writes go to the cache; a miss reads the entry from disk. When the cache grows
//! past its share of the memory budget, the changed entries are written to the tree in one
//! batch and the entries not used since the previous spill leave the cache. A snapshot never
//! writes the tree: at the barrier it encodes the cached entries changed since the previous
//! snapshot (they stay dirty, for the next spill), and an incremental one copies those and the
//! log of what spills wrote since (a log in memory that every write to the tree also appends
//! to, bounded by a share of the memory budget; past it the next snapshot is full) on the
//! checkpoint thread. A full one merges the dirty cached entries into the tree's MVCC snapshot
//! (O(1) to take) there. The tree itself is scratch space:
//! durability comes from checkpoints, so its journal is never synced.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use hashbrown::HashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::bloom::KeyFilter;
use super::codec::Codec;
use crate::contract::UserResult;
use crate::contract::state::{
    OperatorState, Snapshot, StateFile, encode_into, put_record, read_group, record_count, take_frame,
};
use crate::contract::state_backend::DiskSettings;

type Map<V> = HashMap<Box<[u8]>, V, foldhash::fast::RandomState>;

/// Shares of the memory budget: fjall's block cache, the memtables (write buffers), and the
/// decoded entries cached in front of the tables.
const BLOCK_CACHE_SHARE: f64 = 0.25;
const WRITE_BUFFER_SHARE: f64 = 0.15;
const ENTRY_CACHE_SHARE: f64 = 0.6;
/// fjall's background threads (flushes and compactions). Not two, its default on two cores:
/// with more than one, the first re-queues compaction requests at once, to stay free for
/// flushes, so while the second compacts it spins on the request (a quarter of the events per
/// CPU-second, measured); with one, a flush can wait on a full queue it alone drains
/// (fjall-rs/fjall#323). With three, a request finds a worker that takes it.
const FJALL_WORKERS: usize = 3;
/// Entries written to the tree per batch (spills, snapshots, restore).
const WRITE_BATCH: usize = 16_384;
/// Bytes a cached entry takes beyond its key, slot and stored bytes: the hash table's share
/// and the value's allocations (an estimate; the budget is approximate).
const ENTRY_OVERHEAD: usize = 112;

/// One cached entry.
struct Slot<V> {
    group: u32,
    /// `None`: the key has no value (removed, or looked up and absent).
    value: Option<V>,
    /// Changed since it was last written to the tree.
    dirty: bool,
    /// Changed since the previous snapshot (and not yet in the log of changes). Implies
    /// `dirty`: a snapshot encodes the entry into its changes but leaves it to the next spill
    /// to write to the tree.
    changed: bool,
    /// Used since the previous spill.
    hot: bool,
    /// Approximate bytes the entry holds in memory.
    size: u32,
    /// Bytes of the key's record in a full snapshot as the tree holds it (0: not in the tree).
    stored: u32,
}

/// Keyed state of one operator subtask on local disk, from key (bytes) to `V`.
pub struct DiskTable<V> {
    db: Arc<Database>,
    tree: fjall::Keyspace,
    cache: Map<Slot<V>>,
    cached_bytes: usize,
    /// Every key ever written to the tree (approximately): a key it has not seen is not read.
    stored: KeyFilter,
    /// What changed since the previous snapshot: what an incremental snapshot copies.
    changed: Changes,
    /// Bytes of the records of every entry in the tree (approximately: a restore's changes are
    /// counted as new keys), what a full snapshot writes.
    live: u64,
    /// Entries in the tree (as approximately as `live`).
    live_keys: u64,
    codec: Codec<V>,
    /// The key last handed out to change in place, when the codec weighs entries: its entry is
    /// weighed again at the next call, so an entry that grows counts in the cache as it grows.
    touched: Option<Vec<u8>>,
    /// Cached bytes past which a call that finds its key cached spills anyway (a miss spills
    /// past the table's share): the share, or after a spill that left more, that plus a quarter
    /// of the share, so an entry larger than the share does not spill at every call.
    spill_above: usize,
}

/// Bytes of a key's record in a state file (removed?, key and entry framed), as a `u32`.
fn record_len(key: &[u8], entry: usize) -> u32 {
    let varint = |n: usize| (usize::BITS - n.max(1).leading_zeros()).div_ceil(7) as usize;
    (1 + varint(key.len()) + key.len() + varint(entry) + entry).min(u32::MAX as usize) as u32
}

/// What a disk table changed since its previous snapshot: every entry it writes to the tree (or
/// removes) appended to a log in memory, so an incremental snapshot copies the changes from
/// there (the latest record of each key) instead of reading each back from the tree. Appending
/// is all a write pays: the checkpoint thread sorts the log and drops superseded records.
enum Changes {
    /// Nothing tracked, so the next snapshot is full: none was taken yet, or the log outgrew
    /// its share of memory (without the bound, a job that takes a savepoint but no checkpoints
    /// would log every change after it, forever).
    Untracked,
    /// Per record: key group (2 bytes, big-endian), then the record as a state file holds it
    /// (removed? as one byte, the key framed, the stored entry framed unless removed), so a
    /// snapshot copies records without encoding them again.
    Tracked(Vec<u8>),
}

impl Changes {
    /// Bytes the changes hold in memory (counted in the table's cache share).
    fn bytes(&self) -> usize {
        match self {
            Changes::Tracked(log) => log.len(),
            Changes::Untracked => 0,
        }
    }

    /// Logs that `key` (in `group`) now stores `entry` (`None`: removed). Past `limit` bytes
    /// the log is dropped: the next snapshot is full.
    fn log(&mut self, group: u32, key: &[u8], entry: Option<&[u8]>, limit: usize) -> UserResult<()> {
        let Changes::Tracked(log) = self else {
            return Ok(());
        };
        log_record(log, group, key, entry)?;
        if log.len() > limit {
            *self = Changes::Untracked;
        }
        Ok(())
    }
}

/// Appends a record of `key` in `group` storing `entry` (`None`: removed) to a log of
/// [`Changes`].
fn log_record(log: &mut Vec<u8>, group: u32, key: &[u8], entry: Option<&[u8]>) -> UserResult<()> {
    log.extend_from_slice(&(group as u16).to_be_bytes());
    put_record(key, entry, log)
}

/// A record of a log of [`Changes`].
#[derive(Clone, Copy)]
struct Change<'a> {
    group: u32,
    key: &'a [u8],
    /// The stored entry, `None` for a removal.
    entry: Option<&'a [u8]>,
    /// The record as a state file holds it.
    record: &'a [u8],
}

/// The record of a log of [`Changes`] at `at`, and where the next begins.
fn change_at(log: &[u8], at: usize) -> UserResult<(Change<'_>, usize)> {
    let early = || crate::contract::UserError::from("the log of changes ends early");
    let (group, rest) = log[at..].split_first_chunk::<2>().ok_or_else(early)?;
    let (&removed, mut rest) = rest.split_first().ok_or_else(early)?;
    let framed = rest;
    let key = take_frame(&mut rest)?;
    let entry = match removed {
        0 => Some(take_frame(&mut rest)?),
        _ => None,
    };
    let len = 1 + framed.len() - rest.len();
    let change = Change {
        group: u16::from_be_bytes(*group) as u32,
        key,
        entry,
        record: &log[at + 2..at + 2 + len],
    };
    Ok((change, at + 2 + len))
}

/// In which order [`LatestChanges`] gives the records of a key group.
#[derive(Clone, Copy, PartialEq)]
enum Order {
    /// Key order (to merge with the tree's).
    Keys,
    /// Any order (a change file: restore applies its records in any order).
    Any,
}

/// The latest record of each key in a log of [`Changes`], by key group, each group's in an
/// [`Order`]. Sorts one 16-byte integer per record (key group, a 64-bit sort key, the record's
/// place in the log) and reads the records from the log as it goes: a log of a few hundred MB
/// needs a fraction of that beside it, not a decoded copy.
struct LatestChanges<'a> {
    log: &'a [u8],
    packed: std::vec::IntoIter<u128>,
}

impl<'a> LatestChanges<'a> {
    fn new(log: &'a [u8], order: Order) -> UserResult<Self> {
        if log.len() > u32::MAX as usize {
            return Err("the log of changes outgrew 4 GiB".into());
        }
        // The sort key: the key's first 8 bytes for key order, else its hash (keys that share
        // a prefix spread). Records with the same sort key are put in key order after,
        // keeping each key's records in log order, latest last.
        let hasher = foldhash::fast::FixedState::with_seed(0x5745_4952);
        let sort_key = |key: &[u8]| match order {
            Order::Keys => {
                let mut first = [0u8; 8];
                let n = key.len().min(8);
                first[..n].copy_from_slice(&key[..n]);
                u64::from_be_bytes(first)
            }
            Order::Any => std::hash::BuildHasher::hash_one(&hasher, key),
        };
        let mut packed = Vec::new();
        let mut at = 0;
        while at < log.len() {
            let (change, next) = change_at(log, at)?;
            packed.push((change.group as u128) << 96 | (sort_key(change.key) as u128) << 32 | at as u128);
            at = next;
        }
        packed.sort_unstable();
        let key_at = |p: u128| change_at(log, p as u32 as usize).map(|(c, _)| c.key);
        let mut start = 0;
        while start < packed.len() {
            let run = packed[start..]
                .iter()
                .take_while(|p| **p >> 32 == packed[start] >> 32)
                .count();
            let run = &mut packed[start..start + run];
            if run.len() > 1 {
                let first = key_at(run[0])?;
                let mut keyed = Vec::with_capacity(run.len());
                for p in run.iter() {
                    keyed.push((key_at(*p)?, *p));
                }
                if keyed.iter().any(|(k, _)| *k != first) {
                    keyed.sort();
                    for (slot, (_, p)) in run.iter_mut().zip(keyed) {
                        *slot = p;
                    }
                }
            }
            start += run.len();
        }
        Ok(LatestChanges {
            log,
            packed: packed.into_iter(),
        })
    }
}

impl<'a> Iterator for LatestChanges<'a> {
    type Item = UserResult<Change<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let p = self.packed.next()?;
            let change = match change_at(self.log, p as u32 as usize) {
                Ok((change, _)) => change,
                Err(e) => return Some(Err(e)),
            };
            // A later record of the same key follows it directly: skip this one.
            let superseded = match self.packed.as_slice().first() {
                Some(&n) if n >> 32 == p >> 32 => match change_at(self.log, n as u32 as usize) {
                    Ok((next, _)) => next.key == change.key,
                    Err(e) => return Some(Err(e)),
                },
                _ => false,
            };
            if !superseded {
                return Some(Ok(change));
            }
        }
    }
}

/// A fjall database shared by the disk tables of one process and state directory, removed
/// when the last table goes.
pub struct Database {
    db: fjall::Database,
    /// Its directory (full snapshots are written here before they are uploaded).
    path: std::path::PathBuf,
    /// Bytes the tables' entry caches may hold together.
    entry_cache: usize,
    /// Bytes of a table's memtable (it may hold two: one being written, one being flushed).
    memtable: u64,
    tables: AtomicU64,
    open: AtomicU64,
}

static DATABASES: Mutex<Vec<(std::path::PathBuf, Weak<Database>)>> = Mutex::new(Vec::new());

impl Database {
    /// The database of this process under `settings.dir`, opened on first use.
    fn shared(settings: &DiskSettings) -> UserResult<Arc<Database>> {
        let mut open = DATABASES.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|(_, db)| db.strong_count() > 0);
        if let Some(db) = open
            .iter()
            .find(|(dir, _)| *dir == settings.dir)
            .and_then(|(_, db)| db.upgrade())
        {
            return Ok(db);
        }
        let path = settings.dir.join(format!("weir-{}", std::process::id()));
        remove_stale(&settings.dir, &path);
        let budget = settings.memory as f64;
        let db = fjall::Database::builder(&path)
            .cache_size((budget * BLOCK_CACHE_SHARE) as u64)
            .manual_journal_persist(true)
            .temporary(true)
            .worker_threads(FJALL_WORKERS)
            .open()
            .map_err(|e| format!("state.backend disk: opening {}: {e}", path.display()))?;
        tracing::info!(dir = %path.display(), memory = settings.memory, "disk state backend opened");
        let db = Arc::new(Database {
            db,
            path: path.clone(),
            entry_cache: (budget * ENTRY_CACHE_SHARE) as usize,
            memtable: ((budget * WRITE_BUFFER_SHARE / 2.0) as u64).clamp(1 << 20, 64 << 20),
            tables: AtomicU64::new(0),
            open: AtomicU64::new(0),
        });
        open.push((settings.dir.clone(), Arc::downgrade(&db)));
        Ok(db)
    }

    /// Bytes one table's entry cache may hold: the share of the budget split over the tables
    /// open now.
    fn entry_cache_per_table(&self) -> usize {
        self.entry_cache / self.open.load(Ordering::Relaxed).max(1) as usize
    }
}

/// Removes what earlier processes left under `dir` (killed before they could remove it): the
/// directory this process is about to use (a process that had the same pid, as a container's
/// first process always does) and those of processes no longer running.
fn remove_stale(dir: &std::path::Path, mine: &std::path::Path) {
    let alive = |pid: &str| !std::path::Path::new("/proc").exists() || std::path::Path::new("/proc").join(pid).exists();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("weir-") else {
            continue;
        };
        if path == mine || (pid.bytes().all(|b| b.is_ascii_digit()) && !alive(pid)) {
            tracing::info!(dir = %path.display(), "removing the state files of an earlier process");
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(dir = %path.display(), "could not remove stale state files: {e}");
            }
        }
    }
}

/// The tree key of `key` in key group `group`, in the one allocation fjall keeps.
fn tree_key(group: u32, key: &[u8]) -> fjall::Slice {
    byteview::ByteView::fused(&(group as u16).to_be_bytes(), key).into()
}

fn io_error(what: &str, e: fjall::Error) -> crate::contract::UserError {
    format!("disk state: {what}: {e}").into()
}

impl<V> DiskTable<V>
where
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// An empty table in the process's state database under `settings.dir`, its entries
    /// stored as postcard.
    pub fn open(settings: &DiskSettings) -> UserResult<Self> {
        Self::open_with(settings, Codec::serde())
    }
}

impl<V> DiskTable<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// An empty table in the process's state database under `settings.dir`, its entries
    /// stored through `codec`.
    pub fn open_with(settings: &DiskSettings, codec: Codec<V>) -> UserResult<Self> {
        let db = Database::shared(settings)?;
        let name = format!("t{}", db.tables.fetch_add(1, Ordering::Relaxed));
        let tree = db
            .db
            .keyspace(&name, || {
                // Filter and index blocks stay in memory (about 1.3 bytes a key): a point read
                // never loads them, which with a small block cache would dominate. The table's
                // own key filter sends reads here only for keys it stored (or ~2.5 % others), so
                // reads find their key: the last level, where restores ingest, needs no filter.
                fjall::KeyspaceCreateOptions::default()
                    .max_memtable_size(db.memtable)
                    .expect_point_read_hits(true)
                    .manual_journal_persist(true)
                    .filter_block_pinning_policy(fjall::config::PinningPolicy::all(true))
                    .index_block_pinning_policy(fjall::config::PinningPolicy::all(true))
            })
            .map_err(|e| io_error("creating a table", e))?;
        db.open.fetch_add(1, Ordering::Relaxed);
        Ok(DiskTable {
            db,
            tree,
            cache: Map::default(),
            cached_bytes: 0,
            stored: KeyFilter::default(),
            changed: Changes::Untracked,
            live: 0,
            live_keys: 0,
            touched: None,
            spill_above: 0,
            codec,
        })
    }

    /// Weighs the entry last handed out to change, if the codec weighs entries.
    fn reweigh(&mut self) {
        let DiskTable {
            cache,
            codec,
            touched,
            cached_bytes,
            ..
        } = self;
        let Some(key) = touched.as_deref() else {
            return;
        };
        if let Some(slot) = cache.get_mut(key) {
            let weight = slot.value.as_ref().and_then(|v| codec.weight(v)).unwrap_or(0);
            let size = (key.len() + std::mem::size_of::<Slot<V>>() + ENTRY_OVERHEAD + weight).min(u32::MAX as usize);
            *cached_bytes = *cached_bytes - slot.size as usize + size;
            slot.size = size as u32;
        }
        *touched = None;
    }

    /// Notes `key` as handed out to change (see [`DiskTable::reweigh`]).
    fn touch(&mut self, key: &[u8]) {
        if self.codec.weighs() {
            let mut buf = self.touched.take().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(key);
            self.touched = Some(buf);
        }
    }

    /// Bytes the cache holds with the key filter and the log of changes (they count in it).
    fn held(&self) -> usize {
        self.cached_bytes + self.stored.bytes() + self.changed.bytes()
    }

    /// The cached slot of `key`, read from the tree on a miss.
    fn slot(&mut self, group: u32, key: &[u8]) -> UserResult<&mut Slot<V>> {
        let share = self.db.entry_cache_per_table();
        let mut cached = self.cache.contains_key(key);
        let held = self.held();
        if held > share && (!cached || held > self.spill_above) {
            self.spill(key)?;
            self.spill_above = self.held().max(share) + share / 4;
            cached = self.cache.contains_key(key);
        }
        if !cached {
            let stored = if self.stored.may_contain(key) {
                self.tree
                    .get(tree_key(group, key))
                    .map_err(|e| io_error("reading an entry", e))?
            } else {
                None
            };
            let size =
                key.len() + std::mem::size_of::<Slot<V>>() + ENTRY_OVERHEAD + stored.as_ref().map_or(0, |v| v.len());
            let in_tree = stored.as_ref().map_or(0, |v| record_len(key, v.len()));
            let value = match stored {
                Some(bytes) => Some(self.codec.decode(&mut bytes.as_ref())?),
                None => None,
            };
            self.cached_bytes += size;
            self.cache.insert(
                key.into(),
                Slot {
                    group,
                    value,
                    dirty: false,
                    changed: false,
                    hot: true,
                    size: size as u32,
                    stored: in_tree,
                },
            );
        }
        let slot = self.cache.get_mut(key).expect("cached above");
        slot.hot = true;
        Ok(slot)
    }

    /// Bytes the changes may hold: half the table's share of the cache (they count in it).
    fn changes_limit(&self) -> usize {
        self.db.entry_cache_per_table() / 2
    }

    /// The value of `key` (in key group `group`).
    pub fn get(&mut self, group: u32, key: &[u8]) -> UserResult<Option<&V>> {
        self.reweigh();
        Ok(self.slot(group, key)?.value.as_ref())
    }

    /// The value of `key` if it is in the cache: after a [`DiskTable::get`] or
    /// [`DiskTable::entry`] of it with no other call since.
    pub fn cached(&self, key: &[u8]) -> Option<&V> {
        self.cache.get(key).and_then(|s| s.value.as_ref())
    }

    /// The value of `key` to change in place, made with `make` when the key has none; also
    /// whether it had one.
    pub fn entry(&mut self, group: u32, key: &[u8], make: impl FnOnce() -> V) -> UserResult<(&mut V, bool)> {
        self.reweigh();
        self.touch(key);
        let slot = self.slot(group, key)?;
        slot.dirty = true;
        slot.changed = true;
        let existed = slot.value.is_some();
        Ok((slot.value.get_or_insert_with(make), existed))
    }

    /// Sets the value of `key`.
    pub fn insert(&mut self, group: u32, key: &[u8], value: V) -> UserResult<()> {
        self.reweigh();
        let slot = self.slot(group, key)?;
        slot.dirty = true;
        slot.changed = true;
        slot.value = Some(value);
        self.touch(key);
        Ok(())
    }

    /// Removes `key`; returns whether it had a value.
    pub fn remove(&mut self, group: u32, key: &[u8]) -> UserResult<bool> {
        self.reweigh();
        let slot = self.slot(group, key)?;
        let had = slot.value.take().is_some();
        slot.dirty |= had;
        slot.changed |= had;
        Ok(had)
    }

    /// The value of `key` to change in place, if it has one.
    pub fn get_mut(&mut self, group: u32, key: &[u8]) -> UserResult<Option<&mut V>> {
        self.reweigh();
        if self.slot(group, key)?.value.is_none() {
            return Ok(None);
        }
        self.touch(key);
        let slot = self.cache.get_mut(key).expect("cached by slot");
        slot.dirty = true;
        slot.changed = true;
        Ok(slot.value.as_mut())
    }

    /// Every entry whose key starts with `prefix`, in the key groups `groups`, in key order:
    /// handed to `each` in chunks of at most `chunk` (never all in memory at once). The cached
    /// entries under the prefix are merged with the tree's (the cached version wins), so
    /// nothing is written to the tree for it: a window's entries that never left the cache
    /// never reach the disk.
    pub fn for_each_prefixed(
        &mut self,
        groups: std::ops::RangeInclusive<u32>,
        prefix: &[u8],
        chunk: usize,
        mut each: impl FnMut(&[(u32, Box<[u8]>, V)]) -> UserResult<()>,
    ) -> UserResult<()> {
        let mut cached: Vec<(u32, &[u8], &Slot<V>)> = self
            .cache
            .iter()
            .filter(|(k, s)| groups.contains(&s.group) && k.starts_with(prefix))
            .map(|(k, s)| (s.group, &k[..], s))
            .collect();
        cached.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut cached = cached.into_iter().peekable();
        let mut entries: Vec<(u32, Box<[u8]>, V)> = Vec::with_capacity(chunk.min(4096));
        let mut push = |entries: &mut Vec<(u32, Box<[u8]>, V)>, entry| {
            entries.push(entry);
            if entries.len() >= chunk {
                each(entries)?;
                entries.clear();
            }
            UserResult::Ok(())
        };
        for group in groups {
            for guard in self.tree.prefix(tree_key(group, prefix)) {
                let (key, value) = guard.into_inner().map_err(|e| io_error("reading entries", e))?;
                let key = &key[2..];
                while let Some((g, k, slot)) = cached.next_if(|c| (c.0, c.1) < (group, key)) {
                    if let Some(v) = &slot.value {
                        push(&mut entries, (g, k.into(), v.clone()))?;
                    }
                }
                match cached.next_if(|c| (c.0, c.1) == (group, key)) {
                    // The cached version: newer, or removed.
                    Some((_, _, slot)) => {
                        if let Some(v) = &slot.value {
                            push(&mut entries, (group, key.into(), v.clone()))?;
                        }
                    }
                    None => push(
                        &mut entries,
                        (group, key.into(), self.codec.decode(&mut value.as_ref())?),
                    )?,
                }
            }
            while let Some((g, k, slot)) = cached.next_if(|c| c.0 == group) {
                if let Some(v) = &slot.value {
                    push(&mut entries, (g, k.into(), v.clone()))?;
                }
            }
        }
        if !entries.is_empty() {
            each(&entries)?;
        }
        Ok(())
    }

    /// Removes every entry whose key starts with `prefix`, in the key groups `groups` (an
    /// incremental snapshot records each removal): cached ones are dropped from the cache, and
    /// only those the tree holds are removed from it.
    pub fn remove_prefixed(&mut self, groups: std::ops::RangeInclusive<u32>, prefix: &[u8]) -> UserResult<()> {
        let limit = self.changes_limit();
        // Cached entries the tree does not hold: a snapshot may hold them (encoded at a
        // barrier), so their removal is logged.
        let dropped: Vec<(Box<[u8]>, Slot<V>)> = self
            .cache
            .extract_if(|k, s| groups.contains(&s.group) && k.starts_with(prefix))
            .collect();
        for (key, slot) in dropped {
            self.cached_bytes -= slot.size as usize;
            if slot.stored == 0 && slot.dirty {
                self.changed.log(slot.group, &key, None, limit)?;
            }
        }
        let mut batch = self.db.db.batch().durability(None);
        for group in groups {
            for guard in self.tree.prefix(tree_key(group, prefix)) {
                let (key, value) = guard.into_inner().map_err(|e| io_error("reading entries", e))?;
                self.live = self.live.saturating_sub(u64::from(record_len(&key[2..], value.len())));
                self.live_keys = self.live_keys.saturating_sub(1);
                self.changed.log(group, &key[2..], None, limit)?;
                batch.remove(&self.tree, key);
                if batch.len() >= WRITE_BATCH {
                    let full = std::mem::replace(&mut batch, self.db.db.batch().durability(None));
                    full.commit().map_err(|e| io_error("removing entries", e))?;
                }
            }
        }
        if !batch.is_empty() {
            batch.commit().map_err(|e| io_error("removing entries", e))?;
        }
        Ok(())
    }

    /// Writes the changed cached entries to the tree (values, or removals), in batches of
    /// [`WRITE_BATCH`]; those changed since the previous snapshot also go to the log.
    fn write_dirty(&mut self) -> UserResult<()> {
        let limit = self.changes_limit();
        let mut batch = self.db.db.batch().durability(None);
        let mut buf = Vec::new();
        for (key, slot) in self.cache.iter_mut().filter(|(_, s)| s.dirty) {
            slot.dirty = false;
            let logged = std::mem::take(&mut slot.changed);
            let was = std::mem::take(&mut slot.stored);
            self.live = self.live.saturating_sub(u64::from(was));
            self.live_keys = self.live_keys.saturating_sub(u64::from(was > 0));
            match &slot.value {
                Some(v) => {
                    buf.clear();
                    self.codec.encode(v, &mut buf)?;
                    batch.insert(&self.tree, tree_key(slot.group, key), buf.as_slice());
                    self.stored.insert(key);
                    slot.stored = record_len(key, buf.len());
                    self.live += u64::from(slot.stored);
                    self.live_keys += 1;
                    if logged {
                        self.changed.log(slot.group, key, Some(&buf), limit)?;
                    }
                }
                None => {
                    batch.remove(&self.tree, tree_key(slot.group, key));
                    if logged {
                        self.changed.log(slot.group, key, None, limit)?;
                    }
                }
            }
            if batch.len() >= WRITE_BATCH {
                let full = std::mem::replace(&mut batch, self.db.db.batch().durability(None));
                full.commit().map_err(|e| io_error("writing entries", e))?;
            }
        }
        if !batch.is_empty() {
            batch.commit().map_err(|e| io_error("writing entries", e))?;
        }
        Ok(())
    }

    /// Appends the dirty cached entries that `pick` selects to `log` (in the format of
    /// [`Changes`]) and marks them logged, leaving them dirty: the next spill writes them to
    /// the tree. Returns the bytes a full snapshot would write now (the tree's, with what the
    /// dirty entries change: exact for those encoded here, an average record for a new key
    /// encoded earlier), or `None` once `log` passes `limit` bytes.
    fn encode_cached(
        &mut self,
        log: &mut Vec<u8>,
        limit: usize,
        pick: impl Fn(&Slot<V>) -> bool,
    ) -> UserResult<Option<u64>> {
        let average = self.live.checked_div(self.live_keys).unwrap_or(0) as i64;
        let mut live = self.live as i64;
        let mut buf = Vec::new();
        for (key, slot) in self.cache.iter_mut().filter(|(_, s)| s.dirty) {
            let stored = i64::from(slot.stored);
            if !pick(slot) {
                live += match &slot.value {
                    Some(_) if stored == 0 => average,
                    Some(_) => 0,
                    None => -stored,
                };
                continue;
            }
            slot.changed = false;
            let entry = match &slot.value {
                Some(v) => {
                    buf.clear();
                    self.codec.encode(v, &mut buf)?;
                    live += i64::from(record_len(key, buf.len())) - stored;
                    Some(buf.as_slice())
                }
                None => {
                    live -= stored;
                    None
                }
            };
            log_record(log, slot.group, key, entry)?;
            if log.len() > limit {
                return Ok(None);
            }
        }
        Ok(Some(live.max(0) as u64))
    }

    /// Makes room in the cache: writes what changed, then drops the entries not used since the
    /// previous spill (all of them when that frees less than half), except `keep`'s (the key
    /// being looked up).
    fn spill(&mut self, keep: &[u8]) -> UserResult<()> {
        self.write_dirty()?;
        let before = self.cached_bytes;
        let mut left = 0;
        self.cache.retain(|k, s| {
            let hot = std::mem::take(&mut s.hot);
            if hot || **k == *keep {
                left += s.size as usize;
            }
            hot || **k == *keep
        });
        if left > before / 2 {
            left = 0;
            self.cache.retain(|k, s| {
                if **k == *keep {
                    left += s.size as usize;
                }
                **k == *keep
            });
        }
        self.cached_bytes = left;
        Ok(())
    }

    /// A snapshot. The task waits only while the cached entries changed since the previous
    /// snapshot are encoded into its log of changes (they stay dirty in the cache: the next
    /// spill writes them to the tree, as without checkpoints); the checkpoint thread then
    /// copies the latest record of each key in the log, key group by key group, into a state
    /// file beside the tree (never whole in memory). A full snapshot (the first, one asked for,
    /// or one whose log outgrew its share of memory) takes the tree's MVCC snapshot (O(1)) and
    /// merges the dirty cached entries, encoded the same way, into it in key order on the
    /// checkpoint thread; when those are too many to hold beside the cache (a quarter of the
    /// log's share), it writes them to the tree first. Either says how many bytes a full
    /// snapshot would write ([`Snapshot::with_live_bytes`]); how long a chain of change files
    /// may grow before a full one is [`crate::checkpoint::incremental::StateChain`]'s call.
    /// Records as [`super::table_snapshot::table_snapshot`] writes them.
    pub fn snapshot(&mut self, changes_only: bool, operator: Option<Vec<u8>>) -> UserResult<Snapshot> {
        let limit = self.changes_limit();
        let dir = self.db.path.clone();
        // Past its limit, the log is dropped: the snapshot is full.
        if changes_only
            && let Changes::Tracked(mut log) = std::mem::replace(&mut self.changed, Changes::Untracked)
            && let Some(live) = self.encode_cached(&mut log, limit, |s| s.changed)?
        {
            self.changed = Changes::Tracked(Vec::new());
            return Ok(Snapshot::file(true, move || {
                let mut out = GroupWriter::new(&dir)?;
                for change in LatestChanges::new(&log, Order::Any)? {
                    let change = change?;
                    out.put_record(change.group, change.record)?;
                }
                out.finish(operator)
            })
            .with_live_bytes(live));
        }
        // The dirty entries stay in memory until the full snapshot is written (a savepoint of
        // a large state takes a while): more than a quarter of the log's share, and they are
        // written to the tree instead.
        let mut dirty = Vec::new();
        let live = match self.encode_cached(&mut dirty, limit / 4, |s| s.dirty)? {
            Some(live) => live,
            None => {
                dirty = Vec::new();
                self.write_dirty()?;
                self.live
            }
        };
        self.changed = Changes::Tracked(Vec::new());
        let (view, tree) = (self.db.db.snapshot(), self.tree.clone());
        Ok(Snapshot::file(false, move || write_full(&dir, &view, &tree, &dirty, operator)).with_live_bytes(live))
    }

    /// Restores what a snapshot of either backend wrote into this table (or one part of its
    /// key-group range, see [`crate::contract::operator::Operator::restores_in_parts`]): key
    /// group by key group, the full records and every change set after them are merged (each
    /// key's latest record, removals dropped) and ingested as sorted tables (no memtable, no
    /// journal; a disk snapshot's full records are in key order already). Entry bytes are
    /// stored as they are, never decoded.
    pub fn restore(&mut self, state: &OperatorState) -> UserResult<()> {
        self.restore_entries(state, None)
    }

    /// [`DiskTable::restore`], showing `observe` every entry the records put (also those a
    /// later change set replaces or removes), decoded.
    pub fn restore_observing(
        &mut self,
        state: &OperatorState,
        mut observe: impl FnMut(u32, &[u8], &V) -> UserResult<()>,
    ) -> UserResult<()> {
        self.restore_entries(state, Some(&mut observe))
    }

    fn restore_entries(&mut self, state: &OperatorState, mut observe: Option<Observer<'_, V>>) -> UserResult<()> {
        self.stored.reserve(record_count(state)? as usize);
        let layers: Vec<&std::collections::BTreeMap<u32, Vec<u8>>> =
            std::iter::once(&state.keyed).chain(&state.deltas).collect();
        let groups: std::collections::BTreeSet<u32> = layers.iter().flat_map(|l| l.keys().copied()).collect();
        let mut ingestion = None;
        // One key group's records at a time, from every layer in order.
        let mut entries: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
        for group in groups {
            entries.clear();
            for layer in &layers {
                let Some(bytes) = layer.get(&group) else {
                    continue;
                };
                read_group(group, bytes, |group, key, entry| {
                    let entry = entry.map(std::mem::take);
                    if let (Some(observe), Some(bytes)) = (observe.as_mut(), entry) {
                        observe(group, key, &self.codec.decode(&mut &bytes[..])?)?;
                    }
                    entries.push((key, entry));
                    Ok(())
                })?;
            }
            // Each key's latest record, in key order (a disk snapshot's full records alone are
            // already: each key once, in order).
            if !entries.is_sorted_by(|a, b| a.0 < b.0) {
                entries.sort_by_key(|e| e.0);
                let mut latest: Vec<(&[u8], Option<&[u8]>)> = Vec::with_capacity(entries.len());
                for e in entries.drain(..) {
                    match latest.last_mut() {
                        Some(last) if last.0 == e.0 => *last = e,
                        _ => latest.push(e),
                    }
                }
                entries = latest;
            }
            if entries.is_empty() {
                continue;
            }
            if ingestion.is_none() {
                ingestion = Some(
                    self.tree
                        .start_ingestion()
                        .map_err(|e| io_error("restoring entries", e))?,
                );
            }
            let ingestion = ingestion.as_mut().expect("started above");
            self.stored
                .insert_all(entries.iter().filter(|e| e.1.is_some()).map(|e| e.0));
            for &(key, entry) in &entries {
                match entry {
                    Some(bytes) => {
                        self.live += u64::from(record_len(key, bytes.len()));
                        self.live_keys += 1;
                        ingestion.write(tree_key(group, key), bytes)
                    }
                    // A removal: the tree holds no older entry of the key after a fresh
                    // open, but a tombstone makes sure of it.
                    None => ingestion.write_tombstone(tree_key(group, key)),
                }
                .map_err(|e| io_error("restoring entries", e))?;
            }
        }
        if let Some(ingestion) = ingestion {
            ingestion.finish().map_err(|e| io_error("restoring entries", e))?;
        }
        Ok(())
    }
}

/// What [`DiskTable::restore_observing`] shows each restored entry.
type Observer<'a, V> = &'a mut dyn FnMut(u32, &[u8], &V) -> UserResult<()>;

/// Writes every entry of `tree` as `view` sees it, overlaid with the records of `dirty` (a log
/// of [`Changes`]: entries newer than the tree's, or removed), into a state file under `dir`.
fn write_full(
    dir: &std::path::Path,
    view: &fjall::Snapshot,
    tree: &fjall::Keyspace,
    dirty: &[u8],
    operator: Option<Vec<u8>>,
) -> UserResult<StateFile> {
    use fjall::Readable;
    let mut out = GroupWriter::new(dir)?;
    let mut newer = LatestChanges::new(dirty, Order::Keys)?.peekable();
    // A full snapshot holds no removals.
    let put = |out: &mut GroupWriter, change: Change<'_>| match change.entry {
        Some(_) => out.put_record(change.group, change.record),
        None => Ok(()),
    };
    for guard in view.iter(tree) {
        let (key, value) = guard.into_inner().map_err(|e| io_error("reading a snapshot", e))?;
        let group = u16::from_be_bytes([key[0], key[1]]) as u32;
        let key = &key[2..];
        // (A record the log cannot give stays in front, to fail below.)
        while let Some(change) = newer.next_if(|c| c.as_ref().is_ok_and(|c| (c.group, c.key) < (group, key))) {
            put(&mut out, change?)?;
        }
        match newer.next_if(|c| c.as_ref().is_ok_and(|c| (c.group, c.key) == (group, key))) {
            Some(change) => put(&mut out, change?)?,
            None => out.put(group, key, Some(&value))?,
        }
    }
    for change in newer {
        put(&mut out, change?)?;
    }
    out.finish(operator)
}

/// Writes records into an anonymous state file, key group by key group in ascending order: per
/// group the number of records, then the records (`KeyedRecords`' format); then the non-keyed
/// state. One key group's records are in memory at a time.
struct GroupWriter {
    out: std::io::BufWriter<std::fs::File>,
    name: tempfile::TempPath,
    index: Vec<(u32, u64, u64)>,
    at: u64,
    /// The group being written, its record count and records.
    current: Option<(u32, u64)>,
    records: Vec<u8>,
    block: Vec<u8>,
}

impl GroupWriter {
    fn new(dir: &std::path::Path) -> UserResult<Self> {
        let (file, name) = tempfile::NamedTempFile::new_in(dir)?.into_parts();
        Ok(GroupWriter {
            out: std::io::BufWriter::with_capacity(1 << 20, file),
            name,
            index: Vec::new(),
            at: 0,
            current: None,
            records: Vec::new(),
            block: Vec::new(),
        })
    }

    /// A record of `key` in `group` (not before the previous record's group): its stored
    /// entry, or its removal.
    fn put(&mut self, group: u32, key: &[u8], value: Option<&[u8]>) -> UserResult<()> {
        self.count(group)?;
        put_record(key, value, &mut self.records)
    }

    /// A record in `group` (not before the previous record's group), already encoded.
    fn put_record(&mut self, group: u32, record: &[u8]) -> UserResult<()> {
        self.count(group)?;
        self.records.extend_from_slice(record);
        Ok(())
    }

    /// Counts a record of `group`, writing out the previous group's when it changes.
    fn count(&mut self, group: u32) -> UserResult<()> {
        match self.current {
            Some((g, n)) if g == group => self.current = Some((g, n + 1)),
            _ => {
                self.flush()?;
                self.current = Some((group, 1));
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> UserResult<()> {
        use std::io::Write;
        let Some((group, count)) = self.current.take() else {
            return Ok(());
        };
        self.block.clear();
        encode_into(&count, &mut self.block)?;
        self.out.write_all(&self.block)?;
        self.out.write_all(&self.records)?;
        let len = (self.block.len() + self.records.len()) as u64;
        self.index.push((group, self.at, len));
        self.at += len;
        self.records.clear();
        Ok(())
    }

    fn finish(mut self, operator: Option<Vec<u8>>) -> UserResult<StateFile> {
        use std::io::Write;
        self.flush()?;
        let operator = match operator {
            Some(bytes) => {
                self.out.write_all(&bytes)?;
                let place = (self.at, bytes.len() as u64);
                self.at += bytes.len() as u64;
                Some(place)
            }
            None => None,
        };
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok(StateFile {
            file,
            name: Some(self.name),
            size: self.at,
            index: self.index,
            operator,
        })
    }
}

impl<V> Drop for DiskTable<V> {
    fn drop(&mut self) {
        self.db.open.fetch_sub(1, Ordering::Relaxed);
        if let Err(e) = self.db.db.delete_keyspace(self.tree.clone()) {
            tracing::warn!("disk state: dropping a table: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::KeyedTable;

    fn settings(dir: &std::path::Path, memory: u64) -> DiskSettings {
        DiskSettings {
            dir: dir.to_path_buf(),
            memory,
            ..DiskSettings::default()
        }
    }

    #[test]
    fn entries_survive_spills_and_removals_read_back_absent() {
        let tmp = tempfile::tempdir().unwrap();
        // A budget of 64 KiB: the entry cache holds a few hundred entries, so most go to disk.
        let mut t: DiskTable<u64> = DiskTable::open(&settings(tmp.path(), 64 << 10)).unwrap();
        for i in 0..20_000u64 {
            let key = i.to_be_bytes();
            let (v, existed) = t.entry((i % 128) as u32, &key, || 0).unwrap();
            assert!(!existed);
            *v += i;
        }
        for i in (0..20_000u64).step_by(3) {
            assert!(t.remove((i % 128) as u32, &i.to_be_bytes()).unwrap());
        }
        assert!(t.cache.len() < 20_000, "the cache spilled");
        for i in 0..20_000u64 {
            let got = t.get((i % 128) as u32, &i.to_be_bytes()).unwrap().copied();
            assert_eq!(got, (i % 3 != 0).then_some(i), "key {i}");
        }
        assert!(!t.remove(0, &0u64.to_be_bytes()).unwrap(), "removed twice");
    }

    /// Entries that grow after they are made (a join's rows of a key) count in the cache as
    /// they grow when the codec weighs them, so the budget holds: without weighing, ten keys
    /// appended to in place never spill and the cache holds everything.
    #[test]
    fn entries_that_grow_in_place_are_weighed_and_spilled() {
        let run = |weighed: bool| {
            let tmp = tempfile::tempdir().unwrap();
            let codec = Codec::<Vec<u8>>::serde();
            let codec = if weighed { codec.weighed(|v| v.len()) } else { codec };
            let mut t: DiskTable<Vec<u8>> = DiskTable::open_with(&settings(tmp.path(), 256 << 10), codec).unwrap();
            let mut most = 0;
            for i in 0..4_000u64 {
                let key = (i % 10).to_be_bytes();
                let (v, _) = t.entry(0, &key, Vec::new).unwrap();
                v.extend_from_slice(&[i as u8; 100]);
                most = most.max(
                    t.cache
                        .values()
                        .filter_map(|s| s.value.as_ref())
                        .map(Vec::len)
                        .sum::<usize>(),
                );
            }
            // Every byte is still there.
            for k in 0..10u64 {
                let v = t.get(0, &k.to_be_bytes()).unwrap().unwrap();
                assert_eq!(v.len(), 400 * 100, "key {k}");
                assert!(
                    v.chunks(100)
                        .enumerate()
                        .all(|(j, c)| c[0] == (j as u64 * 10 + k) as u8)
                );
            }
            most
        };
        assert!(run(false) >= 400_000, "unweighed, the cache holds every byte");
        let weighed = run(true);
        assert!(
            weighed < 256 << 10,
            "weighed, the cache stays within the budget: {weighed} bytes"
        );
    }

    #[test]
    fn the_latest_changes_come_by_key_group_one_per_key_in_key_order_when_asked() {
        let mut log = Vec::new();
        let keys: [&[u8]; 6] = [b"abcdefghX", b"ab\0", b"abcdefghA", b"ab", b"b", b"abcdefghX"];
        for (i, key) in keys.iter().enumerate() {
            log_record(&mut log, 3, key, Some(&[i as u8])).unwrap();
        }
        log_record(&mut log, 1, b"z", Some(b"first group")).unwrap();
        log_record(&mut log, 3, b"ab", None).unwrap();
        type Record<'a> = (u32, &'a [u8], Option<&'a [u8]>);
        let latest: Vec<Record<'_>> = LatestChanges::new(&log, Order::Keys)
            .unwrap()
            .map(|c| c.map(|c| (c.group, c.key, c.entry)).unwrap())
            .collect();
        let want: Vec<Record<'_>> = vec![
            (1, b"z", Some(b"first group")),
            (3, b"ab", None),
            (3, b"ab\0", Some(&[1])),
            (3, b"abcdefghA", Some(&[2])),
            (3, b"abcdefghX", Some(&[5])),
            (3, b"b", Some(&[4])),
        ];
        assert_eq!(latest, want);
        // In any order: the same records, by key group.
        let mut any: Vec<Record<'_>> = LatestChanges::new(&log, Order::Any)
            .unwrap()
            .map(|c| c.map(|c| (c.group, c.key, c.entry)).unwrap())
            .collect();
        assert_eq!(any[0], want[0], "key group 1 first");
        any.sort();
        assert_eq!(any, want);
    }

    #[test]
    fn changes_are_copied_from_the_log_latest_record_per_key_and_past_its_budget_the_snapshot_is_full() {
        let tmp = tempfile::tempdir().unwrap();
        // 320 KiB: the log may hold ~96 KiB.
        let s = settings(tmp.path(), 320 << 10);
        let mut t: DiskTable<String> = DiskTable::open(&s).unwrap();
        for i in 0..5_000u32 {
            t.insert(i % 128, &i.to_be_bytes(), format!("v{i}")).unwrap();
        }
        let state = |snap: Snapshot| (snap.is_changes(), snap.into_state().unwrap());
        let count = |state: &OperatorState| crate::contract::state::record_count(state).unwrap();
        // The first snapshot is full even when asked for changes: there is nothing to compare.
        let (changes, full) = state(t.snapshot(true, None).unwrap());
        assert_eq!((changes, count(&full)), (false, 5_000));
        // Half the table changed, some keys twice (written to the tree twice), one removed: the
        // latest record of each, from the log.
        for i in 0..2_500u32 {
            t.insert(i % 128, &i.to_be_bytes(), format!("w{i}")).unwrap();
        }
        t.write_dirty().unwrap();
        for i in 0..10u32 {
            t.insert(i % 128, &i.to_be_bytes(), format!("x{i}")).unwrap();
        }
        t.remove(11, &11u32.to_be_bytes()).unwrap();
        t.write_dirty().unwrap();
        assert!(matches!(t.changed, Changes::Tracked(_)));
        let (changes, delta) = state(t.snapshot(true, None).unwrap());
        assert_eq!((changes, count(&delta)), (true, 2_500));
        let mut mem: KeyedTable<String> = KeyedTable::new();
        let chain = OperatorState {
            deltas: vec![delta.keyed],
            ..full
        };
        crate::state::table_snapshot::table_restore(&chain, &mut mem).unwrap();
        assert_eq!(mem.get(&9u32.to_be_bytes()).map(String::as_str), Some("x9"));
        assert_eq!(mem.get(&10u32.to_be_bytes()).map(String::as_str), Some("w10"));
        assert_eq!(mem.get(&11u32.to_be_bytes()), None);
        assert_eq!(mem.get(&2_500u32.to_be_bytes()).map(String::as_str), Some("v2500"));
        // Changes past the log's budget: dropped, the next snapshot is full.
        let long = |i: u32| format!("again{i}-{}", "x".repeat(64));
        for i in 0..2_000u32 {
            t.insert(i % 128, &i.to_be_bytes(), long(i)).unwrap();
        }
        t.write_dirty().unwrap();
        assert!(matches!(t.changed, Changes::Untracked));
        let (changes, again) = state(t.snapshot(true, None).unwrap());
        assert_eq!((changes, count(&again)), (false, 5_000));
        // Tracking starts again from there.
        t.insert(0, &0u32.to_be_bytes(), "fourth".into()).unwrap();
        let (changes, one) = state(t.snapshot(true, None).unwrap());
        assert_eq!((changes, count(&one)), (true, 1));
    }

    #[test]
    fn a_snapshot_encodes_cached_changes_without_writing_the_tree_and_a_full_one_merges_them() {
        let tmp = tempfile::tempdir().unwrap();
        // 8 MiB: nothing spills.
        let mut t: DiskTable<String> = DiskTable::open(&settings(tmp.path(), 8 << 20)).unwrap();
        let stored = |t: &DiskTable<String>| t.tree.iter().count();
        let count = |snap: Snapshot| {
            let changes = snap.is_changes();
            let state = snap.into_state().unwrap();
            (changes, crate::contract::state::record_count(&state).unwrap(), state)
        };
        for i in 0..1_000u32 {
            t.insert(i % 128, &i.to_be_bytes(), format!("v{i}")).unwrap();
        }
        // The first snapshot is full, from the cache alone: the tree stays empty. It says what
        // a full snapshot writes: per record removed?, key and entry framed (a string: its
        // length, then its bytes).
        let records: u64 = (0..1_000u32)
            .map(|i| 1 + 1 + 4 + 1 + 1 + format!("v{i}").len() as u64)
            .sum();
        let snap = t.snapshot(true, None).unwrap();
        assert_eq!(snap.live_bytes(), Some(records), "estimated before any spill");
        let (changes, n, _) = count(snap);
        assert_eq!((changes, n, stored(&t)), (false, 1_000, 0));
        assert!(t.cache.values().all(|s| s.dirty && !s.changed));
        // Ten keys change: the next holds those ten, still without a write to the tree.
        for i in 0..10u32 {
            t.insert(i % 128, &i.to_be_bytes(), format!("w{i}")).unwrap();
        }
        let (changes, n, _) = count(t.snapshot(true, None).unwrap());
        assert_eq!((changes, n, stored(&t)), (true, 10, 0));
        // A spill writes them all to the tree but logs none: none changed since.
        t.write_dirty().unwrap();
        assert_eq!(stored(&t), 1_000);
        assert!(matches!(&t.changed, Changes::Tracked(log) if log.is_empty()));
        let snap = t.snapshot(true, None).unwrap();
        assert_eq!(snap.live_bytes(), Some(records), "counted exactly once spilled");
        let (changes, n, _) = count(snap);
        assert_eq!((changes, n), (true, 0));
        // A full snapshot merges the cache's newer entries into the tree's: one removed, one
        // changed, two new (before the first key and after the last).
        t.remove(5, &5u32.to_be_bytes()).unwrap();
        t.insert(7, &7u32.to_be_bytes(), "x7".into()).unwrap();
        t.insert(0, &[0u8], "first".into()).unwrap();
        t.insert(127, &u32::MAX.to_be_bytes(), "last".into()).unwrap();
        let (changes, n, full) = count(t.snapshot(false, None).unwrap());
        assert_eq!((changes, n, stored(&t)), (false, 1_001, 1_000));
        let mut mem: KeyedTable<String> = KeyedTable::new();
        crate::state::table_snapshot::table_restore(&full, &mut mem).unwrap();
        assert_eq!(mem.len(), 1_001);
        assert_eq!(mem.get(&5u32.to_be_bytes()), None);
        assert_eq!(mem.get(&7u32.to_be_bytes()).map(String::as_str), Some("x7"));
        assert_eq!(mem.get(&8u32.to_be_bytes()).map(String::as_str), Some("w8"));
        assert_eq!(mem.get(&11u32.to_be_bytes()).map(String::as_str), Some("v11"));
        assert_eq!(mem.get(&[0u8]).map(String::as_str), Some("first"));
        assert_eq!(mem.get(&u32::MAX.to_be_bytes()).map(String::as_str), Some("last"));
    }

    #[test]
    fn changed_keys_that_outgrow_their_share_of_memory_make_the_next_snapshot_full() {
        let tmp = tempfile::tempdir().unwrap();
        // 64 KiB: the log may hold ~19 KiB, fewer than these 1,000 changes (~26 bytes each).
        let mut t: DiskTable<String> = DiskTable::open(&settings(tmp.path(), 64 << 10)).unwrap();
        for i in 0..5_000u32 {
            t.insert(i % 128, &i.to_be_bytes(), format!("v{i}")).unwrap();
        }
        assert!(!t.snapshot(true, None).unwrap().is_changes());
        for i in 0..1_000u32 {
            t.insert(i % 128, &i.to_be_bytes(), format!("again{i}-xxxxxxxxxx"))
                .unwrap();
        }
        t.write_dirty().unwrap();
        assert!(matches!(t.changed, Changes::Untracked));
        let snap = t.snapshot(true, None).unwrap();
        assert!(!snap.is_changes());
        let full = snap.into_state().unwrap();
        assert_eq!(crate::contract::state::record_count(&full).unwrap(), 5_000);
    }

    #[test]
    fn snapshots_restore_into_either_backend_and_changes_hold_only_what_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path(), 64 << 10);
        let mut t: DiskTable<String> = DiskTable::open(&s).unwrap();
        for i in 0..5_000u32 {
            t.insert(i % 128, &i.to_be_bytes(), format!("v{i}")).unwrap();
        }
        let full = t.snapshot(false, None).unwrap().into_state().unwrap();
        t.insert(1, &1u32.to_be_bytes(), "changed".into()).unwrap();
        t.remove(2, &2u32.to_be_bytes()).unwrap();
        t.insert(9_999 % 128, &9_999u32.to_be_bytes(), "new".into()).unwrap();
        let changes = t.snapshot(true, None).unwrap();
        assert!(changes.is_changes());
        let changes = changes.into_state().unwrap();
        assert_eq!(
            crate::contract::state::record_count(&changes).unwrap(),
            3,
            "three keys changed"
        );
        let restored = OperatorState {
            deltas: vec![changes.keyed.clone()],
            ..full.clone()
        };
        // Into memory.
        let mut mem: KeyedTable<String> = KeyedTable::new();
        crate::state::table_snapshot::table_restore(&restored, &mut mem).unwrap();
        assert_eq!(mem.len(), 5_000);
        assert_eq!(mem.get(&1u32.to_be_bytes()).map(String::as_str), Some("changed"));
        assert_eq!(mem.get(&2u32.to_be_bytes()), None);
        assert_eq!(mem.get(&9_999u32.to_be_bytes()).map(String::as_str), Some("new"));
        // Into disk, and a memory snapshot into disk gives the same entries.
        let mut disk: DiskTable<String> = DiskTable::open(&s).unwrap();
        disk.restore(&restored).unwrap();
        let mem_full = crate::state::table_snapshot::table_snapshot(&mut mem, false, None)
            .into_state()
            .unwrap();
        let mut from_mem: DiskTable<String> = DiskTable::open(&s).unwrap();
        from_mem.restore(&mem_full).unwrap();
        for i in (0..5_000u32).chain([9_999]) {
            let key = i.to_be_bytes();
            let want = mem.get(&key).cloned();
            assert_eq!(disk.get(i % 128, &key).unwrap().cloned(), want, "key {i}");
            assert_eq!(from_mem.get(i % 128, &key).unwrap().cloned(), want, "key {i}");
        }
    }

    #[test]
    fn prefixed_entries_merge_the_cache_with_the_tree_and_their_removal_reaches_the_next_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path(), 1 << 20);
        let mut t: DiskTable<u64> = DiskTable::open(&s).unwrap();
        let key = |window: u8, i: u64| [&[window][..], &i.to_be_bytes()].concat();
        let group = |i: u64| (i % 8) as u32;
        // Two windows, 3,000 keys each: most spill to the tree, the newest stay cached.
        for i in 0..3_000u64 {
            for w in [1u8, 2] {
                t.insert(group(i), &key(w, i), i).unwrap();
            }
        }
        assert!(t.cache.len() < 6_000, "the cache spilled");
        let full = t.snapshot(false, None).unwrap().into_state().unwrap();
        // After the snapshot: some keys change (in cache or read back from the tree), some go,
        // some are new and stay cached.
        for i in (0..3_000u64).step_by(7) {
            *t.entry(group(i), &key(1, i), || 0).unwrap().0 += 1_000_000;
        }
        for i in (0..3_000u64).step_by(11) {
            t.remove(group(i), &key(1, i)).unwrap();
        }
        for i in 3_000..3_100u64 {
            t.insert(group(i), &key(1, i), i).unwrap();
        }
        let want = |i: u64| -> Option<u64> {
            match i {
                _ if i >= 3_100 => None,
                _ if i < 3_000 && i.is_multiple_of(11) => None,
                _ if i < 3_000 && i.is_multiple_of(7) => Some(i + 1_000_000),
                _ => Some(i),
            }
        };
        let mut fired = Vec::new();
        t.for_each_prefixed(0..=7, &[1], 100, |chunk| {
            assert!(chunk.len() <= 100);
            fired.extend(chunk.iter().map(|(g, k, v)| (*g, k.clone(), *v)));
            Ok(())
        })
        .unwrap();
        let mut expected: Vec<(u32, Box<[u8]>, u64)> = (0..3_100u64)
            .filter_map(|i| want(i).map(|v| (group(i), key(1, i).into_boxed_slice(), v)))
            .collect();
        expected.sort();
        assert_eq!(
            fired, expected,
            "window 1, by key group and key, the cached version winning"
        );
        // The window goes; window 2 stays; the snapshot after records the removals.
        t.remove_prefixed(0..=7, &[1]).unwrap();
        let mut left = 0;
        t.for_each_prefixed(0..=7, &[1], 100, |chunk| {
            left += chunk.len();
            Ok(())
        })
        .unwrap();
        assert_eq!(left, 0, "window 1 removed");
        let changes = t.snapshot(true, None).unwrap();
        assert!(changes.is_changes());
        let restored = OperatorState {
            deltas: vec![changes.into_state().unwrap().keyed],
            ..full
        };
        let mut back: DiskTable<u64> = DiskTable::open(&s).unwrap();
        back.restore(&restored).unwrap();
        for i in 0..3_100u64 {
            assert_eq!(back.get(group(i), &key(1, i)).unwrap(), None, "window 1 key {i}");
            let two = (i < 3_000).then_some(i);
            assert_eq!(
                back.get(group(i), &key(2, i)).unwrap().copied(),
                two,
                "window 2 key {i}"
            );
        }
    }

    #[test]
    fn the_state_directory_goes_when_the_last_table_does() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path(), 1 << 20);
        let a: DiskTable<u8> = DiskTable::open(&s).unwrap();
        let b: DiskTable<u8> = DiskTable::open(&s).unwrap();
        let dir = tmp.path().join(format!("weir-{}", std::process::id()));
        assert!(dir.exists());
        drop(a);
        assert!(dir.exists(), "b still uses it");
        drop(b);
        assert!(!dir.exists(), "removed with the last table");
    }
}
