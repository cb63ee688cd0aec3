//! The keyed state of one operator subtask (keyed process functions): key → state name →
//! value, with each key's key group.
//!
//! Values are typed (`Box<dyn Any>`) while in use. On the disk backend the store is a cache in
//! front of a [`DiskTable`] of each key's states as bytes: a key not in the cache is loaded
//! before its record or timer ([`KeyedStateStore::load`]), and when the cache is full, or at a
//! snapshot, the keys used since the previous time are written to the table. Checkpoints hold, per key, its states
//! as `(name, value bytes, last write)`, the same on both backends.

use std::any::Any;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::contract::UserResult;
use crate::contract::clock::{self, SharedClock};
use crate::contract::error::{Result, WeirError};
use crate::contract::state::{KeyedRecords, OperatorState, Snapshot, read_records, record_count};

use super::StateBackend;
use super::disk::DiskTable;

use super::descriptors::{
    AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor, ReducingStateDescriptor, ValueStateDescriptor,
};

struct Cell {
    value: Box<dyn Any + Send>,
    /// Encodes `value` for checkpoints (set by the typed write that made it).
    encode: Encoder,
    /// Last write (ms on the job's clock), kept only for states with a TTL (reading the clock
    /// costs).
    written: Option<i64>,
}

type Encoder = fn(&(dyn Any + Send)) -> UserResult<Vec<u8>>;

/// A restored value not read yet: decoded on first typed access.
struct Raw(Vec<u8>);

fn encoder<S: Any + Send + Serialize>() -> Encoder {
    |v| match v.downcast_ref::<S>() {
        Some(v) => crate::contract::state::encode(v),
        None => match v.downcast_ref::<Raw>() {
            Some(raw) => Ok(raw.0.clone()),
            None => Err("keyed state: a value of an unexpected type".into()),
        },
    }
}

/// A key's states by name: few per key, so a short list beats hashing the name.
type PerKey = Vec<(Box<str>, Cell)>;

use super::FastMap;

fn find<'a>(cells: &'a mut PerKey, name: &str) -> Option<&'a mut Cell> {
    cells.iter_mut().find(|(n, _)| n.as_ref() == name).map(|(_, c)| c)
}

/// A key's states as checkpoints and the disk backend hold them: name, value bytes, and the
/// last write (ms on the job's clock) for states with a TTL.
type Stored = Vec<(String, Vec<u8>, Option<i64>)>;

/// Keys a disk-backed store caches per byte of its memory budget's share (an estimate of a
/// cached key with a few small states).
const CACHED_KEY_BYTES: u64 = 256;

/// The disk behind a store.
struct Spill {
    table: DiskTable<Stored>,
    /// Keys whose last state went since the cache was last written, with their key groups
    /// (their entries on disk are stale).
    removed: FastMap<Box<[u8]>, u32>,
    /// Keys used since the cache was last written (the others are as on disk).
    dirty: FastMap<Box<[u8]>, ()>,
    /// Keys the cache holds at most.
    capacity: usize,
}

/// All keyed state of one subtask, grouped by key group.
pub struct KeyedStateStore {
    /// Key → its key group and states: one hash lookup per access (the key group is a
    /// function of the key; snapshots group by it).
    keys: FastMap<Box<[u8]>, (u32, PerKey)>,
    /// The clock state TTLs follow (processing time).
    clock: SharedClock,
    /// On the disk backend: where keys go when the cache is full.
    spill: Option<Spill>,
}

fn stored(cells: &PerKey) -> UserResult<Stored> {
    cells
        .iter()
        .map(|(name, cell)| Ok((name.to_string(), (cell.encode)(cell.value.as_ref())?, cell.written)))
        .collect()
}

fn cells(stored: Stored) -> PerKey {
    stored
        .into_iter()
        .map(|(name, bytes, written)| {
            let cell = Cell {
                value: Box::new(Raw(bytes)),
                encode: encoder::<()>(),
                written,
            };
            (name.into_boxed_str(), cell)
        })
        .collect()
}

impl Default for KeyedStateStore {
    fn default() -> Self {
        Self::with_clock(clock::system())
    }
}

impl KeyedStateStore {
    /// An empty store whose TTLs follow the wall clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose TTLs follow `clock` (the job's processing-time clock).
    pub fn with_clock(clock: SharedClock) -> Self {
        KeyedStateStore {
            keys: FastMap::default(),
            clock,
            spill: None,
        }
    }

    /// An empty store on `backend` whose TTLs follow `clock`.
    pub fn on_backend(backend: &StateBackend, clock: SharedClock) -> Result<Self> {
        let mut store = Self::with_clock(clock);
        if let StateBackend::Disk(settings) = backend {
            store.spill = Some(Spill {
                table: DiskTable::open(settings).map_err(|e| WeirError::io("state.backend", e))?,
                removed: FastMap::default(),
                dirty: FastMap::default(),
                capacity: (settings.memory / 4 / CACHED_KEY_BYTES).max(8) as usize,
            });
        }
        Ok(store)
    }

    /// Makes `key`'s state ready for [`KeyedStateStore::handle`]: on the disk backend, reads
    /// it from disk when it is not cached (writing the cache out first when it is full). Does
    /// nothing in memory.
    pub fn load(&mut self, key_group: u32, key: &[u8]) -> UserResult<()> {
        let Some(spill) = &self.spill else {
            return Ok(());
        };
        if !self.keys.contains_key(key) {
            if self.keys.len() >= spill.capacity {
                self.write_out()?;
                self.keys.clear();
            }
            let spill = self.spill.as_mut().expect("checked");
            if !spill.removed.contains_key(key)
                && let Some(stored) = spill.table.get(key_group, key)?
            {
                let cells = cells(stored.clone());
                self.keys.insert(key.into(), (key_group, cells));
            }
        }
        // Whatever the record or timer does with it, the key is written out next time.
        let spill = self.spill.as_mut().expect("checked");
        if !spill.dirty.contains_key(key) {
            spill.dirty.insert(key.into(), ());
        }
        Ok(())
    }

    /// Writes the keys used since the previous time to disk, and the removals.
    fn write_out(&mut self) -> UserResult<()> {
        let Some(spill) = &mut self.spill else {
            return Ok(());
        };
        for (key, group) in std::mem::take(&mut spill.removed) {
            if !self.keys.contains_key(&key) {
                spill.table.remove(group, &key)?;
            }
        }
        for (key, ()) in std::mem::take(&mut spill.dirty) {
            if let Some((group, cells)) = self.keys.get(&key) {
                spill.table.insert(*group, &key, stored(cells)?)?;
            }
        }
        Ok(())
    }

    /// Number of keys with any state.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Key groups that hold state.
    pub fn key_groups(&self) -> Vec<u32> {
        let mut g: Vec<u32> = self.keys.values().map(|(kg, _)| *kg).collect();
        g.sort_unstable();
        g.dedup();
        g
    }

    /// The snapshot at a barrier, `operator` its non-keyed state: every key's states (in
    /// memory, encoded now), or on disk the table's snapshot after the cache is written to it
    /// (with `changes_only`, what changed since the previous one).
    pub fn snapshot(&mut self, changes_only: bool, operator: Option<Vec<u8>>) -> UserResult<Snapshot> {
        if self.spill.is_some() {
            self.write_out()?;
            let spill = self.spill.as_mut().expect("checked");
            return spill.table.snapshot(changes_only, operator);
        }
        let mut records = KeyedRecords::default();
        for (key, (group, cells)) in &self.keys {
            let entry = stored(cells)?;
            records.put(
                *group,
                key,
                Some(|buf: &mut Vec<u8>| crate::contract::state::encode_into(&entry, buf)),
            )?;
        }
        Ok(Snapshot::ready(records.into_state(operator)?))
    }

    /// Loads what [`KeyedStateStore::snapshot`] wrote (of either backend) into this empty
    /// store; values decode on first read. Times to live go on from the last writes recorded.
    pub fn restore(&mut self, state: &OperatorState) -> UserResult<()> {
        if let Some(spill) = &mut self.spill {
            return spill.table.restore(state);
        }
        self.keys.reserve(record_count(state)? as usize);
        read_records(state, |group, key, entry| {
            match entry {
                Some(bytes) => {
                    let stored: Stored = crate::contract::state::take(bytes)?;
                    self.keys.insert(key.into(), (group, cells(stored)));
                }
                None => {
                    self.keys.remove(key);
                }
            }
            Ok(())
        })
    }

    /// The state of one key.
    pub fn handle<'a>(&'a mut self, key_group: u32, key: &'a [u8]) -> StateHandle<'a> {
        StateHandle {
            store: self,
            key_group,
            key,
            now: None,
        }
    }
}

/// The state of the current key, for the duration of one record or timer.
pub struct StateHandle<'a> {
    store: &'a mut KeyedStateStore,
    key_group: u32,
    key: &'a [u8],
    /// The clock, read once per record and only when a TTL needs it.
    now: Option<i64>,
}

impl StateHandle<'_> {
    fn cells(&mut self) -> Option<&mut PerKey> {
        self.store.keys.get_mut(self.key).map(|(_, cells)| cells)
    }

    fn now(&mut self) -> i64 {
        let clock = &self.store.clock;
        *self.now.get_or_insert_with(|| clock.now_ms())
    }

    fn get<S: Any + Send + Serialize + DeserializeOwned>(
        &mut self,
        name: &str,
        ttl: Option<Duration>,
    ) -> Option<&mut S> {
        if let Some(t) = ttl {
            let written = find(self.cells()?, name)?.written;
            if written.is_some_and(|w| self.now() - w >= t.as_millis() as i64) {
                self.remove(name);
                return None;
            }
        }
        let cell = find(self.cells()?, name)?;
        if let Some(raw) = cell.value.downcast_ref::<Raw>() {
            // First read after a restore. A value that no longer decodes as this type is a
            // changed state type: reading it as absent would lose it silently, so it stays raw
            // and the read fails loudly instead.
            match crate::contract::state::decode::<S>(&raw.0) {
                Ok(v) => {
                    cell.value = Box::new(v);
                    cell.encode = encoder::<S>();
                }
                Err(e) => panic!(
                    "keyed state '{name}' cannot be read as {}: {e}",
                    std::any::type_name::<S>()
                ),
            }
        }
        cell.value.downcast_mut::<S>()
    }

    fn put<S: Any + Send + Serialize>(&mut self, name: &str, value: S, ttl: Option<Duration>) {
        let written = ttl.map(|_| self.now());
        // Overwrite in place when the cell exists: no allocation for the key or the name.
        if let Some(cell) = self.cells().and_then(|c| find(c, name))
            && let Some(slot) = cell.value.downcast_mut::<S>()
        {
            *slot = value;
            cell.written = written;
            return;
        }
        let encode = encoder::<S>();
        self.remove(name);
        if !self.store.keys.contains_key(self.key) {
            self.store.keys.insert(self.key.into(), (self.key_group, PerKey::new()));
        }
        let (_, cells) = self.store.keys.get_mut(self.key).expect("inserted above");
        cells.push((
            name.into(),
            Cell {
                value: Box::new(value),
                encode,
                written,
            },
        ));
    }

    fn touch(&mut self, name: &str, ttl: Option<Duration>) {
        if ttl.is_none() {
            return;
        }
        let now = self.now();
        if let Some(c) = self.cells().and_then(|c| find(c, name)) {
            c.written = Some(now);
        }
    }

    fn remove(&mut self, name: &str) {
        let key = self.key;
        if let Some((group, cells)) = self.store.keys.get_mut(key) {
            cells.retain(|(n, _)| n.as_ref() != name);
            if cells.is_empty() {
                if let Some(spill) = &mut self.store.spill {
                    spill.removed.insert(key.into(), *group);
                }
                self.store.keys.remove(key);
            }
        }
    }

    /// The value (Flink's `ValueState.value()`).
    pub fn value<T: Clone + Send + Serialize + DeserializeOwned + 'static>(
        &mut self,
        d: &ValueStateDescriptor<T>,
    ) -> Option<T> {
        self.get::<T>(&d.name, d.ttl).cloned()
    }

    /// Replaces the value.
    pub fn update<T: Send + Serialize + 'static>(&mut self, d: &ValueStateDescriptor<T>, value: T) {
        self.put(&d.name, value, d.ttl);
    }

    /// Removes a state of the current key, whatever its kind.
    pub fn clear(&mut self, name: &str) {
        self.remove(name);
    }

    /// Appends to a list.
    pub fn add<T: Send + Serialize + DeserializeOwned + 'static>(&mut self, d: &ListStateDescriptor<T>, value: T) {
        match self.get::<Vec<T>>(&d.name, d.ttl) {
            Some(list) => {
                list.push(value);
                self.touch(&d.name, d.ttl);
            }
            None => self.put(&d.name, vec![value], d.ttl),
        }
    }

    /// The list (empty when absent).
    pub fn list<T: Clone + Send + Serialize + DeserializeOwned + 'static>(
        &mut self,
        d: &ListStateDescriptor<T>,
    ) -> Vec<T> {
        self.get::<Vec<T>>(&d.name, d.ttl).cloned().unwrap_or_default()
    }

    /// Puts an entry into a map.
    pub fn put_entry<
        K: Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        V: Send + Serialize + DeserializeOwned + 'static,
    >(
        &mut self,
        d: &MapStateDescriptor<K, V>,
        key: K,
        value: V,
    ) {
        match self.get::<HashMap<K, V>>(&d.name, d.ttl) {
            Some(m) => {
                m.insert(key, value);
                self.touch(&d.name, d.ttl);
            }
            None => self.put(&d.name, HashMap::from([(key, value)]), d.ttl),
        }
    }

    /// An entry of a map.
    pub fn get_entry<
        K: Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        V: Clone + Send + Serialize + DeserializeOwned + 'static,
    >(
        &mut self,
        d: &MapStateDescriptor<K, V>,
        key: &K,
    ) -> Option<V> {
        self.get::<HashMap<K, V>>(&d.name, d.ttl)?.get(key).cloned()
    }

    /// Removes an entry of a map.
    pub fn remove_entry<
        K: Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        V: Send + Serialize + DeserializeOwned + 'static,
    >(
        &mut self,
        d: &MapStateDescriptor<K, V>,
        key: &K,
    ) {
        if let Some(m) = self.get::<HashMap<K, V>>(&d.name, d.ttl) {
            m.remove(key);
            self.touch(&d.name, d.ttl);
        }
    }

    /// All entries of a map.
    pub fn entries<
        K: Clone + Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        V: Clone + Send + Serialize + DeserializeOwned + 'static,
    >(
        &mut self,
        d: &MapStateDescriptor<K, V>,
    ) -> Vec<(K, V)> {
        self.get::<HashMap<K, V>>(&d.name, d.ttl)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Reduces `value` into a reducing state.
    pub fn reduce<T: Send + Serialize + DeserializeOwned + 'static>(
        &mut self,
        d: &ReducingStateDescriptor<T>,
        value: T,
    ) {
        let f = d.reduce.clone();
        match self.get::<T>(&d.name, d.ttl) {
            Some(current) => {
                *current = f(current, &value);
                self.touch(&d.name, d.ttl);
            }
            None => self.put(&d.name, value, d.ttl),
        }
    }

    /// The reduced value.
    pub fn reduced<T: Clone + Send + Serialize + DeserializeOwned + 'static>(
        &mut self,
        d: &ReducingStateDescriptor<T>,
    ) -> Option<T> {
        self.get::<T>(&d.name, d.ttl).cloned()
    }

    /// Adds `value` to an aggregating state.
    pub fn aggregate<In, Acc: Send + Serialize + DeserializeOwned + 'static, Out>(
        &mut self,
        d: &AggregatingStateDescriptor<In, Acc, Out>,
        value: In,
    ) {
        let f = d.function.clone();
        match self.get::<Acc>(&d.name, d.ttl) {
            Some(acc) => {
                f.add(value, acc);
                self.touch(&d.name, d.ttl);
            }
            None => {
                let mut acc = f.create_accumulator();
                f.add(value, &mut acc);
                self.put(&d.name, acc, d.ttl);
            }
        }
    }

    /// The aggregate's result.
    pub fn aggregated<In, Acc: Send + Serialize + DeserializeOwned + 'static, Out>(
        &mut self,
        d: &AggregatingStateDescriptor<In, Acc, Out>,
    ) -> Option<Out> {
        let f = d.function.clone();
        self.get::<Acc>(&d.name, d.ttl).map(|acc| f.get_result(acc))
    }
}
