//! RFC 1413 ident client as djb's `remoteinfo`: from the connection's local address
//! (port 0) connect to the peer's port 113, send `PEERPORT , OURPORT\r\n`, read one line
//! and keep what follows its third colon, without blanks and CRs. The exchange has one
//! deadline, counted from when the caller waits for the answer ([`Started::finish`]).
//! djb does not look at `USERID` versus `ERROR`, so neither do we.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use socket2::{Domain, Socket, Type};
use std::os::fd::AsFd;

use crate::fd::{self, Want};

/// Longest answer kept, as djb's line buffer.
pub const MAX_INFO: usize = 256;

/// Asks the identd of `remote` about the connection `local` <-> `remote`. `None` when the
/// exchange fails or times out; `Some` (possibly empty) when a line came back.
pub fn query(local: SocketAddr, remote: SocketAddr, timeout: Duration) -> Option<Vec<u8>> {
    start(local, remote, timeout)?.finish()
}

/// Starts the exchange of [`query`] and returns at once, so that the identd's round trip
/// runs while the caller looks up names: the connection is opened and, when it is up by
/// then, the request sent. djb's child asks the identd last, after DNS, and waits for
/// each in turn; the answer is the same either way. `None`: the exchange failed already.
pub fn start(local: SocketAddr, remote: SocketAddr, timeout: Duration) -> Option<Started> {
    begin(local, remote, timeout).ok()
}

/// An exchange under way (see [`start`]).
pub struct Started {
    sock: Socket,
    timeout: Duration,
    request: Vec<u8>,
    sent: bool,
}

impl Started {
    /// Waits for the answer. The deadline is `timeout` from now, as if the exchange began
    /// here (where djb's does): an early start never leaves the identd less time.
    pub fn finish(self) -> Option<Vec<u8>> {
        self.answer().ok()
    }

    fn answer(mut self) -> io::Result<Vec<u8>> {
        // `-t` may be any number: past what an Instant holds, wait "forever" (34 years).
        let now = Instant::now();
        let end = now
            .checked_add(self.timeout)
            .unwrap_or(now + Duration::from_secs(1 << 30));
        if !self.sent {
            ready(&self.sock, Want::Write, end)?;
            self.send()?;
        }
        let mut parser = Parser::default();
        let mut buf = [0u8; 512];
        loop {
            ready(&self.sock, Want::Read, end)?;
            let n = fd::read(&self.sock, &mut buf)?;
            if n == 0 {
                return Err(io::Error::from_raw_os_error(libc::EPROTO));
            }
            for &c in &buf[..n] {
                if parser.feed(c) {
                    return Ok(parser.info);
                }
            }
        }
    }

    /// The request, once the connection is up (its error, if it failed).
    fn send(&mut self) -> io::Result<()> {
        if let Some(e) = self.sock.take_error()? {
            return Err(e);
        }
        fd::write_all(&self.sock, &self.request)?;
        self.sent = true;
        Ok(())
    }
}

fn timed_out() -> io::Error {
    io::Error::from_raw_os_error(libc::ETIMEDOUT)
}

fn ready(sock: &Socket, want: Want, end: Instant) -> io::Result<()> {
    if fd::wait(sock, want, end)? {
        Ok(())
    } else {
        Err(timed_out())
    }
}

fn begin(local: SocketAddr, remote: SocketAddr, timeout: Duration) -> io::Result<Started> {
    if timeout.is_zero() {
        return Err(timed_out());
    }
    let sock = Socket::new(Domain::for_address(remote), Type::STREAM, None)?;
    let mut from = local;
    from.set_port(0);
    sock.bind(&from.into())?;
    let mut to = remote;
    to.set_port(113);
    sock.set_nonblocking(true)?;
    match sock.connect(&to.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let mut started = Started {
        sock,
        timeout,
        request: format!("{} , {}\r\n", remote.port(), local.port()).into_bytes(),
        sent: false,
    };
    // Up already (loopback, a near peer): send now. Otherwise `finish` does.
    let mut p = [PollFd::new(started.sock.as_fd(), PollFlags::POLLOUT)];
    if matches!(poll(&mut p, PollTimeout::ZERO), Ok(n) if n > 0) {
        started.send()?;
    }
    Ok(started)
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
