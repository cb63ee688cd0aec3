//! Operators keep their keyed state in a [`StateTable`]: in memory (the default, fastest) or on
//! local disk (state larger than memory), as the job's [`StateBackend`] says.

use std::borrow::Cow;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::KeyedTable;
use super::codec::Codec;
use super::disk::DiskTable;
use super::table_snapshot::{table_restore_with, table_snapshot_with};
use crate::contract::UserResult;
use crate::contract::error::{Result, WeirError};
use crate::contract::state::{OperatorState, Snapshot};
pub use crate::contract::state_backend::{DEFAULT_DISK_MEMORY, DiskSettings, StateBackend, parse_bytes};

/// Keyed state of one operator subtask, from key (bytes, in a key group) to `V`, on the job's
/// backend. Every entry is written to checkpoints the same way on both, so a snapshot restores
/// into either.
pub enum StateTable<V> {
    /// In memory, with how its entries are encoded in checkpoints.
    Memory(KeyedTable<V>, Codec<V>),
    /// On local disk.
    Disk(DiskTable<V>),
}

impl<V> StateTable<V>
where
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// An empty table on `backend`, its entries encoded as postcard.
    pub fn new(backend: &StateBackend) -> Result<Self> {
        Self::with_codec(backend, Codec::serde())
    }
}

impl<V> StateTable<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// An empty table on `backend`, its entries encoded by `codec`.
    pub fn with_codec(backend: &StateBackend, codec: Codec<V>) -> Result<Self> {
        Ok(match backend {
            StateBackend::Memory => StateTable::Memory(KeyedTable::new(), codec),
            StateBackend::Disk(settings) => {
                StateTable::Disk(DiskTable::open_with(settings, codec).map_err(|e| WeirError::io("state.backend", e))?)
            }
        })
    }

    /// The value of `key` (in key group `group`).
    pub fn get(&mut self, group: u32, key: &[u8]) -> UserResult<Option<&V>> {
        match self {
            StateTable::Memory(t, _) => Ok(t.get(key)),
            StateTable::Disk(t) => t.get(group, key),
        }
    }

    /// The value of `key` to change in place, if it has one.
    pub fn get_mut(&mut self, group: u32, key: &[u8]) -> UserResult<Option<&mut V>> {
        match self {
            StateTable::Memory(t, _) => Ok(t.get_mut(key)),
            StateTable::Disk(t) => t.get_mut(group, key),
        }
    }

    /// The values of several keys at once (`None` where a key has none): borrowed in memory,
    /// copies on disk (where reading one key may evict another from the cache).
    pub fn get_many<'a>(&'a mut self, keys: &[(u32, &[u8])]) -> UserResult<Vec<Option<Cow<'a, V>>>> {
        match self {
            StateTable::Memory(t, _) => Ok(keys.iter().map(|(_, k)| t.get(k).map(Cow::Borrowed)).collect()),
            StateTable::Disk(t) => keys
                .iter()
                .map(|(g, k)| Ok(t.get(*g, k)?.map(|v| Cow::Owned(v.clone()))))
                .collect(),
        }
    }

    /// The value of `key` just read or written (by [`StateTable::get`] or
    /// [`StateTable::entry`], with no other call since), without a `&mut` borrow.
    pub fn cached(&self, key: &[u8]) -> Option<&V> {
        match self {
            StateTable::Memory(t, _) => t.get(key),
            StateTable::Disk(t) => t.cached(key),
        }
    }

    /// The value of `key` to change in place, made with `make` when it has none; also whether
    /// it had one.
    pub fn entry(&mut self, group: u32, key: &[u8], make: impl FnOnce() -> V) -> UserResult<(&mut V, bool)> {
        match self {
            StateTable::Memory(t, _) => Ok(t.entry(group, key, make)),
            StateTable::Disk(t) => t.entry(group, key, make),
        }
    }

    /// The value of `key` to change in place, made with `make` when it has none.
    pub fn get_or_insert_with(&mut self, group: u32, key: &[u8], make: impl FnOnce() -> V) -> UserResult<&mut V> {
        Ok(self.entry(group, key, make)?.0)
    }

    /// Sets the value of `key`.
    pub fn insert(&mut self, group: u32, key: &[u8], value: V) -> UserResult<()> {
        match self {
            StateTable::Memory(t, _) => {
                t.insert(group, key, value);
                Ok(())
            }
            StateTable::Disk(t) => t.insert(group, key, value),
        }
    }

    /// Removes `key`; returns whether it had a value.
    pub fn remove(&mut self, group: u32, key: &[u8]) -> UserResult<bool> {
        match self {
            StateTable::Memory(t, _) => Ok(t.remove(key)),
            StateTable::Disk(t) => t.remove(group, key),
        }
    }

    /// The snapshot at a barrier: all entries, or with `changes_only` the puts and removals
    /// since the previous snapshot; encoded on the checkpoint thread.
    pub fn snapshot(&mut self, changes_only: bool, operator: Option<Vec<u8>>) -> UserResult<Snapshot> {
        match self {
            StateTable::Memory(t, codec) => {
                let codec = codec.clone();
                Ok(table_snapshot_with(
                    t,
                    changes_only,
                    operator,
                    move |e: &V, buf: &mut Vec<u8>| codec.encode(e, buf),
                ))
            }
            StateTable::Disk(t) => t.snapshot(changes_only, operator),
        }
    }

    /// Restores what a snapshot (of either backend) wrote into this empty table.
    pub fn restore(&mut self, state: &OperatorState) -> UserResult<()> {
        match self {
            StateTable::Disk(t) => t.restore(state),
            StateTable::Memory(..) => self.restore_observing(state, |_, _, _| Ok(())),
        }
    }

    /// [`StateTable::restore`], showing `observe` each entry the records put (also those a
    /// later change set replaces or removes): for operators that rebuild an index in memory,
    /// such as timers.
    pub fn restore_observing(
        &mut self,
        state: &OperatorState,
        mut observe: impl FnMut(u32, &[u8], &V) -> UserResult<()>,
    ) -> UserResult<()> {
        match self {
            StateTable::Memory(t, codec) => table_restore_with(state, t, |group, key, bytes| {
                let value = codec.decode(bytes)?;
                observe(group, key, &value)?;
                Ok(value)
            }),
            StateTable::Disk(t) => t.restore_observing(state, observe),
        }
    }
}
