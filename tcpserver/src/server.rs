//! The parent: signals, the accept loop with the `-c` and `-C` limits, reaping and the
//! `status`/`end` log lines.
//!
//! SIGCHLD stays blocked except inside ppoll/sigsuspend, which unblock it atomically, so
//! a child's exit always wakes the loop and the reaping runs in normal context (its
//! handler only raises a flag). At the `-c` limit the loop does not accept at all, so
//! clients wait in the kernel's backlog and are served later, never refused.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::time::TimeSpec;
use nix::unistd::ForkResult;
use ucspi::addr::unmapped;
use ucspi::msg::{Line, Msg};

use crate::child::{self, Service, Shared};
use crate::options::{Config, Flavour};

static CHILD_EXITED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigchld(_: libc::c_int) {
    CHILD_EXITED.store(true, Ordering::SeqCst);
}

extern "C" fn on_sigterm(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe (nix has no wrapper). djb's server leaves at
    // once; its children stay.
    unsafe { libc::_exit(0) }
}

/// SIGCHLD blocked (it is let in only by ppoll and sigsuspend) and caught into a flag,
/// SIGTERM an immediate exit, SIGPIPE ignored.
///
/// Plain sigaction, not signal-hook: its handler looks each signal's actions up in a
/// registry, which cost the parent 413 instead of 405 instructions per connection (one
/// SIGCHLD each; `bash bench/tcpserver/callgrind.sh`, 2026-12-04), 2 % of its work, and
/// 25 KB of text; and it would replace only the two sigaction calls, not the mask that
/// ppoll and sigsuspend rely on.
pub fn set_up_signals() {
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let _ = chld.thread_block();
    let catch = |sig, handler| {
        let a = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
        // SAFETY: the handlers only store to an atomic or call _exit, both
        // async-signal-safe.
        let _ = unsafe { sigaction(sig, &a) };
    };
    catch(Signal::SIGCHLD, SigHandler::Handler(on_sigchld));
    catch(Signal::SIGTERM, SigHandler::Handler(on_sigterm));
    catch(Signal::SIGPIPE, SigHandler::SigIgn);
}

/// A multiplicative hash for pids and addresses: the per-IP table is ours, not fed by
/// attacker-chosen keys beyond client addresses, and SipHash cost more per accept than
/// the rest of the parent's work together.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(n)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i32(&mut self, n: i32) {
        self.write_u32(n as u32);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Fast<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

struct Parent {
    verbose: bool,
    flavour: Flavour,
    limit: u64,
    /// The per-IP limit, which ucspi-ssl's status line shows.
    per_ip: u64,
    children: u64,
    /// Per-client-IP counts, kept only when `-C` or rules (`MAXCONIP`) can use them.
    track_ips: bool,
    by_pid: Fast<libc::pid_t, IpAddr>,
    by_ip: Fast<IpAddr, u64>,
    line: Line,
}

impl Parent {
    // Inlined into `run`, which is generic and so compiled in the binary's crate.
    #[inline]
    fn status(&mut self) {
        if self.verbose {
            self.line
                .push(self.flavour.prog().as_bytes())
                .push(b": status: ")
                .num(self.children)
                .push(b"/")
                .num(self.limit);
            if self.flavour == Flavour::Ssl {
                self.line.push(b"/").num(self.per_ip);
            }
            self.line.write();
        }
    }

    #[inline]
    fn reap(&mut self) {
        loop {
            let mut wstat: libc::c_int = 0;
            // SAFETY: waitpid on any child into a local, not blocking. Not nix's: its
            // WaitStatus drops the raw status word that djb's `end` line prints.
            let pid = unsafe { libc::waitpid(-1, &mut wstat, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if self.verbose {
                self.line.push(match self.flavour {
                    Flavour::Tcp => b"tcpserver: end ",
                    Flavour::Ssl => b"sslserver: ended by ",
                });
                self.line
                    .num(pid as u64)
                    .push(b" status ")
                    .num(u64::from(wstat as u32))
                    .write();
            }
            self.children = self.children.saturating_sub(1);
            if self.track_ips {
                if let Some(ip) = self.by_pid.remove(&pid) {
                    if let Some(n) = self.by_ip.get_mut(&ip) {
                        *n -= 1;
                        if *n == 0 {
                            self.by_ip.remove(&ip);
                        }
                    }
                }
            }
            self.status();
        }
    }

    /// This client's connections with the one just accepted: what the child weighs
    /// against the per-IP limit (1 when nothing counts them).
    #[inline]
    fn count(&self, ip: IpAddr) -> u64 {
        if self.track_ips {
            self.by_ip.get(&ip).copied().unwrap_or(0) + 1
        } else {
            1
        }
    }

    #[inline]
    fn started(&mut self, pid: libc::pid_t, ip: IpAddr) {
        if self.track_ips {
            self.by_pid.insert(pid, ip);
            *self.by_ip.entry(ip).or_insert(0) += 1;
        }
    }
}

/// Waits up to `ms` milliseconds (a child's exit may end it early); for back-off after
/// EMFILE and fork failures, so the loop neither spins nor exits.
fn pause(ms: i64) {
    let _ = ppoll(
        &mut [],
        Some(TimeSpec::from_duration(std::time::Duration::from_millis(
            ms as u64,
        ))),
        Some(SigSet::empty()),
    );
}

/// Runs the server; never returns (SIGTERM exits 0 from its handler). `svc` serves each
/// admitted connection; `listener` is the bound socket ([`crate::listen::setup`]).
pub fn run<S: Service>(c: Config, msg: Msg, listener: socket2::Socket, mut svc: S) -> ! {
    let mut shared = Shared::from_process();
    let mut p = Parent {
        verbose: c.verbosity >= 2,
        flavour: c.flavour,
        limit: c.limit,
        per_ip: c.per_ip,
        children: 0,
        track_ips: c.per_ip > 0 || c.rules.is_some(),
        by_pid: Fast::default(),
        by_ip: Fast::default(),
        line: Line::new(),
    };
    p.status();
    let empty = SigSet::empty();
    let mut out_of_fds = false;
    loop {
        if CHILD_EXITED.swap(false, Ordering::SeqCst) {
            p.reap();
        }
        if p.children >= p.limit {
            let _ = empty.suspend();
            continue;
        }
        let mut pfd = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        let polled = ppoll(&mut pfd, None, Some(empty));
        if matches!(polled, Ok(0) | Err(Errno::EINTR)) {
            continue;
        }
        // Any other poll failure (EINVAL once RLIMIT_NOFILE is 0) falls through to accept,
        // which reports the real shortage; the back-off below keeps the loop from spinning.
        let (conn, addr) = match listener.accept() {
            Ok(x) => x,
            Err(e) => {
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                ) {
                    if !out_of_fds {
                        msg.warn_sys(&[b"unable to accept"], &e);
                        out_of_fds = true;
                    }
                    pause(100);
                } else if polled.is_err() {
                    pause(100);
                }
                continue;
            }
        };
        out_of_fds = false;
        let Some(remote) = addr.as_socket() else {
            continue;
        };
        let ip = unmapped(remote.ip());
        let from_ip = p.count(ip);
        match &c.rules {
            None if c.per_ip > 0 && child::over_limit(&c, &conn, ip, from_ip, c.per_ip, true) => {
                continue
            }
            None => {}
            Some(r) => shared.rules.refresh(r),
        }
        svc.before_fork();
        p.children += 1;
        p.status();
        // SAFETY: the parent is single-threaded, so the child may do anything.
        match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Child) => {
                // The child does not accept.
                drop(listener);
                child::serve(&c, &msg, &svc, &shared, conn, remote, from_ip)
            }
            Ok(ForkResult::Parent { child }) => p.started(child.as_raw(), ip),
            Err(e) => {
                msg.warn_sys(&[b"dropping connection, unable to fork"], &e.into());
                p.children -= 1;
                p.status();
                pause(100);
            }
        }
    }
}
