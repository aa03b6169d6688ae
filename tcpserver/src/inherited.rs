//! Listening sockets made by someone else: systemd's socket activation (`LISTEN_PID`,
//! `LISTEN_FDS` from descriptor 3, `LISTEN_FDNAMES`) and `-L`, a descriptor an fd-holder
//! or a supervisor (s6, runit) passed to the server, or a name in `LISTEN_FDNAMES`.
//!
//! When sockets are inherited the host and port arguments are not used (they stay in the
//! command line, which keeps djb's usage): the unit or the supervisor says where to listen.
//! The `LISTEN_*` variables are removed from the environment either way, so that the
//! programs the server runs never believe they were activated themselves.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use socket2::{Domain, Socket, Type};
use ucspi::fmt::scan_ulong;
use ucspi::msg::{Msg, EXIT_TEMP, EXIT_USAGE};

use crate::options::Config;

/// systemd's first passed descriptor (`SD_LISTEN_FDS_START`).
const FIRST: RawFd = 3;

/// Most descriptors taken from `LISTEN_FDS`: more than any unit lists, few enough that a
/// wrong number cannot make the server claim every descriptor it has.
const MOST: u64 = 1024;

/// What `LISTEN_*` say, when they are meant for this process.
struct Activation {
    count: u64,
    names: Vec<Vec<u8>>,
}

fn activation() -> Option<Activation> {
    let var = |k: &str| std::env::var_os(k).map(|v| v.into_encoded_bytes());
    let pid = var("LISTEN_PID")?;
    let (n, used) = scan_ulong(&pid);
    if used == 0 || used != pid.len() || n != u64::from(std::process::id()) {
        return None;
    }
    let fds = var("LISTEN_FDS")?;
    let (count, used) = scan_ulong(&fds);
    if used == 0 || used != fds.len() {
        return None;
    }
    let names = var("LISTEN_FDNAMES")
        .map(|n| n.split(|&b| b == b':').map(<[u8]>::to_vec).collect())
        .unwrap_or_default();
    Some(Activation {
        count: count.min(MOST),
        names,
    })
}

/// The inherited listening sockets, when there are any: `-L`'s, or else all of systemd's.
/// `None`: bind as usual. Exits 111 with a message when a named socket is missing or is
/// not a listening TCP socket; systemd's descriptors that `-L` did not pick are closed.
pub fn take(c: &Config, msg: &Msg) -> Option<Vec<Socket>> {
    let act = activation();
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(k);
    }
    let passed: Vec<RawFd> = match &act {
        Some(a) => (0..a.count).map(|i| FIRST + i as RawFd).collect(),
        None => Vec::new(),
    };
    let chosen: Vec<RawFd> = if c.inherit.is_empty() {
        passed.clone()
    } else {
        let mut chosen = Vec::new();
        for want in &c.inherit {
            let (n, used) = scan_ulong(want);
            if used > 0 && used == want.len() {
                if n > i32::MAX as u64 {
                    msg.fatal(EXIT_USAGE, &[b"bad descriptor number ", want]);
                }
                if !chosen.contains(&(n as RawFd)) {
                    chosen.push(n as RawFd);
                }
                continue;
            }
            let named: Vec<RawFd> = act
                .iter()
                .flat_map(|a| a.names.iter().take(passed.len()).enumerate())
                .filter(|(_, name)| *name == want)
                .map(|(i, _)| passed[i])
                .collect();
            if named.is_empty() {
                msg.fatal(EXIT_TEMP, &[b"no inherited socket named ", want]);
            }
            for fd in named {
                if !chosen.contains(&fd) {
                    chosen.push(fd);
                }
            }
        }
        chosen
    };
    for fd in passed.iter().filter(|fd| !chosen.contains(fd)) {
        let _ = nix::unistd::close(*fd);
    }
    if chosen.is_empty() {
        return None;
    }
    Some(chosen.into_iter().map(|fd| adopt(fd, msg)).collect())
}

/// Takes descriptor `fd` as a listener: it must be an open, listening TCP socket (IPv4
/// or IPv6); made non-blocking and close-on-exec as a socket of our own would be.
fn adopt(fd: RawFd, msg: &Msg) -> Socket {
    let mut num = ucspi::fmt::itoa_buf();
    let num = ucspi::fmt::fmt_u64(&mut num, fd as u64).to_vec();
    if fd < 0 || !ucspi::fd::is_open(fd) {
        msg.fatal(EXIT_TEMP, &[b"no inherited socket on descriptor ", &num]);
    }
    // SAFETY: the descriptor is open and was handed to this process to own.
    let sock = Socket::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let tcp = matches!(sock.domain(), Ok(d) if d == Domain::IPV4 || d == Domain::IPV6)
        && matches!(sock.r#type(), Ok(t) if t == Type::STREAM)
        && matches!(sock.is_listener(), Ok(true));
    if !tcp {
        msg.fatal(
            EXIT_TEMP,
            &[b"descriptor ", &num, b" is not a listening TCP socket"],
        );
    }
    if let Err(e) = sock
        .set_nonblocking(true)
        .and_then(|_| sock.set_cloexec(true))
    {
        msg.fatal_sys(EXIT_TEMP, &[b"unable to use descriptor ", &num], &e);
    }
    sock
}
