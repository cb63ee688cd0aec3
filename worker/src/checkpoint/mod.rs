//! Checkpoints: asynchronous barrier snapshots (Flink's ABS), stored through `object_store`.
//!
//! - [`config`]: interval, timeout, pause, retention, storage URL.
//! - [`coordinator`]: triggers checkpoint `n` at the sources, collects every subtask's
//!   acknowledgement, writes `_metadata` last (create-only), then tells tasks `n` is complete.
//! - [`store`] and [`metadata`]: the layout and `_metadata`.
//! - [`dispose`]: deletes savepoints and old state namespaces on request, refusing what the
//!   running job needs.
//! - [`restore`]: what each subtask loads: the key groups of its range (from whichever old
//!   subtasks held them, reading only those bytes), and its operator state.
//! - [`local`]: local recovery, a copy of each uploaded state file on the worker's disk that a
//!   restart on the same machine reads instead of checkpoint storage.
//!
//! Operators hand their state over as an [`OperatorState`]: keyed state per key group, and
//! non-keyed operator state (a source's position, a sink's files awaiting commit).

pub mod config;
pub mod coordinator;
pub mod dispose;
pub mod incremental;
pub mod local;
pub mod metadata;
pub mod metrics;
pub mod restore;
pub mod store;

use std::collections::BTreeMap;

use arrow::row::RowConverter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::contract::UserResult;
pub use crate::contract::state::{
    KeyedRecords, OperatorState, decode, encode, encode_into, put_frame, read_records, record_count, take, take_frame,
};
pub use crate::state::table_snapshot::{table_restore, table_restore_with, table_snapshot, table_snapshot_with};

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

/// The non-keyed state of an operator with timers: its watermark and every timer as
/// `(event time?, at, key group, key)`. Timers carry their key groups so that a restore at any
/// parallelism keeps those of its own range ([`restore_timers`]).
pub fn encode_timers<'a>(
    watermark: i64,
    timers: impl Iterator<Item = (bool, i64, u32, &'a [u8])>,
) -> UserResult<Vec<u8>> {
    encode(&(watermark, timers.collect::<Vec<_>>()))
}

/// Reads back what [`encode_timers`] wrote in every restored subtask: hands `keep` each timer of
/// the key groups `lo..=hi` and returns the least watermark (`i64::MIN` when there is none).
pub fn restore_timers(
    state: &OperatorState,
    (lo, hi): (u32, u32),
    mut keep: impl FnMut(bool, i64, u32, Box<[u8]>),
) -> UserResult<i64> {
    let mut least: Option<i64> = None;
    for bytes in &state.union {
        type Stored = (i64, Vec<(bool, i64, u32, Vec<u8>)>);
        let (watermark, timers): Stored = decode(bytes)?;
        least = Some(least.map_or(watermark, |l| l.min(watermark)));
        for (event, at, group, key) in timers.into_iter().filter(|t| (lo..=hi).contains(&t.2)) {
            keep(event, at, group, key.into_boxed_slice());
        }
    }
    Ok(least.unwrap_or(i64::MIN))
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
