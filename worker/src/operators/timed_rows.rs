//! Rows of one key on one side of a time-bounded join, by time, in one buffer: each entry is its
//! time (8 bytes), its length (4 bytes; the top bit says whether the row has met a row of the
//! other side, for outer joins) and its bytes (Arrow's row format), oldest first. One
//! allocation per key and side however many rows it holds — most keys of a join on a value
//! (q7's prices) hold a row or two, where a map of times to lists of rows cost about 700 bytes
//! a row. Lookups scan the buffer, which holds only the rows still inside the join's bounds.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

const HEADER: usize = 12;
/// The length field's bit that marks a row as matched.
const MATCHED: u32 = 1 << 31;

/// One key's rows of one side, oldest first (rows of equal time in arrival order).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimedRows {
    buf: Vec<u8>,
    /// The latest time held (appending at or after it needs no scan).
    last: i64,
}

/// The time and length of the entry at `at`.
fn entry(buf: &[u8], at: usize) -> (i64, usize) {
    let time = i64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
    (time, (length_field(buf, at) & !MATCHED) as usize)
}

fn length_field(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at + 8..at + HEADER].try_into().expect("4 bytes"))
}

impl TimedRows {
    /// Whether it holds no row.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Every row: (offset of its entry, time, bytes), oldest first.
    fn entries(&self) -> impl Iterator<Item = (usize, i64, &[u8])> {
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= self.buf.len() {
                return None;
            }
            let (time, len) = entry(&self.buf, at);
            let start = at;
            at += HEADER + len;
            Some((start, time, &self.buf[start + HEADER..at]))
        })
    }

    /// The earliest time held.
    pub fn earliest(&self) -> Option<i64> {
        (!self.is_empty()).then(|| entry(&self.buf, 0).0)
    }

    /// Adds `row` at `time` (`matched`: it has met a row of the other side), after the rows at
    /// or before it.
    pub fn push(&mut self, time: i64, row: &[u8], matched: bool) {
        let mut bytes = Vec::with_capacity(HEADER + row.len());
        bytes.extend_from_slice(&time.to_le_bytes());
        let len = row.len() as u32 | if matched { MATCHED } else { 0 };
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(row);
        if self.is_empty() || time >= self.last {
            if self.buf.is_empty() {
                // Exactly one row's room: most keys never get a second.
                self.buf.reserve_exact(bytes.len());
            }
            self.buf.extend_from_slice(&bytes);
            self.last = time;
            return;
        }
        let at = self
            .entries()
            .find(|(_, t, _)| *t > time)
            .map_or(self.buf.len(), |(at, _, _)| at);
        self.buf.splice(at..at, bytes);
    }

    /// The rows with a time in `range`: (time, place among the rows at that time, bytes).
    pub fn in_range(&self, range: RangeInclusive<i64>) -> impl Iterator<Item = (i64, usize, &[u8])> {
        let (start, end) = range.into_inner();
        let mut previous = None;
        let mut place = 0;
        self.entries()
            .take_while(move |(_, t, _)| *t <= end)
            .filter_map(move |(_, t, row)| {
                place = if previous == Some(t) { place + 1 } else { 0 };
                previous = Some(t);
                (t >= start).then_some((t, place, row))
            })
    }

    /// Marks the rows with a time in `range` as matched.
    pub fn mark_matched(&mut self, range: RangeInclusive<i64>) {
        let places: Vec<usize> = self
            .entries()
            .take_while(|(_, t, _)| t <= range.end())
            .filter(|(_, t, _)| t >= range.start())
            .map(|(at, _, _)| at)
            .collect();
        for at in places {
            let field = length_field(&self.buf, at) | MATCHED;
            self.buf[at + 8..at + HEADER].copy_from_slice(&field.to_le_bytes());
        }
    }

    /// Drops the rows before `from`, adding those never matched to `unmatched` if given;
    /// whether it dropped any.
    pub fn drop_before(&mut self, from: i64, unmatched: Option<&mut Vec<Vec<u8>>>) -> bool {
        let cut = self
            .entries()
            .find(|(_, t, _)| *t >= from)
            .map_or(self.buf.len(), |(at, _, _)| at);
        if let Some(unmatched) = unmatched {
            for (at, _, row) in self.entries().take_while(|(at, _, _)| *at < cut) {
                if length_field(&self.buf, at) & MATCHED == 0 {
                    unmatched.push(row.to_vec());
                }
            }
        }
        self.buf.drain(..cut);
        self.shrink();
        cut > 0
    }

    /// Takes out the rows with a time in `range`.
    pub fn take_range(&mut self, range: RangeInclusive<i64>) -> Vec<Vec<u8>> {
        self.take_where(|t, _| range.contains(&t))
    }

    /// Takes out the rows at `time` whose places among the rows at that time are in `places`.
    pub fn take_places(&mut self, time: i64, places: &BTreeSet<usize>) -> Vec<Vec<u8>> {
        self.take_where(|t, place| t == time && places.contains(&place))
    }

    /// Takes out the rows `pick` chooses by (time, place among the rows at that time).
    fn take_where(&mut self, mut pick: impl FnMut(i64, usize) -> bool) -> Vec<Vec<u8>> {
        let mut taken = Vec::new();
        let mut kept = Vec::with_capacity(self.buf.len());
        let (mut previous, mut place) = (None, 0);
        for (at, t, row) in self.entries() {
            place = if previous == Some(t) { place + 1 } else { 0 };
            previous = Some(t);
            if pick(t, place) {
                taken.push(row.to_vec());
            } else {
                kept.extend_from_slice(&self.buf[at..at + HEADER + row.len()]);
            }
        }
        if !taken.is_empty() {
            self.buf = kept;
            self.shrink();
        }
        taken
    }

    /// Gives back room the rows no longer need once it is mostly empty.
    fn shrink(&mut self) {
        if self.buf.capacity() > 2 * self.buf.len() + 64 {
            self.buf.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(rows: &TimedRows) -> Vec<(i64, Vec<u8>)> {
        rows.in_range(i64::MIN..=i64::MAX)
            .map(|(t, _, r)| (t, r.to_vec()))
            .collect()
    }

    #[test]
    fn rows_stay_in_time_order_and_come_out_by_range_and_place() {
        let mut rows = TimedRows::default();
        assert_eq!(rows.earliest(), None);
        rows.push(10, b"a", false);
        rows.push(20, b"bb", false);
        rows.push(15, b"c", true);
        rows.push(10, b"d", false);
        rows.push(5, b"", false);
        assert_eq!(rows.earliest(), Some(5));
        assert_eq!(
            times(&rows),
            [
                (5, vec![]),
                (10, b"a".to_vec()),
                (10, b"d".to_vec()),
                (15, b"c".to_vec()),
                (20, b"bb".to_vec())
            ]
        );
        let places: Vec<(i64, usize)> = rows.in_range(10..=15).map(|(t, p, _)| (t, p)).collect();
        assert_eq!(places, [(10, 0), (10, 1), (15, 0)]);
        assert_eq!(rows.take_places(10, &BTreeSet::from([1])), [b"d".to_vec()]);
        assert_eq!(rows.take_range(14..=16), [b"c".to_vec()]);
        rows.mark_matched(9..=10);
        let mut unmatched = Vec::new();
        assert!(rows.drop_before(11, Some(&mut unmatched)));
        assert_eq!(unmatched, [Vec::<u8>::new()], "the row at 5 never matched; 'a' did");
        assert!(!rows.drop_before(11, None));
        assert_eq!(times(&rows), [(20, b"bb".to_vec())]);
        let copy: TimedRows = postcard::from_bytes(&postcard::to_allocvec(&rows).unwrap()).unwrap();
        assert_eq!(times(&copy), times(&rows));
        rows.mark_matched(20..=20);
        let mut unmatched = Vec::new();
        assert!(rows.drop_before(21, Some(&mut unmatched)));
        assert!(unmatched.is_empty() && rows.is_empty());
    }
}
