//! File descriptors as djb's programs use them: one waited for until a deadline, read and
//! written with EINTR and short writes retried, and moved or copied onto the numbers a
//! ucspi interface names (0 and 1 for a server's program, 6 and 7 for a client's).
//!
//! Every per-connection or per-login wait in the project goes through [`wait`], so that
//! the time left is recomputed after an interrupted poll in one place.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// What a wait is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Read,
    Write,
}

/// Milliseconds from now until `deadline` for poll(2), rounded up so that a wait never
/// ends early; `None` once the deadline has passed.
pub fn ms_until(deadline: Instant) -> Option<PollTimeout> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return None;
    }
    let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
    Some(PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX))
}

/// Waits until `fd` is ready for `want` or `deadline` passes: `Ok(true)` when ready (an
/// error or hang-up counts as ready: the read or write that follows reports it),
/// `Ok(false)` at the deadline. An interrupted wait goes on with the time left.
pub fn wait(fd: impl AsFd, want: Want, deadline: Instant) -> io::Result<bool> {
    let events = match want {
        Want::Read => PollFlags::POLLIN,
        Want::Write => PollFlags::POLLOUT,
    };
    loop {
        let Some(timeout) = ms_until(deadline) else {
            return Ok(false);
        };
        let mut p = [PollFd::new(fd.as_fd(), events)];
        match poll(&mut p, timeout) {
            Ok(0) => {}
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// read(2), retried when interrupted.
pub fn read(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(fd.as_fd(), buf) {
            Err(Errno::EINTR) => {}
            r => return r.map_err(io::Error::from),
        }
    }
}

/// Writes all of `buf`, retrying interrupted and short writes. A write that takes
/// nothing (a full non-blocking socket) is an error, never a spin.
pub fn write_all(fd: impl AsFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd.as_fd(), buf) {
            Ok(0) => return Err(io::Error::from_raw_os_error(libc::EAGAIN)),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Whether descriptor number `fd` is open, without opening or touching anything.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor table. No wrapper takes a number that may
    // be closed (nix's fcntl wants a BorrowedFd, which a closed number is not).
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// A descriptor a ucspi interface hands this program (a client program's 6 and 7, a
/// filter's 0 and 1), borrowed for the rest of the process; `EBADF` when it is not open.
pub fn interface(fd: RawFd) -> io::Result<BorrowedFd<'static>> {
    if !is_open(fd) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the number is open, and an interface descriptor is never closed by this
    // process (descriptors it takes over, like checkpassword's fd 3, go through
    // [`take_interface`] instead).
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// A descriptor a ucspi interface hands this program to use up and close (checkpassword's
/// fd 3); `None` when it is not open.
pub fn take_interface(fd: RawFd) -> Option<OwnedFd> {
    if !is_open(fd) {
        return None;
    }
    // SAFETY: the number is open and, being the caller's interface descriptor, owned by
    // nothing else in this process; the caller calls this once, before opening anything.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// djb's `fd_copy`: descriptor `to` becomes a copy of `from` (dup2 closes what `to` was).
/// The copy has no close-on-exec flag, so it reaches the program exec'd next.
pub fn copy_to(to: RawFd, from: impl AsFd) -> io::Result<BorrowedFd<'static>> {
    if from.as_fd().as_raw_fd() == to {
        fcntl(&from, FcntlArg::F_SETFD(FdFlag::empty()))?;
        // SAFETY: `from` is open and is `to` itself, an interface descriptor that this
        // process never closes.
        return Ok(unsafe { BorrowedFd::borrow_raw(to) });
    }
    // SAFETY: `to` is one of the numbers a ucspi interface names and this process owns no
    // other handle to it; the copy (which dup2 gives no close-on-exec flag) is left to
    // the program exec'd next.
    let copy = unsafe { nix::unistd::dup2_raw(from, to) }?;
    Ok(give_up(copy))
}

/// djb's `fd_move`: `from` is copied onto `to` and closed; when it already is `to`, it
/// only loses its close-on-exec flag.
pub fn move_to(to: RawFd, from: OwnedFd) -> io::Result<BorrowedFd<'static>> {
    if from.as_raw_fd() == to {
        fcntl(&from, FcntlArg::F_SETFD(FdFlag::empty()))?;
        return Ok(give_up(from));
    }
    copy_to(to, &from)
}

/// An owned interface descriptor left open for the program exec'd next.
fn give_up(fd: OwnedFd) -> BorrowedFd<'static> {
    let raw = fd.into_raw_fd();
    // SAFETY: nothing owns `raw` any more, so nothing in this process closes it.
    unsafe { BorrowedFd::borrow_raw(raw) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn waits_reads_writes() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(!wait(&r, Want::Read, soon).unwrap());
        assert!(wait(&w, Want::Write, Instant::now() + Duration::from_secs(5)).unwrap());
        write_all(&w, b"hello").unwrap();
        assert!(wait(&r, Want::Read, Instant::now() + Duration::from_secs(5)).unwrap());
        let mut b = [0u8; 8];
        assert_eq!(read(&r, &mut b).unwrap(), 5);
        assert_eq!(&b[..5], b"hello");
        assert!(ms_until(Instant::now()).is_none());
        assert!(is_open(w.as_raw_fd()));
        assert!(!is_open(-1));
        assert!(interface(-1).is_err());
        assert!(take_interface(-1).is_none());
    }
}
