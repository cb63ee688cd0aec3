//! Operators keep their keyed state in a [`StateTable`]: in memory (the default, fastest) or on
//! local disk (state larger than memory), as the job's [`StateBackend`] says.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::KeyedTable;
use super::disk::DiskTable;
use super::table_snapshot::{table_restore, table_snapshot};
use crate::contract::UserResult;
use crate::contract::error::{Result, WeirError};
use crate::contract::state::{OperatorState, Snapshot};
pub use crate::contract::state_backend::{DEFAULT_DISK_MEMORY, DiskSettings, StateBackend, parse_bytes};

/// Keyed state of one operator subtask, from key (bytes, in a key group) to `V`, on the job's
/// backend. Every entry is written to checkpoints the same way on both, so a snapshot restores
/// into either.
pub enum StateTable<V> {
    /// In memory.
    Memory(KeyedTable<V>),
    /// On local disk.
    Disk(DiskTable<V>),
}

impl<V> StateTable<V>
where
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// An empty table on `backend`.
    pub fn new(backend: &StateBackend) -> Result<Self> {
        Ok(match backend {
            StateBackend::Memory => StateTable::Memory(KeyedTable::new()),
            StateBackend::Disk(settings) => {
                StateTable::Disk(DiskTable::open(settings).map_err(|e| WeirError::io("state.backend", e))?)
            }
        })
    }

    /// The value of `key` (in key group `group`).
    pub fn get(&mut self, group: u32, key: &[u8]) -> UserResult<Option<&V>> {
        match self {
            StateTable::Memory(t) => Ok(t.get(key)),
            StateTable::Disk(t) => t.get(group, key),
        }
    }

    /// The value of `key` just read or written (by [`StateTable::get`] or
    /// [`StateTable::entry`], with no other call since), without a `&mut` borrow.
    pub fn cached(&self, key: &[u8]) -> Option<&V> {
        match self {
            StateTable::Memory(t) => t.get(key),
            StateTable::Disk(t) => t.cached(key),
        }
    }

    /// The value of `key` to change in place, made with `make` when it has none; also whether
    /// it had one.
    pub fn entry(&mut self, group: u32, key: &[u8], make: impl FnOnce() -> V) -> UserResult<(&mut V, bool)> {
        match self {
            StateTable::Memory(t) => Ok(t.entry(group, key, make)),
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
            StateTable::Memory(t) => {
                t.insert(group, key, value);
                Ok(())
            }
            StateTable::Disk(t) => t.insert(group, key, value),
        }
    }

    /// Removes `key`; returns whether it had a value.
    pub fn remove(&mut self, group: u32, key: &[u8]) -> UserResult<bool> {
        match self {
            StateTable::Memory(t) => Ok(t.remove(key)),
            StateTable::Disk(t) => t.remove(group, key),
        }
    }

    /// The snapshot at a barrier: all entries, or with `changes_only` the puts and removals
    /// since the previous snapshot; encoded on the checkpoint thread.
    pub fn snapshot(&mut self, changes_only: bool, operator: Option<Vec<u8>>) -> UserResult<Snapshot> {
        match self {
            StateTable::Memory(t) => Ok(table_snapshot(t, changes_only, operator)),
            StateTable::Disk(t) => t.snapshot(changes_only, operator),
        }
    }

    /// Restores what a snapshot (of either backend) wrote into this empty table.
    pub fn restore(&mut self, state: &OperatorState) -> UserResult<()> {
        match self {
            StateTable::Memory(t) => table_restore(state, t),
            StateTable::Disk(t) => t.restore(state),
        }
    }
}
