//! A small stub resolver with djbdns's client semantics: servers from `$DNSCACHEIP`, else
//! the `nameserver` lines of /etc/resolv.conf, else 127.0.0.1; recursion wanted; UDP with
//! TCP on truncation; PTR answers are the first PTR record, lower-cased, in djbdns's
//! presentation form (odd bytes as `\ooo`); A/AAAA answers are every address record; TXT
//! answers (rblsmtpd's `-r`) the character-strings of every TXT record, concatenated, as
//! djbdns's `dns_txt`. A name that does not fit the wire form (a label over 63 bytes, a
//! name over 255) is djbdns's `error_proto`, so the programs' messages end in "protocol
//! error" as djb's do.
//!
//! It is hand-written over blocking sockets instead of using hickory: hickory-resolver's
//! sync API starts a tokio runtime per resolver, which a forked per-connection child must
//! not do. Packets are ours too, not hickory-proto's (the rule: adopt it only if one `-h`
//! child costs at most 10,000 instructions more). With hickory-proto 0.26.3 building the
//! query and parsing the reply (default features off, no runtime), a `-1 -hRl0` child
//! went from 24,167 to 37,953 user-space instructions fork to exec (+13,786; `-hpRl0`
//! +17,706), and to 34,933 (+10,766) with the cheapest use found: it keeps a Vec per
//! label for compression even in a one-name query and decodes every record's owner name
//! into its own allocation. It also grew tcpserver from 569,408 to 926,344 bytes, added
//! 51 packages to Cargo.lock, took a clean release build from 6 s to 31 s and needs Rust
//! 1.88. Measured 2026-12-04 with `bench/tcpserver/callgrind-dns.sh OLD NEW`; both
//! hickory versions are kept on branch hickory-exp (161d51f, 317b2fb).
//!
//! Unlike djbdns (retries at 1, 3, 11 and 45 s, a stall of 11 s and more on a dead
//! server) every lookup has a hard deadline, [`LOOKUP_DEADLINE`] by default.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// The whole time one lookup may take, over all servers and retries.
pub const LOOKUP_DEADLINE: Duration = Duration::from_secs(4);

const T_A: u16 = 1;
const T_PTR: u16 = 12;
const T_TXT: u16 = 16;
const T_AAAA: u16 = 28;
const C_IN: u16 = 1;
const MAX_SERVERS: usize = 16;

/// The servers to ask and the per-lookup deadline.
#[derive(Clone, Debug)]
pub struct Resolver {
    pub servers: Vec<IpAddr>,
    pub deadline: Duration,
}

impl Resolver {
    /// djbdns's choice of servers: `$DNSCACHEIP`, else resolv.conf, else 127.0.0.1.
    pub fn from_env() -> Resolver {
        let mut servers = Vec::new();
        if let Some(v) = std::env::var_os("DNSCACHEIP") {
            servers = parse_server_list(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()));
        }
        if servers.is_empty() {
            if let Ok(text) = std::fs::read("/etc/resolv.conf") {
                servers = resolv_conf_servers(&text);
            }
        }
        if servers.is_empty() {
            servers.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        servers.truncate(MAX_SERVERS);
        Resolver {
            servers,
            deadline: LOOKUP_DEADLINE,
        }
    }

    /// The name of `ip` from its PTR record, in presentation form (`None`: no name).
    pub fn name_of(&self, ip: IpAddr) -> io::Result<Option<Vec<u8>>> {
        let q = reverse_name(ip);
        let reply = self.query(&q, T_PTR)?;
        let Some(wire) = first_ptr(&reply)? else {
            return Ok(None);
        };
        Ok(Some(to_dot(&wire)))
    }

    /// The IPv4 addresses of `name` (presentation form). A dotted quad is its own answer.
    pub fn ipv4_of(&self, name: &[u8]) -> io::Result<Vec<Ipv4Addr>> {
        if let Some(ip) = literal_v4(name) {
            return Ok(vec![ip]);
        }
        let reply = self.query(&from_dot(name)?, T_A)?;
        Ok(addresses(&reply, T_A)?
            .into_iter()
            .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            .collect())
    }

    /// The IPv6 addresses of `name` (presentation form).
    pub fn ipv6_of(&self, name: &[u8]) -> io::Result<Vec<Ipv6Addr>> {
        if let Some(ip) = std::str::from_utf8(name)
            .ok()
            .and_then(|s| s.parse::<Ipv6Addr>().ok())
        {
            return Ok(vec![ip]);
        }
        let reply = self.query(&from_dot(name)?, T_AAAA)?;
        Ok(addresses(&reply, T_AAAA)?
            .into_iter()
            .map(|b| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b);
                Ipv6Addr::from(a)
            })
            .collect())
    }

    /// The text of `name`'s TXT records (presentation form); empty when there is none.
    pub fn txt_of(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        let reply = self.query(&from_dot(name)?, T_TXT)?;
        txt_strings(&reply)
    }

    /// Whether `name` has an address record equal to `ip` (the paranoid check).
    pub fn has_address(&self, name: &[u8], ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.ipv4_of(name).map(|v| v.contains(&v4)).unwrap_or(false),
            IpAddr::V6(v6) => self.ipv6_of(name).map(|v| v.contains(&v6)).unwrap_or(false),
        }
    }

    /// Sends a query for (`qname` in wire form, `qtype`) and returns the accepted reply.
    /// Servers that fail (SERVFAIL, NOTIMP, REFUSED, garbage) are skipped; when none
    /// answers within the deadline the error is `ETIMEDOUT`, or `EAGAIN` if all refused.
    pub fn query(&self, qname: &[u8], qtype: u16) -> io::Result<Vec<u8>> {
        let start = Instant::now();
        let end = start + self.deadline;
        let id = random_u32() as u16;
        let mut packet = Vec::with_capacity(qname.len() + 16);
        packet.extend_from_slice(&id.to_be_bytes());
        packet.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        packet.extend_from_slice(qname);
        packet.extend_from_slice(&qtype.to_be_bytes());
        packet.extend_from_slice(&C_IN.to_be_bytes());

        let mut refused = false;
        let mut failed = vec![false; self.servers.len()];
        for round_timeout in [Duration::from_secs(1), Duration::from_secs(3)] {
            for (i, &server) in self.servers.iter().enumerate() {
                if failed[i] {
                    continue;
                }
                let now = Instant::now();
                if now >= end {
                    return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
                }
                let wait = round_timeout.min(end - now);
                match udp_exchange(server, &packet, wait) {
                    Ok(Some(reply)) => match check_reply(&reply, &packet) {
                        Verdict::Good => return Ok(reply),
                        Verdict::Truncated => {
                            let left = end.saturating_duration_since(Instant::now());
                            if let Ok(r) = tcp_exchange(server, &packet, left) {
                                if check_reply(&r, &packet) == Verdict::Good {
                                    return Ok(r);
                                }
                            }
                            failed[i] = true;
                            refused = true;
                        }
                        Verdict::Bad => {
                            failed[i] = true;
                            refused = true;
                        }
                    },
                    Ok(None) => {}
                    Err(_) => failed[i] = true,
                }
            }
            if failed.iter().all(|&f| f) {
                break;
            }
        }
        Err(io::Error::from_raw_os_error(if refused {
            libc::EAGAIN
        } else {
            libc::ETIMEDOUT
        }))
    }
}

/// The servers named in `$DNSCACHEIP`: dotted quads (djbdns) or IPv6 addresses, separated
/// by blanks or commas.
pub fn parse_server_list(s: &[u8]) -> Vec<IpAddr> {
    s.split(|&c| c == b' ' || c == b',' || c == b'\t' || c == b'\n')
        .filter(|w| !w.is_empty())
        .filter_map(|w| {
            if let Some(v4) = crate::addr::parse_v4_strict(w) {
                Some(IpAddr::V4(v4))
            } else {
                crate::addr::parse_v6(w).map(IpAddr::V6)
            }
        })
        .collect()
}

fn resolv_conf_servers(text: &[u8]) -> Vec<IpAddr> {
    let mut v = Vec::new();
    for line in text.split(|&c| c == b'\n') {
        let mut words = line
            .split(|&c| c == b' ' || c == b'\t' || c == b'\r')
            .filter(|w| !w.is_empty());
        if words.next() == Some(b"nameserver") {
            if let Some(w) = words.next() {
                v.extend(parse_server_list(w));
            }
        }
    }
    v
}

/// Search domains for bare names: `$LOCALDOMAIN`, else resolv.conf `search`/`domain`.
pub fn search_domains() -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let split = |s: &[u8]| -> Vec<Vec<u8>> {
        s.split(|&c| c == b' ' || c == b'\t' || c == b'\r')
            .filter(|w| !w.is_empty())
            .map(|w| w.strip_prefix(b".").unwrap_or(w).to_vec())
            .collect()
    };
    if let Some(v) = std::env::var_os("LOCALDOMAIN") {
        return split(v.as_bytes());
    }
    let Ok(text) = std::fs::read("/etc/resolv.conf") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.split(|&c| c == b'\n') {
        for kw in [&b"search"[..], b"domain"] {
            if let Some(rest) = line.strip_prefix(kw) {
                if rest.first().is_some_and(|c| *c == b' ' || *c == b'\t') {
                    out = split(rest);
                }
            }
        }
    }
    out
}

/// Addresses for `name` from /etc/hosts (for a server's host argument, where djbdns would
/// need a DNS answer even for `localhost`).
pub fn hosts_file_lookup(hosts: &[u8], name: &[u8]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in hosts.split(|&c| c == b'\n') {
        let line = match line.iter().position(|&c| c == b'#') {
            Some(p) => &line[..p],
            None => line,
        };
        let mut words = line
            .split(|&c| c == b' ' || c == b'\t' || c == b'\r')
            .filter(|w| !w.is_empty());
        let Some(addr) = words.next() else { continue };
        if words.any(|w| w.eq_ignore_ascii_case(name)) {
            if let Some(v4) = crate::addr::parse_v4_strict(addr) {
                out.push(IpAddr::V4(v4));
            } else if let Some(v6) = crate::addr::parse_v6(addr) {
                out.push(IpAddr::V6(v6));
            }
        }
    }
    out
}

/// A dotted quad, optionally in brackets, as djbdns's `dns_ip4` takes it literally.
pub fn literal_v4(name: &[u8]) -> Option<Ipv4Addr> {
    let n = name
        .strip_prefix(b"[")
        .and_then(|n| n.strip_suffix(b"]"))
        .unwrap_or(name);
    crate::addr::parse_v4_strict(n)
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Good,
    Truncated,
    Bad,
}

fn check_reply(reply: &[u8], query: &[u8]) -> Verdict {
    if reply.len() < 12 || reply[..2] != query[..2] || reply[2] & 0x80 == 0 {
        return Verdict::Bad;
    }
    // The question must be ours (names compared case-insensitively).
    let qlen = query.len() - 12;
    if reply.len() < 12 + qlen
        || reply[4..6] != [0, 1]
        || !reply[12..12 + qlen].eq_ignore_ascii_case(&query[12..])
    {
        return Verdict::Bad;
    }
    if reply[2] & 0x02 != 0 {
        return Verdict::Truncated;
    }
    match reply[3] & 0x0f {
        0 | 3 => Verdict::Good, // NOERROR, NXDOMAIN
        _ => Verdict::Bad,
    }
}

fn udp_exchange(server: IpAddr, packet: &[u8], wait: Duration) -> io::Result<Option<Vec<u8>>> {
    let bind: SocketAddr = match server {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect((server, 53))?;
    sock.send(packet)?;
    let end = Instant::now() + wait;
    let mut buf = vec![0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok(None);
        }
        sock.set_read_timeout(Some((end - now).max(Duration::from_millis(1))))?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                // A stray datagram with another id is ignored, as djbdns does.
                if n >= 2 && buf[..2] == packet[..2] {
                    buf.truncate(n);
                    return Ok(Some(buf));
                }
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn tcp_exchange(server: IpAddr, packet: &[u8], wait: Duration) -> io::Result<Vec<u8>> {
    if wait.is_zero() {
        return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
    }
    let end = Instant::now() + wait;
    let mut s = TcpStream::connect_timeout(&(server, 53).into(), wait)?;
    let left = || {
        end.checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ETIMEDOUT))
    };
    s.set_write_timeout(Some(left()?))?;
    let mut msg = Vec::with_capacity(packet.len() + 2);
    msg.extend_from_slice(&(packet.len() as u16).to_be_bytes());
    msg.extend_from_slice(packet);
    s.write_all(&msg)?;
    let mut len = [0u8; 2];
    s.set_read_timeout(Some(left()?))?;
    s.read_exact(&mut len)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    let mut got = 0;
    while got < reply.len() {
        s.set_read_timeout(Some(left()?))?;
        match s.read(&mut reply[got..]) {
            Ok(0) => return Err(io::Error::from_raw_os_error(libc::EPROTO)),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(reply)
}

/// Four bytes from the kernel's random source (query ids, djbdns's address shuffle);
/// should getrandom fail, the clock and pid, which still differ from query to query.
pub(crate) fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most 4 bytes into the live buffer. No wrapper: nix has
    // none, and std's is not public.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 4, 0) };
    if n != 4 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        return t ^ std::process::id();
    }
    u32::from_ne_bytes(b)
}

/// `4.3.2.1.in-addr.arpa` or the ip6.arpa nibble name, in wire form.
pub fn reverse_name(ip: IpAddr) -> Vec<u8> {
    let mut w = Vec::with_capacity(80);
    match ip {
        IpAddr::V4(v4) => {
            for o in v4.octets().iter().rev() {
                let s = o.to_string();
                w.push(s.len() as u8);
                w.extend_from_slice(s.as_bytes());
            }
            w.extend_from_slice(b"\x07in-addr\x04arpa\x00");
        }
        IpAddr::V6(v6) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for o in v6.octets().iter().rev() {
                w.extend_from_slice(&[1, HEX[usize::from(o & 15)], 1, HEX[usize::from(o >> 4)]]);
            }
            w.extend_from_slice(b"\x03ip6\x04arpa\x00");
        }
    }
    w
}

/// Presentation form to wire form as djbdns's `dns_domain_fromdot`: labels split at
/// dots (empty ones dropped); `\` followed by one to three octal digits is that byte, by
/// any other byte that byte (so `\.` is a dot inside a label), and a `\` at the very end
/// ends the name. Too long a label or name is `EPROTO`, as djbdns says.
pub fn from_dot(name: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len() + 2);
    let mut label = Vec::with_capacity(63);
    let flush = |label: &mut Vec<u8>, out: &mut Vec<u8>| {
        if !label.is_empty() {
            out.push(label.len() as u8);
            out.append(label);
        }
    };
    let mut rest = name;
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        let byte = match c {
            b'.' => {
                flush(&mut label, &mut out);
                continue;
            }
            b'\\' => {
                let Some((&e, tail)) = rest.split_first() else {
                    break;
                };
                rest = tail;
                let octal = |b: u8| (b'0'..=b'7').contains(&b).then(|| b - b'0');
                match octal(e) {
                    None => e,
                    Some(mut v) => {
                        for _ in 0..2 {
                            match rest.first().copied().and_then(octal) {
                                Some(d) => {
                                    v = v.wrapping_shl(3).wrapping_add(d);
                                    rest = &rest[1..];
                                }
                                None => break,
                            }
                        }
                        v
                    }
                }
            }
            _ => c,
        };
        if label.len() >= 63 {
            return Err(proto_err());
        }
        label.push(byte);
    }
    flush(&mut label, &mut out);
    out.push(0);
    if out.len() > 255 {
        return Err(proto_err());
    }
    Ok(out)
}

/// Wire form to djbdns's presentation form: lower case; bytes other than `a-z0-9-_` as
/// `\ooo`; the root as `.`.
pub fn to_dot(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len() + 8);
    let mut i = 0;
    while i < wire.len() {
        let n = usize::from(wire[i]);
        if n == 0 {
            break;
        }
        if !out.is_empty() {
            out.push(b'.');
        }
        for &c in wire.iter().skip(i + 1).take(n) {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_' {
                out.push(c);
            } else {
                out.extend_from_slice(&[
                    b'\\',
                    b'0' + (c >> 6),
                    b'0' + ((c >> 3) & 7),
                    b'0' + (c & 7),
                ]);
            }
        }
        i += n + 1;
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

fn proto_err() -> io::Error {
    io::Error::from_raw_os_error(libc::EPROTO)
}

/// Skips a (possibly compressed) name at `pos`, returning the position after it.
fn skip_name(p: &[u8], mut pos: usize) -> io::Result<usize> {
    loop {
        let c = *p.get(pos).ok_or_else(proto_err)?;
        if c >= 192 {
            return Ok(pos + 2);
        }
        if c >= 64 {
            return Err(proto_err());
        }
        pos += 1;
        if c == 0 {
            return Ok(pos);
        }
        pos += usize::from(c);
    }
}

/// Reads a (possibly compressed) name at `pos` into wire form, following at most 64
/// pointers and 255 bytes.
fn get_name(p: &[u8], mut pos: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    let mut jumps = 0;
    loop {
        let c = *p.get(pos).ok_or_else(proto_err)?;
        if c >= 192 {
            let lo = *p.get(pos + 1).ok_or_else(proto_err)?;
            pos = usize::from(c & 63) << 8 | usize::from(lo);
            jumps += 1;
            if jumps > 64 {
                return Err(proto_err());
            }
            continue;
        }
        if c >= 64 {
            return Err(proto_err());
        }
        let label = p.get(pos..pos + 1 + usize::from(c)).ok_or_else(proto_err)?;
        out.extend_from_slice(label);
        if out.len() > 255 {
            return Err(proto_err());
        }
        if c == 0 {
            return Ok(out);
        }
        pos += 1 + usize::from(c);
    }
}

/// Walks the answer section, calling `f(type, class, data_pos, data_len)` per record.
fn each_answer(
    p: &[u8],
    mut f: impl FnMut(u16, u16, usize, usize) -> io::Result<bool>,
) -> io::Result<()> {
    let n = |i: usize| -> io::Result<u16> {
        Ok(u16::from_be_bytes([
            *p.get(i).ok_or_else(proto_err)?,
            *p.get(i + 1).ok_or_else(proto_err)?,
        ]))
    };
    let answers = n(6)?;
    let mut pos = skip_name(p, 12)? + 4;
    for _ in 0..answers {
        pos = skip_name(p, pos)?;
        let (t, c, len) = (n(pos)?, n(pos + 2)?, usize::from(n(pos + 8)?));
        pos += 10;
        if pos + len > p.len() {
            return Err(proto_err());
        }
        if !f(t, c, pos, len)? {
            return Ok(());
        }
        pos += len;
    }
    Ok(())
}

fn first_ptr(p: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let mut found = None;
    each_answer(p, |t, c, pos, _| {
        if t == T_PTR && c == C_IN {
            found = Some(get_name(p, pos)?);
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok(found)
}

/// The character-strings of every TXT record of the answer, concatenated.
fn txt_strings(p: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    each_answer(p, |t, c, pos, len| {
        if t != T_TXT || c != C_IN {
            return Ok(true);
        }
        let mut data = &p[pos..pos + len];
        while let Some((&n, rest)) = data.split_first() {
            let s = rest.get(..usize::from(n)).ok_or_else(proto_err)?;
            out.extend_from_slice(s);
            data = &rest[s.len()..];
        }
        Ok(true)
    })?;
    Ok(out)
}

fn addresses(p: &[u8], qtype: u16) -> io::Result<Vec<Vec<u8>>> {
    let want = if qtype == T_A { 4 } else { 16 };
    let mut v = Vec::new();
    each_answer(p, |t, c, pos, len| {
        if t == qtype && c == C_IN && len == want {
            v.push(p[pos..pos + len].to_vec());
        }
        Ok(true)
    })?;
    Ok(v)
}

/// The reply parsers on any bytes, for the fuzz targets only (the `fuzzing` feature);
/// not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use std::io;

    pub const T_A: u16 = super::T_A;
    pub const T_PTR: u16 = super::T_PTR;
    pub const T_TXT: u16 = super::T_TXT;
    pub const T_AAAA: u16 = super::T_AAAA;
    pub const C_IN: u16 = super::C_IN;

    /// How [`check_reply`] judged a reply.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Verdict {
        Good,
        Truncated,
        Bad,
    }

    /// `query` must be a query as `Resolver::query` builds it (12 header bytes, then the
    /// question).
    pub fn check_reply(reply: &[u8], query: &[u8]) -> Verdict {
        match super::check_reply(reply, query) {
            super::Verdict::Good => Verdict::Good,
            super::Verdict::Truncated => Verdict::Truncated,
            super::Verdict::Bad => Verdict::Bad,
        }
    }

    pub fn get_name(p: &[u8], pos: usize) -> io::Result<Vec<u8>> {
        super::get_name(p, pos)
    }

    pub fn first_ptr(p: &[u8]) -> io::Result<Option<Vec<u8>>> {
        super::first_ptr(p)
    }

    pub fn txt_strings(p: &[u8]) -> io::Result<Vec<u8>> {
        super::txt_strings(p)
    }

    pub fn addresses(p: &[u8], qtype: u16) -> io::Result<Vec<Vec<u8>>> {
        super::addresses(p, qtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presentation_form() {
        assert_eq!(to_dot(b"\x03WWW\x07Exa_m-1\x00"), b"www.exa_m-1");
        assert_eq!(to_dot(b"\x03a b\x00"), b"a\\040b");
        assert_eq!(to_dot(b"\x00"), b".");
        assert_eq!(from_dot(b"a\\040b.c.").unwrap(), b"\x03a b\x01c\x00");
        assert_eq!(from_dot(b"localhost").unwrap(), b"\x09localhost\x00");
        // djbdns's escapes: one to three octal digits, any other byte as itself, a
        // trailing backslash dropped.
        assert_eq!(from_dot(b"\\1x.\\101").unwrap(), b"\x02\x01x\x01A\x00");
        assert_eq!(from_dot(b"a\\.b").unwrap(), b"\x03a.b\x00");
        assert_eq!(from_dot(b"ab\\").unwrap(), b"\x02ab\x00");
        assert_eq!(from_dot(b"\\0123").unwrap(), b"\x02\x0a3\x00");
        assert_eq!(from_dot(b"..a..").unwrap(), b"\x01a\x00");
        let proto = |r: io::Result<Vec<u8>>| r.unwrap_err().raw_os_error();
        assert_eq!(proto(from_dot(&[b'a'; 64])), Some(libc::EPROTO));
        assert_eq!(from_dot(&[b'a'; 63]).unwrap().len(), 65);
        let long = [&b"abcdefg."[..]; 32].concat();
        assert_eq!(proto(from_dot(&long)), Some(libc::EPROTO));
    }

    #[test]
    fn txt_records_concatenated() {
        let mut r = vec![0, 1, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
        r.extend_from_slice(b"\x01x\x00\x00\x10\x00\x01");
        for (t, data) in [
            (T_TXT, &b"\x03abc\x02de"[..]),
            (T_A, &b"\x7f\x00\x00\x02"[..]),
            (T_TXT, &b"\x01f"[..]),
        ] {
            r.extend_from_slice(&[0xc0, 12]);
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 0, 0, 9]);
            r.extend_from_slice(&(data.len() as u16).to_be_bytes());
            r.extend_from_slice(data);
        }
        assert_eq!(txt_strings(&r).unwrap(), b"abcdef");
        r.truncate(r.len() - 1);
        assert!(txt_strings(&r).is_err());
        // A string longer than its record is an error, not an over-read.
        let mut r = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        r.extend_from_slice(b"\x01x\x00\x00\x10\x00\x01");
        r.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 9, 0, 2, 5, b'f']);
        assert!(txt_strings(&r).is_err());
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("1.2.3.4".parse().unwrap()),
            b"\x014\x013\x012\x011\x07in-addr\x04arpa\x00"
        );
        let r = reverse_name("::1".parse().unwrap());
        assert!(r.starts_with(b"\x011\x010\x010"));
        assert!(r.ends_with(b"\x03ip6\x04arpa\x00"));
    }

    #[test]
    fn server_lists() {
        assert_eq!(
            parse_server_list(b"127.0.0.5 10.0.0.1,::1 junk 1.2.3"),
            vec![
                IpAddr::from([127, 0, 0, 5]),
                IpAddr::from([10, 0, 0, 1]),
                "::1".parse::<IpAddr>().unwrap()
            ]
        );
        assert_eq!(
            resolv_conf_servers(b"search x\nnameserver 9.9.9.9\n#nameserver 1.1.1.1\n"),
            vec![IpAddr::from([9, 9, 9, 9])]
        );
    }

    #[test]
    fn hosts_file() {
        let h = b"127.0.0.1 localhost loc # c\n::1 localhost ip6-localhost\n# 1.2.3.4 x\n";
        assert_eq!(
            hosts_file_lookup(h, b"LOCALHOST"),
            vec![
                IpAddr::from([127, 0, 0, 1]),
                "::1".parse::<IpAddr>().unwrap()
            ]
        );
        assert!(hosts_file_lookup(h, b"x").is_empty());
        assert_eq!(literal_v4(b"[1.2.3.4]"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(literal_v4(b"127.1"), None);
    }

    #[test]
    fn parses_answers_with_compression() {
        let q = from_dot(b"4.3.2.1.in-addr.arpa").unwrap();
        let mut p = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        p.extend_from_slice(&q);
        p.extend_from_slice(&[0, 12, 0, 1]);
        // A CNAME first (skipped), then the PTR pointing into the question.
        p.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 1, 0, 2, 0xc0, 12]);
        p.extend_from_slice(&[0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 1, 0, 6]);
        p.extend_from_slice(b"\x03Foo\xc0\x10");
        let name = first_ptr(&p).unwrap().unwrap();
        assert_eq!(to_dot(&name), b"foo.2.1.in-addr.arpa");
        let mut query = p[..12 + q.len() + 4].to_vec();
        query[2] = 1;
        assert_eq!(check_reply(&p, &query), Verdict::Good);
        p[3] = 2;
        assert_eq!(check_reply(&p, &query), Verdict::Bad);
        // Pointer loops are errors, not hangs.
        assert!(get_name(b"\xc0\x00", 0).is_err());
        assert!(first_ptr(&p[..p.len() - 3]).is_err());
    }
}
