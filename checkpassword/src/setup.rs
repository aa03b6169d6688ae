//! The process the program runs in: ids dropped (and checked to have stuck), directory,
//! environment, then std's exec (which restores SIGPIPE's default disposition).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use ucspi::errstr::io_str;

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// What of std's start-up `main` (without it) still needs, as std does it: fds 0, 1
/// and 2 open (on /dev/null if closed, so that no file we open takes their place and
/// gets a log line or a child's output), and SIGPIPE ignored (a closed stderr is an
/// error, not a kill; the exec restores the default).
pub fn process_start() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    loop {
        // SAFETY: three pollfd structs owned here, no timeout.
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } != -1 {
            break;
        }
        match errno().raw_os_error() {
            Some(libc::EINTR) => continue,
            // No poll: ask each fd instead.
            _ => {
                for p in &mut fds {
                    // SAFETY: a flag query on an integer fd.
                    if unsafe { libc::fcntl(p.fd, libc::F_GETFD) } == -1 {
                        p.revents = libc::POLLNVAL;
                    }
                }
                break;
            }
        }
    }
    for p in fds {
        if p.revents & libc::POLLNVAL != 0 {
            // SAFETY: a constant NUL-terminated path; the lowest free fd is the closed one.
            if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0) } == -1 {
                std::process::abort();
            }
        }
    }
    // SAFETY: setting a signal's disposition to ignore.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Becomes `uid`:`gid` with `gid` as the only group, for good (real, effective and saved).
pub fn drop_to(uid: u32, gid: u32) -> Result<(), String> {
    if uid == 0 || gid == 0 {
        return Err(format!("refusing to run as uid {uid} gid {gid}"));
    }
    become_ids(uid, gid, true)
}

/// In a setuid or setgid process: back to the caller's real ids, for good.
pub fn drop_to_caller() -> Result<(), String> {
    // SAFETY: plain id queries.
    let (uid, gid, root) = unsafe { (libc::getuid(), libc::getgid(), libc::geteuid() == 0) };
    // Only root may (and must) replace the supplementary groups.
    become_ids(uid, gid, root)
}

fn become_ids(uid: u32, gid: u32, set_groups: bool) -> Result<(), String> {
    // SAFETY: plain syscalls on integers and a one-element array.
    unsafe {
        if set_groups && libc::setgroups(1, &gid) != 0 {
            return Err(format!("setgroups {gid} failed: {}", errno()));
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(format!("setgid {gid} failed: {}", errno()));
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(format!("setuid {uid} failed: {}", errno()));
        }
    }
    verify(uid, gid)
}

fn verify(uid: u32, gid: u32) -> Result<(), String> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    let (mut rg, mut eg, mut sg) = (0, 0, 0);
    // SAFETY: out-pointers to locals.
    unsafe {
        libc::getresuid(&mut r, &mut e, &mut s);
        libc::getresgid(&mut rg, &mut eg, &mut sg);
    }
    if (r, e, s) != (uid, uid, uid) || (rg, eg, sg) != (gid, gid, gid) {
        return Err(format!("ids did not change to {uid}:{gid}"));
    }
    Ok(())
}

pub fn chdir(dir: &Path) -> Result<(), String> {
    std::env::set_current_dir(dir)
        .map_err(|e| format!("unable to chdir to {}: {}", dir.display(), io_str(&e)))
}

/// Runs `prog` in this process with `env` added to the inherited environment. Returns
/// only on failure.
pub fn exec(prog: &[OsString], env: &[(String, OsString)]) -> String {
    let mut c = Command::new(&prog[0]);
    c.args(&prog[1..]);
    for (k, v) in env {
        c.env(k, v);
    }
    let e = c.exec();
    format!(
        "unable to run {}: {}",
        prog[0].to_string_lossy(),
        io_str(&e)
    )
}
