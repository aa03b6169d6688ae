//! rblsmtpd: decide from `$RBLSMTPD` and DNS lists whether an SMTP client is refused;
//! if so, speak just enough SMTP to hand it a 451 or 553, else run the real smtpd.
//!
//! Beyond djb's 0.88: IPv6 clients are looked up by their ip6.arpa-style nibbles;
//! `-r base:message` asks for an A record and answers `message` with `%IP%` replaced by
//! the client's address (gurubert's RBLMESSAGE patch); `-T n` bounds all lookups together
//! to n seconds (a lookup past it counts as a DNS failure); `-w n` waits n seconds before
//! the real greeting and refuses a client that talks first (greetdelay).

use std::ffi::OsString;
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use ucspi::dns::{Resolver, LOOKUP_DEADLINE};
use ucspi::fd::{self, Want};
use ucspi::fmt::scan_ulong;
use ucspi::getopt::{parse, Opt};
use ucspi::msg::{write_line, Line, Msg, EXIT_TEMP};

pub const USAGE: &str =
    "rblsmtpd [ -b ] [ -R ] [ -t timeout ] [ -r base ] [ -a base ] smtpd [ arg ... ]";
const SPEC: &str = "bBcCt:r:a:T:w:";

/// The decision so far, as djb's `decision` variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Undecided,
    Accept,
    /// 451.
    Temporary,
    /// 553 (unless a lookup failed earlier).
    Permanent,
}

/// The lookup half of rblsmtpd: state carried from option to option.
pub struct Rbl {
    pub ip_text: Vec<u8>,
    reversed: Vec<u8>,
    pub decision: Decision,
    pub text: Vec<u8>,
    bounce: bool,
    fail_closed: bool,
    must_not_bounce: bool,
    pub timeout: u64,
    pub greet_delay: u64,
    deadline: Option<Instant>,
    resolver: Resolver,
}

/// The query prefix for a client: `d.c.b.a.` for IPv4 (djb's reversal of the text by
/// dots, whatever it holds), 32 nibbles for IPv6 (a v4-mapped address counts as IPv4).
pub fn reversed_ip(ip_text: &[u8]) -> Vec<u8> {
    let v6 = ucspi::addr::parse_v6(ip_text).filter(|a| a.to_ipv4_mapped().is_none());
    let mut out = Vec::with_capacity(72);
    if let Some(a) = v6 {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for o in a.octets().iter().rev() {
            out.extend_from_slice(&[
                HEX[usize::from(o & 15)],
                b'.',
                HEX[usize::from(o >> 4)],
                b'.',
            ]);
        }
        return out;
    }
    let text: Vec<u8> = match ucspi::addr::parse_v6(ip_text).and_then(|a| a.to_ipv4_mapped()) {
        Some(v4) => v4.to_string().into_bytes(),
        None => ip_text.to_vec(),
    };
    for part in text.rsplit(|&c| c == b'.') {
        out.extend_from_slice(part);
        out.push(b'.');
    }
    if text.is_empty() {
        out.clear();
    }
    out
}

/// `message` with every `%IP%` replaced by the client's address.
pub fn expand_message(message: &[u8], ip: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + ip.len());
    let mut i = 0;
    while i < message.len() {
        if message[i..].starts_with(b"%IP%") {
            out.extend_from_slice(ip);
            i += 4;
        } else {
            out.push(message[i]);
            i += 1;
        }
    }
    out
}

impl Rbl {
    /// Starts from `$TCPREMOTEIP` and `$RBLSMTPD` (unset: undecided; empty: accept;
    /// `-text`: 553 text; else 451 text).
    pub fn new(ip_text: Option<&[u8]>, rblsmtpd: Option<&[u8]>, resolver: Resolver) -> Rbl {
        let ip_text = ip_text.unwrap_or(b"").to_vec();
        let (decision, text) = match rblsmtpd {
            None => (Decision::Undecided, Vec::new()),
            Some(b"") => (Decision::Accept, Vec::new()),
            Some(x) if x[0] == b'-' => (Decision::Permanent, x[1..].to_vec()),
            Some(x) => (Decision::Temporary, x.to_vec()),
        };
        Rbl {
            reversed: reversed_ip(&ip_text),
            ip_text,
            decision,
            text,
            bounce: false,
            fail_closed: false,
            must_not_bounce: false,
            timeout: 60,
            greet_delay: 0,
            deadline: None,
            resolver,
        }
    }

    fn lookup_resolver(&self) -> Option<Resolver> {
        let mut r = self.resolver.clone();
        if let Some(end) = self.deadline {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            r.deadline = left.min(LOOKUP_DEADLINE);
        }
        Some(r)
    }

    fn lookup_failed(&mut self) {
        self.must_not_bounce = true;
        if self.fail_closed {
            self.text = b"temporary RBL lookup error".to_vec();
            self.decision = Decision::Temporary;
        }
    }

    fn timed_out() -> io::Error {
        io::Error::from_raw_os_error(libc::ETIMEDOUT)
    }

    /// `-r base` (TXT list) or `-r base:message` (A list with our message).
    pub fn rbl(&mut self, base: &[u8]) {
        if self.decision != Decision::Undecided {
            return;
        }
        let (base, message) = match base.iter().position(|&c| c == b':') {
            Some(i) => (&base[..i], Some(&base[i + 1..])),
            None => (base, None),
        };
        let name = [&self.reversed[..], base].concat();
        let found = match self.lookup_resolver() {
            None => Err(Self::timed_out()),
            Some(r) => match message {
                None => r.txt_of(&name),
                Some(m) => r.ipv4_of(&name).map(|v| {
                    if v.is_empty() {
                        Vec::new()
                    } else {
                        expand_message(m, &self.ip_text)
                    }
                }),
            },
        };
        match found {
            Err(_) => self.lookup_failed(),
            Ok(text) if !text.is_empty() => {
                self.text = text;
                self.decision = if self.bounce {
                    Decision::Permanent
                } else {
                    Decision::Temporary
                };
            }
            Ok(_) => {}
        }
    }

    /// `-a base`: an A record means accept; a failed lookup accepts unless `-c`.
    pub fn antirbl(&mut self, base: &[u8]) {
        if self.decision != Decision::Undecided {
            return;
        }
        let name = [&self.reversed[..], base].concat();
        let found: io::Result<Vec<Ipv4Addr>> = match self.lookup_resolver() {
            None => Err(Self::timed_out()),
            Some(r) => r.ipv4_of(&name),
        };
        match found {
            Err(_) => {
                self.must_not_bounce = true;
                if !self.fail_closed {
                    self.decision = Decision::Accept;
                }
            }
            Ok(v) if !v.is_empty() => self.decision = Decision::Accept,
            Ok(_) => {}
        }
    }

    /// The reply for a refused client, without CRLF: `451 `/`553 ` + text cut at 200
    /// bytes, bytes outside 32..=126 shown as `?`.
    pub fn message(&self) -> Vec<u8> {
        let mut m = if self.must_not_bounce || self.decision == Decision::Temporary {
            b"451 ".to_vec()
        } else {
            b"553 ".to_vec()
        };
        m.extend_from_slice(&self.text[..self.text.len().min(200)]);
        for c in &mut m {
            if !(32..=126).contains(c) {
                *c = b'?';
            }
        }
        m
    }
}

/// Parses options left to right, acting on `-r`/`-a` at once as djb's does. Returns the
/// index of smtpd in `args`, or `None` for a usage error (after its message).
pub fn apply_options(rbl: &mut Rbl, args: &[OsString]) -> Option<usize> {
    let (opts, first) = match parse(args, SPEC) {
        Ok(x) => x,
        Err(e) => {
            write_line(&[&e.message("rblsmtpd")]);
            return None;
        }
    };
    for o in opts {
        match o {
            Opt::Flag(b'b') => rbl.bounce = true,
            Opt::Flag(b'B') => rbl.bounce = false,
            Opt::Flag(b'c') => rbl.fail_closed = true,
            Opt::Flag(b'C') => rbl.fail_closed = false,
            Opt::Value(b't', v) => rbl.timeout = scan_ulong(v.as_bytes()).0,
            Opt::Value(b'w', v) => rbl.greet_delay = scan_ulong(v.as_bytes()).0,
            Opt::Value(b'T', v) => {
                let secs = scan_ulong(v.as_bytes()).0.min(1 << 30);
                rbl.deadline = Some(Instant::now() + Duration::from_secs(secs));
            }
            Opt::Value(b'r', v) => rbl.rbl(v.as_bytes()),
            Opt::Value(b'a', v) => rbl.antirbl(v.as_bytes()),
            _ => return None,
        }
    }
    if first >= args.len() {
        return None;
    }
    Some(first)
}

/// Waits up to `end` for input on fd 0; false at the deadline. A failed wait counts as
/// input, so that the read which follows reports it.
fn wait_input(end: Instant) -> bool {
    fd::wait(io::stdin(), Want::Read, end).unwrap_or(true)
}

fn out(b: &[u8]) {
    let _ = fd::write_all(io::stdout(), b);
}

/// Longest command line kept; the rest of a longer line is read and dropped.
const MAX_LINE: usize = 1024;

/// The refusing SMTP conversation on fds 0/1 with djb's replies, for `timeout` seconds
/// in all (0: just the message once).
pub fn converse(message: &[u8], timeout: u64) {
    let mut reply = message.to_vec();
    reply.extend_from_slice(b"\r\n");
    if timeout == 0 {
        out(&reply);
        return;
    }
    let end = Instant::now() + Duration::from_secs(timeout.min(1 << 30));
    out(b"220 rblsmtpd.local\r\n");
    let mut line = Vec::with_capacity(MAX_LINE);
    let mut buf = [0u8; 64];
    loop {
        if !wait_input(end) {
            return;
        }
        let n = match fd::read(io::stdin(), &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &c in &buf[..n] {
            if c != b'\n' {
                if line.len() < MAX_LINE {
                    line.push(c);
                }
                continue;
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            // djb's commands(): the verb ends at the first space (or a NUL).
            let verb_end = line
                .iter()
                .position(|&c| c == b' ' || c == 0)
                .unwrap_or(line.len());
            let verb = &line[..verb_end];
            let is = |w: &[u8]| verb.eq_ignore_ascii_case(w);
            if is(b"quit") {
                out(b"221 rblsmtpd.local\r\n");
                return;
            } else if is(b"helo") || is(b"ehlo") || is(b"mail") || is(b"rset") || is(b"noop") {
                out(b"250 rblsmtpd.local\r\n");
            } else {
                out(&reply);
            }
            line.clear();
        }
    }
}

/// The greeting delay: `true` when the client kept quiet for `secs` seconds.
fn quiet_for(secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs.min(1 << 30));
    !wait_input(end)
}

fn log_line(ip: &[u8], message: &[u8]) {
    Line::new()
        .push(b"rblsmtpd: ")
        .push(ip)
        .push(b" pid ")
        .num(std::process::id().into())
        .push(b": ")
        .push(message)
        .write();
}

/// rblsmtpd's main after argv[0]. Returns only through exit or exec.
pub fn main_with(args: &[OsString]) -> ! {
    let msg = Msg::new("rblsmtpd");
    let ip = std::env::var_os("TCPREMOTEIP");
    let env_rbl = std::env::var_os("RBLSMTPD");
    let mut rbl = Rbl::new(
        ip.as_ref().map(|v| v.as_bytes()),
        env_rbl.as_ref().map(|v| v.as_bytes()),
        Resolver::from_env(),
    );
    let Some(first) = apply_options(&mut rbl, args) else {
        msg.usage(USAGE)
    };
    if matches!(rbl.decision, Decision::Temporary | Decision::Permanent) {
        let m = rbl.message();
        log_line(&rbl.ip_text, &m);
        converse(&m, rbl.timeout);
        ucspi::msg::exit(0);
    }
    if rbl.greet_delay > 0 && rbl.decision != Decision::Accept && !quiet_for(rbl.greet_delay) {
        let m = b"554 SMTP protocol violation: talked before the greeting";
        log_line(&rbl.ip_text, m);
        out(&[&m[..], b"\r\n"].concat());
        ucspi::msg::exit(0);
    }
    let prog = &args[first..];
    let e = ucspi::exec::run_argv(prog);
    msg.fatal_sys(EXIT_TEMP, &[b"unable to run ", prog[0].as_bytes()], &e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res() -> Resolver {
        Resolver {
            servers: vec![],
            deadline: Duration::from_millis(1),
        }
    }

    #[test]
    fn reversal() {
        assert_eq!(reversed_ip(b"127.0.0.2"), b"2.0.0.127.");
        assert_eq!(reversed_ip(b"::ffff:10.1.2.3"), b"3.2.1.10.");
        assert_eq!(reversed_ip(b""), b"");
        let v6 = reversed_ip(b"2001:db8::1");
        assert!(v6.starts_with(b"1.0.0.0.0.0.0.0."));
        assert!(v6.ends_with(b"8.b.d.0.1.0.0.2."));
        assert_eq!(v6.len(), 64);
    }

    #[test]
    fn env_rules_and_messages() {
        let r = Rbl::new(Some(b"1.2.3.4"), Some(b"-go away\x01"), res());
        assert_eq!(r.decision, Decision::Permanent);
        assert_eq!(r.message(), b"553 go away?");
        let r = Rbl::new(None, Some(b"later"), res());
        assert_eq!(r.message(), b"451 later");
        let r = Rbl::new(None, Some(b""), res());
        assert_eq!(r.decision, Decision::Accept);
        let mut r = Rbl::new(None, Some(&[b'x'; 300]), res());
        assert_eq!(r.message().len(), 204);
        r.must_not_bounce = true;
        r.decision = Decision::Permanent;
        assert!(r.message().starts_with(b"451 "));
        assert_eq!(
            expand_message(b"%IP% is %IP%%", b"1.2.3.4"),
            b"1.2.3.4 is 1.2.3.4%"
        );
    }
}
