//! A TLS connection driven over a socket: the handshake within a deadline, then the relay
//! between the connection and a program's two pipes, in one process, without threads.
//!
//! Everything is non-blocking and waited for with poll, in both directions at once: a
//! program that speaks first and one whose peer speaks first both work (ucspi-ssl's
//! sslclient blocks in SSL_read after TLS 1.3 session tickets and never sends an HTTP
//! request). Each side stops being read while the other cannot take more, so neither
//! buffer grows past one read.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};
use rustls::Connection;
use socket2::Socket;

/// How much of the peer's data is gathered for one write to the program: four full TLS
/// records.
const CHUNK: usize = 64 * 1024;

/// One read's buffer, from the program or from rustls: a full TLS record. Every page a
/// connection's process writes is its own (a copy, after fork) for as long as the
/// connection lasts: 64 KiB cost 50 kB per live connection. Smaller reads, and reads
/// that grow with the data, made uploads half as fast (bench/sslserver).
const READ: usize = 16 * 1024;

/// Why a handshake or a relay ended badly, for the log line.
#[derive(Debug)]
pub enum Failure {
    /// The deadline passed (handshake) or nothing moved for the idle time (relay).
    TimedOut,
    /// The peer closed the connection before the handshake finished.
    Eof,
    Io(io::Error),
    Tls(rustls::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::TimedOut => f.write_str("timed out"),
            Failure::Eof => f.write_str("connection closed by peer"),
            Failure::Io(e) => f.write_str(ucspi::errstr::io_str(e)),
            Failure::Tls(e) => write!(f, "{e}"),
        }
    }
}

/// Sets `fd` non-blocking.
pub fn nonblocking(fd: impl AsFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
    fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Waits for `events` on the fds until `deadline`; `revents` per fd, or `None` at the
/// deadline.
fn wait(fds: &mut [PollFd<'_>], deadline: Instant) -> io::Result<bool> {
    loop {
        let Some(timeout) = ucspi::fd::ms_until(deadline) else {
            return Ok(false);
        };
        match poll(fds, timeout) {
            Ok(0) => {}
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes what the connection has queued, as far as the socket takes it now; true when
/// nothing is left.
fn flush(conn: &mut Connection, sock: &Socket) -> io::Result<bool> {
    while conn.wants_write() {
        match conn.write_tls(&mut &*sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// What one read from the socket found.
#[derive(PartialEq, Eq)]
enum Filled {
    Data,
    Nothing,
    EndOfStream,
}

/// Reads what the socket has (rustls takes 4 KiB at a time) into the connection and
/// processes it.
fn fill(conn: &mut Connection, sock: &Socket) -> Result<Filled, Failure> {
    let n = loop {
        match conn.read_tls(&mut &*sock) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Filled::Nothing),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Io(e)),
        }
    };
    if let Err(e) = conn.process_new_packets() {
        // Send the alert rustls queued for the peer, as far as it goes.
        let _ = flush(conn, sock);
        return Err(Failure::Tls(e));
    }
    Ok(if n > 0 {
        Filled::Data
    } else {
        Filled::EndOfStream
    })
}

/// Completes the handshake of `conn` on the non-blocking socket `sock` by `deadline`.
pub fn handshake(conn: &mut Connection, sock: &Socket, deadline: Instant) -> Result<(), Failure> {
    while conn.is_handshaking() {
        if !flush(conn, sock).map_err(Failure::Io)? {
            let mut p = [PollFd::new(sock.as_fd(), PollFlags::POLLOUT)];
            if !wait(&mut p, deadline).map_err(Failure::Io)? {
                return Err(Failure::TimedOut);
            }
            continue;
        }
        if !conn.is_handshaking() {
            break;
        }
        let mut p = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        if !wait(&mut p, deadline).map_err(Failure::Io)? {
            return Err(Failure::TimedOut);
        }
        if fill(conn, sock)? == Filled::EndOfStream {
            return Err(Failure::Eof);
        }
    }
    // The last flight (the server's tickets, a client's Finished) goes out with the
    // relay's first flush.
    Ok(())
}

/// The program's ends of the relay: `to_prog` is written with what the peer sends,
/// `from_prog` is read for what to send. Both non-blocking.
pub struct Pipes {
    pub to_prog: OwnedFd,
    pub from_prog: OwnedFd,
}

/// Relays between `conn` (handshake done) on `sock` and the program's pipes until both
/// directions are finished:
/// - the peer's end of data (close_notify or end of stream) closes `to_prog`, so the
///   program reads end of file; what the program still writes is still sent;
/// - the program's end of output sends close_notify and, once it is out, shuts the socket
///   for writing; what the peer still sends is delivered until the program closes its
///   input.
///
/// Nothing moving for `idle` ends it with [`Failure::TimedOut`].
pub fn relay(
    conn: &mut Connection,
    sock: &Socket,
    pipes: Pipes,
    idle: Duration,
) -> Result<(), Failure> {
    // The relay applies its own back-pressure (nothing is read while anything is queued).
    conn.set_buffer_limit(None);
    // What the handshake allocated and freed goes back to the system: a relay may live
    // for hours, and after fork every page it wrote is its own.
    // SAFETY: malloc_trim only returns free heap memory; it takes no pointers of ours.
    unsafe { libc::malloc_trim(0) };
    let mut to_prog = Some(pipes.to_prog);
    let mut from_prog = Some(pipes.from_prog);
    let mut pending: Vec<u8> = Vec::new();
    let mut sent = 0usize;
    let mut buf = vec![0u8; READ];
    let mut peer_done = false;
    let mut sock_eof = false;
    let mut shut = false;
    let mut deadline = Instant::now() + idle;
    loop {
        // What the program wrote goes out before more is read from it.
        let flushed = match flush(conn, sock) {
            Ok(f) => f,
            Err(e) => return peer_left(Failure::Io(e)),
        };
        if flushed && from_prog.is_none() && !shut {
            let _ = sock.shutdown(std::net::Shutdown::Write);
            shut = true;
        }
        // The peer's data: what rustls holds decrypted, on to the program, until the
        // pipe is full or rustls holds no more (a wait with plaintext left in rustls
        // would wait for the peer, who may be waiting for the program's answer).
        loop {
            if pending.is_empty() && !peer_done {
                peer_done = take_plaintext(conn, &mut buf, &mut pending)?;
            }
            if sent < pending.len() {
                match &to_prog {
                    Some(w) => match nix::unistd::write(w, &pending[sent..]) {
                        Ok(n) => {
                            sent += n;
                            deadline = Instant::now() + idle;
                        }
                        Err(Errno::EAGAIN) | Err(Errno::EINTR) => break,
                        // The program closed its input: what the peer sends is dropped.
                        Err(_) => to_prog = None,
                    },
                    None => sent = pending.len(),
                }
            }
            if sent < pending.len() {
                break;
            }
            let moved = !pending.is_empty();
            pending.clear();
            sent = 0;
            if peer_done {
                to_prog = None;
                break;
            }
            if !moved {
                break;
            }
        }
        if from_prog.is_none() && to_prog.is_none() && flushed {
            return Ok(());
        }

        let mut fds = Vec::with_capacity(3);
        let mut sock_events = PollFlags::empty();
        if !sock_eof && !peer_done && pending.is_empty() && to_prog.is_some() {
            sock_events |= PollFlags::POLLIN;
        }
        if !flushed {
            sock_events |= PollFlags::POLLOUT;
        }
        let sock_i = (!sock_events.is_empty()).then(|| {
            fds.push(PollFd::new(sock.as_fd(), sock_events));
            fds.len() - 1
        });
        let from_i = match (&from_prog, flushed) {
            (Some(r), true) => {
                fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
                Some(fds.len() - 1)
            }
            _ => None,
        };
        // Watched even with nothing to write: POLLERR says the program closed its input.
        let to_i = to_prog.as_ref().map(|w| {
            let e = if pending.is_empty() {
                PollFlags::empty()
            } else {
                PollFlags::POLLOUT
            };
            fds.push(PollFd::new(w.as_fd(), e));
            fds.len() - 1
        });
        if !wait(&mut fds, deadline).map_err(Failure::Io)? {
            return Err(Failure::TimedOut);
        }
        let revents = |i: Option<usize>| {
            i.and_then(|i| fds[i].revents())
                .unwrap_or(PollFlags::empty())
        };
        let (sock_r, from_r, to_r) = (revents(sock_i), revents(from_i), revents(to_i));
        drop(fds);

        if to_r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) && pending.is_empty() {
            to_prog = None;
        }
        if sock_events.contains(PollFlags::POLLIN) && !sock_r.is_empty() {
            // What the socket has, record by record, handed on in chunks of up to CHUNK
            // (one poll per 4 KiB read would cost more than the reads). At the end of
            // stream, rustls's reader says whether close_notify came first.
            for _ in 0..CHUNK / 4096 {
                match fill(conn, sock) {
                    Ok(Filled::Data) => {}
                    Ok(Filled::Nothing) => break,
                    Ok(Filled::EndOfStream) => {
                        sock_eof = true;
                        break;
                    }
                    Err(f) => return peer_left(f),
                }
                peer_done = take_plaintext(conn, &mut buf, &mut pending)?;
                if peer_done || pending.len() >= CHUNK {
                    break;
                }
            }
            deadline = Instant::now() + idle;
        }
        if !from_r.is_empty() {
            if let Some(r) = &from_prog {
                match nix::unistd::read(r, &mut buf) {
                    Ok(0) => {
                        from_prog = None;
                        conn.send_close_notify();
                    }
                    Ok(n) => {
                        conn.writer().write_all(&buf[..n]).map_err(Failure::Io)?;
                        deadline = Instant::now() + idle;
                    }
                    Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(Failure::Io(e.into())),
                }
            }
        }
    }
}

/// The end of a relay whose peer closed the connection under it (a reset, or a write
/// after it left): not a failure of ours. A client commonly sends close_notify and
/// closes at once, and the tickets or the program's last words then meet a reset before
/// the close_notify is read. The program gets end of file either way.
fn peer_left(f: Failure) -> Result<(), Failure> {
    match f {
        Failure::Io(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN)
            ) =>
        {
            Ok(())
        }
        f => Err(f),
    }
}

/// Moves the plaintext rustls holds into `pending` (up to one chunk); true once the
/// peer's data has ended (close_notify, or end of stream without it: the program gets
/// end of file either way, as under ucspi-ssl).
fn take_plaintext(
    conn: &mut Connection,
    buf: &mut [u8],
    pending: &mut Vec<u8>,
) -> Result<bool, Failure> {
    while pending.len() < CHUNK {
        match conn.reader().read(buf) {
            Ok(0) => return Ok(true),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(true),
            Err(e) => return Err(Failure::Io(e)),
        }
    }
    Ok(false)
}
