//! Plays a database server that sends the fuzz input: the client gets one end of a unix
//! socket pair through vpopdb's `fuzzing` feature (`store::fuzzing::connect_over`, taken
//! for TCP, so the client takes its network paths), the other end holds the input and is
//! shut for writing, so that reading past the input is EOF at once (no server thread, no
//! timeout). What the client writes stays unread in that end until both are dropped.

use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

/// The most input replayed: all of it must fit the socket's buffer, as nobody reads
/// while it is written.
pub const MAX_INPUT: usize = 64 * 1024;

/// Runs `client(socket)` with the other end of `socket` holding `script`; `None` for an
/// input longer than [`MAX_INPUT`].
pub fn with_server<R>(script: &[u8], client: impl FnOnce(UnixStream) -> R) -> Option<R> {
    if script.len() > MAX_INPUT {
        return None;
    }
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    // Room for the whole input without a reader.
    let n = libc::c_int::try_from(2 * MAX_INPUT).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&ours);
    // SAFETY: a valid socket and an int option of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&n as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let mut server = ours;
    server
        .write_all(script)
        .expect("the input fits the socket buffer");
    server.shutdown(Shutdown::Write).expect("shutdown");
    let r = client(theirs);
    drop(server);
    Some(r)
}
