//! SplitMix64: the small, portable generator behind the Nexmark model and datagen.
//!
//! Specification (identical to the Flink peer's `SplitMix.java`, so both draw the same values):
//! `mix64(z)`: `z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
//! z ^ (z >> 31)` (wrapping). The stream of record `n` under seed `s` starts at
//! `mix64(n + s * GOLDEN)`; `next64` adds `GOLDEN` and mixes; `next_int(b)` is
//! `((next64 >> 32) * b) >> 32`; `next_long(b)` is `next_int` for `b < 2^31`, else
//! `next64 mod b` (unsigned); `next_double` is `(next64 >> 11) * 2^-53`.

/// The golden-ratio increment.
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The finalizer.
#[inline]
pub fn mix64(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A SplitMix64 stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct SplitMix {
    state: u64,
}

impl SplitMix {
    /// The stream of record `n` under `seed`.
    #[inline]
    pub fn for_record(seed: i64, n: i64) -> Self {
        SplitMix {
            state: mix64((n as u64).wrapping_add((seed as u64).wrapping_mul(GOLDEN))),
        }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// Uniform in `[0, bound)`, `bound > 0`.
    #[inline]
    pub fn next_int(&mut self, bound: i32) -> i32 {
        (((self.next64() >> 32) * bound as u64) >> 32) as i32
    }

    /// Uniform in `[0, bound)`, `bound > 0`.
    #[inline]
    pub fn next_long(&mut self, bound: i64) -> i64 {
        if bound <= i64::from(i32::MAX) {
            i64::from(self.next_int(bound as i32))
        } else {
            (self.next64() % bound as u64) as i64
        }
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn next_double(&mut self) -> f64 {
        (self.next64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}
