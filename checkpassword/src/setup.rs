//! The process the program runs in: ids dropped (and checked to have stuck), directory,
//! environment, then std's exec (which restores SIGPIPE's default disposition).

use std::ffi::OsString;
use std::os::fd::IntoRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::{signal, SigHandler, Signal};
use nix::unistd::{self, geteuid, getgid, getuid, Gid, Uid};
use ucspi::errstr::io_str;
use vpopdb::config::{account, Settings};
use vpopdb::flags_quota;
use vpopdb::users::User;

use crate::request::{Request, Who};
use crate::service::Service;

/// What of std's start-up `main` (without it) still needs, as std does it: fds 0, 1
/// and 2 open (on /dev/null if closed, so that no file we open takes their place and
/// gets a log line or a child's output), and SIGPIPE ignored (a closed stderr is an
/// error, not a kill; the exec restores the default).
pub fn process_start() {
    for fd in 0..3 {
        if ucspi::fd::is_open(fd) {
            continue;
        }
        // The lowest free number is the closed one; it stays open across the exec, as
        // std's start-up leaves it.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .and_then(|f| {
                fcntl(&f, FcntlArg::F_SETFD(FdFlag::empty()))?;
                Ok(f.into_raw_fd())
            });
        if opened.is_err() {
            std::process::abort();
        }
    }
    // SAFETY: ignoring a signal installs no handler of ours that could run at a bad time.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// Sets up the process for the program: ids and directory as the mode of the login
/// requires; returns the environment to add for it.
pub fn process(
    req: &Request,
    settings: &Settings,
    who: &Who,
    user: &User,
) -> Result<Vec<(String, OsString)>, String> {
    let ids = who
        .assigned
        .as_ref()
        .map(|a| (a.uid, a.gid))
        .or(settings.uid.zip(settings.gid))
        .or_else(|| account("vpopmail").map(|a| (a.uid, a.gid)));
    let home = PathBuf::from(OsString::from_vec(user.dir.clone()));
    let smtp = req.service.service == Service::Smtp;
    if req.setuid {
        // The caller chose prog: it runs as the caller, never as us or the domain.
        drop_to_caller()?;
        if !(smtp || req.dovecot) {
            chdir(&home)?;
        }
    } else if req.dovecot {
        // Dovecot's checkpassword-reply must keep ORIG_UID's uid; ids go in EXTRA,
        // where 0 would make Dovecot run the mail processes as root.
        if let Some((uid, gid)) = ids.filter(|&(u, g)| u == 0 || g == 0) {
            return Err(format!(
                "refusing to give Dovecot uid {uid} gid {gid} for {}",
                who.domain()
            ));
        }
    } else if getuid().is_root() {
        let Some((uid, gid)) = ids else {
            return Err(format!(
                "no uid/gid for {}: no users/cdb entry, uid/gid settings or vpopmail account",
                who.domain()
            ));
        };
        drop_to(uid, gid)?;
        if !smtp {
            chdir(&home)?;
        }
    } else if !smtp {
        return Err(format!(
            "not running as root: refusing to run {} for {} as the caller",
            req.prog[0].to_string_lossy(),
            req.service.logname
        ));
    }
    Ok(next_env(req, who, user, ids, home))
}

/// vchkpw's variables for the program, and Dovecot's extra fields when it called.
fn next_env(
    req: &Request,
    who: &Who,
    user: &User,
    ids: Option<(u32, u32)>,
    home: PathBuf,
) -> Vec<(String, OsString)> {
    let name = if req.dovecot {
        who.address()
    } else {
        who.user().to_string()
    };
    let mut env: Vec<(String, OsString)> = vec![
        ("USER".into(), name.into()),
        ("HOME".into(), home.into_os_string()),
        ("SHELL".into(), "NOLOGIN".into()),
        ("VPOPUSER".into(), who.name.full.clone().into()),
    ];
    if !req.dovecot {
        return env;
    }
    let mut extra = Vec::new();
    if let Some((uid, gid)) = ids {
        env.push(("userdb_uid".into(), uid.to_string().into()));
        env.push(("userdb_gid".into(), gid.to_string().into()));
        extra.extend(["userdb_uid", "userdb_gid"]);
    }
    if let Some(q) = flags_quota::dovecot_rule(&user.quota) {
        env.push(("userdb_quota_rule".into(), q.into()));
        extra.push("userdb_quota_rule");
    }
    if !extra.is_empty() {
        env.push(("EXTRA".into(), extra.join(" ").into()));
    }
    if req.authorized {
        env.push(("AUTHORIZED".into(), "2".into()));
    }
    env
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
    // Only root may (and must) replace the supplementary groups.
    become_ids(getuid().as_raw(), getgid().as_raw(), geteuid().is_root())
}

fn become_ids(uid: u32, gid: u32, set_groups: bool) -> Result<(), String> {
    let (u, g) = (Uid::from_raw(uid), Gid::from_raw(gid));
    if set_groups {
        unistd::setgroups(&[g])
            .map_err(|e| format!("setgroups {gid} failed: {}", std::io::Error::from(e)))?;
    }
    unistd::setresgid(g, g, g)
        .map_err(|e| format!("setgid {gid} failed: {}", std::io::Error::from(e)))?;
    unistd::setresuid(u, u, u)
        .map_err(|e| format!("setuid {uid} failed: {}", std::io::Error::from(e)))?;
    ids_stuck(u, g)
}

/// Whether all three uids and gids are the ones asked for.
fn ids_stuck(uid: Uid, gid: Gid) -> Result<(), String> {
    let u = unistd::getresuid().map(|r| (r.real, r.effective, r.saved));
    let g = unistd::getresgid().map(|r| (r.real, r.effective, r.saved));
    if u != Ok((uid, uid, uid)) || g != Ok((gid, gid, gid)) {
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
