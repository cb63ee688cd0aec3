//! LEB128 varints and zigzag, the one integer encoding of the rows operators keep in state
//! (`row_codec`, `row_log`, `join_rows`): 7 bits per byte, small numbers in one byte.

/// Appends `n`.
#[inline]
pub fn push(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The varint at `*at` in bytes this process wrote (trusted: a malformed one panics on the
/// slice's end); `*at` moves past it.
#[inline]
pub fn read(bytes: &[u8], at: &mut usize) -> u64 {
    let (mut n, mut shift) = (0u64, 0);
    loop {
        let b = bytes[*at];
        *at += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return n;
        }
        shift += 7;
    }
}

/// The varint at `*at` in bytes that may be damaged (a checkpoint's): `None` past the end or
/// longer than 64 bits.
#[inline]
pub fn read_checked(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(n);
        }
    }
    None
}

/// A signed number as an unsigned one whose small magnitudes stay small.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
#[inline]
pub fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_damaged_ones_are_refused() {
        for n in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            push(&mut out, n);
            let (mut a, mut b) = (0, 0);
            assert_eq!(read(&out, &mut a), n);
            assert_eq!(read_checked(&out, &mut b), Some(n));
            assert_eq!((a, b), (out.len(), out.len()));
            assert_eq!(read_checked(&out[..out.len() - 1], &mut 0), None, "{n} cut short");
        }
        assert_eq!(read_checked(&[0xff; 11], &mut 0), None);
        for v in [0, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
    }
}
