//! djb-style diagnostics: `PROG: fatal: WHAT: REASON`, `PROG: warning: ...`,
//! `PROG: usage: ...`, each written to fd 2 in one write(2) so that lines from a
//! server and its children never interleave.

use std::io;
use std::net::IpAddr;

use crate::errstr;
use crate::fd;
use crate::fmt::{fmt_u64, itoa_buf};

/// Permanent failure: bad usage or bad input.
pub const EXIT_USAGE: i32 = 100;
/// Temporary failure: I/O, memory, the network.
pub const EXIT_TEMP: i32 = 111;

/// One line of log or message output, built in one buffer and written with one
/// write(2). Reusable: [`Line::write`] empties it, so a server's parent keeps one and
/// allocates for its status lines once.
#[derive(Debug, Default)]
pub struct Line {
    buf: Vec<u8>,
}

impl Line {
    pub fn new() -> Line {
        Line {
            buf: Vec::with_capacity(256),
        }
    }

    pub fn push(&mut self, b: &[u8]) -> &mut Line {
        self.buf.extend_from_slice(b);
        self
    }

    pub fn num(&mut self, n: u64) -> &mut Line {
        let mut b = itoa_buf();
        self.push(fmt_u64(&mut b, n))
    }

    /// An address as the TCP variables carry it (see [`crate::addr::ip_text`]).
    pub fn ip(&mut self, ip: IpAddr) -> &mut Line {
        crate::addr::ip_text(ip, &mut self.buf);
        self
    }

    /// A field as djb's `safecats` writes it: bytes below 33 or above 126, `%` and `:`
    /// become `?`; at most 100 bytes are kept, and `...` marks a cut (djb's loop adds it
    /// whenever the field reaches 100 bytes, even one of exactly 100).
    pub fn field(&mut self, field: &[u8]) -> &mut Line {
        for (i, &c) in field.iter().enumerate() {
            if i == 100 || c == 0 {
                if i == 100 {
                    self.buf.extend_from_slice(b"...");
                }
                return self;
            }
            self.buf
                .push(if !(33..=126).contains(&c) || c == b'%' || c == b':' {
                    b'?'
                } else {
                    c
                });
        }
        if field.len() >= 100 {
            self.buf.extend_from_slice(b"...");
        }
        self
    }

    /// The line so far, without its newline.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Writes the line and a newline to fd 2, then empties it. A failed write is dropped:
    /// there is nowhere left to report it.
    pub fn write(&mut self) {
        self.buf.push(b'\n');
        let _ = fd::write_all(io::stderr(), &self.buf);
        self.buf.clear();
    }
}

/// Writes one complete line to fd 2 with a single write(2) where it fits.
pub fn write_line(parts: &[&[u8]]) {
    let mut l = Line::new();
    for p in parts {
        l.push(p);
    }
    l.write();
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

    /// `PROG: KIND`, where a line of that kind starts; `None` under `-q`.
    fn head(&self, kind: &str) -> Option<Line> {
        if self.quiet {
            return None;
        }
        let mut l = Line::new();
        l.push(self.prog.as_bytes())
            .push(b": ")
            .push(kind.as_bytes());
        Some(l)
    }

    /// How [`Msg::warn`]'s lines start (`PROG: warning: `), empty under `-q`: for a
    /// process that must write the line without this crate's help.
    pub fn warning_head(&self) -> Vec<u8> {
        self.head("warning: ")
            .map(|l| l.as_bytes().to_vec())
            .unwrap_or_default()
    }

    fn line(&self, kind: &str, parts: &[&[u8]]) {
        let Some(mut l) = self.head(kind) else {
            return;
        };
        for p in parts {
            l.push(p);
        }
        l.write();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_as_djb() {
        let mut l = Line::new();
        l.field(b"a:b%c d\x7f\x01");
        assert_eq!(l.as_bytes(), b"a?b?c?d??");
        let mut l = Line::new();
        l.field(&[b'x'; 100]);
        assert_eq!(l.as_bytes().len(), 103);
        let mut l = Line::new();
        l.field(&[b'x'; 99])
            .push(b" ")
            .num(42)
            .push(b" ")
            .ip("::1".parse().unwrap());
        assert_eq!(l.as_bytes().len(), 99 + 3 + 1 + 3);
        let mut l = Line::new();
        l.field(b"ab\0cd");
        assert_eq!(l.as_bytes(), b"ab");
    }
}
