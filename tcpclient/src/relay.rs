//! The plumbing of recordio and fixcrio (the program runs in the original process with
//! its stdin and stdout on pipes; a forked copier sits between them and the real stdin
//! and stdout) and of mconnect-io.

use std::ffi::OsString;
use std::io::Write;

use ucspi::msg::{Msg, EXIT_TEMP};

use crate::crlf::{add_cr, FixCr};
use crate::fdio::{exec_argv, fd_move, read, write_all};

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

/// Starts `argv` behind a copier: forks, the child copies stdin→program and
/// program→stdout through `mode`, the parent execs the program. Returns only on error
/// (after printing it and exiting).
pub fn run_behind_copier(msg: &Msg, argv: &[OsString], mut mode: Mode) -> ! {
    let mut to_prog = [0i32; 2];
    let mut from_prog = [0i32; 2];
    // SAFETY: pipe(2) into two-element arrays.
    if unsafe { libc::pipe(to_prog.as_mut_ptr()) } == -1
        || unsafe { libc::pipe(from_prog.as_mut_ptr()) } == -1
    {
        msg.fatal_sys(
            EXIT_TEMP,
            &[b"unable to create pipe"],
            &std::io::Error::last_os_error(),
        );
    }
    if let Mode::Record(pid) = &mut mode {
        pid.clear();
        let _ = write!(pid, "{}", std::process::id());
    }
    // SAFETY: fork in a single-threaded process; the child only copies and exits.
    match unsafe { libc::fork() } {
        -1 => msg.fatal_sys(
            EXIT_TEMP,
            &[b"unable to fork"],
            &std::io::Error::last_os_error(),
        ),
        0 => {
            // SAFETY: ignoring SIGPIPE and closing our copies of the program's ends.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                libc::close(to_prog[0]);
                libc::close(from_prog[1]);
            }
            copy_both(to_prog[1], from_prog[0], &mut mode);
            ucspi::msg::exit(0);
        }
        _ => {}
    }
    // SAFETY: closing the copier's ends in the parent.
    unsafe {
        libc::close(to_prog[1]);
        libc::close(from_prog[0]);
    }
    if let Err(e) = fd_move(0, to_prog[0]).and_then(|()| fd_move(1, from_prog[1])) {
        msg.fatal_sys(EXIT_TEMP, &[b"unable to move descriptors"], &e);
    }
    let e = exec_argv(argv);
    use std::os::unix::ffi::OsStrExt;
    msg.fatal_sys(EXIT_TEMP, &[b"unable to run ", argv[0].as_bytes()], &e)
}

/// One direction of the copier: read when its buffer is empty, write when it is not.
struct Dir {
    from: i32,
    to: i32,
    buf: Vec<u8>,
    done: bool,
}

/// The copier's loop: stdin → `left` (the program's stdin), `right` (its stdout) →
/// stdout, until both directions reach end of file or fail.
fn copy_both(left: i32, right: i32, mode: &mut Mode) {
    let mut dirs = [
        Dir {
            from: 0,
            to: left,
            buf: Vec::with_capacity(2 * CHUNK),
            done: false,
        },
        Dir {
            from: right,
            to: 1,
            buf: Vec::with_capacity(2 * CHUNK),
            done: false,
        },
    ];
    let mut raw = [0u8; CHUNK];
    let mut log = Vec::with_capacity(4 * CHUNK);
    loop {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(2);
        let mut which = Vec::with_capacity(2);
        for (i, d) in dirs.iter().enumerate() {
            if d.done {
                continue;
            }
            let (fd, ev) = if d.buf.is_empty() {
                (d.from, libc::POLLIN)
            } else {
                (d.to, libc::POLLOUT)
            };
            fds.push(libc::pollfd {
                fd,
                events: ev,
                revents: 0,
            });
            which.push(i);
        }
        if fds.is_empty() {
            return;
        }
        // SAFETY: polling a live array of pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if r < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        for (p, &i) in fds.iter().zip(&which) {
            if p.revents == 0 {
                continue;
            }
            let d = &mut dirs[i];
            if d.buf.is_empty() {
                let n = read(d.from, &mut raw).unwrap_or(0);
                let arrow: &[u8] = if i == 0 { b" < " } else { b" > " };
                if n == 0 {
                    d.done = true;
                    if i == 0 {
                        // SAFETY: closing the program's stdin pipe: it sees end of file.
                        unsafe { libc::close(left) };
                    }
                    if let Mode::Record(pid) = mode {
                        log.clear();
                        log.extend_from_slice(pid);
                        log.extend_from_slice(arrow);
                        log.extend_from_slice(b"[EOF]\n");
                        let _ = write_all(2, &log);
                    }
                    continue;
                }
                match mode {
                    Mode::Record(pid) => {
                        log.clear();
                        record_lines(pid, arrow, &raw[..n], &mut log);
                        let _ = write_all(2, &log);
                        d.buf.extend_from_slice(&raw[..n]);
                    }
                    Mode::FixCr(a, b) => {
                        let f = if i == 0 { a } else { b };
                        f.feed(&raw[..n], &mut d.buf);
                    }
                }
            } else {
                // The buffer is at most 512 bytes, below PIPE_BUF: one write empties it
                // into a pipe that polled writable.
                if write_all(d.to, &d.buf).is_err() {
                    d.done = true;
                    if i == 0 {
                        // SAFETY: as above.
                        unsafe { libc::close(left) };
                    }
                }
                d.buf.clear();
            }
        }
    }
}

/// mconnect-io: a forked child copies stdin to fd 7 adding CR before LF; this process
/// copies fd 6 to stdout unchanged; when the server's side ends, the child is stopped.
pub fn mconnect_io(msg: &Msg) -> ! {
    // SAFETY: SIGPIPE ignored so that a closed socket is an error, not a death.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // SAFETY: fork in a single-threaded process.
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        msg.fatal_sys(
            EXIT_TEMP,
            &[b"unable to fork"],
            &std::io::Error::last_os_error(),
        );
    }
    if pid == 0 {
        let r = crate::fdio::filter_copy(0, 7, add_cr, |_| {});
        ucspi::msg::exit(if r.is_ok() { 0 } else { EXIT_TEMP });
    }
    let r = crate::fdio::filter_copy(6, 1, |b, o| o.extend_from_slice(b), |_| {});
    // SAFETY: stopping and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
    }
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
