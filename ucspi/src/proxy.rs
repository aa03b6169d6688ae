//! HAProxy's PROXY protocol, versions 1 (a text line) and 2 (binary), on the receiving
//! side: a load balancer in front of a server tells it which client it relays.
//!
//! The header is read straight off the connection, before the program (or a TLS
//! handshake) gets the socket, so the reader must never take a byte past the header's
//! end: it peeks, consumes only the bytes that certainly belong to the header, and waits
//! again only once everything it peeked is consumed (a peeked but unconsumed byte keeps
//! the socket readable, and the wait would return at once forever). [`parse`] is the pure
//! half, usable on any buffer and fuzzed on its own.
//!
//! The checks are the specification's, strictly: a header from a proxy is trusted for the
//! client's address, so anything it does not define is refused rather than guessed at.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::str::FromStr;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};

use crate::fd::{wait, Want};

/// Which header versions a trusted peer may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    V1,
    V2,
    Any,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// v2 LOCAL, v1 UNKNOWN, or v2 PROXY with family UNSPEC or AF_UNIX (health checks,
    /// or addresses that are not IP): the connection's own addresses stand.
    Local(Version),
    /// The client's address (source) and the address it connected to (destination).
    Proxied {
        version: Version,
        source: SocketAddr,
        destination: SocketAddr,
    },
}

/// Why a header was refused; `what()` gives a short lowercase text for a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The first bytes begin neither signature.
    BadSignature,
    /// A well-begun header of a version the listener was not told to expect.
    NotAccepted(Version),
    /// A v1 line that breaks the grammar: spacing, keyword, address, port, lone CR or LF.
    MalformedV1,
    /// A v1 line with no CRLF within 107 bytes, or a v2 header over [`MAX_HEADER`].
    TooLong,
    /// v2's version nibble is not 2.
    BadVersion,
    /// v2's command nibble is neither LOCAL nor PROXY.
    BadCommand,
    /// v2's family/transport byte is none the specification defines.
    BadFamily,
    /// A defined v2 transport that is not a stream (UDP, UNIX datagram): we serve TCP.
    UnsupportedTransport,
    /// v2's length leaves no room for the addresses its family announces.
    ShortAddresses,
    /// A v2 TLV that overruns the header, or bytes too few to be a TLV at its end.
    BadTlv,
}

impl Error {
    pub fn what(self) -> &'static str {
        match self {
            Error::BadSignature => "bad signature",
            Error::NotAccepted(Version::V1) => "v1 not accepted",
            Error::NotAccepted(Version::V2) => "v2 not accepted",
            Error::MalformedV1 => "malformed v1 header",
            Error::TooLong => "too long",
            Error::BadVersion => "bad v2 version",
            Error::BadCommand => "bad v2 command",
            Error::BadFamily => "bad v2 address family",
            Error::UnsupportedTransport => "unsupported transport",
            Error::ShortAddresses => "v2 addresses too short",
            Error::BadTlv => "malformed v2 tlv",
        }
    }
}

/// Largest header accepted, in bytes. v1's own maximum is 107; v2's is 16 + a 16-bit
/// length, bounded here at 4096 in all so that a header fits one stack buffer, which is
/// never grown whatever a peer announces.
pub const MAX_HEADER: usize = 4096;

const V1_SIG: &[u8] = b"PROXY ";
/// The specification's longest v1 line, CRLF included ("PROXY UNKNOWN" with two full
/// IPv6 addresses and ports).
const V1_MAX: usize = 107;
const V2_SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family/transport, length.
const V2_FIXED: usize = 16;

/// Parses a header at the start of `buf`: `Ok(None)` when `buf` is a valid prefix and
/// more bytes are needed; `Ok(Some((header, n)))` with n the header's length in bytes;
/// `Err` when `buf` cannot start a valid header accepted by `accept`.
///
/// The answer is `Ok(None)` only while the header is incomplete, so every byte of such a
/// `buf` belongs to the header: [`read_header`] relies on this to consume without
/// over-reading.
pub fn parse(buf: &[u8], accept: Accept) -> Result<Option<(Header, usize)>, Error> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (version, sig) = match first {
        b'P' => (Version::V1, V1_SIG),
        b'\r' => (Version::V2, V2_SIG),
        _ => return Err(Error::BadSignature),
    };
    let seen = buf.len().min(sig.len());
    if buf[..seen] != sig[..seen] {
        return Err(Error::BadSignature);
    }
    match (version, accept) {
        (Version::V1, Accept::V2) | (Version::V2, Accept::V1) => Err(Error::NotAccepted(version)),
        (Version::V1, _) => parse_v1(buf),
        (Version::V2, _) => parse_v2(buf),
    }
}

/// Whether `bytes` begin with a whole signature, v1's `PROXY ` or v2's twelve bytes: a
/// peer that is not trusted to send a header is refused for this, and only this, since
/// a shorter match (a lone `P`, an empty line) is as likely the start of its own data.
pub fn starts_with_signature(bytes: &[u8]) -> bool {
    bytes.starts_with(V1_SIG) || bytes.starts_with(V2_SIG)
}

/// Whether `prefix` (the first bytes a peer sent, maybe fewer than a signature) begins
/// like a v1 ("PROXY ") or v2 signature: used to refuse a header from a peer that is not
/// trusted to send one. True only when `prefix` is non-empty and every byte it shares in
/// position with a signature agrees with it (bytes past the signature's end are the
/// header's own and are not looked at).
pub fn looks_like_header(prefix: &[u8]) -> bool {
    !prefix.is_empty()
        && [V1_SIG, V2_SIG].iter().any(|sig| {
            let n = prefix.len().min(sig.len());
            prefix[..n] == sig[..n]
        })
}

/// `buf` begins with (a prefix of) "PROXY ".
fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    if buf.len() < V1_SIG.len() {
        return Ok(None);
    }
    let window = &buf[..buf.len().min(V1_MAX)];
    match window.iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(i) if window[i] == b'\n' => Err(Error::MalformedV1),
        Some(cr) => {
            let header = v1_fields(&buf[V1_SIG.len()..cr], true)?;
            if cr + 2 > V1_MAX {
                return Err(Error::TooLong);
            }
            match buf.get(cr + 1) {
                None => Ok(None),
                // A complete line always gives a header or an error.
                Some(b'\n') => header.map(|h| Some((h, cr + 2))).ok_or(Error::MalformedV1),
                Some(_) => Err(Error::MalformedV1),
            }
        }
        None => {
            // The CRLF would end past byte 107 once 106 bytes hold no CR.
            let end = window.len().min(V1_MAX - 1);
            v1_fields(&buf[V1_SIG.len()..end], false)?;
            if window.len() >= V1_MAX - 1 {
                return Err(Error::TooLong);
            }
            Ok(None)
        }
    }
}

/// Checks the line between "PROXY " and its CR: when `complete`, the whole of it (the
/// header it gives); otherwise the part seen so far, refused as soon as no ending could
/// make it valid.
fn v1_fields(line: &[u8], complete: bool) -> Result<Option<Header>, Error> {
    const PROTOS: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];
    let mut fields = line.split(|&b| b == b' ');
    let proto = fields.next().unwrap_or_default();
    let proto_done = complete || line.len() > proto.len();
    if !proto_done {
        return if PROTOS.iter().any(|p| p.starts_with(proto)) {
            Ok(None)
        } else {
            Err(Error::MalformedV1)
        };
    }
    let v6 = match proto {
        b"TCP4" => false,
        b"TCP6" => true,
        // The rest of the line is the sender's business; the specification says to ignore it.
        b"UNKNOWN" => return Ok(Some(Header::Local(Version::V1))),
        _ => return Err(Error::MalformedV1),
    };
    let mut addrs = [None; 2];
    let mut ports = [None; 2];
    let mut count = 0;
    let mut fields = fields.peekable();
    while let Some(field) = fields.next() {
        let last_partial = !complete && fields.peek().is_none();
        match (count, last_partial) {
            (0 | 1, false) => addrs[count] = Some(v1_addr(field, v6)?),
            (0 | 1, true) => v1_addr_prefix(field, v6)?,
            (2 | 3, false) => ports[count - 2] = Some(v1_port(field)?),
            (2 | 3, true) => v1_port_prefix(field)?,
            _ => return Err(Error::MalformedV1),
        }
        count += 1;
    }
    if !complete {
        return Ok(None);
    }
    match (addrs, ports) {
        ([Some(src), Some(dst)], [Some(sport), Some(dport)]) => Ok(Some(Header::Proxied {
            version: Version::V1,
            source: SocketAddr::new(src, sport),
            destination: SocketAddr::new(dst, dport),
        })),
        _ => Err(Error::MalformedV1),
    }
}

fn v1_addr(field: &[u8], v6: bool) -> Result<IpAddr, Error> {
    let text = std::str::from_utf8(field).map_err(|_| Error::MalformedV1)?;
    let ip = if v6 {
        Ipv6Addr::from_str(text).map(IpAddr::V6)
    } else {
        Ipv4Addr::from_str(text).map(IpAddr::V4)
    };
    ip.map_err(|_| Error::MalformedV1)
}

/// Refuses the start of an address that no ending could complete. Exact for IPv4 (some
/// completion must parse); for IPv6 only what no completion can mend: a foreign
/// character, an over-long text, a group of five digits, ":::" or a second "::", a colon
/// after the dotted tail.
fn v1_addr_prefix(field: &[u8], v6: bool) -> Result<(), Error> {
    let ok = if v6 {
        const LONGEST: usize = "0000:0000:0000:0000:0000:ffff:255.255.255.255".len();
        let dot = field.iter().position(|&b| b == b'.');
        field.len() <= LONGEST
            && field
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            && field
                .split(|&b| b == b':' || b == b'.')
                .all(|group| group.len() <= 4)
            && field.windows(2).filter(|w| w == b"::").count() <= 1
            && dot.is_none_or(|d| !field[d..].contains(&b':'))
    } else {
        // Some ending of this start must parse: the last number as it is or grown by a
        // digit, then as many ".0" as the address lacks.
        field.len() <= "255.255.255.255".len()
            && field.iter().all(|&b| b.is_ascii_digit() || b == b'.')
            && ["", "0"].iter().any(|digit| {
                let mut text = [0u8; 24];
                let mut n = field.len();
                text[..n].copy_from_slice(field);
                text[n..n + digit.len()].copy_from_slice(digit.as_bytes());
                n += digit.len();
                (0..=3).any(|_| {
                    let done = v1_addr(&text[..n], false).is_ok();
                    text[n..n + 2].copy_from_slice(b".0");
                    n += 2;
                    done
                })
            })
    };
    if ok {
        Ok(())
    } else {
        Err(Error::MalformedV1)
    }
}

/// A decimal port without sign or leading zeros (the specification forbids them lest
/// they be read as octal).
fn v1_port(field: &[u8]) -> Result<u16, Error> {
    v1_port_prefix(field)?;
    if field.is_empty() {
        return Err(Error::MalformedV1);
    }
    let n = field
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u16::try_from(n).map_err(|_| Error::MalformedV1)
}

fn v1_port_prefix(field: &[u8]) -> Result<(), Error> {
    let digits = field.iter().all(u8::is_ascii_digit);
    let leading_zero = field.len() > 1 && field[0] == b'0';
    let value = field
        .iter()
        .take(6)
        .fold(0u32, |n, &d| n * 10 + u32::from(d.wrapping_sub(b'0')));
    if digits && !leading_zero && field.len() <= 5 && value <= 65535 {
        Ok(())
    } else {
        Err(Error::MalformedV1)
    }
}

/// `buf` begins with (a prefix of) v2's signature.
fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    let mut proxy = false;
    if let Some(&ver_cmd) = buf.get(12) {
        if ver_cmd >> 4 != 2 {
            return Err(Error::BadVersion);
        }
        proxy = match ver_cmd & 0x0f {
            0 => false,
            1 => true,
            _ => return Err(Error::BadCommand),
        };
    }
    // LOCAL ignores the family, as the specification says: only PROXY looks at it.
    let mut addresses = None;
    if let (true, Some(&family)) = (proxy, buf.get(13)) {
        addresses = match family {
            // UNSPEC: whatever follows is address information to ignore, of no set size,
            // so no TLVs can be told apart in it.
            0x00 => None,
            0x11 => Some(12),
            0x21 => Some(36),
            0x31 => Some(216),
            0x12 | 0x22 | 0x32 => return Err(Error::UnsupportedTransport),
            _ => return Err(Error::BadFamily),
        };
    }
    if buf.len() < V2_FIXED {
        return Ok(None);
    }
    let total = V2_FIXED + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if total > MAX_HEADER {
        return Err(Error::TooLong);
    }
    if let Some(block) = addresses {
        let tlvs = V2_FIXED + block;
        if total < tlvs {
            return Err(Error::ShortAddresses);
        }
        check_tlvs(
            &buf[tlvs.min(buf.len())..total.min(buf.len())],
            total - tlvs,
        )?;
    }
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[V2_FIXED..total];
    let header = match (proxy, buf[13]) {
        (true, 0x11) => {
            let ip = |at: usize| IpAddr::from(<[u8; 4]>::try_from(&body[at..at + 4]).unwrap());
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            Header::Proxied {
                version: Version::V2,
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            }
        }
        (true, 0x21) => {
            let ip = |at: usize| IpAddr::from(<[u8; 16]>::try_from(&body[at..at + 16]).unwrap());
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            Header::Proxied {
                version: Version::V2,
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            }
        }
        _ => Header::Local(Version::V2),
    };
    Ok(Some((header, total)))
}

/// Walks the TLVs in the `space` bytes after the addresses, of which `seen` have arrived:
/// each TLV's type and length must fit, and its value end within `space`, exactly at its
/// end for the last. A value itself is not looked into (nor a CRC32c checked): none
/// changes what the program is told.
fn check_tlvs(seen: &[u8], space: usize) -> Result<(), Error> {
    let mut at = 0;
    while at < space {
        if space - at < 3 {
            return Err(Error::BadTlv);
        }
        let Some(&[_, hi, lo]) = seen.get(at..at + 3) else {
            return Ok(());
        };
        at += 3 + usize::from(u16::from_be_bytes([hi, lo]));
        if at > space {
            return Err(Error::BadTlv);
        }
    }
    Ok(())
}

/// Why reading failed.
#[derive(Debug)]
pub enum ReadError {
    Timeout,
    /// End of file before a whole header.
    Closed,
    Io(io::Error),
    Bad(Error),
}

impl ReadError {
    pub fn what(&self) -> &'static str {
        match self {
            ReadError::Timeout => "timed out",
            ReadError::Closed => "connection closed",
            ReadError::Io(e) => crate::errstr::io_str(e),
            ReadError::Bad(e) => e.what(),
        }
    }
}

impl From<Error> for ReadError {
    fn from(e: Error) -> ReadError {
        ReadError::Bad(e)
    }
}

/// Reads one header from the connection `fd` (blocking or not) before `deadline`,
/// consuming exactly the header's bytes: whatever the client sent after the header stays
/// unread in the socket for the program (or the TLS handshake). Never waits past the
/// deadline; never holds more than [`MAX_HEADER`] bytes.
///
/// Never inlined: its buffer would otherwise sit in the caller's stack frame, which in
/// tcpserver's child is live for every connection, PROXY or not, and would add stack
/// pages to copy on write before exec.
#[inline(never)]
pub fn read_header(
    fd: BorrowedFd<'_>,
    accept: Accept,
    deadline: Instant,
) -> Result<Header, ReadError> {
    let mut buf = [0u8; MAX_HEADER];
    // Bytes of the header consumed so far; the socket's queue starts right after them.
    let mut have = 0;
    loop {
        if !wait(fd, Want::Read, deadline).map_err(ReadError::Io)? {
            return Err(ReadError::Timeout);
        }
        // MSG_DONTWAIT: a blocking socket must not block here past the deadline either.
        let peeked = match recv(
            fd.as_raw_fd(),
            &mut buf[have..],
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => n,
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(e) => return Err(ReadError::Io(e.into())),
        };
        let seen = have + peeked;
        // An incomplete header is all header bytes (see `parse`); a complete one ends at n.
        let (header, end) = match parse(&buf[..seen], accept)? {
            Some((header, n)) => (Some(header), n),
            None => (None, seen),
        };
        while have < end {
            match recv(fd.as_raw_fd(), &mut buf[have..end], MsgFlags::MSG_DONTWAIT) {
                // The bytes were peeked: only another reader of the socket takes them away.
                Ok(0) => return Err(ReadError::Closed),
                Ok(n) => have += n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(ReadError::Io(e.into())),
            }
        }
        if let Some(header) = header {
            return Ok(header);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::AsFd;
    use std::thread;
    use std::time::Duration;

    use proptest::prelude::*;

    fn v4(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn proxied(version: Version, source: &str, destination: &str) -> Header {
        Header::Proxied {
            version,
            source: v4(source),
            destination: v4(destination),
        }
    }

    /// A v2 header: version/command byte, family byte, and the bytes after the length.
    fn v2(ver_cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.push(ver_cmd);
        h.push(family);
        h.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut t = vec![kind];
        t.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        t.extend_from_slice(value);
        t
    }

    /// 192.0.2.1:56324 → 198.51.100.2:443.
    fn ipv4_block() -> Vec<u8> {
        let mut b = vec![192, 0, 2, 1, 198, 51, 100, 2];
        b.extend_from_slice(&56324u16.to_be_bytes());
        b.extend_from_slice(&443u16.to_be_bytes());
        b
    }

    /// 2001:db8::1:25 → ::1:587.
    fn ipv6_block() -> Vec<u8> {
        let mut b = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        b.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        b.extend_from_slice(&25u16.to_be_bytes());
        b.extend_from_slice(&587u16.to_be_bytes());
        b
    }

    fn ssl_tlv() -> Vec<u8> {
        // PP2_TYPE_SSL: client flags, verify, then sub-TLVs (version, cipher, CN).
        let mut value = vec![0x07, 0, 0, 0, 0];
        value.extend(tlv(0x21, b"TLSv1.3"));
        value.extend(tlv(0x23, b"TLS_AES_128_GCM_SHA256"));
        value.extend(tlv(0x22, b"client.example.org"));
        tlv(0x20, &value)
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn valid_headers() -> Vec<(Vec<u8>, Header)> {
        let p6 = |s: &str, d: &str| Header::Proxied {
            version: Version::V1,
            source: s.parse().unwrap(),
            destination: d.parse().unwrap(),
        };
        let ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let v2_ipv4 = proxied(Version::V2, "192.0.2.1:56324", "198.51.100.2:443");
        let v2_ipv6 = Header::Proxied {
            version: Version::V2,
            source: "[2001:db8::1]:25".parse().unwrap(),
            destination: "[::1]:587".parse().unwrap(),
        };
        let local1 = Header::Local(Version::V1);
        let local2 = Header::Local(Version::V2);
        let unix = [b'/'; 216];
        let mut biggest = ipv4_block();
        biggest.extend(tlv(0x04, &vec![0; MAX_HEADER - V2_FIXED - 12 - 3]));
        vec![
            (
                b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".to_vec(),
                proxied(Version::V1, "192.168.0.1:56324", "192.168.0.11:443"),
            ),
            (
                b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n".to_vec(),
                proxied(
                    Version::V1,
                    "255.255.255.255:65535",
                    "255.255.255.255:65535",
                ),
            ),
            (
                b"PROXY TCP4 0.0.0.0 10.0.0.1 0 7\r\n".to_vec(),
                proxied(Version::V1, "0.0.0.0:0", "10.0.0.1:7"),
            ),
            (
                b"PROXY TCP6 2001:db8::1 ::1 25 587\r\n".to_vec(),
                p6("[2001:db8::1]:25", "[::1]:587"),
            ),
            (
                format!("PROXY TCP6 {ffff} {ffff} 65535 65535\r\n").into_bytes(),
                p6(&format!("[{ffff}]:65535"), &format!("[{ffff}]:65535")),
            ),
            (
                b"PROXY TCP6 ::ffff:192.0.2.1 FE80::A 1 2\r\n".to_vec(),
                p6("[::ffff:192.0.2.1]:1", "[fe80::a]:2"),
            ),
            (b"PROXY UNKNOWN\r\n".to_vec(), local1),
            (
                format!("PROXY UNKNOWN {ffff} {ffff} 65535 65535\r\n").into_bytes(),
                local1,
            ),
            (b"PROXY UNKNOWN what\tever \x80\xff  \r\n".to_vec(), local1),
            (v2(0x20, 0x00, b""), local2),
            (v2(0x20, 0x11, &ipv4_block()), local2),
            (v2(0x20, 0x12, &ipv4_block()), local2),
            (v2(0x20, 0x99, b"anything at all"), local2),
            (v2(0x21, 0x11, &ipv4_block()), v2_ipv4),
            (v2(0x21, 0x21, &ipv6_block()), v2_ipv6),
            (
                v2(
                    0x21,
                    0x11,
                    &cat(&[
                        &ipv4_block(),
                        &tlv(0x01, b"h2"),
                        &tlv(0x02, b"mail.example.org"),
                        &tlv(0x03, &[0xde, 0xad, 0xbe, 0xef]),
                        &tlv(0x04, b""),
                        &tlv(0x05, &[7; 128]),
                        &ssl_tlv(),
                        &tlv(0x30, b"netns"),
                        &tlv(0xe0, b"custom"),
                    ]),
                ),
                v2_ipv4,
            ),
            (v2(0x21, 0x21, &cat(&[&ipv6_block(), &ssl_tlv()])), v2_ipv6),
            (v2(0x21, 0x00, b""), local2),
            (v2(0x21, 0x00, b"\x01\x02 ignored"), local2),
            (v2(0x21, 0x31, &unix), local2),
            (
                v2(0x21, 0x31, &cat(&[&unix, &tlv(0x03, &[1, 2, 3, 4])])),
                local2,
            ),
            (v2(0x21, 0x11, &biggest), v2_ipv4),
        ]
    }

    #[test]
    fn whole_signatures_only() {
        assert!(starts_with_signature(b"PROXY TCP4"));
        assert!(starts_with_signature(b"\r\n\r\n\0\r\nQUIT\n\x21"));
        for partial in [
            &b"P"[..],
            b"PROXY",
            b"\r\n",
            b"\r\n\r\n\0\r\nQUIT",
            b"GET /",
        ] {
            assert!(!starts_with_signature(partial), "{partial:?}");
        }
    }

    #[test]
    fn every_valid_form() {
        for (bytes, want) in valid_headers() {
            let n = bytes.len();
            assert!(n <= MAX_HEADER);
            let version = match bytes[0] {
                b'P' => Version::V1,
                _ => Version::V2,
            };
            let (own, other) = match version {
                Version::V1 => (Accept::V1, Accept::V2),
                Version::V2 => (Accept::V2, Accept::V1),
            };
            for accept in [Accept::Any, own] {
                assert_eq!(parse(&bytes, accept), Ok(Some((want, n))), "{bytes:?}");
                let mut more = bytes.clone();
                more.extend_from_slice(b"\r\nPROXY garbage\0\n");
                assert_eq!(parse(&more, accept), Ok(Some((want, n))), "{bytes:?}");
                for k in 0..n {
                    assert_eq!(parse(&bytes[..k], accept), Ok(None), "{k} of {bytes:?}");
                }
            }
            assert_eq!(parse(&bytes, other), Err(Error::NotAccepted(version)));
            for k in 1..n {
                assert_eq!(
                    parse(&bytes[..k], other),
                    Err(Error::NotAccepted(version)),
                    "{k} of {bytes:?}"
                );
            }
            assert!(looks_like_header(&bytes));
            check(&bytes);
        }
    }

    #[test]
    fn malformed_v1() {
        let long = |k: usize| format!("PROXY UNKNOWN {}\r\n", "x".repeat(k)).into_bytes();
        assert_eq!(long(91).len(), V1_MAX);
        assert!(matches!(
            parse(&long(91), Accept::Any),
            Ok(Some((_, V1_MAX)))
        ));
        let too_long: [&[u8]; 3] = [
            &long(92),
            &long(200),
            b"PROXY TCP6 0000:0000:0000:0000:0000:ffff:255.255.255.255 0000:0000:0000:0000:0000:ffff:255.255.255.255 1 2\r\n",
        ];
        for line in too_long {
            assert_eq!(parse(line, Accept::Any), Err(Error::TooLong), "{line:?}");
        }
        let malformed: &[&[u8]] = &[
            b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            b"PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
            b"PROXY TCP4\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n",
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP6 1::2::3 ::1 1 2\r\n",
            b"PROXY TCP6 [::1] ::1 1 2\r\n",
            b"PROXY TCP6 ::1%1 ::1 1 2\r\n",
            b"PROXY TCP6 00001:: ::1 1 2\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY unknown\r\n",
            b"PROXY \r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
            b"PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n",
            b"PROXY UNKNOWN a\rb\r\n",
            b"PROXY UNKNOWN a\nb\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.\xc3\xa9 1 2\r\n",
        ];
        for line in malformed {
            assert_eq!(
                parse(line, Accept::Any),
                Err(Error::MalformedV1),
                "{line:?}"
            );
            assert_eq!(parse(line, Accept::V1), Err(Error::MalformedV1), "{line:?}");
            check(line);
        }
    }

    #[test]
    fn bad_signatures() {
        let lines: &[&[u8]] = &[
            b"GET / HTTP/1.0\r\n",
            b"EHLO x\r\n",
            b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY\r\n",
            b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b" PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"\x16\x03\x01\x02\x00\x01",
            b"\n",
            b"\0",
        ];
        for line in lines {
            for accept in [Accept::Any, Accept::V1, Accept::V2] {
                assert_eq!(parse(line, accept), Err(Error::BadSignature), "{line:?}");
            }
            assert!(!looks_like_header(line), "{line:?}");
        }
        let good = v2(0x21, 0x11, &ipv4_block());
        for i in 0..V2_SIG.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert_eq!(
                parse(&bad, Accept::Any),
                Err(Error::BadSignature),
                "byte {i}"
            );
            assert_eq!(parse(&bad[..=i], Accept::Any), Err(Error::BadSignature));
            assert!(!looks_like_header(&bad[..=i]));
        }
    }

    #[test]
    fn bad_v2() {
        let a4 = ipv4_block();
        let a6 = ipv6_block();
        let cases: Vec<(Vec<u8>, Error)> = vec![
            (v2(0x11, 0x11, &a4), Error::BadVersion),
            (v2(0x31, 0x11, &a4), Error::BadVersion),
            (v2(0x01, 0x11, &a4), Error::BadVersion),
            (v2(0xf1, 0x11, &a4), Error::BadVersion),
            (v2(0x22, 0x11, &a4), Error::BadCommand),
            (v2(0x2f, 0x11, &a4), Error::BadCommand),
            (v2(0x21, 0x12, &a4), Error::UnsupportedTransport),
            (v2(0x21, 0x22, &a6), Error::UnsupportedTransport),
            (v2(0x21, 0x32, &[0; 216]), Error::UnsupportedTransport),
            (v2(0x21, 0x01, &a4), Error::BadFamily),
            (v2(0x21, 0x10, &a4), Error::BadFamily),
            (v2(0x21, 0x13, &a4), Error::BadFamily),
            (v2(0x21, 0x41, &a4), Error::BadFamily),
            (v2(0x21, 0xff, &a4), Error::BadFamily),
            (v2(0x21, 0x11, &a4[..11]), Error::ShortAddresses),
            (v2(0x21, 0x11, b""), Error::ShortAddresses),
            (v2(0x21, 0x21, &a4), Error::ShortAddresses),
            (v2(0x21, 0x21, &a6[..35]), Error::ShortAddresses),
            (v2(0x21, 0x31, &a6), Error::ShortAddresses),
            (v2(0x21, 0x11, &cat(&[&a4, b"\x04"])), Error::BadTlv),
            (v2(0x21, 0x11, &cat(&[&a4, b"\x04\x00"])), Error::BadTlv),
            (v2(0x21, 0x11, &cat(&[&a4, b"\x04\x00\x01"])), Error::BadTlv),
            (
                v2(0x21, 0x11, &cat(&[&a4, b"\x04\x00\x04abc"])),
                Error::BadTlv,
            ),
            (
                v2(0x21, 0x11, &cat(&[&a4, &tlv(1, b"h2"), b"\x04\x00"])),
                Error::BadTlv,
            ),
            (
                v2(0x21, 0x21, &cat(&[&a6, &tlv(1, b"h2"), b"\x03\xff\xff"])),
                Error::BadTlv,
            ),
            (
                v2(0x21, 0x11, &vec![0; MAX_HEADER - V2_FIXED + 1]),
                Error::TooLong,
            ),
            (v2(0x20, 0x00, &vec![0; 65535]), Error::TooLong),
        ];
        for (bytes, want) in &cases {
            for accept in [Accept::Any, Accept::V2] {
                assert_eq!(parse(bytes, accept), Err(*want), "{bytes:?}");
            }
            assert_eq!(
                parse(bytes, Accept::V1),
                Err(Error::NotAccepted(Version::V2))
            );
            check(bytes);
        }
    }

    #[test]
    fn refused_early() {
        let v1: &[&[u8]] = &[
            b"PROXY TCPX",
            b"PROXY UNKNOWNX",
            b"PROXY  ",
            b"PROXY TCP4  ",
            b"PROXY TCP4 01",
            b"PROXY TCP4 1.2.3.400",
            b"PROXY TCP4 1.2.3.4.",
            b"PROXY TCP4 1..",
            b"PROXY TCP4 :",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 123456",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP6 1::2::",
            b"PROXY TCP6 :::",
            b"PROXY TCP6 12345",
            b"PROXY TCP6 ::ffff:1.2.3.4:",
            b"PROXY TCP6 ::g",
        ];
        for prefix in v1 {
            assert_eq!(
                parse(prefix, Accept::Any),
                Err(Error::MalformedV1),
                "{prefix:?}"
            );
        }
        let waiting: &[&[u8]] = &[
            b"PROXY TCP4 1.2.3.4 5.6.7.8 6554",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 0",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 ",
            b"PROXY TCP4 25",
            b"PROXY TCP4 0.",
            b"PROXY TCP4 1.2.3.",
            b"PROXY TCP4 1.2.3.4 ",
            b"PROXY TCP6 ::ffff:1.2.",
            b"PROXY TCP6 2001:db8::",
            b"PROXY UNKNOWN",
            b"PROXY UNKNOWN ",
            b"PROXY UNKNOWN\r",
        ];
        for prefix in waiting {
            assert_eq!(parse(prefix, Accept::Any), Ok(None), "{prefix:?}");
        }
        let no_crlf = format!("PROXY UNKNOWN {}", "x".repeat(92)).into_bytes();
        assert_eq!(no_crlf.len(), V1_MAX - 1);
        assert_eq!(parse(&no_crlf[..105], Accept::Any), Ok(None));
        assert_eq!(parse(&no_crlf, Accept::Any), Err(Error::TooLong));
        // The fixed part alone tells of an oversized v2 header or a misplaced TLV.
        let huge = v2(0x21, 0x11, &vec![0; 5000]);
        assert_eq!(parse(&huge[..16], Accept::Any), Err(Error::TooLong));
        let overrun = v2(
            0x21,
            0x11,
            &cat(&[&ipv4_block(), b"\x20\x01\x00", &[0; 40]]),
        );
        assert_eq!(
            parse(&overrun[..16 + 12 + 3], Accept::Any),
            Err(Error::BadTlv)
        );
        assert_eq!(parse(&overrun[..16 + 12 + 2], Accept::Any), Ok(None));
        let bad_family = v2(0x21, 0x12, &ipv4_block());
        assert_eq!(
            parse(&bad_family[..14], Accept::Any),
            Err(Error::UnsupportedTransport)
        );
        assert_eq!(parse(&bad_family[..13], Accept::Any), Ok(None));
    }

    #[test]
    fn signatures_seen_early() {
        let yes: &[&[u8]] = &[
            b"P",
            b"PROX",
            b"PROXY",
            b"PROXY ",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY garbage",
            b"\r",
            b"\r\n\r\n\0",
            b"\r\n\r\n\0\r\nQUIT\n",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11",
        ];
        for prefix in yes {
            assert!(looks_like_header(prefix), "{prefix:?}");
        }
        let no: &[&[u8]] = &[
            b"",
            b"p",
            b"PROXX",
            b"PROXY\t",
            b"\r\r",
            b"\r\n\r\n\x01",
            b"\r\n\r\n\0\r\nQUIT\r",
            b"GET / HTTP/1.1\r\n",
            b"\x16\x03\x01",
        ];
        for prefix in no {
            assert!(!looks_like_header(prefix), "{prefix:?}");
        }
    }

    #[test]
    fn texts() {
        assert_eq!(Error::MalformedV1.what(), "malformed v1 header");
        assert_eq!(Error::BadSignature.what(), "bad signature");
        assert_eq!(Error::TooLong.what(), "too long");
        assert_eq!(Error::NotAccepted(Version::V2).what(), "v2 not accepted");
        assert_eq!(Error::NotAccepted(Version::V1).what(), "v1 not accepted");
        assert_eq!(Error::UnsupportedTransport.what(), "unsupported transport");
        assert_eq!(ReadError::Timeout.what(), "timed out");
        assert_eq!(ReadError::Closed.what(), "connection closed");
        assert_eq!(
            ReadError::Bad(Error::MalformedV1).what(),
            "malformed v1 header"
        );
        let io = ReadError::Io(io::Error::from_raw_os_error(libc::ECONNRESET));
        assert!(!io.what().is_empty());
    }

    /// What the fuzz target checks, on any input.
    fn check(buf: &[u8]) {
        for accept in [Accept::Any, Accept::V1, Accept::V2] {
            match parse(buf, accept) {
                Ok(Some((header, n))) => {
                    assert!(n <= buf.len() && n <= MAX_HEADER);
                    assert_eq!(parse(&buf[..n], accept), Ok(Some((header, n))));
                    assert!(looks_like_header(buf));
                }
                Ok(None) => {
                    assert!(buf.len() < MAX_HEADER);
                    assert!(buf.is_empty() || looks_like_header(buf));
                }
                Err(_) => {}
            }
        }
    }

    proptest! {
        #[test]
        fn any_bytes(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
            check(&buf);
        }

        #[test]
        fn after_a_signature(tail in proptest::collection::vec(any::<u8>(), 0..300), v in any::<bool>()) {
            let mut buf = if v { V2_SIG.to_vec() } else { V1_SIG.to_vec() };
            buf.extend(tail);
            check(&buf);
        }

        #[test]
        fn v1_addresses(src in any::<IpAddr>(), dst in any::<IpAddr>(), sport in any::<u16>(), dport in any::<u16>()) {
            let (src, dst) = match (src, dst) {
                (IpAddr::V4(_), IpAddr::V6(d)) => {
                    (src, IpAddr::from(<[u8; 4]>::try_from(&d.octets()[..4]).unwrap()))
                }
                (IpAddr::V6(_), IpAddr::V4(d)) => (src, IpAddr::V6(d.to_ipv6_mapped())),
                _ => (src, dst),
            };
            let proto = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            let line = format!("PROXY {proto} {src} {dst} {sport} {dport}\r\nrest");
            let want = Header::Proxied {
                version: Version::V1,
                source: SocketAddr::new(src, sport),
                destination: SocketAddr::new(dst, dport),
            };
            prop_assert_eq!(parse(line.as_bytes(), Accept::Any), Ok(Some((want, line.len() - 4))));
        }

        #[test]
        fn v2_addresses(src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), sport in any::<u16>(), dport in any::<u16>(), pad in 0usize..100) {
            let mut body = src.to_vec();
            body.extend_from_slice(&dst);
            body.extend_from_slice(&sport.to_be_bytes());
            body.extend_from_slice(&dport.to_be_bytes());
            body.extend(tlv(0x04, &vec![0; pad]));
            let bytes = v2(0x21, 0x21, &body);
            let want = Header::Proxied {
                version: Version::V2,
                source: SocketAddr::new(IpAddr::from(src), sport),
                destination: SocketAddr::new(IpAddr::from(dst), dport),
            };
            prop_assert_eq!(parse(&bytes, Accept::V2), Ok(Some((want, bytes.len()))));
        }
    }

    // read_header over real loopback connections.

    const PAUSE: Duration = Duration::from_millis(30);

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.set_nodelay(true).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (client, server)
    }

    /// Sends `pieces` with a pause before each, then ends the connection's sending side.
    fn send(mut client: TcpStream, pieces: Vec<Vec<u8>>) -> thread::JoinHandle<TcpStream> {
        thread::spawn(move || {
            for piece in pieces {
                thread::sleep(PAUSE);
                client.write_all(&piece).unwrap();
            }
            client.shutdown(Shutdown::Write).unwrap();
            client
        })
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    /// What the program would read after the header: everything up to the sender's end.
    fn rest(server: &mut TcpStream) -> Vec<u8> {
        server.set_nonblocking(false).unwrap();
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).unwrap();
        rest
    }

    #[test]
    fn reads_v1_in_pieces_and_leaves_the_payload() {
        let (client, mut server) = pair();
        server.set_nonblocking(true).unwrap();
        let sender = send(
            client,
            vec![
                b"PROXY TCP4 192.0.2.1 ".to_vec(),
                b"198.51.100.2 4000 25".to_vec(),
                b"\r".to_vec(),
                b"\nEHLO client.example.org\r\n".to_vec(),
            ],
        );
        let header = read_header(server.as_fd(), Accept::Any, soon()).unwrap();
        assert_eq!(
            header,
            proxied(Version::V1, "192.0.2.1:4000", "198.51.100.2:25")
        );
        assert_eq!(rest(&mut server), b"EHLO client.example.org\r\n");
        sender.join().unwrap();
    }

    #[test]
    fn reads_v2_in_pieces_and_leaves_the_payload() {
        let body = cat(&[&ipv6_block(), &tlv(0x01, b"smtp"), &ssl_tlv()]);
        let header = v2(0x21, 0x21, &body);
        let inside_tlvs = 16 + 36 + 5;
        let (client, mut server) = pair();
        let sender = send(
            client,
            vec![
                header[..5].to_vec(),
                header[5..14].to_vec(),
                header[14..inside_tlvs].to_vec(),
                cat(&[&header[inside_tlvs..], b"\x16\x03\x01 TLS hello"]),
            ],
        );
        let got = read_header(server.as_fd(), Accept::V2, soon()).unwrap();
        assert_eq!(got, parse(&header, Accept::V2).unwrap().unwrap().0);
        assert_eq!(rest(&mut server), b"\x16\x03\x01 TLS hello");
        sender.join().unwrap();
    }

    #[test]
    fn reads_a_header_sent_at_once_with_its_payload() {
        let mut biggest = ipv4_block();
        biggest.extend(tlv(0x04, &vec![9; MAX_HEADER - V2_FIXED - 12 - 3]));
        let payload = vec![b'x'; 3 * MAX_HEADER];
        let cases = [
            (b"PROXY UNKNOWN\r\n".to_vec(), Header::Local(Version::V1)),
            (v2(0x20, 0x00, b""), Header::Local(Version::V2)),
            (
                v2(0x21, 0x11, &biggest),
                proxied(Version::V2, "192.0.2.1:56324", "198.51.100.2:443"),
            ),
        ];
        for (header, want) in cases {
            let (client, mut server) = pair();
            let sender = send(client, vec![cat(&[&header, &payload])]);
            assert_eq!(
                read_header(server.as_fd(), Accept::Any, soon()).unwrap(),
                want
            );
            assert_eq!(rest(&mut server), payload);
            sender.join().unwrap();
        }
    }

    #[test]
    fn times_out_on_a_slow_sender() {
        let (mut client, server) = pair();
        let slow = thread::spawn(move || {
            // One byte every 40 ms: the line would take 2 s; the reader gives up at 200 ms.
            for &b in b"PROXY TCP4 192.0.2.1 198.51.100.2 4000 25\r\n" {
                if client.write_all(&[b]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(40));
            }
        });
        let start = Instant::now();
        let got = read_header(
            server.as_fd(),
            Accept::Any,
            start + Duration::from_millis(200),
        );
        let took = start.elapsed();
        assert!(matches!(got, Err(ReadError::Timeout)), "{got:?}");
        assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(1500));
        drop(server);
        slow.join().unwrap();
    }

    #[test]
    fn times_out_on_silence() {
        let (_client, server) = pair();
        let start = Instant::now();
        let got = read_header(
            server.as_fd(),
            Accept::Any,
            start + Duration::from_millis(100),
        );
        assert!(matches!(got, Err(ReadError::Timeout)), "{got:?}");
        assert!(start.elapsed() < Duration::from_millis(1000));
    }

    #[test]
    fn closed_midway() {
        let header = v2(0x21, 0x11, &ipv4_block());
        for cut in [0, 1, 13, 20] {
            let (client, server) = pair();
            let sender = send(client, vec![header[..cut].to_vec()]);
            let got = read_header(server.as_fd(), Accept::Any, soon());
            assert!(matches!(got, Err(ReadError::Closed)), "{cut}: {got:?}");
            sender.join().unwrap();
        }
    }

    #[test]
    fn refuses_at_once() {
        let cases: [(&[u8], Error); 4] = [
            (b"PROXY TCP4 192.0.2.1 198.51.100.2 01", Error::MalformedV1),
            (b"GET / HTTP/1.1\r\n", Error::BadSignature),
            (
                b"\r\n\r\n\0\r\nQUIT\n\x21\x11",
                Error::NotAccepted(Version::V2),
            ),
            (b"PROXY UNKNOWN", Error::NotAccepted(Version::V1)),
        ];
        for (i, (bytes, want)) in cases.into_iter().enumerate() {
            let (mut client, server) = pair();
            client.write_all(bytes).unwrap();
            let accept = [Accept::Any, Accept::Any, Accept::V1, Accept::V2][i];
            let start = Instant::now();
            let got = read_header(server.as_fd(), accept, soon());
            assert!(
                matches!(got, Err(ReadError::Bad(e)) if e == want),
                "{got:?}"
            );
            // The connection stays open: the answer came from the bytes, not an end.
            assert!(start.elapsed() < Duration::from_secs(2));
        }
    }
}
