//! The program behind a relay, as sslserver and sslclient both run it: the descriptors
//! between them (two pipes and UCSPI-TLS's control socket), the signal state it starts
//! with, and its end, which becomes the relay's.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use ucspi::env::Env;
use ucspi::fmt::{fmt_u64, itoa_buf};

/// The descriptors between the relay and the program, each close-on-exec until the
/// program's side is set up.
pub struct Fds {
    /// The program reads what the peer sent (its fd 0 or 6, or `SSLREADFD` under
    /// UCSPI-TLS).
    pub prog_in: OwnedFd,
    pub relay_out: OwnedFd,
    /// The program writes what goes to the peer (its fd 1 or 7, or `SSLWRITEFD`).
    pub prog_out: OwnedFd,
    pub relay_in: OwnedFd,
    /// UCSPI-TLS's control socket (`SSLCTLFD`); sslserver also passes the program its
    /// variables on it when there is no UCSPI-TLS.
    pub ctl_prog: OwnedFd,
    pub ctl_relay: OwnedFd,
}

/// The program's side.
pub struct ProgramFds {
    pub input: OwnedFd,
    pub output: OwnedFd,
    pub ctl: OwnedFd,
}

/// The relay's side.
pub struct RelayFds {
    pub to_prog: OwnedFd,
    pub from_prog: OwnedFd,
    pub ctl: OwnedFd,
}

impl Fds {
    pub fn new() -> io::Result<Fds> {
        let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC);
        let (prog_in, relay_out) = pipe()?;
        let (relay_in, prog_out) = pipe()?;
        let (ctl_prog, ctl_relay) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok(Fds {
            prog_in,
            relay_out,
            prog_out,
            relay_in,
            ctl_prog,
            ctl_relay,
        })
    }

    /// `SSLCTLFD`, `SSLREADFD` and `SSLWRITEFD` under UCSPI-TLS; otherwise removed
    /// (ucspi-ssl leaves stale numbers, and a UCSPI-TLS program would then offer
    /// STARTTLS inside TLS).
    pub fn set_vars(&self, env: &mut Env, ucspi_tls: bool) {
        let vars: [(&[u8], &OwnedFd); 3] = [
            (b"SSLCTLFD", &self.ctl_prog),
            (b"SSLREADFD", &self.prog_in),
            (b"SSLWRITEFD", &self.prog_out),
        ];
        for (name, fd) in vars {
            if ucspi_tls {
                env.set(name, fmt_u64(&mut itoa_buf(), fd.as_raw_fd() as u64));
            } else {
                env.unset(name);
            }
        }
    }

    /// The two sides, split after the fork; each process drops the other's (a copy of
    /// the program's output left in the relay would hide the program's end of output).
    pub fn split(self) -> (ProgramFds, RelayFds) {
        (
            ProgramFds {
                input: self.prog_in,
                output: self.prog_out,
                ctl: self.ctl_prog,
            },
            RelayFds {
                to_prog: self.relay_out,
                from_prog: self.relay_in,
                ctl: self.ctl_relay,
            },
        )
    }
}

impl ProgramFds {
    /// UCSPI-TLS: all three stay open across exec, where their numbers say.
    pub fn keep_open(self) -> io::Result<()> {
        for fd in [self.input, self.output, self.ctl] {
            ucspi::fd::move_to(fd.as_raw_fd(), fd)?;
        }
        Ok(())
    }
}

/// The dispositions and mask a program expects (the server changed SIGCHLD, SIGTERM and
/// SIGPIPE and blocks SIGCHLD).
pub fn default_signals() {
    for sig in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGPIPE] {
        // SAFETY: a default disposition installs no handler.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// The UCSPI-TLS command byte; `None` at end of file (the program closed `SSLCTLFD`, or
/// ended).
pub fn read_command(ctl: &OwnedFd) -> Option<u8> {
    let mut b = [0u8; 1];
    match ucspi::fd::read(ctl, &mut b) {
        Ok(1) => Some(b[0]),
        _ => None,
    }
}

pub fn exit(code: i32) -> ! {
    // SAFETY: _exit leaves a forked process without running the parent's atexit
    // handlers or flushing its buffers.
    unsafe { libc::_exit(code) }
}

/// Ends the program (it may not have run yet) and leaves with `code`.
pub fn stop(pid: Pid, code: i32) -> ! {
    let _ = kill(pid, Signal::SIGTERM);
    let _ = waitpid(pid, None);
    exit(code)
}

/// Waits for the program and leaves as it did: its exit code, or its signal raised
/// again.
pub fn finish(pid: Pid) -> ! {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => exit(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                // SAFETY: a default disposition installs no handler.
                let _ = unsafe { signal(sig, SigHandler::SigDfl) };
                let mut set = SigSet::empty();
                set.add(sig);
                let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
                let _ = kill(Pid::this(), sig);
                exit(128 + sig as i32)
            }
            Err(nix::errno::Errno::EINTR) | Ok(_) => {}
            Err(_) => exit(0),
        }
    }
}
