//! djb-style diagnostics: `PROG: fatal: WHAT: REASON`, `PROG: warning: ...`,
//! `PROG: usage: ...`, each written to fd 2 in one write(2) so that lines from a
//! server and its children never interleave.

use std::io;

use crate::errstr;

/// Permanent failure: bad usage or bad input.
pub const EXIT_USAGE: i32 = 100;
/// Temporary failure: I/O, memory, the network.
pub const EXIT_TEMP: i32 = 111;

/// Writes one complete line to fd 2 with a single write(2) where it fits.
pub fn write_line(parts: &[&[u8]]) {
    let mut buf = Vec::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + 1);
    for p in parts {
        buf.extend_from_slice(p);
    }
    buf.push(b'\n');
    write_all_fd2(&buf);
}

fn write_all_fd2(mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: writing a valid, live buffer to fd 2.
        let n = unsafe { libc::write(2, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        if n == 0 {
            return;
        }
        buf = &buf[n as usize..];
    }
}

/// A program's message writer; `quiet` silences everything, as `-q` does in djb's servers.
#[derive(Clone, Copy, Debug)]
pub struct Msg {
    pub prog: &'static str,
    pub quiet: bool,
}

impl Msg {
    pub const fn new(prog: &'static str) -> Self {
        Msg { prog, quiet: false }
    }

    fn line(&self, kind: &str, parts: &[&[u8]]) {
        if self.quiet {
            return;
        }
        let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 3);
        all.push(self.prog.as_bytes());
        all.push(b": ");
        all.push(kind.as_bytes());
        all.extend_from_slice(parts);
        write_line(&all);
    }

    /// `PROG: fatal: PARTS`, then exit with `code`.
    pub fn fatal(&self, code: i32, parts: &[&[u8]]) -> ! {
        self.line("fatal: ", parts);
        exit(code)
    }

    /// `PROG: fatal: PARTS: REASON` with djb's wording of `err`, then exit with `code`.
    pub fn fatal_sys(&self, code: i32, parts: &[&[u8]], err: &io::Error) -> ! {
        let mut all = parts.to_vec();
        all.push(b": ");
        all.push(errstr::io_str(err).as_bytes());
        self.fatal(code, &all)
    }

    /// `PROG: warning: PARTS`.
    pub fn warn(&self, parts: &[&[u8]]) {
        self.line("warning: ", parts);
    }

    /// `PROG: warning: PARTS: REASON`.
    pub fn warn_sys(&self, parts: &[&[u8]], err: &io::Error) {
        let mut all = parts.to_vec();
        all.push(b": ");
        all.push(errstr::io_str(err).as_bytes());
        self.warn(&all);
    }

    /// `PROG: usage: TEXT`, exit 100. Usage is printed even under `-q`, as djb does.
    pub fn usage(&self, text: &str) -> ! {
        write_line(&[self.prog.as_bytes(), b": usage: ", text.as_bytes()]);
        exit(EXIT_USAGE)
    }

    /// Any other line: `PROG: PARTS` (status lines, `pid N from IP`, ...).
    pub fn info(&self, parts: &[&[u8]]) {
        self.line("", parts);
    }
}

/// Leaves without unwinding or running destructors, as djb's `_exit`.
pub fn exit(code: i32) -> ! {
    std::process::exit(code)
}
