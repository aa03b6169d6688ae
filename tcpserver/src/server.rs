//! The parent: signals, the accept loop over one or more listeners with the `-c` and
//! `-C` limits, reaping, the `status`/`end` log lines, and SIGUSR1's list of clients.
//!
//! SIGCHLD stays blocked except inside ppoll/sigsuspend, which unblock it atomically, so
//! a child's exit always wakes the loop and the reaping runs in normal context (its
//! handler only raises a flag). At the `-c` limit the loop does not accept at all, so
//! clients wait in the kernel's backlog and are served later, never refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU8, Ordering};

use nix::errno::Errno;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::time::TimeSpec;
use nix::unistd::ForkResult;
use ucspi::addr::unmapped;
use ucspi::msg::{Line, Msg};

use crate::child::{self, Service, Shared};
use crate::client_counts::ClientCounts;
use crate::client_slots::ClientSlots;
use crate::clone_exec::CloneExec;
use crate::options::{Config, Flavour};

/// Signals caught and not yet handled: [`CHILD_EXITED`] and [`LIST_ASKED`] bits, in one
/// word so that the loop takes both with one exchange.
static CAUGHT: AtomicU8 = AtomicU8::new(0);
const CHILD_EXITED: u8 = 1;
const LIST_ASKED: u8 = 2;

extern "C" fn on_sigchld(_: libc::c_int) {
    CAUGHT.fetch_or(CHILD_EXITED, Ordering::SeqCst);
}

extern "C" fn on_sigusr1(_: libc::c_int) {
    CAUGHT.fetch_or(LIST_ASKED, Ordering::SeqCst);
}

extern "C" fn on_sigterm(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe (nix has no wrapper). djb's server leaves at
    // once; its children stay.
    unsafe { libc::_exit(0) }
}

/// The signals [`set_up_signals`] changes, which a program started for a connection gets
/// back at their defaults (a caught one would be reset by exec; an ignored one would
/// stay ignored).
pub const CHANGED_SIGNALS: [Signal; 4] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGPIPE,
];

/// SIGCHLD blocked (it is let in only by ppoll and sigsuspend) and caught into a flag,
/// SIGUSR1 caught into a flag (the list of clients), SIGTERM an immediate exit, SIGPIPE
/// ignored. A caught signal is back to its default in the program after exec.
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
    catch(Signal::SIGUSR1, SigHandler::Handler(on_sigusr1));
    catch(Signal::SIGPIPE, SigHandler::SigIgn);
}

struct Parent {
    verbose: bool,
    flavour: Flavour,
    limit: u64,
    /// The per-IP limit, which ucspi-ssl's status line shows.
    per_ip: u64,
    children: u64,
    /// Each child's peer address and its slot in `slots` when it has one, and the live
    /// children per address: kept only when `-C`, rules (`MAXCONIP`) or PROXY headers can
    /// use them ([`Config::counts_clients`]; a slot is taken only when PROXY headers may
    /// come, which implies counting).
    counts: Option<ClientCounts>,
    /// The client address of each child that may read a PROXY header, made at the first.
    slots: Option<ClientSlots>,
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
            if let Some(slot) = self.counts.as_mut().and_then(|c| c.ended(pid)) {
                if let Some(s) = &mut self.slots {
                    s.free(slot);
                }
            }
            self.status();
        }
    }

    /// This client's connections with the one just accepted: what the child weighs
    /// against the per-IP limit (1 when nothing counts them).
    #[inline]
    fn count(&self, ip: IpAddr) -> u64 {
        self.counts.as_ref().map_or(0, |c| c.from(ip)) + 1
    }

    #[inline]
    fn started(&mut self, pid: libc::pid_t, ip: IpAddr, slot: Option<u32>) {
        if let Some(c) = &mut self.counts {
            c.started(pid, ip, slot);
        }
        if self.children == self.limit && self.verbose {
            self.full(ip);
        }
    }

    /// No child for the connection just counted (fork or clone failed): djb's warning,
    /// the count and status back, and a pause so that the loop does not spin.
    #[cold]
    fn not_started(&mut self, msg: &Msg, e: &std::io::Error) {
        msg.warn_sys(&[b"dropping connection, unable to fork"], e);
        self.children -= 1;
        self.status();
        pause(100);
    }

    /// A slot for a child that may read a PROXY header (the table is made at the first).
    #[inline(never)]
    fn slot(&mut self) -> Option<u32> {
        if self.slots.is_none() {
            self.slots = ClientSlots::new(self.limit);
        }
        self.slots.as_mut()?.take()
    }

    /// Live connections per client address, busiest first (the header's client for a
    /// child that read one): empty when addresses are not counted.
    fn clients(&self) -> Vec<(IpAddr, u64)> {
        let Some(counts) = &self.counts else {
            return Vec::new();
        };
        let mut n: HashMap<IpAddr, u64> = HashMap::new();
        for (ip, slot) in counts.children() {
            let ip = slot
                .and_then(|slot| self.slots.as_ref()?.address_of(slot))
                .unwrap_or(ip);
            *n.entry(ip).or_insert(0) += 1;
        }
        let mut v: Vec<_> = n.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// SIGUSR1: a line per client address with its live connections, then a summary;
    /// logged whatever `-q` or `-v` say, since someone asked for it.
    #[cold]
    #[inline(never)]
    fn list_clients(&mut self) {
        let prog = self.flavour.prog().as_bytes();
        let clients = self.clients();
        for (ip, n) in &clients {
            self.line
                .push(prog)
                .push(b": client ")
                .ip(*ip)
                .push(b" ")
                .num(*n)
                .write();
        }
        self.line.push(prog).push(b": clients: ");
        if self.counts.is_some() {
            self.line.num(clients.len() as u64).push(b" addresses, ");
        } else {
            self.line.push(b"addresses not counted, ");
        }
        self.line
            .num(self.children)
            .push(b"/")
            .num(self.limit)
            .push(b" connections")
            .write();
    }

    /// `-v`: the connection that took the last slot of `-c`, and the busiest address then,
    /// so that a full `status` line can be explained from the log alone.
    #[cold]
    #[inline(never)]
    fn full(&mut self, ip: IpAddr) {
        let busiest = self.clients().first().copied();
        self.line
            .push(self.flavour.prog().as_bytes())
            .push(b": limit ")
            .num(self.children)
            .push(b"/")
            .num(self.limit)
            .push(b" reached by ")
            .ip(ip);
        if let Some((top, n)) = busiest {
            self.line.push(b", busiest ").ip(top).push(b" ").num(n);
        }
        self.line.write();
    }
}

/// Most listeners whose poll array is kept on the parent's stack.
const STACK_LISTENERS: usize = 8;

/// The first listener at or after `from` (wrapping around) that poll found ready; `from`
/// itself when none is (accept then reports why).
#[cold]
fn ready(pfds: &[PollFd], from: usize) -> usize {
    let n = pfds.len();
    let from = if from >= n { 0 } else { from };
    (from..n)
        .chain(0..from)
        .find(|&i| pfds[i].any() != Some(false))
        .unwrap_or(from)
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
/// admitted connection; `listeners` are the listening sockets ([`crate::listen::setup`]),
/// served by one loop.
pub fn run<S: Service>(c: Config, msg: Msg, listeners: Vec<socket2::Socket>, mut svc: S) -> ! {
    let mut shared = Shared::from_process();
    // Where the parent can decide connections itself, its children only exec.
    let mut direct = if child::parent_may_decide(&c) {
        let fds = listeners.iter().map(|l| l.as_raw_fd()).collect();
        CloneExec::new(&msg, &c.argv, shared.path.as_deref(), fds, c.limit)
    } else {
        None
    };
    let mut p = Parent {
        verbose: c.verbosity >= 2,
        flavour: c.flavour,
        limit: c.limit,
        per_ip: c.per_ip,
        children: 0,
        counts: if c.counts_clients() {
            match ClientCounts::new(c.limit) {
                Some(t) => Some(t),
                None => msg.fatal(111, &[b"out of memory"]),
            }
        } else {
            None
        },
        slots: None,
        // Written after every fork with -v: in a page the children do not share.
        line: crate::child_alloc::parent_own(Line::new),
    };
    p.status();
    let empty = SigSet::empty();
    let mut out_of_fds = false;
    // The poll array lives on the stack for the usual few listeners: the kernel writes
    // its results into it after every fork, and in a heap page that write would copy the
    // page the child still shares (a fault and 4 KiB per connection).
    let mut on_stack: [PollFd; STACK_LISTENERS];
    let mut on_heap: Vec<PollFd>;
    let pfds: &mut [PollFd] = if listeners.len() <= STACK_LISTENERS {
        let last = listeners.len() - 1;
        on_stack =
            std::array::from_fn(|i| PollFd::new(listeners[i.min(last)].as_fd(), PollFlags::POLLIN));
        &mut on_stack[..=last]
    } else {
        on_heap = listeners
            .iter()
            .map(|l| PollFd::new(l.as_fd(), PollFlags::POLLIN))
            .collect();
        &mut on_heap[..]
    };
    // Where the next search for a ready listener starts, so that a busy one cannot keep
    // the others waiting.
    let mut next = 0;
    loop {
        let caught = CAUGHT.swap(0, Ordering::SeqCst);
        if caught != 0 {
            if caught & CHILD_EXITED != 0 {
                p.reap();
            }
            if caught & LIST_ASKED != 0 {
                p.list_clients();
            }
        }
        if p.children >= p.limit {
            let _ = empty.suspend();
            continue;
        }
        let polled = ppoll(pfds, None, Some(empty));
        if matches!(polled, Ok(0) | Err(Errno::EINTR)) {
            continue;
        }
        let i = if pfds.len() == 1 {
            0
        } else {
            let i = ready(pfds, next);
            next = i + 1;
            i
        };
        // Any other poll failure (EINVAL once RLIMIT_NOFILE is 0) falls through to accept,
        // which reports the real shortage; the back-off below keeps the loop from spinning.
        let (conn, addr) = match listeners[i].accept() {
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
        if let Some(r) = &c.rules {
            shared.rules.refresh(r);
        }
        // A peer that may send a PROXY header is counted by the child, which alone
        // learns the client's address.
        let proxy = c.proxy_all || (c.rules.is_some() && shared.rules.may_trust_proxy());
        if !proxy
            && c.rules.is_none()
            && c.per_ip > 0
            && child::over_limit(&c, &conn, ip, from_ip, c.per_ip, true)
        {
            continue;
        }
        // Whether this connection is already in `children` and the status line.
        let mut counted = false;
        if let Some(d) = direct.as_mut().filter(|_| !proxy) {
            if let Some(mut decided) = child::decide(&c, &shared, &conn, remote, from_ip) {
                p.children += 1;
                p.status();
                counted = true;
                let env = std::mem::take(&mut decided.env);
                match d.spawn(conn.as_raw_fd(), &shared.env, env) {
                    Some(Ok(pid)) => {
                        if p.verbose {
                            child::log_decided(&c, &msg, &decided, pid as u64);
                        }
                        p.started(pid, ip, None);
                        continue;
                    }
                    Some(Err(e)) => {
                        p.not_started(&msg, &e);
                        continue;
                    }
                    // No slot free: fork, as below.
                    None => {}
                }
            }
        }
        let slot = if proxy { p.slot() } else { None };
        svc.before_fork();
        if !counted {
            p.children += 1;
            p.status();
        }
        // SAFETY: the parent is single-threaded, so the child may do anything.
        match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Child) => {
                // The child does not accept. Closed by number: `pfds` borrows the
                // listeners, and the child never returns to drop them.
                for l in &listeners {
                    let _ = nix::unistd::close(l.as_raw_fd());
                }
                let count = child::Count {
                    from_ip,
                    proxy,
                    slot: slot.and_then(|s| Some((p.slots.as_ref()?, s))),
                };
                child::serve(&c, &msg, &svc, &shared, conn, remote, count)
            }
            Ok(ForkResult::Parent { child }) => p.started(child.as_raw(), ip, slot),
            Err(e) => {
                if let (Some(s), Some(slot)) = (&mut p.slots, slot) {
                    s.free(slot);
                }
                p.not_started(&msg, &e.into());
            }
        }
    }
}
