//! Text forms of addresses used as rules keys and in the environment.
//!
//! IPv6 keys follow ucspi-tcp6: an exact address is stored in its full form (eight groups
//! of four upper-case hex digits), and CIDR prefixes as bit strings (see [`v4_bits`],
//! [`v6_bits`]). Both are what tcprules writes and what the lookup builds from a client's
//! address, so any spelling of an address in a rules file matches.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::fmt::{fmt_u64, itoa_buf};

/// ucspi-tcp6's letters for the 1-bits of an IPv4 address: bit k (from the top) is
/// `LETTERS4[k]` when set, `0` when clear.
const LETTERS4: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz123456";

/// The bits of `net`'s prefix in ucspi-tcp6's IPv4 encoding (without the leading `_`).
pub fn v4_bits(net: Ipv4Net, out: &mut Vec<u8>) {
    let v = u32::from(net.addr());
    let n = usize::from(net.prefix_len());
    for (k, &letter) in LETTERS4.iter().enumerate().take(n) {
        out.push(if v & (1 << (31 - k)) != 0 {
            letter
        } else {
            b'0'
        });
    }
}

/// The bits of `net`'s prefix in ucspi-tcp6's IPv6 encoding (without the leading `^`): a
/// clear bit is `0`; the j-th set bit (counting from 0) is the byte 96 + j.
pub fn v6_bits(net: Ipv6Net, out: &mut Vec<u8>) {
    let v = u128::from(net.addr());
    let mut ones: u8 = 0;
    for k in 0..usize::from(net.prefix_len()) {
        if v & (1u128 << (127 - k)) != 0 {
            out.push(96u8.wrapping_add(ones));
            ones = ones.wrapping_add(1);
        } else {
            out.push(b'0');
        }
    }
}

/// ucspi-tcp6's full form: `2001:0DB8:0000:0000:0000:0000:0000:0001`.
pub fn v6_full(ip: Ipv6Addr, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (i, seg) in ip.segments().iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        for shift in [12, 8, 4, 0] {
            out.push(HEX[usize::from((seg >> shift) & 15)]);
        }
    }
}

/// The text of an address as the TCP variables carry it: dotted quad for IPv4 and for
/// v4-mapped IPv6 peers, compressed form (`::1`) otherwise.
pub fn ip_text(ip: IpAddr, out: &mut Vec<u8>) {
    let v4 = match unmapped(ip) {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => {
            let _ = std::io::Write::write_fmt(out, format_args!("{v6}"));
            return;
        }
    };
    // By hand: the formatting machinery costs more than the rest of a child's setup.
    for (i, o) in v4.octets().iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        let mut b = itoa_buf();
        out.extend_from_slice(fmt_u64(&mut b, u64::from(*o)));
    }
}

/// Any address as IPv6, an IPv4 one v4-mapped: one key for both families
/// ([`unmapped`] turns it back).
pub fn mapped(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// The address a client is counted and named by: a v4-mapped IPv6 peer as its IPv4
/// address.
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether the connection is IPv6 on the wire (a v4-mapped peer counts as IPv4).
pub fn is_v6(a: &SocketAddr) -> bool {
    unmapped(a.ip()).is_ipv6()
}

/// A dotted quad exactly as djb's `ip4_scan` accepts it for a whole string: four decimal
/// numbers, each below 256, separated by dots, nothing else.
pub fn parse_v4_strict(s: &[u8]) -> Option<Ipv4Addr> {
    let mut parts = [0u8; 4];
    let mut it = s.split(|&c| c == b'.');
    for p in parts.iter_mut() {
        let f = it.next()?;
        if f.is_empty() || f.len() > 3 || !f.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n: u32 = f.iter().fold(0, |a, &c| a * 10 + u32::from(c - b'0'));
        *p = u8::try_from(n).ok()?;
    }
    if it.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(parts))
}

/// An IPv6 address in any standard text form (std's parser: `::1`, `::ffff:1.2.3.4`, ...).
pub fn parse_v6(s: &[u8]) -> Option<Ipv6Addr> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Splits `ADDR/N` into the address text and a prefix length of one to three digits.
fn split_prefix(s: &[u8]) -> Option<(&[u8], u8)> {
    let slash = s.iter().position(|&c| c == b'/')?;
    let (a, n) = (&s[..slash], &s[slash + 1..]);
    if n.is_empty() || n.len() > 3 || !n.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = n.iter().fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'));
    Some((a, u8::try_from(n).ok()?))
}

/// An IPv4 CIDR block as a rules line writes it: a dotted quad as djb's `ip4_scan` reads
/// one, `/`, a prefix of 1 to 32 bits (a /0 block would say what `:allow` says).
pub fn parse_v4_net(s: &[u8]) -> Option<Ipv4Net> {
    match split_prefix(s)? {
        (_, 0) => None,
        (ip, n) => Ipv4Net::new(parse_v4_strict(ip)?, n).ok(),
    }
}

/// An IPv6 CIDR block: any IPv6 text form, `/`, a prefix of 1 to 128 bits.
pub fn parse_v6_net(s: &[u8]) -> Option<Ipv6Net> {
    match split_prefix(s)? {
        (_, 0) => None,
        (ip, n) => Ipv6Net::new(parse_v6(ip)?, n).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_form() {
        let mut v = Vec::new();
        v6_full("2001:db8::1".parse().unwrap(), &mut v);
        assert_eq!(v, b"2001:0DB8:0000:0000:0000:0000:0000:0001");
    }

    #[test]
    fn bit_strings() {
        let mut v = Vec::new();
        v4_bits(parse_v4_net(b"10.0.0.0/8").unwrap(), &mut v);
        assert_eq!(v, b"0000e0g0");
        v.clear();
        v4_bits(Ipv4Addr::new(255, 255, 255, 255).into(), &mut v);
        assert_eq!(&v[..], &LETTERS4[..]);
        v.clear();
        v6_bits(parse_v6_net(b"a000::/4").unwrap(), &mut v);
        assert_eq!(v, b"`0a0");
    }

    #[test]
    fn strict_quads() {
        assert_eq!(parse_v4_strict(b"1.2.3.4"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(
            parse_v4_strict(b"01.2.3.4"),
            Some(Ipv4Addr::new(1, 2, 3, 4))
        );
        assert_eq!(parse_v4_strict(b"1.2.3"), None);
        assert_eq!(parse_v4_strict(b"1.2.3.256"), None);
        assert_eq!(parse_v4_strict(b"1.2.3.4."), None);
        assert_eq!(parse_v4_strict(b"1.2..4"), None);
    }

    #[test]
    fn ip_texts() {
        let mut t = Vec::new();
        ip_text("10.0.255.1".parse().unwrap(), &mut t);
        assert_eq!(t, b"10.0.255.1");
        t.clear();
        ip_text("::ffff:127.0.0.2".parse().unwrap(), &mut t);
        assert_eq!(t, b"127.0.0.2");
        t.clear();
        ip_text("2001:db8::1".parse().unwrap(), &mut t);
        assert_eq!(t, b"2001:db8::1");
    }

    #[test]
    fn prefixes() {
        assert_eq!(split_prefix(b"10.0.0.0/8"), Some((&b"10.0.0.0"[..], 8)));
        assert_eq!(split_prefix(b"10.0.0.0/"), None);
        assert_eq!(split_prefix(b"10.0.0.0/x"), None);
        assert_eq!(split_prefix(b"10.0.0.0/999"), None);
        assert_eq!(
            parse_v4_net(b"010.0.0.0/8").map(|n| n.prefix_len()),
            Some(8)
        );
        assert!(parse_v4_net(b"10.0.0.0/0").is_none());
        assert!(parse_v4_net(b"10.0.0.0/33").is_none());
        assert!(parse_v6_net(b"::1/129").is_none());
        assert!(parse_v6_net(b"::1/0").is_none());
    }
}
