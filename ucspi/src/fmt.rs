//! Numbers to text and back as djb's programs do it: decimal digits written by hand (the
//! formatting machinery costs more than the rest of a server child's set-up) and his
//! lenient `scan_ulong`.

/// A buffer for [`fmt_u64`].
pub fn itoa_buf() -> [u8; 20] {
    [0u8; 20]
}

/// Decimal text of `n` in `buf`, without allocating.
pub fn fmt_u64(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// djb's `scan_ulong`: leading decimal digits, the rest ignored, no digits is 0. Wraps
/// like C's unsigned long instead of failing on overflow. Returns the value and the
/// number of digits read.
pub fn scan_ulong(s: &[u8]) -> (u64, usize) {
    let mut v: u64 = 0;
    let mut n = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        n += 1;
    }
    (v, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let mut b = itoa_buf();
        assert_eq!(fmt_u64(&mut b, 0), b"0");
        assert_eq!(fmt_u64(&mut b, u64::MAX), b"18446744073709551615");
    }

    #[test]
    fn lenient_numbers() {
        assert_eq!(scan_ulong(b"40abc"), (40, 2));
        assert_eq!(scan_ulong(b"abc"), (0, 0));
        assert_eq!(scan_ulong(b""), (0, 0));
    }
}
