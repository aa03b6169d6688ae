//! RFC 1413 ident client as djb's `remoteinfo`: from the connection's local address
//! (port 0) connect to the peer's port 113, send `PEERPORT , OURPORT\r\n`, read one line
//! and keep what follows its third colon, without blanks and CRs. The whole exchange
//! shares one deadline. djb does not look at `USERID` versus `ERROR`, so neither do we.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Longest answer kept, as djb's line buffer.
pub const MAX_INFO: usize = 256;

fn wait_for(fd: i32, events: i16, end: Instant) -> io::Result<()> {
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
        }
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r > 0 {
            return Ok(());
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }
}

/// Asks the identd of `remote` about the connection `local` <-> `remote`. `None` when the
/// exchange fails or times out; `Some` (possibly empty) when a line came back.
pub fn query(local: SocketAddr, remote: SocketAddr, timeout: Duration) -> Option<Vec<u8>> {
    exchange(local, remote, timeout).ok()
}

fn exchange(local: SocketAddr, remote: SocketAddr, timeout: Duration) -> io::Result<Vec<u8>> {
    let end = Instant::now() + timeout;
    let domain = match remote {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut from = local;
    from.set_port(0);
    let (sa, len) = crate::sock::to_sockaddr(&from);
    // SAFETY: sa/len describe a valid address.
    if unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_storage).cast(), len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut to = remote;
    to.set_port(113);
    let (sa, len) = crate::sock::to_sockaddr(&to);
    // SAFETY: as above.
    if unsafe { libc::connect(fd, (&sa as *const libc::sockaddr_storage).cast(), len) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
        wait_for(fd, libc::POLLOUT, end)?;
        let mut err: libc::c_int = 0;
        let mut l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: reading an int-sized socket option into err.
        unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut l,
            )
        };
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
    }
    let req = format!("{} , {}\r\n", remote.port(), local.port());
    let mut out = req.as_bytes();
    while !out.is_empty() {
        wait_for(fd, libc::POLLOUT, end)?;
        // SAFETY: writing from a live buffer.
        let n = unsafe { libc::write(sock.as_raw_fd(), out.as_ptr().cast(), out.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN)) {
                continue;
            }
            return Err(e);
        }
        out = &out[n as usize..];
    }
    let mut parser = Parser::default();
    let mut buf = [0u8; 512];
    loop {
        wait_for(fd, libc::POLLIN, end)?;
        // SAFETY: reading into a live buffer.
        let n = unsafe { libc::read(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN)) {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EPROTO));
        }
        for &c in &buf[..n as usize] {
            if parser.feed(c) {
                return Ok(parser.info);
            }
        }
    }
}

/// djb's reading of the reply line, one byte at a time.
#[derive(Default)]
pub struct Parser {
    colons: u8,
    pub info: Vec<u8>,
}

impl Parser {
    /// Takes one byte; true when the answer is complete.
    pub fn feed(&mut self, c: u8) -> bool {
        match c {
            b' ' | b'\t' | b'\r' => false,
            b'\n' => true,
            _ if self.colons < 3 => {
                if c == b':' {
                    self.colons += 1;
                }
                false
            }
            _ => {
                self.info.push(c);
                self.info.len() >= MAX_INFO
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[u8]) -> Option<Vec<u8>> {
        let mut p = Parser::default();
        for &c in line {
            if p.feed(c) {
                return Some(p.info);
            }
        }
        None
    }

    #[test]
    fn takes_what_follows_the_third_colon() {
        assert_eq!(
            parse(b"123 , 456 : USERID : UNIX : joe\r\n").unwrap(),
            b"joe"
        );
        assert_eq!(
            parse(b"1,2:ERROR:NO-USER\r\n").unwrap(),
            b"" // only two colons: nothing kept
        );
        assert_eq!(parse(b"1,2:USERID:UNIX:a b:c\n").unwrap(), b"ab:c");
        assert_eq!(parse(b"no newline"), None);
        let long = [b"1,2:U:X:".to_vec(), vec![b'x'; 1000]].concat();
        assert_eq!(parse(&long).unwrap().len(), MAX_INFO);
    }
}
