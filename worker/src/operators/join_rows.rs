//! One side's rows of one key in a regular join. Rows that may be taken back (an updating
//! input) are a map from each distinct row to its multiplicity and last write, so a retraction
//! finds its row in logarithmic time. Rows of an append-only input are never taken back, so they
//! are appended to one buffer instead: a LEB128 length, the row, and, when the join has a state
//! TTL, its write time. A row then costs its bytes and a byte or two, where a map's slot, the
//! row's own allocation and its node cost some 200 bytes more (q9 keeps every bid by auction).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The first byte of an appended buffer: whether each row carries its write time.
const UNTIMED: u8 = 0;
const TIMED: u8 = 1;

/// Bytes a row costs in a key's map beyond its own: the map's slot (the row's `Vec`, its count
/// and write time) and the allocation's rounding, about. Top-N weighs its rows by it too.
pub(super) const ROW_BYTES: usize = 64;
/// Bytes an appended row costs beyond its own (its length, the buffer's spare room), about.
const APPENDED_ROW_BYTES: usize = 4;

/// One side's rows of a key (see the module's description).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct SideRows {
    counted: BTreeMap<Vec<u8>, (i64, i64)>,
    #[serde(with = "as_bytes")]
    appended: Vec<u8>,
}

/// A write time in an appended buffer.
const TIME: usize = 8;

impl SideRows {
    /// Whether it holds no row.
    pub fn is_empty(&self) -> bool {
        self.counted.is_empty() && self.appended.len() <= 1
    }

    /// Adds `n` (negative: takes back) of `row` at `now`, as a row that may be taken back.
    /// Returns how many were added or taken and the change in bytes held, or `None` when taking
    /// back a row it does not have.
    pub fn add(&mut self, row: &[u8], n: i64, now: i64) -> Option<(i64, isize)> {
        match self.counted.get_mut(row) {
            Some((count, at)) => {
                let taken = if n < 0 { n.max(-*count) } else { n };
                *count += taken;
                *at = now;
                if *count > 0 {
                    return Some((taken, 0));
                }
                self.counted.remove(row);
                Some((taken, -((row.len() + ROW_BYTES) as isize)))
            }
            None if n > 0 => {
                self.counted.insert(row.to_vec(), (n, now));
                Some((n, (row.len() + ROW_BYTES) as isize))
            }
            None => None,
        }
    }

    /// Appends `row` of an append-only input, with its write time when the join expires rows
    /// (`Some`). Returns the bytes it holds. The buffer grows by half at a time, not doubling,
    /// so it wastes less room.
    pub fn append(&mut self, row: &[u8], at: Option<i64>) -> usize {
        let a = &mut self.appended;
        if a.is_empty() {
            a.push(if at.is_some() { TIMED } else { UNTIMED });
        }
        let need = 10 + row.len() + TIME;
        if a.capacity() - a.len() < need {
            a.reserve_exact(need.max(a.capacity() / 2));
        }
        super::leb128::push(a, row.len() as u64);
        a.extend_from_slice(row);
        if let Some(at) = at.filter(|_| a[0] == TIMED) {
            a.extend_from_slice(&at.to_le_bytes());
        }
        row.len() + APPENDED_ROW_BYTES
    }

    /// Each row with its multiplicity, the appended ones one by one (a row appended twice shows
    /// twice).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], i64)> {
        let counted = self.counted.iter().map(|(r, (n, _))| (r.as_slice(), *n));
        counted.chain(self.appended_rows().map(|(r, _)| (r, 1)))
    }

    /// Each distinct row with its multiplicity (in no particular order).
    pub fn merged(&self) -> Vec<(&[u8], i64)> {
        let mut rows: Vec<(&[u8], i64)> = self.iter().collect();
        if self.appended.len() > 1 {
            rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
            rows.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    kept.1 += later.1;
                }
                same
            });
        }
        rows
    }

    /// The appended rows with their write times (`None`: not timed).
    fn appended_rows(&self) -> impl Iterator<Item = (&[u8], Option<i64>)> {
        let timed = self.appended.first() == Some(&TIMED);
        let mut rest = self.appended.get(1..).unwrap_or_default();
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let mut at = 0;
            let len = super::leb128::read(rest, &mut at) as usize;
            let row = &rest[at..at + len];
            let time = timed.then(|| i64::from_le_bytes(rest[at + len..at + len + TIME].try_into().expect("8 bytes")));
            rest = &rest[at + len + if timed { TIME } else { 0 }..];
            Some((row, time))
        })
    }

    /// Bytes its rows hold (as [`Self::add`] and [`Self::append`] count them).
    pub fn weight(&self) -> usize {
        let counted: usize = self.counted.keys().map(|r| r.len() + ROW_BYTES).sum();
        counted
            + self
                .appended_rows()
                .map(|(r, _)| r.len() + APPENDED_ROW_BYTES)
                .sum::<usize>()
    }

    /// Drops the rows `expired` says are (by their last write time); returns how many rows
    /// went, the bytes they held, and the oldest write time kept.
    pub fn expire(&mut self, expired: impl Fn(i64) -> bool) -> (i64, usize, Option<i64>) {
        let (mut gone, mut bytes, mut oldest) = (0i64, 0usize, None::<i64>);
        let mut keep = |at: i64| {
            let kept = !expired(at);
            if kept {
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
            }
            kept
        };
        self.counted.retain(|row, (n, at)| {
            let kept = keep(*at);
            if !kept {
                gone += *n;
                bytes += row.len() + ROW_BYTES;
            }
            kept
        });
        if self.appended.first() == Some(&TIMED) {
            let mut left = SideRows::default();
            for (row, at) in self.appended_rows() {
                if keep(at.expect("timed")) {
                    left.append(row, at);
                } else {
                    gone += 1;
                    bytes += row.len() + APPENDED_ROW_BYTES;
                }
            }
            self.appended = left.appended;
        }
        (gone, bytes, oldest)
    }
}

/// A byte buffer in state as one length and its bytes (serde's `Vec<u8>` goes byte by byte).
mod as_bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_and_counted_rows_are_listed_merged_expired_and_stored() {
        let mut s = SideRows::default();
        assert!(s.is_empty());
        let long = vec![7u8; 300];
        assert_eq!(s.append(b"a", Some(10)), 1 + APPENDED_ROW_BYTES);
        s.append(&long, Some(20));
        s.append(b"a", Some(30));
        assert_eq!(s.add(b"c", 2, 5), Some((2, (1 + ROW_BYTES) as isize)));
        assert_eq!(s.add(b"d", -1, 5), None);
        let listed: Vec<(&[u8], i64)> = s.iter().collect();
        assert_eq!(
            listed,
            vec![(&b"c"[..], 2), (&b"a"[..], 1), (&long[..], 1), (&b"a"[..], 1)]
        );
        let mut merged = s.merged();
        merged.sort();
        assert_eq!(merged, vec![(&long[..], 1), (&b"a"[..], 2), (&b"c"[..], 2)]);
        assert_eq!(
            s.weight(),
            2 * (1 + APPENDED_ROW_BYTES) + 300 + APPENDED_ROW_BYTES + 1 + ROW_BYTES
        );

        // Stored and restored as it was.
        let mut buf = Vec::new();
        crate::contract::state::encode_into(&s, &mut buf).unwrap();
        let back: SideRows = crate::contract::state::take(&mut buf.as_slice()).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), s.iter().collect::<Vec<_>>());

        // Rows written before 25 expire: the first "a" (10), the long row (20), "c" (5).
        let (gone, bytes, oldest) = s.expire(|at| at < 25);
        assert_eq!((gone, oldest), (4, Some(30)));
        assert_eq!(bytes, 1 + APPENDED_ROW_BYTES + 300 + APPENDED_ROW_BYTES + 1 + ROW_BYTES);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(&b"a"[..], 1)]);
        assert_eq!(s.add(b"c", 1, 40).map(|(n, _)| n), Some(1));
        assert_eq!(s.add(b"c", -3, 41).map(|(n, _)| n), Some(-1));
        s.expire(|_| true);
        assert!(s.is_empty());
    }

    #[test]
    fn untimed_rows_carry_no_time_and_never_expire() {
        let mut s = SideRows::default();
        s.append(b"xy", None);
        s.append(b"z", None);
        assert_eq!(s.appended.len(), 1 + 3 + 2);
        assert_eq!(s.expire(|_| true), (0, 0, None));
        assert_eq!(s.iter().count(), 2);
    }
}
