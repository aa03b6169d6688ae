//! The whole login's deadline (`login_timeout`). Each database operation has its own
//! limit, but a login makes several (connect, TLS, authentication, the read, the writes)
//! and a server that answers slowly to each could hold a caller for minutes; a caller
//! such as qmail-popup has no limit of its own. One alarm covers them all: when it rings
//! the login ends as a temporary failure (111), never as a wrong password.

use std::sync::atomic::{AtomicBool, Ordering};

/// Written by the signal handler, so prepared before the alarm is set: the handler may
/// only write(2) and _exit(2).
const LINE: &[u8] =
    b"checkpassword: fatal: database unavailable: the login took longer than login_timeout\n";

static ARMED: AtomicBool = AtomicBool::new(false);

extern "C" fn ring(_: libc::c_int) {
    // SAFETY: write(2) and _exit(2) are async-signal-safe; LINE is a static.
    unsafe {
        libc::write(2, LINE.as_ptr().cast(), LINE.len());
        libc::_exit(crate::EXIT_TEMP);
    }
}

/// Sets the alarm for `secs` seconds from now (0: none).
pub fn arm(secs: u64) {
    if secs == 0 {
        return;
    }
    // SAFETY: installs a handler that only calls async-signal-safe functions.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ring as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGALRM);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::alarm(secs.min(u32::MAX as u64) as libc::c_uint);
    }
    ARMED.store(true, Ordering::Relaxed);
}

/// Cancels the alarm before exec: a pending alarm survives exec and would kill the
/// next program.
pub fn disarm() {
    if ARMED.swap(false, Ordering::Relaxed) {
        // SAFETY: alarm(0) cancels; the default action is restored for the next program.
        unsafe {
            libc::alarm(0);
            libc::signal(libc::SIGALRM, libc::SIG_DFL);
        }
    }
}
