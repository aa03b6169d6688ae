//! A small stub resolver with djbdns's client semantics: servers from `$DNSCACHEIP`, else
//! the `nameserver` lines of /etc/resolv.conf, else 127.0.0.1; recursion wanted; UDP with
//! TCP on truncation; PTR answers are the first PTR record, lower-cased, in djbdns's
//! presentation form (odd bytes as `\ooo`); A/AAAA answers are every address record.
//!
//! The transport is ours, over blocking sockets: hickory-resolver's sync API starts a
//! tokio runtime per resolver, which a forked per-connection child must not do. Messages
//! are built and parsed by hickory-proto (no runtime; an experiment measured against the
//! hand-written version, see bench/tcpserver/callgrind-dns.sh). Unlike djbdns (retries at 1, 3, 11 and 45 s, a stall of 11 s and more on a
//! dead server) every lookup has a hard deadline, [`LOOKUP_DEADLINE`] by default.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

/// The whole time one lookup may take, over all servers and retries.
pub const LOOKUP_DEADLINE: Duration = Duration::from_secs(4);

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
        let answers = self.query(reverse_name(ip), RecordType::PTR)?;
        let Some(wire) = first_ptr(&answers) else {
            return Ok(None);
        };
        let dot = to_dot(&wire);
        Ok(if dot.is_empty() { None } else { Some(dot) })
    }

    /// The IPv4 addresses of `name` (presentation form). A dotted quad is its own answer.
    pub fn ipv4_of(&self, name: &[u8]) -> io::Result<Vec<Ipv4Addr>> {
        if let Some(ip) = literal_v4(name) {
            return Ok(vec![ip]);
        }
        let answers = self.query(wire_name(&from_dot(name)?)?, RecordType::A)?;
        Ok(answers
            .iter()
            .filter(|r| r.dns_class == DNSClass::IN)
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
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
        let answers = self.query(wire_name(&from_dot(name)?)?, RecordType::AAAA)?;
        Ok(answers
            .iter()
            .filter(|r| r.dns_class == DNSClass::IN)
            .filter_map(|r| match &r.data {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    /// Whether `name` has an address record equal to `ip` (the paranoid check).
    pub fn has_address(&self, name: &[u8], ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.ipv4_of(name).map(|v| v.contains(&v4)).unwrap_or(false),
            IpAddr::V6(v6) => self.ipv6_of(name).map(|v| v.contains(&v6)).unwrap_or(false),
        }
    }

    /// Sends a query for (`qname`, `qtype`, class IN) and returns the answer section of
    /// the accepted reply (an undecodable one is `EPROTO`, as djbdns's packet parsers).
    /// Servers that fail (SERVFAIL, NOTIMP, REFUSED, garbage) are skipped; when none
    /// answers within the deadline the error is `ETIMEDOUT`, or `EAGAIN` if all refused.
    pub fn query(&self, qname: Name, qtype: RecordType) -> io::Result<Vec<Record>> {
        let start = Instant::now();
        let end = start + self.deadline;
        let id = random_u16();
        let question = Query::query(qname, qtype);
        // Header and question emitted directly, cheaper than a Message and to_vec.
        let mut meta = Metadata::new(id, MessageType::Query, OpCode::Query);
        meta.recursion_desired = true;
        let header = Header {
            metadata: meta,
            counts: HeaderCounts {
                queries: 1,
                answers: 0,
                authorities: 0,
                additionals: 0,
            },
        };
        let mut packet = Vec::with_capacity(64);
        {
            let mut enc = BinEncoder::new(&mut packet);
            header
                .emit(&mut enc)
                .and_then(|_| question.emit(&mut enc))
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        }

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
                    Ok(Some(reply)) => match check_reply(&reply, id, &question) {
                        Verdict::Good(n, at) => return answers(&reply, (n, at)),
                        Verdict::Truncated => {
                            let left = end.saturating_duration_since(Instant::now());
                            if let Ok(r) = tcp_exchange(server, &packet, left) {
                                if let Verdict::Good(n, at) = check_reply(&r, id, &question) {
                                    return answers(&r, (n, at));
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
    /// Accepted; the answer count and where the answer section starts.
    Good(u16, usize),
    Truncated,
    Bad,
}

/// Whether `reply` answers our `question` with id `id`.
fn check_reply(reply: &[u8], id: u16, question: &Query) -> Verdict {
    let mut d = BinDecoder::new(reply);
    let Ok(h) = Header::read(&mut d) else {
        return Verdict::Bad;
    };
    if h.metadata.id != id || h.metadata.message_type != MessageType::Response {
        return Verdict::Bad;
    }
    // The question must be ours (hickory compares names case-insensitively).
    if h.counts.queries != 1 || Query::read(&mut d).ok().as_ref() != Some(question) {
        return Verdict::Bad;
    }
    if h.metadata.truncation {
        return Verdict::Truncated;
    }
    match h.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {
            Verdict::Good(h.counts.answers, d.index())
        }
        _ => Verdict::Bad,
    }
}

/// The `n` records of the answer section at `at` (authority and additional sections
/// are not read, as djbdns does not).
pub(crate) fn answers(reply: &[u8], (n, at): (u16, usize)) -> io::Result<Vec<Record>> {
    let mut d = BinDecoder::new(reply);
    d.read_slice(at).map_err(|_| proto_err())?;
    (0..n)
        .map(|_| Record::read(&mut d).map_err(|_| proto_err()))
        .collect()
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

fn random_u16() -> u16 {
    let mut b = [0u8; 2];
    // SAFETY: getrandom writes at most 2 bytes into the live buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 2, 0) };
    if n != 2 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        return (t ^ std::process::id()) as u16;
    }
    u16::from_ne_bytes(b)
}

/// `4.3.2.1.in-addr.arpa` or the ip6.arpa nibble name, built in wire form and read with
/// Name::read (cheaper than Name::from(ip), which formats each label).
pub fn reverse_name(ip: IpAddr) -> Name {
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
    wire_name(&w).expect("a reverse name is a valid name")
}

/// A name in wire form (from [`from_dot`]) as hickory's.
pub(crate) fn wire_name(wire: &[u8]) -> io::Result<Name> {
    Name::read(&mut BinDecoder::new(wire)).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Hickory's name in wire form (uncompressed), for [`to_dot`].
fn name_wire(name: &Name) -> Vec<u8> {
    let mut w = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        w.push(label.len() as u8);
        w.extend_from_slice(label);
    }
    w.push(0);
    w
}

/// Presentation form to wire form: labels split at dots, `\ooo` escapes decoded.
pub fn from_dot(name: &[u8]) -> io::Result<Vec<u8>> {
    let bad = || io::Error::from_raw_os_error(libc::EINVAL);
    let mut out = Vec::with_capacity(name.len() + 2);
    let mut label = Vec::with_capacity(63);
    let mut i = 0;
    let flush = |label: &mut Vec<u8>, out: &mut Vec<u8>| -> io::Result<()> {
        if label.is_empty() {
            return Ok(());
        }
        if label.len() > 63 {
            return Err(bad());
        }
        out.push(label.len() as u8);
        out.append(label);
        Ok(())
    };
    while i < name.len() {
        let c = name[i];
        if c == b'.' {
            flush(&mut label, &mut out)?;
            i += 1;
        } else if c == b'\\' && i + 3 < name.len() + 1 && name[i + 1..].len() >= 3 {
            let d = &name[i + 1..i + 4];
            if d.iter().all(|c| (b'0'..=b'7').contains(c)) {
                label.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
                i += 4;
            } else {
                label.push(d[0]);
                i += 2;
            }
        } else {
            label.push(c);
            i += 1;
        }
    }
    flush(&mut label, &mut out)?;
    out.push(0);
    if out.len() > 255 {
        return Err(bad());
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

/// The first PTR record of class IN, in wire form.
fn first_ptr(answers: &[Record]) -> Option<Vec<u8>> {
    answers.iter().find_map(|r| match &r.data {
        RData::PTR(p) if r.dns_class == DNSClass::IN => Some(name_wire(&p.0)),
        _ => None,
    })
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
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            name_wire(&reverse_name("1.2.3.4".parse().unwrap())),
            b"\x014\x013\x012\x011\x07in-addr\x04arpa\x00"
        );
        let r = name_wire(&reverse_name("::1".parse().unwrap()));
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
        let question = Query::query(wire_name(&q.to_ascii_uppercase()).unwrap(), RecordType::PTR);
        let Verdict::Good(n, at) = check_reply(&p, 0x1234, &question) else {
            panic!("reply not accepted");
        };
        assert_eq!((n, at), (2, 12 + q.len() + 4));
        let name = first_ptr(&answers(&p, (n, at)).unwrap()).unwrap();
        assert_eq!(to_dot(&name), b"foo.2.1.in-addr.arpa");
        assert_eq!(check_reply(&p, 0x1235, &question), Verdict::Bad);
        p[3] = 2;
        assert_eq!(check_reply(&p, 0x1234, &question), Verdict::Bad);
        // Pointer loops are errors, not hangs.
        assert!(wire_name(b"\xc0\x00").is_err());
        assert!(answers(&p[..p.len() - 3], (n, at)).is_err());
    }
}
