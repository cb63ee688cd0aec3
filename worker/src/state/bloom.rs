//! A growing Bloom filter of the keys a disk table ever stored: when it says a key was never
//! stored, the table skips the read from disk (new keys are the common case while state
//! builds up, and a read of an absent key still searches every memtable).
//!
//! Filters of doubling capacity are added as keys arrive (a scalable Bloom filter), each with
//! about 2 % false positives, so memory stays at 1 to 2 bytes per key; a restore, which knows
//! how many keys it brings, adds one filter of that size. Each filter is blocked: all probes of
//! a key fall in one 64-byte block, so a lookup touches one cache line per filter (a restore
//! inserts tens of millions of keys, and scattered probes made the filter a third of its time).
//! Keys are never taken out: a removed key only costs a read that finds nothing.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Bits per key of each filter (with 5 probes in a 512-bit block: about 2.5 % false positives).
const BITS_PER_KEY: usize = 8;
const PROBES: u32 = 5;
/// Capacity of the first filter.
const FIRST: usize = 1 << 16;

/// One cache line of bits.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Block([u64; 8]);

/// One filter: blocks of bits sized for `capacity` keys.
struct Filter {
    blocks: Vec<Block>,
    capacity: usize,
    len: usize,
}

impl Filter {
    fn new(capacity: usize) -> Self {
        Filter {
            blocks: vec![Block::default(); (capacity * BITS_PER_KEY).div_ceil(512).max(1)],
            capacity,
            len: 0,
        }
    }

    /// The block of `hash`: its high bits, scaled to the block count without a division.
    fn block_of(&self, hash: u64) -> usize {
        ((hash as u128 * self.blocks.len() as u128) >> 64) as usize
    }

    /// The block of `hash` and the word and bit mask of each probe within it (9 bits each of
    /// a second mix).
    fn probes(&self, hash: u64) -> (usize, impl Iterator<Item = (usize, u64)> + use<>) {
        let block = self.block_of(hash);
        let mixed = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let probes = (0..PROBES).map(move |i| {
            let bit = (mixed >> (55 - 9 * i)) & 511;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        });
        (block, probes)
    }

    fn contains(&self, hash: u64) -> bool {
        let (block, mut probes) = self.probes(hash);
        let words = &self.blocks[block].0;
        probes.all(|(word, mask)| words[word] & mask != 0)
    }

    /// Asks the CPU to load `hash`'s block into the cache ahead of its use.
    fn prefetch(&self, hash: u64) {
        let line: *const Block = &self.blocks[self.block_of(hash)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint with no effect on memory; the address is a live block.
        #[allow(unsafe_code)]
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = line;
    }

    fn insert(&mut self, hash: u64) {
        let (block, probes) = self.probes(hash);
        let words = &mut self.blocks[block].0;
        for (word, mask) in probes {
            words[word] |= mask;
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
        self.filters.iter().rev().any(|f| f.contains(h))
    }

    /// Makes room for `keys` more keys in one filter (a restore, before it inserts them).
    pub fn reserve(&mut self, keys: usize) {
        let room = self.filters.last().map_or(0, |f| f.capacity - f.len.min(f.capacity));
        if room < keys {
            let next = self.filters.last().map_or(FIRST, |f| f.capacity * 2);
            self.filters.push(Filter::new(next.max(keys)));
        }
    }

    /// Notes that `key` is stored.
    pub fn insert(&mut self, key: &[u8]) {
        self.insert_hash(Self::hash(key));
    }

    /// Notes that each of `keys` is stored: [`KeyFilter::insert`] with the blocks of the keys a
    /// few places ahead prefetched, so the cache misses of a large filter overlap instead of
    /// stalling one after another (a restore's millions of keys).
    pub fn insert_all<'k>(&mut self, keys: impl Iterator<Item = &'k [u8]>) {
        const AHEAD: usize = 8;
        let hashes: Vec<u64> = keys.map(Self::hash).collect();
        for (i, &h) in hashes.iter().enumerate() {
            if let Some(&next) = hashes.get(i + AHEAD) {
                self.filters.iter().for_each(|f| f.prefetch(next));
            }
            self.insert_hash(h);
        }
    }

    fn insert_hash(&mut self, h: u64) {
        if self.filters.iter().rev().any(|f| f.contains(h)) {
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
        self.filters.iter().map(|f| f.blocks.len() * 64).sum()
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

    #[test]
    fn a_reserved_filter_holds_the_restored_keys_in_one_byte_each() {
        let mut f = KeyFilter::default();
        f.insert(b"before");
        f.reserve(1_000_000);
        for i in 0..1_000_000u64 {
            f.insert(&i.to_be_bytes());
        }
        assert_eq!(f.filters.len(), 2, "one filter for the restore beside the first");
        assert!(f.may_contain(b"before"));
        assert!((0..1_000_000u64).all(|i| f.may_contain(&i.to_be_bytes())));
        let passed = (2_000_000..2_100_000u64)
            .filter(|i| f.may_contain(&i.to_be_bytes()))
            .count();
        assert!(passed < 4_000, "{passed} of 100000 absent keys passed");
        assert!(f.bytes() < 1_100_000, "{} bytes for 1000001 keys", f.bytes());
    }
}
