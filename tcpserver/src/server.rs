//! The parent: signals, the accept loop with the `-c` and `-C` limits, reaping and the
//! `status`/`end` log lines.
//!
//! SIGCHLD stays blocked except inside ppoll/sigsuspend, which unblock it atomically, so
//! a child's exit always wakes the loop and the reaping runs in normal context (its
//! handler only raises a flag). At the `-c` limit the loop does not accept at all, so
//! clients wait in the kernel's backlog and are served later, never refused.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use ucspi::dns::Resolver;
use ucspi::env::{fmt_u64, itoa_buf, Env};
use ucspi::msg::Msg;
use ucspi::sock::from_sockaddr;

use crate::child::{self, Shared};
use crate::listen;
use crate::options::Config;
use crate::rules_cache::RulesCache;

static CHILD_EXITED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigchld(_: libc::c_int) {
    CHILD_EXITED.store(true, Ordering::SeqCst);
}

extern "C" fn on_sigterm(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe. djb's server leaves at once, children stay.
    unsafe { libc::_exit(0) }
}

fn catch(sig: libc::c_int, handler: libc::sighandler_t) {
    // SAFETY: a zeroed sigaction with an empty mask and a valid handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

fn set_sigchld_blocked(block: bool) {
    // SAFETY: building a one-signal set and changing our own mask.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        libc::sigaddset(&mut s, libc::SIGCHLD);
        libc::sigprocmask(
            if block {
                libc::SIG_BLOCK
            } else {
                libc::SIG_UNBLOCK
            },
            &s,
            std::ptr::null_mut(),
        );
    }
}

fn empty_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        s
    }
}

/// A log line built in a fixed buffer (no allocation in the accept loop).
struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    fn new() -> Line {
        Line {
            buf: [0; 160],
            len: 0,
        }
    }
    fn push(&mut self, b: &[u8]) -> &mut Line {
        let n = b.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        self
    }
    fn num(&mut self, n: u64) -> &mut Line {
        let mut b = itoa_buf();
        let s = fmt_u64(&mut b, n);
        self.push(s)
    }
    fn write(&mut self) {
        self.buf[self.len] = b'\n';
        let mut off = 0;
        while off <= self.len {
            // SAFETY: writing from our live buffer to fd 2.
            let n = unsafe { libc::write(2, self.buf[off..].as_ptr().cast(), self.len + 1 - off) };
            if n <= 0 {
                if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return;
            }
            off += n as usize;
        }
    }
}

/// The client address a per-IP count is kept for (v4-mapped peers as IPv4).
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
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
    limit: u64,
    children: u64,
    /// Per-client-IP counts, kept only when `-C` or rules (`MAXCONIP`) can use them.
    track_ips: bool,
    by_pid: Fast<libc::pid_t, IpAddr>,
    by_ip: Fast<IpAddr, u64>,
}

impl Parent {
    fn status(&self) {
        if self.verbose {
            Line::new()
                .push(b"tcpserver: status: ")
                .num(self.children)
                .push(b"/")
                .num(self.limit)
                .write();
        }
    }

    fn reap(&mut self) {
        loop {
            let mut wstat: libc::c_int = 0;
            // SAFETY: waitpid on any child, not blocking.
            let pid = unsafe { libc::waitpid(-1, &mut wstat, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if self.verbose {
                Line::new()
                    .push(b"tcpserver: end ")
                    .num(pid as u64)
                    .push(b" status ")
                    .num(u64::from(wstat as u32))
                    .write();
            }
            self.children = self.children.saturating_sub(1);
            if !self.track_ips {
                self.status();
                continue;
            }
            if let Some(ip) = self.by_pid.remove(&pid) {
                if let Some(n) = self.by_ip.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        self.by_ip.remove(&ip);
                    }
                }
            }
            self.status();
        }
    }

    /// Waits up to `ms` milliseconds (reaping meanwhile); for back-off after EMFILE and
    /// fork failures, so the loop neither spins nor exits.
    fn pause(&mut self, ms: i64) {
        let ts = libc::timespec {
            tv_sec: ms / 1000,
            tv_nsec: (ms % 1000) * 1_000_000,
        };
        let empty = empty_set();
        // SAFETY: no fds; a valid timeout and mask.
        unsafe { libc::ppoll(std::ptr::null_mut(), 0, &ts, &empty) };
    }
}

/// Runs the server; never returns (SIGTERM exits 0 from its handler).
pub fn run(c: Config) -> ! {
    let msg = Msg {
        prog: "tcpserver",
        quiet: c.verbosity == 0,
    };
    set_sigchld_blocked(true);
    catch(libc::SIGCHLD, on_sigchld as *const () as libc::sighandler_t);
    catch(libc::SIGTERM, on_sigterm as *const () as libc::sighandler_t);
    catch(libc::SIGPIPE, libc::SIG_IGN);
    let (fd, _local) = listen::setup(&c, &msg);

    let mut shared = Shared {
        env: Env::from_process(),
        path: std::env::var_os("PATH")
            .map(|p| std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec()),
        resolver: Resolver::from_env(),
        rules: RulesCache::default(),
    };
    let mut p = Parent {
        verbose: c.verbosity >= 2,
        limit: c.limit,
        children: 0,
        track_ips: c.per_ip > 0 || c.rules.is_some(),
        by_pid: Fast::default(),
        by_ip: Fast::default(),
    };
    p.status();
    let empty = empty_set();
    let mut out_of_fds = false;
    loop {
        if CHILD_EXITED.swap(false, Ordering::SeqCst) {
            p.reap();
        }
        if p.children >= p.limit {
            // SAFETY: waiting for a signal with an empty mask.
            unsafe { libc::sigsuspend(&empty) };
            continue;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no timeout, an empty mask during the wait.
        let polled = unsafe { libc::ppoll(&mut pfd, 1, std::ptr::null(), &empty) };
        if polled == 0
            || (polled < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR))
        {
            continue;
        }
        // Any other poll failure (EINVAL once RLIMIT_NOFILE is 0) falls through to accept,
        // which reports the real shortage; the back-off below keeps the loop from spinning.
        // SAFETY: zeroed storage for accept4 to fill.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: accept4 on our listening socket into live storage.
        let t = unsafe {
            libc::accept4(
                fd,
                (&mut ss as *mut libc::sockaddr_storage).cast(),
                &mut len,
                libc::SOCK_CLOEXEC,
            )
        };
        if t < 0 {
            let e = io::Error::last_os_error();
            if matches!(
                e.raw_os_error(),
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
            ) {
                if !out_of_fds {
                    msg.warn_sys(&[b"unable to accept"], &e);
                    out_of_fds = true;
                }
                p.pause(100);
            } else if polled < 0 {
                p.pause(100);
            }
            continue;
        }
        out_of_fds = false;
        let Some(remote) = from_sockaddr(&ss) else {
            // SAFETY: closing the fd we just accepted.
            unsafe { libc::close(t) };
            continue;
        };
        let key = ip_key(remote.ip());
        let from_ip = if p.track_ips {
            p.by_ip.get(&key).copied().unwrap_or(0) + 1
        } else {
            1
        };
        if c.per_ip > 0 && c.rules.is_none() && from_ip > c.per_ip {
            child::refuse_over_limit(&c, t, key, from_ip - 1, c.per_ip);
            // SAFETY: closing the refused connection.
            unsafe { libc::close(t) };
            continue;
        }
        if let Some(r) = &c.rules {
            shared.rules.refresh(r);
        }
        p.children += 1;
        p.status();
        // SAFETY: the parent is single-threaded, so the child may do anything.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: the child does not accept; closing its copy of the listener.
                unsafe { libc::close(fd) };
                child::serve(&c, &msg, &shared, t, remote, from_ip)
            }
            -1 => {
                let e = io::Error::last_os_error();
                msg.warn_sys(&[b"dropping connection, unable to fork"], &e);
                p.children -= 1;
                p.status();
                // SAFETY: closing the connection we cannot serve.
                unsafe { libc::close(t) };
                p.pause(100);
                continue;
            }
            pid => {
                if p.track_ips {
                    p.by_pid.insert(pid, key);
                    *p.by_ip.entry(key).or_insert(0) += 1;
                }
            }
        }
        // SAFETY: the child has its copy; the parent's is closed.
        unsafe { libc::close(t) };
    }
}
