//! What an operator, source or sink hands over at a checkpoint barrier and gets back on
//! restore, and the one encoding state is written in.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::UserResult;

/// The state of one operator subtask at a barrier, or what it restores.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OperatorState {
    /// Keyed state, by key group.
    pub keyed: BTreeMap<u32, Vec<u8>>,
    /// Non-keyed state: this subtask's own (on restore: the same subtask's, when the
    /// parallelism did not change).
    pub operator: Option<Vec<u8>>,
    /// On restore only: the non-keyed state of every old subtask (Flink's union
    /// redistribution), e.g. for the least watermark across them.
    pub union: Vec<Vec<u8>>,
    /// On restore only: changes to apply over `keyed`, oldest first, by key group, from
    /// incremental checkpoints (only operators that snapshot [`Snapshot::changes`] get any).
    pub deltas: Vec<BTreeMap<u32, Vec<u8>>>,
}

impl OperatorState {
    /// Whether there is nothing to store.
    pub fn is_empty(&self) -> bool {
        self.keyed.is_empty() && self.operator.is_none()
    }
}

/// What an operator hands over at a barrier: its state encoded, or a frozen view of it that is
/// encoded on the checkpoint thread while the task goes on processing (copy-on-write state:
/// the task is held only for the freeze).
pub struct Snapshot {
    taken: Taken,
    changes: bool,
    /// Bytes a full snapshot would write now (estimated), when the state knows.
    live: Option<u64>,
}

enum Taken {
    Ready(OperatorState),
    Deferred(Box<dyn FnOnce() -> UserResult<OperatorState> + Send>),
    File(Box<dyn FnOnce() -> UserResult<StateFile> + Send>),
}

/// A subtask's state file written by the operator itself, for state too large to hold encoded
/// in memory at once: key groups in ascending order, then the non-keyed state, as the
/// checkpoint layout has them. The file is gone when closed and its name dropped.
#[derive(Debug)]
pub struct StateFile {
    /// The file, at any position.
    pub file: std::fs::File,
    /// Its temporary name, if it has one (removed when dropped): a local copy of the file can
    /// be a hard link to it instead of a copy.
    pub name: Option<tempfile::TempPath>,
    /// Its length in bytes.
    pub size: u64,
    /// `(key group, offset, length)` of each key group, ascending.
    pub index: Vec<(u32, u64, u64)>,
    /// `(offset, length)` of the non-keyed state.
    pub operator: Option<(u64, u64)>,
}

impl StateFile {
    /// Reads the whole file back as an [`OperatorState`] (small states, tests).
    pub fn into_state(mut self) -> UserResult<OperatorState> {
        use std::io::{Read, Seek};
        let mut bytes = Vec::with_capacity(self.size as usize);
        self.file.seek(std::io::SeekFrom::Start(0))?;
        self.file.read_to_end(&mut bytes)?;
        let slice = |off: u64, len: u64| -> UserResult<Vec<u8>> {
            bytes
                .get(off as usize..(off + len) as usize)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| "a state file shorter than its index".into())
        };
        let mut state = OperatorState::default();
        for (group, off, len) in &self.index {
            state.keyed.insert(*group, slice(*off, *len)?);
        }
        if let Some((off, len)) = self.operator {
            state.operator = Some(slice(off, len)?);
        }
        Ok(state)
    }
}

impl Snapshot {
    /// State encoded at the barrier.
    pub fn ready(state: OperatorState) -> Self {
        Snapshot {
            taken: Taken::Ready(state),
            changes: false,
            live: None,
        }
    }

    /// State that `encode` produces later, off the task, from a view frozen at the barrier.
    pub fn deferred(encode: impl FnOnce() -> UserResult<OperatorState> + Send + 'static) -> Self {
        Snapshot {
            taken: Taken::Deferred(Box::new(encode)),
            changes: false,
            live: None,
        }
    }

    /// Like [`Snapshot::deferred`], but its keyed state holds only the changes since this
    /// subtask's previous snapshot (an incremental checkpoint); restore hands them back in
    /// [`OperatorState::deltas`] after the state they change. Its non-keyed state is whole.
    pub fn changes(encode: impl FnOnce() -> UserResult<OperatorState> + Send + 'static) -> Self {
        Snapshot {
            taken: Taken::Deferred(Box::new(encode)),
            changes: true,
            live: None,
        }
    }

    /// [`Snapshot::changes`] when `changes_only`, else [`Snapshot::deferred`].
    pub fn taken(changes_only: bool, encode: impl FnOnce() -> UserResult<OperatorState> + Send + 'static) -> Self {
        Snapshot {
            taken: Taken::Deferred(Box::new(encode)),
            changes: changes_only,
            live: None,
        }
    }

    /// A snapshot the operator writes into a [`StateFile`] itself, off the task (state larger
    /// than memory: the file is streamed to storage, never held whole); the changes since the
    /// previous snapshot when `changes`, else all of it.
    pub fn file(changes: bool, write: impl FnOnce() -> UserResult<StateFile> + Send + 'static) -> Self {
        Snapshot {
            taken: Taken::File(Box::new(write)),
            changes,
            live: None,
        }
    }

    /// Says how many bytes a full snapshot of the state would write now (an estimate): the
    /// checkpoint chain then takes a full snapshot when its files hold twice that, not when
    /// its changes outweigh its full file (a state that only grows then needs no full ones).
    pub fn with_live_bytes(mut self, bytes: u64) -> Self {
        self.live = Some(bytes);
        self
    }

    /// What [`Snapshot::with_live_bytes`] said.
    pub fn live_bytes(&self) -> Option<u64> {
        self.live
    }

    /// The state as a file when the operator writes one ([`Snapshot::file`]), else `Err(self)`.
    pub fn into_file(self) -> Result<UserResult<StateFile>, Self> {
        match self.taken {
            Taken::File(f) => Ok(f()),
            taken => Err(Snapshot { taken, ..self }),
        }
    }

    /// Whether this holds only the changes since the previous snapshot.
    pub fn is_changes(&self) -> bool {
        self.changes
    }

    /// Whether nothing needs encoding or storing.
    pub fn is_empty(&self) -> bool {
        !self.changes && matches!(&self.taken, Taken::Ready(s) if s.is_empty())
    }

    /// The encoded state (encoding it now if deferred).
    pub fn into_state(self) -> UserResult<OperatorState> {
        match self.taken {
            Taken::Ready(s) => Ok(s),
            Taken::Deferred(f) => f(),
            Taken::File(f) => f()?.into_state(),
        }
    }
}

impl From<OperatorState> for Snapshot {
    fn from(state: OperatorState) -> Self {
        Snapshot::ready(state)
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.taken {
            Taken::Ready(s) => f.debug_tuple("Snapshot::Ready").field(s).finish(),
            Taken::Deferred(_) if self.changes => f.write_str("Snapshot::Changes"),
            Taken::Deferred(_) => f.write_str("Snapshot::Deferred"),
            Taken::File(_) => f.write_str("Snapshot::File"),
        }
    }
}

/// Encodes a value of state (postcard: compact, schema-less, stable).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> UserResult<Vec<u8>> {
    Ok(postcard::to_stdvec(value)?)
}

/// Appends the encoding of `value` to `buf` (no allocation of its own).
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> UserResult<()> {
    *buf = postcard::to_extend(value, std::mem::take(buf))?;
    Ok(())
}

/// Appends `bytes` to `buf` with their length in front (a varint), for records of several
/// variable-length parts read back with [`take_frame`].
pub fn put_frame(bytes: &[u8], buf: &mut Vec<u8>) -> UserResult<()> {
    encode_into(&(bytes.len() as u64), buf)?;
    buf.extend_from_slice(bytes);
    Ok(())
}

/// Appends one keyed record to `buf`: removed? (one byte), `key` framed, then `entry` (stored
/// bytes) framed unless removed — what [`read_group`] reads.
pub fn put_record(key: &[u8], entry: Option<&[u8]>, buf: &mut Vec<u8>) -> UserResult<()> {
    buf.push(u8::from(entry.is_none()));
    put_frame(key, buf)?;
    if let Some(entry) = entry {
        put_frame(entry, buf)?;
    }
    Ok(())
}

/// Takes one value written by [`encode_into`] from the front of `bytes`.
pub fn take<'a, T: serde::Deserialize<'a>>(bytes: &mut &'a [u8]) -> UserResult<T> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| format!("restoring state: {e}"))?;
    *bytes = rest;
    Ok(value)
}

/// Takes one frame written by [`put_frame`] from the front of `bytes`.
pub fn take_frame<'a>(bytes: &mut &'a [u8]) -> UserResult<&'a [u8]> {
    let len = take::<u64>(bytes)? as usize;
    if len > bytes.len() {
        return Err(format!("restoring state: a frame of {len} bytes with {} left", bytes.len()).into());
    }
    let (frame, rest) = bytes.split_at(len);
    *bytes = rest;
    Ok(frame)
}

/// Decodes a value of state.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> UserResult<T> {
    postcard::from_bytes(bytes).map_err(|e| format!("restoring state: {e}").into())
}

/// The per-key-group records of a keyed table's snapshot, as they are built: per key group,
/// the number of records, then records of `(removed?, key, entry)`, the key and the entry each
/// framed with their length (so a restore can store an entry without decoding it). The memory
/// and the disk backends write the same records, so a snapshot of either restores into either.
#[derive(Default)]
pub struct KeyedRecords {
    groups: std::collections::HashMap<u32, (u64, Vec<u8>)>,
    /// One entry's encoding, before it is framed.
    entry: Vec<u8>,
}

impl KeyedRecords {
    /// Adds a record of `key` in `group`: its entry, written by `entry`, or its removal.
    pub fn put<F>(&mut self, group: u32, key: &[u8], entry: Option<F>) -> UserResult<()>
    where
        F: FnOnce(&mut Vec<u8>) -> UserResult<()>,
    {
        let (count, buf) = self.groups.entry(group).or_default();
        *count += 1;
        match entry {
            Some(write) => {
                self.entry.clear();
                write(&mut self.entry)?;
                put_record(key, Some(&self.entry), buf)
            }
            None => put_record(key, None, buf),
        }
    }

    /// The records as keyed state, with `operator` as the non-keyed state.
    pub fn into_state(self, operator: Option<Vec<u8>>) -> UserResult<OperatorState> {
        let mut keyed = BTreeMap::new();
        for (group, (count, records)) in self.groups {
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
    }
}

/// The number of records in the full part of a restored keyed table (to make room first).
pub fn record_count(state: &OperatorState) -> UserResult<u64> {
    let mut total = 0;
    for bytes in state.keyed.values() {
        total += take::<u64>(&mut bytes.as_slice())?;
    }
    Ok(total)
}

/// Reads back what [`KeyedRecords`] wrote: the full records, then each change set in order.
/// `apply` gets each record's key group and key, and for a put its entry's bytes (it must take
/// all of them); `None` for a removal.
pub fn read_records<F>(state: &OperatorState, mut apply: F) -> UserResult<()>
where
    F: FnMut(u32, &[u8], Option<&mut &[u8]>) -> UserResult<()>,
{
    for layer in std::iter::once(&state.keyed).chain(&state.deltas) {
        read_layer(layer, &mut apply)?;
    }
    Ok(())
}

/// [`read_records`] of one layer (the full records, or one change set).
pub fn read_layer<'a, F>(layer: &'a BTreeMap<u32, Vec<u8>>, mut apply: F) -> UserResult<()>
where
    F: FnMut(u32, &'a [u8], Option<&mut &'a [u8]>) -> UserResult<()>,
{
    for (group, bytes) in layer {
        read_group(*group, bytes, &mut apply)?;
    }
    Ok(())
}

/// [`read_layer`] of one key group's records.
pub fn read_group<'a, F>(group: u32, bytes: &'a [u8], mut apply: F) -> UserResult<()>
where
    F: FnMut(u32, &'a [u8], Option<&mut &'a [u8]>) -> UserResult<()>,
{
    let mut rest = bytes;
    let count: u64 = take(&mut rest)?;
    for _ in 0..count {
        let removed: bool = take(&mut rest)?;
        let key = take_frame(&mut rest)?;
        if removed {
            apply(group, key, None)?;
        } else {
            let mut entry = take_frame(&mut rest)?;
            apply(group, key, Some(&mut entry))?;
            if !entry.is_empty() {
                return Err(format!(
                    "restoring key group {group}: {} bytes of an entry were not read",
                    entry.len()
                )
                .into());
            }
        }
    }
    if !rest.is_empty() {
        return Err(format!("restoring key group {group}: {} bytes after its records", rest.len()).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_frame_each_entry_and_a_reader_must_take_all_of_it() {
        let mut records = KeyedRecords::default();
        records
            .put(3, b"k1", Some(|buf: &mut Vec<u8>| encode_into(&(7u64, 9u64), buf)))
            .unwrap();
        records
            .put(3, b"gone", None::<fn(&mut Vec<u8>) -> UserResult<()>>)
            .unwrap();
        let state = records.into_state(None).unwrap();
        assert_eq!(record_count(&state).unwrap(), 2);
        let mut seen = Vec::new();
        read_records(&state, |group, key, entry| {
            let value = entry.map(take::<(u64, u64)>).transpose()?;
            seen.push((group, key.to_vec(), value));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [(3, b"k1".to_vec(), Some((7, 9))), (3, b"gone".to_vec(), None)]);
        // A reader that takes less than the entry is told so instead of misreading what follows.
        let err = read_records(&state, |_, _, entry| {
            if let Some(bytes) = entry {
                take::<u64>(bytes)?;
            }
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("bytes of an entry were not read"), "{err}");
    }
}
