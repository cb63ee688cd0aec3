//! Snapshots of a [`KeyedTable`]: frozen on the task, encoded on the checkpoint thread into
//! per-key-group records ([`KeyedRecords`]), and restored from them.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::KeyedTable;
use crate::contract::UserResult;
use crate::contract::state::{KeyedRecords, OperatorState, Snapshot, encode_into, read_records, record_count, take};

/// The snapshot of keyed state held as one entry per key in a [`KeyedTable`] (as the SQL
/// operators, running aggregates and count windows keep it): frozen now, encoded on the
/// checkpoint thread; all entries, or with `changes_only` the puts and removals since the
/// previous snapshot. `operator` is the non-keyed state.
pub fn table_snapshot<E>(table: &mut KeyedTable<E>, changes_only: bool, operator: Option<Vec<u8>>) -> Snapshot
where
    E: Clone + Send + Sync + Serialize + 'static,
{
    table_snapshot_with(table, changes_only, operator, |e: &E, buf: &mut Vec<u8>| {
        encode_into(e, buf)
    })
}

/// [`table_snapshot`] with entries encoded by `encode` (for entries that are not `Serialize`
/// themselves, e.g. window contents). Per key group: the number of records, then records of
/// `(removed?, key, entry)`.
pub fn table_snapshot_with<E, F>(
    table: &mut KeyedTable<E>,
    changes_only: bool,
    operator: Option<Vec<u8>>,
    encode: F,
) -> Snapshot
where
    E: Clone + Send + Sync + 'static,
    F: Fn(&E, &mut Vec<u8>) -> UserResult<()> + Send + 'static,
{
    let view = table.freeze();
    let write = move || {
        let mut records = KeyedRecords::default();
        if changes_only {
            for (group, key, entry) in view.changes() {
                records.put(group, key, entry.map(|e| |buf: &mut Vec<u8>| encode(e, buf)))?;
            }
        } else {
            for (group, key, entry) in view.iter() {
                records.put(group, key, Some(|buf: &mut Vec<u8>| encode(entry, buf)))?;
            }
        }
        records.into_state(operator)
    };
    Snapshot::taken(changes_only, write)
}

/// Restores what [`table_snapshot`] wrote into an empty table.
pub fn table_restore<E>(state: &OperatorState, table: &mut KeyedTable<E>) -> UserResult<()>
where
    E: Clone + DeserializeOwned,
{
    table_restore_with(state, table, |_, _, bytes| take::<E>(bytes))
}

/// Restores what [`table_snapshot_with`] wrote, each entry read by `decode` from the front of
/// the bytes it is given (with the entry's key group and key).
pub fn table_restore_with<E, F>(state: &OperatorState, table: &mut KeyedTable<E>, mut decode: F) -> UserResult<()>
where
    E: Clone,
    F: FnMut(u32, &[u8], &mut &[u8]) -> UserResult<E>,
{
    table.reserve(record_count(state)? as usize);
    read_records(state, |group, key, entry| {
        match entry {
            Some(rest) => table.insert(group, key, decode(group, key, rest)?),
            None => {
                table.remove(key);
            }
        }
        Ok(())
    })
}
