//! The plumbing of recordio and fixcrio (the program runs in the original process with
//! its stdin and stdout on pipes; a forked copier sits between them and the real stdin
//! and stdout) and of mconnect-io.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, signal, SigHandler, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe, ForkResult};
use ucspi::fd::{move_to, read, write_all};
use ucspi::msg::{Msg, EXIT_TEMP};

use crate::crlf::{add_cr, FixCr};

/// What the copier does with each chunk it moves.
pub enum Mode {
    /// recordio: log every chunk to fd 2 as `PID < line ` / `PID > line+` / `[EOF]`.
    Record(Vec<u8>),
    /// fixcrio: add a missing CR before LF in both directions.
    FixCr(FixCr, FixCr),
}

/// djb's copy unit: recordio logs what one read(2) of at most 256 bytes brought.
const CHUNK: usize = 256;

/// recordio's log of one chunk: one line per LF (`PID DIR text ` with the trailing
/// space), a final partial line with `+`.
pub fn record_lines(pid: &[u8], dir: &[u8], mut buf: &[u8], log: &mut Vec<u8>) {
    while !buf.is_empty() {
        log.extend_from_slice(pid);
        log.extend_from_slice(dir);
        match buf.iter().position(|&c| c == b'\n') {
            Some(i) => {
                log.extend_from_slice(&buf[..i]);
                log.extend_from_slice(b" \n");
                buf = &buf[i + 1..];
            }
            None => {
                log.extend_from_slice(buf);
                log.extend_from_slice(b"+\n");
                return;
            }
        }
    }
}

/// Copies `from` to `to` through `filter` until end of input; `finish` may add a tail.
/// Errors are the read or write failure, tagged by which side failed.
pub fn filter_copy(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    mut filter: impl FnMut(&[u8], &mut Vec<u8>),
    finish: impl FnOnce(&mut Vec<u8>),
) -> Result<(), Side> {
    let mut buf = [0u8; 8192];
    let mut out = Vec::with_capacity(2 * buf.len());
    loop {
        let n = read(from, &mut buf).map_err(Side::Read)?;
        out.clear();
        if n == 0 {
            finish(&mut out);
            return write_all(to, &out).map_err(Side::Write);
        }
        filter(&buf[..n], &mut out);
        write_all(to, &out).map_err(Side::Write)?;
    }
}

/// Which end of a copy failed.
#[derive(Debug)]
pub enum Side {
    Read(io::Error),
    Write(io::Error),
}

/// A filter between stdin and stdout (addcr, delcr): exit 0 at end of input, 111 when a
/// read or write failed.
pub fn filter_stdio(
    filter: impl FnMut(&[u8], &mut Vec<u8>),
    finish: impl FnOnce(&mut Vec<u8>),
) -> ! {
    let r = filter_copy(io::stdin().as_fd(), io::stdout().as_fd(), filter, finish);
    ucspi::msg::exit(if r.is_ok() { 0 } else { EXIT_TEMP })
}

fn ignore_sigpipe() {
    // SAFETY: ignoring a signal installs no handler.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// Starts `argv` behind a copier: forks, the child copies stdin→program and
/// program→stdout through `mode`, the parent execs the program. Returns only on error
/// (after printing it and exiting).
pub fn run_behind_copier(msg: &Msg, argv: &[OsString], mut mode: Mode) -> ! {
    let (to_prog, from_prog) = match pipe().and_then(|a| pipe().map(|b| (a, b))) {
        Ok(p) => p,
        Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to create pipe"], &e.into()),
    };
    if let Mode::Record(pid) = &mut mode {
        pid.clear();
        let _ = write!(pid, "{}", std::process::id());
    }
    // SAFETY: fork in a single-threaded process; the child only copies and exits.
    match unsafe { fork() } {
        Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to fork"], &e.into()),
        Ok(ForkResult::Child) => {
            ignore_sigpipe();
            // The program's ends of the pipes are not the copier's.
            drop((to_prog.0, from_prog.1));
            copy_both(to_prog.1, from_prog.0, &mut mode);
            ucspi::msg::exit(0);
        }
        Ok(ForkResult::Parent { .. }) => {}
    }
    drop((to_prog.1, from_prog.0));
    if let Err(e) = move_to(0, to_prog.0).and_then(|_| move_to(1, from_prog.1)) {
        msg.fatal_sys(EXIT_TEMP, &[b"unable to move descriptors"], &e);
    }
    let e = ucspi::exec::run_argv(argv);
    use std::os::unix::ffi::OsStrExt;
    msg.fatal_sys(EXIT_TEMP, &[b"unable to run ", argv[0].as_bytes()], &e)
}

/// The copier's loop: stdin → `left` (the program's stdin), `right` (its stdout) →
/// stdout, until both directions reach end of file or fail. Each direction reads when
/// its buffer is empty and writes when it is not.
fn copy_both(left: OwnedFd, right: OwnedFd, mode: &mut Mode) {
    // Closed (so that the program sees end of file) once its direction is done.
    let mut left = Some(left);
    let mut bufs = [Vec::with_capacity(2 * CHUNK), Vec::with_capacity(2 * CHUNK)];
    let mut done = [false, false];
    let mut raw = [0u8; CHUNK];
    let mut log = Vec::with_capacity(4 * CHUNK);
    let (stdin, stdout) = (io::stdin(), io::stdout());
    loop {
        let ready = {
            let ends = [
                (stdin.as_fd(), left.as_ref().map(|l| l.as_fd())),
                (right.as_fd(), Some(stdout.as_fd())),
            ];
            let mut fds: Vec<PollFd> = Vec::with_capacity(2);
            let mut which = Vec::with_capacity(2);
            for (i, (from, to)) in ends.iter().enumerate() {
                if done[i] {
                    continue;
                }
                match (bufs[i].is_empty(), to) {
                    (true, _) => fds.push(PollFd::new(*from, PollFlags::POLLIN)),
                    (false, Some(to)) => fds.push(PollFd::new(*to, PollFlags::POLLOUT)),
                    (false, None) => continue,
                }
                which.push(i);
            }
            if fds.is_empty() {
                return;
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
            let mut ready = [false, false];
            for (p, &i) in fds.iter().zip(&which) {
                ready[i] = p.revents().is_some_and(|r| !r.is_empty());
            }
            ready
        };
        for i in 0..2 {
            if !ready[i] {
                continue;
            }
            let arrow: &[u8] = if i == 0 { b" < " } else { b" > " };
            if bufs[i].is_empty() {
                let from = if i == 0 { stdin.as_fd() } else { right.as_fd() };
                let n = read(from, &mut raw).unwrap_or(0);
                if n == 0 {
                    done[i] = true;
                    if i == 0 {
                        left = None;
                    }
                    if let Mode::Record(pid) = mode {
                        log.clear();
                        log.extend_from_slice(pid);
                        log.extend_from_slice(arrow);
                        log.extend_from_slice(b"[EOF]\n");
                        let _ = write_all(io::stderr(), &log);
                    }
                    continue;
                }
                match mode {
                    Mode::Record(pid) => {
                        log.clear();
                        record_lines(pid, arrow, &raw[..n], &mut log);
                        let _ = write_all(io::stderr(), &log);
                        bufs[i].extend_from_slice(&raw[..n]);
                    }
                    Mode::FixCr(a, b) => {
                        let f = if i == 0 { a } else { b };
                        f.feed(&raw[..n], &mut bufs[i]);
                    }
                }
            } else {
                // The buffer is at most 512 bytes, below PIPE_BUF: one write empties it
                // into a pipe that polled writable.
                let to = if i == 0 {
                    left.as_ref().map(|l| l.as_fd())
                } else {
                    Some(stdout.as_fd())
                };
                if to.is_none_or(|to| write_all(to, &bufs[i]).is_err()) {
                    done[i] = true;
                    if i == 0 {
                        left = None;
                    }
                }
                bufs[i].clear();
            }
        }
    }
}

/// mconnect-io: a forked child copies stdin to fd 7 adding CR before LF; this process
/// copies fd 6 to stdout unchanged; when the server's side ends, the child is stopped.
pub fn mconnect_io(msg: &Msg) -> ! {
    // A closed socket is then an error, not a death.
    ignore_sigpipe();
    // SAFETY: fork in a single-threaded process.
    let child = match unsafe { fork() } {
        Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to fork"], &e.into()),
        Ok(ForkResult::Child) => {
            // A descriptor that is not open fails its copy, as a read or write on it would.
            let r = ucspi::fd::interface(7)
                .map_err(Side::Write)
                .and_then(|seven| filter_copy(io::stdin().as_fd(), seven, add_cr, |_| {}));
            ucspi::msg::exit(if r.is_ok() { 0 } else { EXIT_TEMP });
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    let r = ucspi::fd::interface(6).map_err(Side::Read).and_then(|six| {
        filter_copy(
            six,
            io::stdout().as_fd(),
            |b, o| o.extend_from_slice(b),
            |_| {},
        )
    });
    let _ = kill(child, Signal::SIGTERM);
    let _ = waitpid(child, None);
    ucspi::msg::exit(if r.is_ok() { 0 } else { EXIT_TEMP })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_format() {
        let mut log = Vec::new();
        record_lines(b"7", b" < ", b"a\nbb\r\nccc", &mut log);
        assert_eq!(log, b"7 < a \n7 < bb\r \n7 < ccc+\n");
        log.clear();
        record_lines(b"7", b" > ", b"\n", &mut log);
        assert_eq!(log, b"7 >  \n");
    }
}
