//! The contents of a window operator's windows per key (its panes), on the job's state backend.
//!
//! In memory: a [`KeyedTable`] per window (its start, or its end for cumulating windows), so
//! firing a window reads exactly its keys. On disk: one [`DiskTable`] whose keys are the window
//! (8 bytes, ordered as the window) followed by the key, so one window of one key group is a
//! contiguous key range; the open windows are listed in memory.
//!
//! Both write the same checkpoint records: per key group, `window ++ key` → contents, and a
//! removal for each key of a dropped window; a snapshot of either restores into either.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use crate::contract::UserResult;
use crate::contract::error::{Result, WeirError};
use crate::contract::state::{KeyedRecords, OperatorState, Snapshot, read_records};
use crate::state::disk::DiskTable;
use crate::state::{Codec, KeyedTable, StateBackend};

/// Entries a disk window hands to its output at a time.
const FIRE_CHUNK: usize = 8192;

/// The 8 bytes that lead the keys of `window` on disk and in checkpoints (big-endian with the
/// sign bit flipped: byte order is window order).
fn window_prefix(window: i64) -> [u8; 8] {
    ((window as u64) ^ (1 << 63)).to_be_bytes()
}

/// The window and the key of a stored key.
fn split(stored: &[u8]) -> UserResult<(i64, &[u8])> {
    let (prefix, key) = stored
        .split_first_chunk::<8>()
        .ok_or("restoring a window: a stored key shorter than its window")?;
    Ok(((u64::from_be_bytes(*prefix) ^ (1 << 63)) as i64, key))
}

fn stored_key(window: i64, key: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(8 + key.len());
    stored.extend_from_slice(&window_prefix(window));
    stored.extend_from_slice(key);
    stored
}

/// Per window and key, contents `V`.
pub(crate) enum Panes<V> {
    Memory {
        windows: BTreeMap<i64, KeyedTable<V>>,
        /// The windows dropped since the previous snapshot, once snapshots are taken: an
        /// incremental snapshot records the removal of their keys. Kept whole until then, so
        /// listing (and freeing) their keys happens on the checkpoint thread, not the task's.
        dropped: Vec<(i64, KeyedTable<V>)>,
        snapshotted: bool,
        codec: Codec<V>,
    },
    Disk {
        table: DiskTable<V>,
        windows: BTreeSet<i64>,
        scratch: Vec<u8>,
    },
}

impl<V: Clone + Send + Sync + 'static> Panes<V> {
    /// No windows, on `backend`, contents encoded by `codec`.
    pub(crate) fn new(backend: &StateBackend, codec: Codec<V>) -> Result<Self> {
        Ok(match backend {
            StateBackend::Memory => Panes::Memory {
                windows: BTreeMap::new(),
                dropped: Vec::new(),
                snapshotted: false,
                codec,
            },
            StateBackend::Disk(settings) => Panes::Disk {
                table: DiskTable::open_with(settings, codec).map_err(|e| WeirError::io("state.backend", e))?,
                windows: BTreeSet::new(),
                scratch: Vec::new(),
            },
        })
    }

    /// The earliest open window.
    pub(crate) fn first(&self) -> Option<i64> {
        match self {
            Panes::Memory { windows, .. } => windows.keys().next().copied(),
            Panes::Disk { windows, .. } => windows.first().copied(),
        }
    }

    /// The contents of `key` (in key group `group`) in `window`, made with `make` if new.
    pub(crate) fn add(&mut self, window: i64, group: u32, key: &[u8], make: impl FnOnce() -> V) -> UserResult<&mut V> {
        match self {
            Panes::Memory { windows, .. } => {
                Ok(windows.entry(window).or_default().get_or_insert_with(group, key, make))
            }
            Panes::Disk {
                table,
                windows,
                scratch,
            } => {
                windows.insert(window);
                scratch.clear();
                scratch.extend_from_slice(&window_prefix(window));
                scratch.extend_from_slice(key);
                Ok(table.entry(group, scratch, make)?.0)
            }
        }
    }

    /// The contents of each `(window, key group, key)`, which must have some.
    pub(crate) fn get_many<'a>(&'a mut self, which: &[(i64, u32, Box<[u8]>)]) -> UserResult<Vec<Cow<'a, V>>> {
        let missing = || -> crate::contract::UserError { "a window lost the contents just added to it".into() };
        self.get_each(which)?
            .into_iter()
            .map(|v| v.ok_or_else(missing))
            .collect()
    }

    /// The contents of each `(window, key group, key)`, `None` where it has none.
    pub(crate) fn get_each<'a>(&'a mut self, which: &[(i64, u32, Box<[u8]>)]) -> UserResult<Vec<Option<Cow<'a, V>>>> {
        match self {
            Panes::Memory { windows, .. } => Ok(which
                .iter()
                .map(|(w, _, k)| windows.get(w).and_then(|t| t.get(k)).map(Cow::Borrowed))
                .collect()),
            Panes::Disk { table, .. } => which
                .iter()
                .map(|(w, g, k)| Ok(table.get(*g, &stored_key(*w, k))?.map(|v| Cow::Owned(v.clone()))))
                .collect(),
        }
    }

    /// Every open window (or slice), ascending.
    pub(crate) fn keys(&self) -> Vec<i64> {
        match self {
            Panes::Memory { windows, .. } => windows.keys().copied().collect(),
            Panes::Disk { windows, .. } => windows.iter().copied().collect(),
        }
    }

    /// In memory: the tables of the windows (or slices) in `first..=last`, to read several at
    /// once without copying; `None` on disk.
    pub(crate) fn memory_tables(&self, first: i64, last: i64) -> Option<Vec<&KeyedTable<V>>> {
        match self {
            Panes::Memory { windows, .. } => Some(windows.range(first..=last).map(|(_, t)| t).collect()),
            Panes::Disk { .. } => None,
        }
    }

    /// Whether the contents are on disk (where firing goes one key group at a time, so what
    /// is merged in memory stays small).
    pub(crate) fn on_disk(&self) -> bool {
        matches!(self, Panes::Disk { .. })
    }

    /// Folds what finished snapshots froze back into the in-memory windows.
    pub(crate) fn settle(&mut self) {
        if let Panes::Memory { windows, .. } = self {
            windows.values_mut().for_each(KeyedTable::settle);
        }
    }

    /// Hands `each` the contents of every window in `(after, through]`, in window order, each
    /// window in one or more parts of `(key, contents)`; `groups` are this subtask's key groups.
    pub(crate) fn fire(
        &mut self,
        after: i128,
        through: i128,
        groups: RangeInclusive<u32>,
        mut each: impl FnMut(i64, &[(&[u8], &V)]) -> UserResult<()>,
    ) -> UserResult<()> {
        let due = |w: &i64| i128::from(*w) > after && i128::from(*w) <= through;
        match self {
            Panes::Memory { windows, .. } => {
                for (window, table) in windows.iter().filter(|(w, _)| due(w)) {
                    let rows: Vec<(&[u8], &V)> = table.iter().collect();
                    each(*window, &rows)?;
                }
            }
            Panes::Disk { table, windows, .. } => {
                for window in windows.iter().copied().filter(due) {
                    table.for_each_prefixed(groups.clone(), &window_prefix(window), FIRE_CHUNK, |entries| {
                        let rows: Vec<(&[u8], &V)> = entries.iter().map(|(_, k, v)| (&k[8..], v)).collect();
                        each(window, &rows)
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Drops every window up to `through`; `groups` are this subtask's key groups.
    pub(crate) fn drop_through(&mut self, through: i128, groups: RangeInclusive<u32>) -> UserResult<()> {
        match self {
            Panes::Memory {
                windows,
                dropped,
                snapshotted,
                ..
            } => {
                while let Some(entry) = windows.first_entry() {
                    if i128::from(*entry.key()) > through {
                        break;
                    }
                    let (window, table) = entry.remove_entry();
                    if *snapshotted {
                        dropped.push((window, table));
                    }
                }
            }
            Panes::Disk { table, windows, .. } => {
                while let Some(&window) = windows.first() {
                    if i128::from(window) > through {
                        break;
                    }
                    table.remove_prefixed(groups.clone(), &window_prefix(window))?;
                    windows.pop_first();
                }
            }
        }
        Ok(())
    }

    /// The snapshot at a barrier (see the module docs): all contents, or with `changes_only`
    /// what changed since the previous snapshot; `operator` is the non-keyed state.
    pub(crate) fn snapshot(&mut self, changes_only: bool, operator: Option<Vec<u8>>) -> UserResult<Snapshot> {
        match self {
            Panes::Memory {
                windows,
                dropped,
                snapshotted,
                codec,
            } => {
                *snapshotted = true;
                let views: Vec<_> = windows.iter_mut().map(|(w, t)| (*w, t.freeze())).collect();
                let dropped = std::mem::take(dropped);
                let codec = codec.clone();
                let write = move || {
                    let mut records = KeyedRecords::default();
                    let mut stored = Vec::new();
                    for (window, view) in &views {
                        let mut put = |group: u32, key: &[u8], value: Option<&V>| {
                            stored.clear();
                            stored.extend_from_slice(&window_prefix(*window));
                            stored.extend_from_slice(key);
                            records.put(group, &stored, value.map(|v| |buf: &mut Vec<u8>| codec.encode(v, buf)))
                        };
                        if changes_only {
                            for (group, key, value) in view.changes() {
                                put(group, key, value)?;
                            }
                        } else {
                            for (group, key, value) in view.iter() {
                                put(group, key, Some(value))?;
                            }
                        }
                    }
                    if changes_only {
                        for (window, table) in &dropped {
                            for (group, key, _) in table.iter_grouped() {
                                stored.clear();
                                stored.extend_from_slice(&window_prefix(*window));
                                stored.extend_from_slice(key);
                                records.put(group, &stored, None::<fn(&mut Vec<u8>) -> UserResult<()>>)?;
                            }
                        }
                    }
                    records.into_state(operator)
                };
                Ok(Snapshot::taken(changes_only, write))
            }
            Panes::Disk { table, .. } => table.snapshot(changes_only, operator),
        }
    }

    /// Restores what a snapshot of either backend wrote into these (empty) panes.
    pub(crate) fn restore(&mut self, state: &OperatorState) -> UserResult<()> {
        match self {
            Panes::Memory { windows, codec, .. } => read_records(state, |group, stored, entry| {
                let (window, key) = split(stored)?;
                match entry {
                    Some(bytes) => windows
                        .entry(window)
                        .or_default()
                        .insert(group, key, codec.decode(bytes)?),
                    None => {
                        if let Some(table) = windows.get_mut(&window) {
                            table.remove(key);
                            if table.is_empty() {
                                windows.remove(&window);
                            }
                        }
                    }
                }
                Ok(())
            }),
            Panes::Disk { table, windows, .. } => table.restore_observing(state, |_, stored, _| {
                windows.insert(split(stored)?.0);
                Ok(())
            }),
        }
    }
}
