//! A blocking connection to a database server over a unix socket, TCP, or TLS on TCP
//! (started by the protocol after its plain-text opening), with the time limits of
//! [`super::TIMEOUT`] and a read buffer (one read usually holds a whole answer).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;

use rustls::{ClientConnection, StreamOwned};

use super::tls::Setup;
use super::{DbError, TIMEOUT};

const RBUF: usize = 16 * 1024;
/// How far ahead of the bytes received [`Wire::read_append`] grows its buffer.
const CHUNK: usize = 64 * 1024;

/// Rounds of a TLS handshake before it counts as stuck (each waits for the server
/// within [`TIMEOUT`]); a full handshake takes two or three.
const HANDSHAKE_ROUNDS: usize = 16;

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// After a failed start of TLS.
    Closed,
}

pub struct Wire {
    s: Stream,
    rbuf: Vec<u8>,
    rpos: usize,
}

fn failed_earlier() -> DbError {
    DbError::Other("the connection to the database failed earlier in this login".into())
}

pub fn io(e: std::io::Error) -> DbError {
    DbError::Other(ucspi::errstr::io_str(&e).to_string())
}

impl Wire {
    pub fn unix(path: &str) -> Result<Wire, DbError> {
        let s = UnixStream::connect(path)
            .map_err(|e| DbError::Other(format!("{path}: {}", ucspi::errstr::io_str(&e))))?;
        s.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
        s.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
        Ok(Wire::new(Stream::Unix(s)))
    }

    pub fn tcp(host: &str, port: u16) -> Result<Wire, DbError> {
        let fail = |e: &std::io::Error| {
            DbError::Other(format!("{host}:{port}: {}", ucspi::errstr::io_str(e)))
        };
        let mut last = None;
        for a in (host, port).to_socket_addrs().map_err(|e| fail(&e))? {
            match TcpStream::connect_timeout(&a, TIMEOUT) {
                Ok(s) => {
                    s.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
                    s.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
                    let _ = s.set_nodelay(true);
                    return Ok(Wire::new(Stream::Tcp(s)));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => fail(&e),
            None => DbError::Other(format!("{host}: no address")),
        })
    }

    /// For the fuzz targets: a connection over one end of a socket pair, taken for TCP
    /// (not private, TLS possible in principle) so that the clients take the same paths as
    /// over the network, while the bytes come from memory and end in EOF, not a timeout.
    #[cfg(feature = "fuzzing")]
    pub fn fuzzing(s: UnixStream) -> Wire {
        let fd = std::os::fd::OwnedFd::from(s);
        Wire::new(Stream::Tcp(TcpStream::from(fd)))
    }

    fn new(s: Stream) -> Wire {
        Wire {
            s,
            rbuf: Vec::with_capacity(RBUF),
            rpos: 0,
        }
    }

    pub fn is_unix(&self) -> bool {
        matches!(self.s, Stream::Unix(_))
    }

    /// Whether nobody between us and the server reads what we send: a unix socket, or
    /// TLS (verified or not: the mode chose that).
    pub fn is_private(&self) -> bool {
        matches!(self.s, Stream::Unix(_) | Stream::Tls(_))
    }

    /// Turns the TCP connection into TLS and completes the handshake. Refused when the
    /// server has sent bytes we have not read: they came in the clear and would pass for
    /// the first of the protected answer (CVE-2021-23222).
    pub fn start_tls(&mut self, setup: &Setup) -> Result<(), DbError> {
        if self.rpos != self.rbuf.len() {
            return Err(DbError::Other(
                "the server sent data before the TLS handshake: refused (someone in the path?)"
                    .into(),
            ));
        }
        let mut sock = match std::mem::replace(&mut self.s, Stream::Closed) {
            Stream::Tcp(s) => s,
            _ => return Err(DbError::Other("TLS on a connection that is not TCP".into())),
        };
        let fail = |what: String| {
            DbError::Other(format!(
                "TLS handshake failed (sslmode {}): {what}",
                setup.mode.name()
            ))
        };
        let mut conn = ClientConnection::new(setup.config.clone(), setup.name.clone())
            .map_err(|e| fail(e.to_string()))?;
        let mut rounds = 0;
        while conn.is_handshaking() {
            rounds += 1;
            if rounds > HANDSHAKE_ROUNDS {
                return Err(fail("too many rounds".into()));
            }
            conn.complete_io(&mut sock).map_err(|e| {
                // rustls's own errors (a certificate that does not verify) come wrapped.
                match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(t @ rustls::Error::InvalidCertificate(_)) => fail(format!(
                        "{t}: the server's certificate does not verify against the CA \
                         (sslrootcert) or for the host name"
                    )),
                    Some(t) => fail(t.to_string()),
                    None => fail(ucspi::errstr::io_str(&e).to_string()),
                }
            })?;
        }
        self.s = Stream::Tls(Box::new(StreamOwned::new(conn, sock)));
        Ok(())
    }

    /// Over TLS, the server's certificate (DER).
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        match &self.s {
            Stream::Tls(s) => s.conn.peer_certificates()?.first().map(|c| c.as_ref()),
            _ => None,
        }
    }

    /// Ends TLS politely (close_notify); nothing to do on a plain connection.
    pub fn close(&mut self) {
        if let Stream::Tls(s) = &mut self.s {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }

    pub fn read_exact(&mut self, mut b: &mut [u8]) -> Result<(), DbError> {
        while !b.is_empty() {
            if self.rpos == self.rbuf.len() {
                self.rbuf.resize(RBUF, 0);
                let r = loop {
                    let r = match &mut self.s {
                        Stream::Unix(s) => s.read(&mut self.rbuf),
                        Stream::Tcp(s) => s.read(&mut self.rbuf),
                        Stream::Tls(s) => s.read(&mut self.rbuf),
                        Stream::Closed => Err(std::io::ErrorKind::NotConnected.into()),
                    };
                    match r {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        r => break r,
                    }
                };
                let n = match r {
                    Ok(0) => {
                        self.fail();
                        return Err(DbError::Other("the server closed the connection".into()));
                    }
                    Ok(n) => n,
                    Err(e) => {
                        let was_open = !matches!(self.s, Stream::Closed);
                        self.fail();
                        return Err(if was_open { io(e) } else { failed_earlier() });
                    }
                };
                self.rbuf.truncate(n);
                self.rpos = 0;
            }
            let n = b.len().min(self.rbuf.len() - self.rpos);
            b[..n].copy_from_slice(&self.rbuf[self.rpos..self.rpos + n]);
            self.rpos += n;
            b = &mut b[n..];
        }
        Ok(())
    }

    /// Appends `n` bytes to `out`. It grows by what has arrived, at most [`CHUNK`] ahead,
    /// so that a length the server announces costs nothing until its bytes come.
    pub fn read_append(&mut self, out: &mut Vec<u8>, mut n: usize) -> Result<(), DbError> {
        while n > 0 {
            let k = n.min(CHUNK);
            let at = out.len();
            out.resize(at + k, 0);
            self.read_exact(&mut out[at..])?;
            n -= k;
        }
        Ok(())
    }

    pub fn write_all(&mut self, b: &[u8]) -> Result<(), DbError> {
        let r = match &mut self.s {
            Stream::Unix(s) => s.write_all(b),
            Stream::Tcp(s) => s.write_all(b),
            // rustls holds what it encrypted until flushed.
            Stream::Tls(s) => s.write_all(b).and_then(|()| s.flush()),
            Stream::Closed => return Err(failed_earlier()),
        };
        r.map_err(|e| {
            self.fail();
            io(e)
        })
    }

    /// Drops the connection after an error. A read that timed out may still be answered
    /// later, and a read or write cut short leaves the protocol mid-message: whatever
    /// came next on this connection would be taken for the answer to the next statement.
    /// Every later call fails at once instead of waiting for the server again.
    fn fail(&mut self) {
        self.s = Stream::Closed;
        self.rbuf.clear();
        self.rpos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{reset, server};
    use super::*;

    #[test]
    fn read_after_an_error() {
        // Three bytes, read whole; then a reset. Each read after it is an error, whatever
        // the caller does next (MySQL's answer reads the execute's packet after a failed
        // prepare; both query_pairs read the second answer after the first failed).
        let port = server(|mut s| {
            let _ = s.write_all(b"abc");
            let mut b = [0u8; 1];
            let _ = s.read_exact(&mut b);
            reset(s);
        });
        let mut w = Wire::tcp("127.0.0.1", port).unwrap();
        let mut b = [0u8; 3];
        w.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"abc");
        w.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        assert!(w.read_exact(&mut b).is_err());
        // Dropped: every later read or write fails at once, without the socket.
        for _ in 0..2 {
            let e = w.read_exact(&mut b).unwrap_err().to_string();
            assert!(e.contains("failed earlier"), "{e}");
        }
        let e = w.write_all(b"y").unwrap_err().to_string();
        assert!(e.contains("failed earlier"), "{e}");
    }

    #[test]
    fn nothing_read_after_a_server_closed() {
        // The server answers, then closes: the end is reported once, and the bytes of a
        // reconnect-less retry are never read from a stale buffer.
        let port = server(|mut s| {
            let _ = s.write_all(b"ab");
        });
        let mut w = Wire::tcp("127.0.0.1", port).unwrap();
        let mut b = [0u8; 3];
        let e = w.read_exact(&mut b).unwrap_err().to_string();
        assert!(e.contains("closed"), "{e}");
        let e = w.read_exact(&mut b[..1]).unwrap_err().to_string();
        assert!(e.contains("failed earlier"), "{e}");
    }
}
