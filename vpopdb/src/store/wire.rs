//! A blocking connection to a database server over a unix socket or TCP, with the time
//! limits of [`super::TIMEOUT`] and a read buffer (one read usually holds a whole answer).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;

use super::{DbError, TIMEOUT};

const RBUF: usize = 16 * 1024;

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

pub struct Wire {
    s: Stream,
    rbuf: Vec<u8>,
    rpos: usize,
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

    pub fn read_exact(&mut self, mut b: &mut [u8]) -> Result<(), DbError> {
        while !b.is_empty() {
            if self.rpos == self.rbuf.len() {
                self.rbuf.resize(RBUF, 0);
                let r = loop {
                    let r = match &mut self.s {
                        Stream::Unix(s) => s.read(&mut self.rbuf),
                        Stream::Tcp(s) => s.read(&mut self.rbuf),
                    };
                    match r {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        r => break r,
                    }
                };
                let n = r.map_err(|e| {
                    self.rbuf.clear();
                    io(e)
                })?;
                self.rbuf.truncate(n);
                self.rpos = 0;
                if n == 0 {
                    return Err(DbError::Other("the server closed the connection".into()));
                }
            }
            let n = b.len().min(self.rbuf.len() - self.rpos);
            b[..n].copy_from_slice(&self.rbuf[self.rpos..self.rpos + n]);
            self.rpos += n;
            b = &mut b[n..];
        }
        Ok(())
    }

    pub fn write_all(&mut self, b: &[u8]) -> Result<(), DbError> {
        match &mut self.s {
            Stream::Unix(s) => s.write_all(b),
            Stream::Tcp(s) => s.write_all(b),
        }
        .map_err(io)
    }
}
