//! RFC 1413 ident client as djb's `remoteinfo`: from the connection's local address
//! (port 0) connect to the peer's port 113, send `PEERPORT , OURPORT\r\n`, read one line
//! and keep what follows its third colon, without blanks and CRs. The whole exchange
//! shares one deadline. djb does not look at `USERID` versus `ERROR`, so neither do we.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::fd::{self, Want};

/// Longest answer kept, as djb's line buffer.
pub const MAX_INFO: usize = 256;

/// Asks the identd of `remote` about the connection `local` <-> `remote`. `None` when the
/// exchange fails or times out; `Some` (possibly empty) when a line came back.
pub fn query(local: SocketAddr, remote: SocketAddr, timeout: Duration) -> Option<Vec<u8>> {
    exchange(local, remote, timeout).ok()
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

fn exchange(local: SocketAddr, remote: SocketAddr, timeout: Duration) -> io::Result<Vec<u8>> {
    let end = Instant::now() + timeout;
    let sock = Socket::new(Domain::for_address(remote), Type::STREAM, None)?;
    let mut from = local;
    from.set_port(0);
    sock.bind(&from.into())?;
    let mut to = remote;
    to.set_port(113);
    let left = end.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timed_out());
    }
    sock.connect_timeout(&to.into(), left)?;
    let req = format!("{} , {}\r\n", remote.port(), local.port());
    ready(&sock, Want::Write, end)?;
    fd::write_all(&sock, req.as_bytes())?;
    let mut parser = Parser::default();
    let mut buf = [0u8; 512];
    loop {
        ready(&sock, Want::Read, end)?;
        let n = fd::read(&sock, &mut buf)?;
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
