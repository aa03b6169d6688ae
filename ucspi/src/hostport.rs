//! A client's view of the host and port arguments (tcpclient, and any program that
//! connects): every address of a host, in djb's random order, families interleaved.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::dns;
use crate::msg::{Msg, EXIT_TEMP};

/// djb's port argument: all digits is a number modulo 65536 (the empty string is 0),
/// anything else a service name from /etc/services.
pub fn port_number(p: &[u8]) -> Option<u16> {
    let (v, n) = crate::fmt::scan_ulong(p);
    if n == p.len() {
        return Some((v % 65536) as u16);
    }
    let name = std::ffi::CString::new(p).ok()?;
    // SAFETY: both arguments are NUL-terminated; the result is read before any other
    // netdb call.
    let se = unsafe { libc::getservbyname(name.as_ptr(), c"tcp".as_ptr()) };
    if se.is_null() {
        return None;
    }
    // SAFETY: se is a valid servent from the call above.
    Some(u16::from_be(unsafe { (*se).s_port } as u16))
}

/// [`port_number`], or djb's fatal message for a port argument that names nothing.
pub fn port_or_exit(msg: &Msg, port: &[u8]) -> u16 {
    match port_number(port) {
        Some(p) => p,
        None => msg.fatal(EXIT_TEMP, &[b"unable to figure out port number for ", port]),
    }
}

/// Which address families a client may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    V4,
    V6,
    Any,
}

/// Why a host gave no address.
#[derive(Debug)]
pub enum LookupError {
    /// The DNS failed (djb: `temporarily unable to figure out IP address for`).
    Temporary(io::Error),
    /// No address of a wanted family (djb: `no IP address for`).
    NoAddress,
}

impl LookupError {
    /// djb's fatal message for a host argument that gave no address, exit 111.
    pub fn exit(&self, msg: &Msg, host: &[u8]) -> ! {
        match self {
            LookupError::Temporary(e) => msg.fatal_sys(
                EXIT_TEMP,
                &[b"temporarily unable to figure out IP address for ", host],
                e,
            ),
            LookupError::NoAddress => msg.fatal(EXIT_TEMP, &[b"no IP address for ", host]),
        }
    }
}

/// Every address to try for `host`: `0`/empty is the loopback address (127.0.0.1, or ::1
/// with [`Want::V6`] as fefe's), literals as given, names from /etc/hosts, else the DNS
/// (A and, unless [`Want::V4`], AAAA records; bare names qualified by the search list
/// first). Within a family the order is random, as djbdns sorts it; with both families
/// they alternate, IPv6 first, so that one dead family costs one attempt at a time.
pub fn client_addresses(host: &[u8], want: Want) -> Result<Vec<IpAddr>, LookupError> {
    let ok = |ip: &IpAddr| match want {
        Want::V4 => ip.is_ipv4(),
        Want::V6 => ip.is_ipv6(),
        Want::Any => true,
    };
    let only = |ips: Vec<IpAddr>| -> Result<Vec<IpAddr>, LookupError> {
        let v: Vec<IpAddr> = ips.into_iter().filter(ok).collect();
        if v.is_empty() {
            Err(LookupError::NoAddress)
        } else {
            Ok(v)
        }
    };
    if host.is_empty() || host == b"0" {
        return Ok(vec![if want == Want::V6 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }]);
    }
    if let Some(v4) = dns::literal_v4(host) {
        return only(vec![IpAddr::V4(v4)]);
    }
    let unbracketed = host
        .strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(host);
    if let Some(v6) = crate::addr::parse_v6(unbracketed) {
        return only(vec![IpAddr::V6(v6)]);
    }
    if let Ok(hosts) = std::fs::read("/etc/hosts") {
        let found: Vec<IpAddr> = dns::hosts_file_lookup(&hosts, host)
            .into_iter()
            .filter(ok)
            .collect();
        if !found.is_empty() {
            return Ok(interleave(found));
        }
    }
    let resolver = dns::Resolver::from_env();
    let mut names = Vec::new();
    if !host.contains(&b'.') {
        for d in dns::search_domains() {
            names.push([host, b".", &d].concat());
        }
    }
    names.push(host.to_vec());
    let mut last_err = None;
    for name in names {
        let mut ips: Vec<IpAddr> = Vec::new();
        if want != Want::V6 {
            match resolver.ipv4_of(&name) {
                Ok(v) => ips.extend(v.into_iter().map(IpAddr::V4)),
                Err(e) => last_err = Some(e),
            }
        }
        if want != Want::V4 {
            match resolver.ipv6_of(&name) {
                Ok(v) => ips.extend(v.into_iter().map(IpAddr::V6)),
                Err(e) => last_err = Some(e),
            }
        }
        if !ips.is_empty() {
            return Ok(interleave(ips));
        }
    }
    match last_err {
        Some(e) => Err(LookupError::Temporary(e)),
        None => Err(LookupError::NoAddress),
    }
}

/// Shuffles each family and alternates them, IPv6 first.
pub fn interleave(ips: Vec<IpAddr>) -> Vec<IpAddr> {
    let (mut v6, mut v4): (Vec<IpAddr>, Vec<IpAddr>) = ips.into_iter().partition(IpAddr::is_ipv6);
    shuffle(&mut v4);
    shuffle(&mut v6);
    let mut out = Vec::with_capacity(v4.len() + v6.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

fn shuffle(v: &mut [IpAddr]) {
    for i in (1..v.len()).rev() {
        let j = dns::random_u32() as usize % (i + 1);
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(port_number(b"25"), Some(25));
        assert_eq!(port_number(b"65537"), Some(1));
        assert_eq!(port_number(b""), Some(0));
        assert_eq!(port_number(b"no-such-service-x"), None);
    }

    #[test]
    fn literals_and_zero() {
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_addresses(b"0", Want::Any).unwrap(),
            [v4("127.0.0.1")]
        );
        assert_eq!(client_addresses(b"", Want::V6).unwrap(), [v4("::1")]);
        assert_eq!(
            client_addresses(b"10.1.2.3", Want::Any).unwrap(),
            [v4("10.1.2.3")]
        );
        assert_eq!(client_addresses(b"[::2]", Want::Any).unwrap(), [v4("::2")]);
        assert!(matches!(
            client_addresses(b"::2", Want::V4),
            Err(LookupError::NoAddress)
        ));
    }

    #[test]
    fn alternation() {
        let ips: Vec<IpAddr> = ["1.1.1.1", "::1", "2.2.2.2", "::2", "3.3.3.3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let out = interleave(ips);
        let fam: Vec<bool> = out.iter().map(IpAddr::is_ipv6).collect();
        assert_eq!(fam, [true, false, true, false, false]);
    }
}
