//! A growing Bloom filter of the keys a disk table ever stored: when it says a key was never
//! stored, the table skips the read from disk (new keys are the common case while state
//! builds up, and a read of an absent key still searches every memtable).
//!
//! Filters of doubling capacity are added as keys arrive (a scalable Bloom filter), each with
//! about 2 % false positives, so memory stays at 1 to 2 bytes per key. Keys are never taken out:
//! a removed key only costs a read that finds nothing.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Bits per key of each filter (with 5 probes: about 2 % false positives).
const BITS_PER_KEY: usize = 8;
const PROBES: u64 = 5;
/// Capacity of the first filter.
const FIRST: usize = 1 << 16;

/// One filter: a bit array sized for `capacity` keys.
struct Filter {
    bits: Vec<u64>,
    capacity: usize,
    len: usize,
}

impl Filter {
    fn new(capacity: usize) -> Self {
        Filter {
            bits: vec![0; (capacity * BITS_PER_KEY).div_ceil(64)],
            capacity,
            len: 0,
        }
    }

    /// Bit `i` of the probes of `hash` (double hashing).
    fn probe(&self, hash: u64, i: u64) -> usize {
        let n = (self.bits.len() * 64) as u64;
        (hash.wrapping_add(i.wrapping_mul(hash.rotate_left(32) | 1)) % n) as usize
    }

    fn contains(&self, hash: u64) -> bool {
        (0..PROBES).all(|i| {
            let p = self.probe(hash, i);
            self.bits[p / 64] & (1 << (p % 64)) != 0
        })
    }

    fn insert(&mut self, hash: u64) {
        for i in 0..PROBES {
            let p = self.probe(hash, i);
            self.bits[p / 64] |= 1 << (p % 64);
        }
        self.len += 1;
    }
}

/// The keys ever stored, approximately: no false negatives.
#[derive(Default)]
pub struct KeyFilter {
    filters: Vec<Filter>,
}

impl KeyFilter {
    fn hash(key: &[u8]) -> u64 {
        xxh3_64_with_seed(key, 0x5eed)
    }

    /// Whether `key` may have been stored (false: it certainly was not).
    pub fn may_contain(&self, key: &[u8]) -> bool {
        let h = Self::hash(key);
        self.filters.iter().any(|f| f.contains(h))
    }

    /// Notes that `key` is stored.
    pub fn insert(&mut self, key: &[u8]) {
        let h = Self::hash(key);
        if self.filters.iter().any(|f| f.contains(h)) {
            return;
        }
        let full = self.filters.last().is_none_or(|f| f.len >= f.capacity);
        if full {
            let capacity = self.filters.last().map_or(FIRST, |f| f.capacity * 2);
            self.filters.push(Filter::new(capacity));
        }
        self.filters.last_mut().expect("pushed above").insert(h);
    }

    /// Bytes the filters take.
    pub fn bytes(&self) -> usize {
        self.filters.iter().map(|f| f.bits.len() * 8).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_stored_key_is_ever_missed_and_few_others_pass() {
        let mut f = KeyFilter::default();
        for i in 0..300_000u64 {
            f.insert(&i.to_be_bytes());
        }
        assert!((0..300_000u64).all(|i| f.may_contain(&i.to_be_bytes())));
        let passed = (1_000_000..1_100_000u64)
            .filter(|i| f.may_contain(&i.to_be_bytes()))
            .count();
        // Four filters at ~2 % each when full: under 8 % of absent keys pass.
        assert!(passed < 8_000, "{passed} of 100000 absent keys passed");
        assert!(f.bytes() < 300_000 * 2, "{} bytes for 300000 keys", f.bytes());
    }
}
