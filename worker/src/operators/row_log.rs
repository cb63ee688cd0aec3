//! One side's rows of a time-bounded join, kept as a log: rows are appended in arrival order to
//! chunks of about [`CHUNK`] bytes, and a hash index holds the position of each key's newest row,
//! each row linking to its key's previous one. The watermark retires whole chunks from the front
//! once every row in them is past its last chance to join, so there is no per-key allocation
//! and no per-key expiry listing: a row costs its bytes and a header (q7 keeps a bid per price,
//! where a map of keys to buffers cost about 400 bytes a row).
//!
//! An entry is a flags byte (matched, taken: the one field changed in place), the key group
//! (u16), then LEB128 varints — the distance back to the key's previous row (0: none), the time
//! as the distance from the chunk's first row's time (zigzag), how much later than it the latest
//! time of this row and the key's older ones is (a lookup walking a key's rows newest first
//! stops once every older row is before its range), the key's length and the row's length —
//! then the key's bytes and the row's bytes ([`super::row_codec`]): about 10 bytes of header a
//! row where fixed-width fields took 36. Positions count bytes appended since the log began, so
//! a row's position never changes and a position below the first chunk's start names a row
//! already retired.
//!
//! Chunks are shared (`Arc`): a clone of the log for a snapshot costs a copy of the index, and
//! the task copies a chunk only when it changes one a snapshot still reads (the newest, or one
//! whose flags change).

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::ops::RangeInclusive;
use std::sync::Arc;

use hashbrown::HashTable;

/// The most header bytes an entry takes (flags, group, five varints of at most 10 bytes).
const MAX_HEADER: usize = 1 + 2 + 5 * 10;
/// Bytes a chunk is given room for (a larger row gets a chunk of its own size).
const CHUNK: usize = 256 * 1024;
/// No previous row.
const NONE: u64 = u64::MAX;
/// The flag that marks a row as matched (outer joins).
const MATCHED: u8 = 1;
/// The flag that marks a row as taken out (semi joins, padded outer rows).
const TAKEN: u8 = 2;
/// The snapshot format's length field's bit that marks a row as matched.
const STORED_MATCHED: u32 = 1 << 31;

/// A row of the log, as lookups see it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Where it is (to mark or take it later).
    pub pos: u64,
    /// Its event time.
    pub time: i64,
    /// Its key's key group.
    pub group: u32,
    /// Whether it met a row of the other side (kept for outer joins).
    pub matched: bool,
    /// Its key's bytes.
    pub key: &'a [u8],
    /// Its bytes (its side's [`super::row_codec`] form).
    pub row: &'a [u8],
}

struct Chunk {
    start: u64,
    /// The time of its first row (entries store their time as the distance from it).
    base_time: i64,
    bytes: Vec<u8>,
    /// The latest time of a row in it (the chunk retires once that row may).
    max_time: i64,
    /// The earliest time of a row in it not yet taken (outer joins look at chunks from here).
    min_time: i64,
}

impl Clone for Chunk {
    /// A copy with the same room, so the task goes on appending to it (a copy of the newest
    /// chunk is made when a snapshot still reads it).
    fn clone(&self) -> Self {
        let mut bytes = Vec::with_capacity(self.bytes.capacity());
        bytes.extend_from_slice(&self.bytes);
        Chunk {
            start: self.start,
            base_time: self.base_time,
            bytes,
            max_time: self.max_time,
            min_time: self.min_time,
        }
    }
}

/// One side's rows of a join, by key (see the module's description).
#[derive(Clone)]
pub struct RowLog {
    chunks: VecDeque<Arc<Chunk>>,
    /// Position of the next byte appended.
    end: u64,
    /// The position of each key's newest row (hashed by its key's bytes).
    index: HashTable<u64>,
    hasher: foldhash::fast::FixedState,
    /// Rows held (not taken, not retired).
    rows: usize,
    /// Where an entry's header is written before it is appended.
    scratch: Vec<u8>,
}

impl Default for RowLog {
    fn default() -> Self {
        RowLog {
            chunks: VecDeque::new(),
            end: 0,
            index: HashTable::new(),
            hasher: foldhash::fast::FixedState::with_seed(0x5eed),
            rows: 0,
            scratch: Vec::with_capacity(MAX_HEADER),
        }
    }
}

use super::leb128::{push as put_varint, read as varint, unzigzag, zigzag};

/// The header of an entry at position `pos` in a chunk whose first row's time is `base`.
#[allow(clippy::too_many_arguments)]
fn header(
    out: &mut Vec<u8>,
    pos: u64,
    base: i64,
    prev: u64,
    time: i64,
    latest: i64,
    group: u32,
    key_len: usize,
    row_len: usize,
    flags: u8,
) {
    out.clear();
    out.push(flags);
    out.extend_from_slice(&(group as u16).to_le_bytes());
    put_varint(out, if prev == NONE { 0 } else { pos - prev });
    put_varint(out, zigzag(time.wrapping_sub(base)));
    put_varint(out, latest.wrapping_sub(time) as u64);
    put_varint(out, key_len as u64);
    put_varint(out, row_len as u64);
}

/// The index of the chunk holding position `pos`, if not retired (nor past the end).
fn chunk_of(chunks: &VecDeque<Arc<Chunk>>, pos: u64) -> Option<usize> {
    let (first, last) = (chunks.front()?, chunks.back()?);
    if pos < first.start || pos >= last.start + last.bytes.len() as u64 {
        return None;
    }
    Some(chunks.partition_point(|c| c.start <= pos) - 1)
}

/// The row at `pos` (taken or not), if not retired.
fn decoded(chunks: &VecDeque<Arc<Chunk>>, pos: u64) -> Option<Decoded<'_>> {
    let c = &chunks[chunk_of(chunks, pos)?];
    Some(decode(c, (pos - c.start) as usize, pos))
}

/// Sets the bits `flag` on the entry at `at` of a chunk's bytes; its flags before.
fn set_flag(bytes: &mut [u8], at: usize, flag: u8) -> u8 {
    let flags = bytes[at];
    bytes[at] = flags | flag;
    flags
}

/// The entry at `at` of chunk `c` (at position `pos`).
fn decode(c: &Chunk, at: usize, pos: u64) -> Decoded<'_> {
    let bytes = &c.bytes;
    let flags = bytes[at];
    let group = u32::from(u16::from_le_bytes([bytes[at + 1], bytes[at + 2]]));
    let mut i = at + 3;
    let back = varint(bytes, &mut i);
    let time = c.base_time.wrapping_add(unzigzag(varint(bytes, &mut i)));
    let latest = time.wrapping_add(varint(bytes, &mut i) as i64);
    let key_len = varint(bytes, &mut i) as usize;
    let row_len = varint(bytes, &mut i) as usize;
    let key = &bytes[i..i + key_len];
    let row = &bytes[i + key_len..i + key_len + row_len];
    let entry = Entry {
        pos,
        time,
        group,
        matched: flags & MATCHED != 0,
        key,
        row,
    };
    Decoded {
        prev: if back == 0 { NONE } else { pos - back },
        latest,
        taken: flags & TAKEN != 0,
        entry,
        size: i - at + key_len + row_len,
    }
}

/// An entry as stored: its key's previous row, the latest time of it and the key's older rows,
/// whether it was taken out, the entry, its size.
struct Decoded<'a> {
    prev: u64,
    latest: i64,
    taken: bool,
    entry: Entry<'a>,
    size: usize,
}

impl RowLog {
    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether it holds no row.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The chunk holding `pos` and the offset in it, if not retired.
    fn locate(&self, pos: u64) -> Option<(&Chunk, usize)> {
        let i = chunk_of(&self.chunks, pos)?;
        let c = &self.chunks[i];
        Some((c, (pos - c.start) as usize))
    }

    fn locate_mut(&mut self, pos: u64) -> Option<(&mut Chunk, usize)> {
        let i = chunk_of(&self.chunks, pos)?;
        let c = Arc::make_mut(&mut self.chunks[i]);
        let at = (pos - c.start) as usize;
        Some((c, at))
    }

    /// The newest row's position of `key`.
    fn newest(&self, key: &[u8]) -> Option<u64> {
        let hash = self.hash(key);
        self.index
            .find(hash, |p| self.entry(*p).is_some_and(|e| e.key == key))
            .copied()
    }

    /// The row at `pos` (taken or not), if not retired.
    fn entry(&self, pos: u64) -> Option<Entry<'_>> {
        Some(decoded(&self.chunks, pos)?.entry)
    }

    /// Appends `row` of `key` (key group `group`) at `time`; `matched`: it met a row of the other
    /// side already. Returns its position.
    pub fn push(&mut self, group: u32, key: &[u8], time: i64, row: &[u8], matched: bool) -> u64 {
        let pos = self.end;
        let hash = self.hash(key);
        let chunks = &mut self.chunks;
        // One probe: the key's newest row, if any, becomes this row's previous and its slot
        // names this row.
        let newest = self
            .index
            .find_mut(hash, |p| decoded(chunks, *p).is_some_and(|d| d.entry.key == key));
        let (prev, latest) = match &newest {
            Some(p) => (
                **p,
                decoded(chunks, **p)
                    .expect("the index holds live rows")
                    .latest
                    .max(time),
            ),
            None => (NONE, time),
        };
        let flags = if matched { MATCHED } else { 0 };
        let head = &mut self.scratch;
        let base = chunks.back().map_or(time, |c| c.base_time);
        header(head, pos, base, prev, time, latest, group, key.len(), row.len(), flags);
        let room = chunks
            .back()
            .is_some_and(|c| c.bytes.len() + head.len() + key.len() + row.len() <= c.bytes.capacity());
        if !room {
            chunks.push_back(Arc::new(Chunk {
                start: pos,
                base_time: time,
                bytes: Vec::with_capacity(CHUNK.max(MAX_HEADER + key.len() + row.len())),
                max_time: time,
                min_time: time,
            }));
            header(head, pos, time, prev, time, latest, group, key.len(), row.len(), flags);
        }
        let size = head.len() + key.len() + row.len();
        let chunk = Arc::make_mut(chunks.back_mut().expect("a chunk"));
        let b = &mut chunk.bytes;
        b.extend_from_slice(head);
        b.extend_from_slice(key);
        b.extend_from_slice(row);
        chunk.max_time = chunk.max_time.max(time);
        chunk.min_time = chunk.min_time.min(time);
        self.end += size as u64;
        self.rows += 1;
        match newest {
            Some(slot) => *slot = pos,
            None => {
                let hasher = &self.hasher;
                let key_of = |p: &u64| hasher.hash_one(decoded(chunks, *p).expect("live").entry.key);
                self.index.insert_unique(hash, pos, key_of);
            }
        }
        pos
    }

    /// Whether the index knows `key` (it has rows, perhaps all taken out).
    pub fn holds(&self, key: &[u8]) -> bool {
        self.newest(key).is_some()
    }

    /// The rows of `key` held, newest first.
    pub fn rows_of<'a>(&'a self, key: &[u8]) -> impl Iterator<Item = Entry<'a>> + 'a {
        self.rows_in(key, i64::MIN..=i64::MAX)
    }

    /// The rows of `key` held with a time in `range`, newest first. The walk down the key's rows
    /// ends where every older row is before the range.
    pub fn rows_in<'a>(&'a self, key: &[u8], range: RangeInclusive<i64>) -> impl Iterator<Item = Entry<'a>> + 'a {
        let mut next = self.newest(key);
        std::iter::from_fn(move || {
            loop {
                let pos = next?;
                let (c, at) = self.locate(pos)?;
                let d = decode(c, at, pos);
                if d.latest < *range.start() {
                    next = None;
                    return None;
                }
                next = (d.prev != NONE).then_some(d.prev);
                if !d.taken && range.contains(&d.entry.time) {
                    return Some(d.entry);
                }
            }
        })
    }

    /// Sets the bits `flag` of the row at `pos`; whether it was held (not taken) before.
    fn flag(&mut self, pos: u64, flag: u8) -> bool {
        let Some((c, at)) = self.locate_mut(pos) else {
            return false;
        };
        set_flag(&mut c.bytes, at, flag) & TAKEN == 0
    }

    /// Marks the row at `pos` as matched.
    pub fn mark_matched(&mut self, pos: u64) {
        self.flag(pos, MATCHED);
    }

    /// Takes the row at `pos` out (lookups no longer see it); its bytes if it was held.
    pub fn take(&mut self, pos: u64) -> Option<Vec<u8>> {
        let row = self.entry(pos)?.row.to_vec();
        if self.flag(pos, TAKEN) {
            self.rows -= 1;
            Some(row)
        } else {
            None
        }
    }

    /// Retires the rows `done` says are past their last chance (by their time): whole chunks
    /// from the front once their latest row is done. With `unmatched`, first takes out each
    /// done row never matched (in chunks whose earliest row is done) and adds its bytes there,
    /// so an outer join pads each exactly once, when its own chance is over.
    pub fn retire(&mut self, done: impl Fn(i64) -> bool, unmatched: Option<&mut Vec<Vec<u8>>>) {
        if let Some(out) = unmatched {
            for c in self.chunks.iter_mut() {
                if !done(c.min_time) {
                    continue;
                }
                let c = Arc::make_mut(c);
                let (mut at, mut min) = (0, i64::MAX);
                while at < c.bytes.len() {
                    let Decoded {
                        taken, entry: e, size, ..
                    } = decode(c, at, c.start + at as u64);
                    if !taken {
                        if done(e.time) {
                            if !e.matched {
                                out.push(e.row.to_vec());
                            }
                            set_flag(&mut c.bytes, at, TAKEN);
                            self.rows -= 1;
                        } else {
                            min = min.min(e.time);
                        }
                    }
                    at += size;
                }
                c.min_time = min;
            }
        }
        while self.chunks.front().is_some_and(|c| done(c.max_time)) {
            let c = self.chunks.pop_front().expect("a chunk");
            let mut at = 0;
            while at < c.bytes.len() {
                let pos = c.start + at as u64;
                let Decoded {
                    taken, entry: e, size, ..
                } = decode(&c, at, pos);
                if !taken {
                    self.rows -= 1;
                }
                // The key's newest row retired: so did all its rows.
                let hash = self.hasher.hash_one(e.key);
                if let Ok(slot) = self.index.find_entry(hash, |p| *p == pos) {
                    slot.remove();
                }
                at += size;
            }
        }
        if self.chunks.is_empty() {
            self.index.shrink_to_fit(|_| 0);
        }
    }

    /// Each key held once with its key group: (group, key) of its newest row.
    pub fn keys(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.index
            .iter()
            .filter_map(|p| self.entry(*p))
            .map(|e| (e.group, e.key))
    }
}

/// Writes the rows (given newest first, written oldest first) of one key's side for a snapshot: a count, then each row's time,
/// matched flag and bytes.
pub fn encode_rows<'a>(rows: impl Iterator<Item = Entry<'a>>, buf: &mut Vec<u8>) {
    let mut rows: Vec<Entry<'a>> = rows.collect();
    rows.reverse();
    buf.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for e in rows {
        buf.extend_from_slice(&e.time.to_le_bytes());
        buf.extend_from_slice(&(e.row.len() as u32 | if e.matched { STORED_MATCHED } else { 0 }).to_le_bytes());
        buf.extend_from_slice(e.row);
    }
}

/// A row as a snapshot stores it: time, matched, bytes.
pub type Stored<'a> = (i64, bool, &'a [u8]);

/// Reads back one side's rows written by [`encode_rows`]: (time, matched, bytes), oldest first.
pub fn decode_rows<'a>(bytes: &mut &'a [u8]) -> Result<Vec<Stored<'a>>, String> {
    let short = || "an interval join's state entry ends early".to_string();
    let take = |b: &mut &'a [u8], n: usize| -> Result<&'a [u8], String> {
        if b.len() < n {
            return Err(short());
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    };
    let count = u32::from_le_bytes(take(bytes, 4)?.try_into().expect("4 bytes"));
    let mut rows = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let time = i64::from_le_bytes(take(bytes, 8)?.try_into().expect("8 bytes"));
        let field = u32::from_le_bytes(take(bytes, 4)?.try_into().expect("4 bytes"));
        let row = take(bytes, (field & !STORED_MATCHED) as usize)?;
        rows.push((time, field & STORED_MATCHED != 0, row));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(log: &RowLog, key: &[u8]) -> Vec<(i64, Vec<u8>)> {
        log.rows_of(key).map(|e| (e.time, e.row.to_vec())).collect()
    }

    #[test]
    fn each_key_sees_its_own_rows_newest_first_and_taken_rows_no_more() {
        let mut log = RowLog::default();
        let a = log.push(1, b"a", 10, b"a10", false);
        log.push(2, b"b", 11, b"b11", false);
        log.push(1, b"a", 5, b"a5", true);
        assert_eq!(rows(&log, b"a"), [(5, b"a5".to_vec()), (10, b"a10".to_vec())]);
        assert_eq!(rows(&log, b"b"), [(11, b"b11".to_vec())]);
        assert!(rows(&log, b"c").is_empty());
        assert_eq!(log.len(), 3);
        let matched: Vec<bool> = log.rows_of(b"a").map(|e| e.matched).collect();
        assert_eq!(matched, [true, false]);
        log.mark_matched(a);
        assert!(log.rows_of(b"a").all(|e| e.matched));
        assert_eq!(log.take(a), Some(b"a10".to_vec()));
        assert_eq!(log.take(a), None, "taken once");
        assert_eq!(rows(&log, b"a"), [(5, b"a5".to_vec())]);
        assert_eq!(log.len(), 2);
        let mut keys: Vec<(u32, Vec<u8>)> = log.keys().map(|(g, k)| (g, k.to_vec())).collect();
        keys.sort();
        assert_eq!(keys, [(1, b"a".to_vec()), (2, b"b".to_vec())]);
    }

    #[test]
    fn entries_keep_their_fields_whatever_their_times_groups_and_lengths() {
        let mut log = RowLog::default();
        let long = vec![9u8; 300];
        let cases: [(u32, &[u8], i64, &[u8]); 6] = [
            (32_767, b"k", 1_700_000_000_000, b"first"),
            (0, b"k", -5, b""),
            (1, &long[..], i64::MIN / 2, b"x"),
            (65_535, b"", i64::MAX / 2, &long[..]),
            (7, b"k", 1_700_000_000_001, b"after"),
            (7, b"k", 1_699_999_999_000, b"before the chunk's first"),
        ];
        let mut at = Vec::new();
        for (i, (g, k, t, r)) in cases.iter().enumerate() {
            at.push(log.push(*g, k, *t, r, i % 2 == 0));
        }
        for (i, (g, k, t, r)) in cases.iter().enumerate() {
            let e = log.entry(at[i]).unwrap();
            assert_eq!(
                (e.group, e.key, e.time, e.row, e.matched),
                (*g, *k, *t, *r, i % 2 == 0),
                "case {i}"
            );
        }
        let times: Vec<i64> = log.rows_of(b"k").map(|e| e.time).collect();
        assert_eq!(times, [1_699_999_999_000, 1_700_000_000_001, -5, 1_700_000_000_000]);
    }

    #[test]
    fn a_row_costs_its_bytes_and_about_ten_more() {
        let mut log = RowLog::default();
        let row = [5u8; 100];
        for n in 0..10_000u64 {
            let key = (n % 1_000).to_le_bytes();
            log.push((n % 128) as u32, &key[..], 1_700_000_000_000 + n as i64, &row, false);
        }
        let per_row = log.end as f64 / 10_000.0 - 108.0;
        assert!(per_row <= 12.0, "{per_row} header bytes a row");
    }

    #[test]
    fn a_range_lookup_finds_out_of_order_rows_and_stops_below_the_range() {
        let mut log = RowLog::default();
        for t in [10, 50, 20, 60] {
            log.push(0, b"k", t, &t.to_le_bytes(), false);
        }
        let times: Vec<i64> = log.rows_in(b"k", 15..=55).map(|e| e.time).collect();
        assert_eq!(times, [20, 50]);
        let times: Vec<i64> = log.rows_in(b"k", 0..=15).map(|e| e.time).collect();
        assert_eq!(times, [10]);
        assert_eq!(log.rows_in(b"k", 61..=100).count(), 0);
    }

    #[test]
    fn retiring_drops_whole_chunks_once_their_latest_row_is_done_and_forgets_their_keys() {
        let mut log = RowLog::default();
        let row = vec![7u8; 1000];
        // About 250 rows a chunk; keys 0..10 cycle, so every key has rows in every chunk.
        for t in 0..2_000i64 {
            log.push(0, &[(t % 10) as u8], t, &row, false);
        }
        let chunks = log.chunks.len();
        assert!(chunks >= 8, "{chunks} chunks");
        log.retire(|t| t < 1_000, None);
        assert!(log.chunks.len() < chunks, "chunks retired");
        let held = log.len();
        assert!((1_000..1_300).contains(&held), "{held} rows held");
        // Each key's rows end where the retired chunks began.
        assert!(log.rows_of(&[3]).all(|e| e.time >= 700));
        log.retire(|_| true, None);
        assert!(log.is_empty());
        assert_eq!(log.keys().count(), 0, "the index forgot every key");
        log.push(0, &[3], 5_000, b"x", false);
        assert_eq!(rows(&log, &[3]), [(5_000, b"x".to_vec())], "a key starts afresh");
    }

    #[test]
    fn retiring_with_unmatched_takes_each_done_unmatched_row_once() {
        let mut log = RowLog::default();
        log.push(0, b"k", 10, b"early", false);
        log.push(0, b"k", 20, b"met", true);
        log.push(0, b"k", 30, b"late", false);
        let mut out = Vec::new();
        log.retire(|t| t < 25, Some(&mut out));
        assert_eq!(out, [b"early".to_vec()], "the matched row is not padded");
        assert_eq!(rows(&log, b"k"), [(30, b"late".to_vec())]);
        log.retire(|t| t < 25, Some(&mut out));
        assert_eq!(out.len(), 1, "not twice");
        log.retire(|t| t < 40, Some(&mut out));
        assert_eq!(out, [b"early".to_vec(), b"late".to_vec()]);
        assert!(log.is_empty());
    }

    #[test]
    fn a_clone_keeps_its_rows_while_the_log_changes() {
        let mut log = RowLog::default();
        let p = log.push(0, b"k", 1, b"one", false);
        let snapshot = log.clone();
        log.take(p);
        log.push(0, b"k", 2, b"two", false);
        assert_eq!(rows(&snapshot, b"k"), [(1, b"one".to_vec())]);
        assert_eq!(rows(&log, b"k"), [(2, b"two".to_vec())]);
    }

    #[test]
    fn rows_encode_oldest_first_and_decode_back() {
        let mut log = RowLog::default();
        log.push(0, b"k", 1, b"one", true);
        log.push(0, b"k", 2, b"", false);
        let mut buf = Vec::new();
        encode_rows(log.rows_of(b"k"), &mut buf);
        let mut bytes = buf.as_slice();
        let back = decode_rows(&mut bytes).unwrap();
        assert_eq!(back, [(1, true, &b"one"[..]), (2, false, &b""[..])]);
        assert!(bytes.is_empty());
        assert!(
            decode_rows(&mut &buf[..buf.len() - 1]).is_err(),
            "a short entry is an error"
        );
    }
}
