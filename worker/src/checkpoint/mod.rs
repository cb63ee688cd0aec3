//! Checkpoints: asynchronous barrier snapshots (Flink's ABS), stored through `object_store`.
//!
//! - [`config`]: interval, timeout, pause, retention, storage URL.
//! - [`coordinator`]: triggers checkpoint `n` at the sources, collects every subtask's
//!   acknowledgement, writes `_metadata` last (create-only), then tells tasks `n` is complete.
//! - [`store`] and [`metadata`]: the layout and `_metadata`.
//! - [`restore`]: what each subtask loads: the key groups of its range (from whichever old
//!   subtasks held them, reading only those bytes), and its operator state.
//!
//! Operators hand their state over as an [`OperatorState`]: keyed state per key group, and
//! non-keyed operator state (a source's position, a sink's files awaiting commit).

pub mod config;
pub mod coordinator;
pub mod incremental;
pub mod metadata;
pub mod metrics;
pub mod restore;
pub mod store;

use std::collections::BTreeMap;

use arrow::row::RowConverter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::contract::UserResult;
use crate::contract::state::Snapshot;
pub use crate::contract::state::{OperatorState, decode, encode, encode_into, put_frame, take, take_frame};
use crate::state::KeyedTable;

pub use config::CheckpointConfig;
pub use metadata::{SnapshotKind, SnapshotMetadata};
pub use store::{CheckpointStore, SnapshotDir};

/// Key groups of keys in Arrow's row format (as the operators keep them), by decoding them and
/// hashing as the partitioner does: the same key lands in the same key group on every path.
pub fn key_groups_of(converter: &RowConverter, keys: &[&[u8]], max_parallelism: u32) -> UserResult<Vec<u32>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let parser = converter.parser();
    let columns = converter.convert_rows(keys.iter().map(|k| parser.parse(k)))?;
    let hashes = crate::keys::hash_rows(&columns, keys.len())?;
    Ok(hashes
        .iter()
        .map(|h| crate::keys::key_group_of_hash(*h, max_parallelism))
        .collect())
}

/// Groups `(key, entry)` pairs by key group and encodes each group's entries.
pub fn keyed_groups<E: Serialize>(
    converter: Option<&RowConverter>,
    entries: Vec<(&[u8], E)>,
    max_parallelism: u32,
) -> UserResult<BTreeMap<u32, Vec<u8>>> {
    let groups = match converter {
        Some(c) => key_groups_of(c, &entries.iter().map(|e| e.0).collect::<Vec<_>>(), max_parallelism)?,
        // Without keys (window_all) everything is one key in key group 0.
        None => vec![0; entries.len()],
    };
    let mut by_group: BTreeMap<u32, Vec<(&[u8], E)>> = BTreeMap::new();
    for (g, e) in groups.into_iter().zip(entries) {
        by_group.entry(g).or_default().push(e);
    }
    by_group.into_iter().map(|(g, list)| Ok((g, encode(&list)?))).collect()
}

/// Decodes every key group's entries written by [`keyed_groups`].
pub fn keyed_entries<E: DeserializeOwned>(state: &OperatorState) -> UserResult<Vec<(Vec<u8>, E)>> {
    let mut out = Vec::new();
    for bytes in state.keyed.values() {
        out.extend(decode::<Vec<(Vec<u8>, E)>>(bytes)?);
    }
    Ok(out)
}

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
        let mut groups: crate::state::FastMap<u32, (u64, Vec<u8>)> = Default::default();
        let mut put = |group: u32, key: &[u8], entry: Option<&E>| -> UserResult<()> {
            let (count, buf) = groups.entry(group).or_default();
            *count += 1;
            encode_into(&entry.is_none(), buf)?;
            put_frame(key, buf)?;
            match entry {
                Some(e) => encode(e, buf),
                None => Ok(()),
            }
        };
        if changes_only {
            for (group, key, entry) in view.changes() {
                put(group, key, entry)?;
            }
        } else {
            for (group, key, entry) in view.iter() {
                put(group, key, Some(entry))?;
            }
        }
        let mut keyed = BTreeMap::new();
        for (group, (count, records)) in groups {
            let mut bytes = Vec::with_capacity(records.len() + 10);
            encode_into(&count, &mut bytes)?;
            bytes.extend_from_slice(&records);
            keyed.insert(group, bytes);
        }
        Ok(OperatorState {
            keyed,
            operator,
            ..Default::default()
        })
    };
    Snapshot::taken(changes_only, write)
}

/// Restores what [`table_snapshot`] wrote (the full records, then every incremental
/// checkpoint's changes in order) into `table`, room made for all entries at once.
pub fn table_restore<E>(state: &OperatorState, table: &mut KeyedTable<E>) -> UserResult<()>
where
    E: Clone + DeserializeOwned,
{
    table_restore_with(state, table, |bytes| take::<E>(bytes))
}

/// Restores what [`table_snapshot_with`] wrote, each entry read by `decode` from the front of
/// the bytes it is given.
pub fn table_restore_with<E, F>(state: &OperatorState, table: &mut KeyedTable<E>, mut decode: F) -> UserResult<()>
where
    E: Clone,
    F: FnMut(&mut &[u8]) -> UserResult<E>,
{
    let mut total = 0;
    for bytes in state.keyed.values() {
        total += take::<u64>(&mut bytes.as_slice())?;
    }
    table.reserve(total as usize);
    for layer in std::iter::once(&state.keyed).chain(&state.deltas) {
        for (group, bytes) in layer {
            let mut rest = bytes.as_slice();
            let count: u64 = take(&mut rest)?;
            for _ in 0..count {
                let removed: bool = take(&mut rest)?;
                let key = take_frame(&mut rest)?;
                if removed {
                    table.remove(key);
                } else {
                    table.insert(*group, key, decode(&mut rest)?);
                }
            }
            if !rest.is_empty() {
                return Err(format!("restoring key group {group}: {} bytes after its records", rest.len()).into());
            }
        }
    }
    Ok(())
}

/// The least watermark over the restored subtasks' non-keyed states (each an encoded `i64`):
/// where a restored time-based operator resumes, whatever the new parallelism.
pub fn least_watermark(state: &OperatorState) -> UserResult<i64> {
    let mut least: Option<i64> = None;
    for bytes in &state.union {
        let w: i64 = decode(bytes)?;
        least = Some(least.map_or(w, |l| l.min(w)));
    }
    Ok(least.unwrap_or(i64::MIN))
}
