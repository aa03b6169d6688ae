//! Running the next program as djb's programs do: his `pathexec` search of `$PATH`, with
//! the argument and environment pointer arrays built once by the caller.
//!
//! execve(2) is called directly, not through nix: nix's `execve` takes `&CStr` slices and
//! collects a fresh pointer array for both on every call, so a server child trying each
//! `$PATH` element would rebuild them per element, and the environment entries (bytes
//! with one NUL at their end, see [`crate::env::Env`]) would have to be checked for NULs
//! again to become `&CStr`s.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::marker::PhantomData;
use std::os::raw::c_char;
use std::os::unix::ffi::OsStrExt;

use nix::sys::signal::{signal, SigHandler, Signal};

use crate::env::Env;

/// A NULL-terminated array of pointers to NUL-terminated strings that outlive it: what
/// execve(2) takes as argv or envp. Built once per exec, by [`CStrArray::of`] from
/// arguments or by [`Env::envp`]/[`Env::envp_with`] from an environment.
pub struct CStrArray<'a> {
    ptrs: Vec<*const c_char>,
    _strings: PhantomData<&'a [u8]>,
}

impl<'a> CStrArray<'a> {
    pub fn of(args: &'a [CString]) -> CStrArray<'a> {
        let mut ptrs: Vec<*const c_char> = Vec::with_capacity(args.len() + 1);
        ptrs.extend(args.iter().map(|a| a.as_ptr()));
        ptrs.push(std::ptr::null());
        CStrArray {
            ptrs,
            _strings: PhantomData,
        }
    }

    /// From byte strings that each end in their one NUL; the caller (this crate's `Env`,
    /// which builds its entries so) vouches for that.
    pub(crate) fn of_terminated(entries: Vec<*const c_char>) -> CStrArray<'a> {
        let mut ptrs = entries;
        ptrs.push(std::ptr::null());
        CStrArray {
            ptrs,
            _strings: PhantomData,
        }
    }

    /// The pointers, NULL last.
    pub fn as_ptrs(&self) -> &[*const c_char] {
        &self.ptrs
    }

    /// The strings, without the NULL.
    fn as_cstrs(&self) -> Vec<&'a CStr> {
        let n = self.ptrs.len().saturating_sub(1);
        self.ptrs[..n]
            .iter()
            // SAFETY: every pointer but the last points at a NUL-terminated string that
            // lives for 'a (how both constructors are fed).
            .map(|&p| unsafe { CStr::from_ptr(p) })
            .collect()
    }
}

/// djb's `pathexec_run`: a name with a `/` is run as is; otherwise each `$PATH` element
/// is tried (empty = `.`, PATH unset = `/bin:/usr/bin`), remembering the first error
/// other than "not found"; EACCES, EPERM and EISDIR go on searching. Returns only on
/// failure.
pub fn pathexec(
    prog: &[u8],
    argv: &CStrArray<'_>,
    envp: &CStrArray<'_>,
    path: Option<&[u8]>,
) -> io::Error {
    let (argv, envp) = (argv.as_ptrs(), envp.as_ptrs());
    let mut buf = Vec::with_capacity(prog.len() + 256);
    if prog.contains(&b'/') {
        buf.extend_from_slice(prog);
        buf.push(0);
        // SAFETY: buf is NUL-terminated; argv and envp are CStrArrays, NULL-terminated
        // arrays of pointers to NUL-terminated strings that outlive them.
        unsafe { libc::execve(buf.as_ptr().cast(), argv.as_ptr(), envp.as_ptr()) };
        return io::Error::last_os_error();
    }
    let path = path.unwrap_or(b"/bin:/usr/bin");
    let mut saved: Option<io::Error> = None;
    for dir in path.split(|&c| c == b':') {
        buf.clear();
        buf.extend_from_slice(if dir.is_empty() { b"." } else { dir });
        buf.push(b'/');
        buf.extend_from_slice(prog);
        buf.push(0);
        // SAFETY: as above.
        unsafe { libc::execve(buf.as_ptr().cast(), argv.as_ptr(), envp.as_ptr()) };
        let e = io::Error::last_os_error();
        let code = e.raw_os_error().unwrap_or(0);
        if code != libc::ENOENT {
            let keep_going = matches!(code, libc::EACCES | libc::EPERM | libc::EISDIR);
            saved = Some(e);
            if !keep_going {
                return saved.unwrap_or_else(|| io::Error::from_raw_os_error(code));
            }
        }
    }
    saved.unwrap_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
}

/// Starts `prog` as [`pathexec`] would run it, in a new process made with posix_spawn
/// (vfork-like: no copy of this process's page tables), with `fds` (`(from, to)`) copied
/// onto their numbers, default dispositions for `defaults` and an empty signal mask.
/// For a server whose per-connection process already has the program's ids, where a
/// fork would copy its memory only for exec to throw it away.
pub fn spawn(
    prog: &[u8],
    argv: &CStrArray<'_>,
    envp: &CStrArray<'_>,
    path: Option<&[u8]>,
    fds: &[(std::os::fd::RawFd, std::os::fd::RawFd)],
    defaults: &[Signal],
) -> io::Result<nix::unistd::Pid> {
    use nix::spawn::{posix_spawn, PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
    use nix::sys::signal::SigSet;
    let mut actions = PosixSpawnFileActions::init()?;
    for &(from, to) in fds {
        actions.add_dup2(from, to)?;
    }
    let mut attr = PosixSpawnAttr::init()?;
    let mut set = SigSet::empty();
    for &s in defaults {
        set.add(s);
    }
    attr.set_sigdefault(&set)?;
    attr.set_sigmask(&SigSet::empty())?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK,
    )?;
    let (args, env) = (argv.as_cstrs(), envp.as_cstrs());
    let try_one = |file: &[u8]| -> Result<nix::unistd::Pid, i32> {
        let c = CString::new(file).map_err(|_| libc::ENOENT)?;
        posix_spawn(c.as_c_str(), &actions, &attr, &args, &env).map_err(|e| e as i32)
    };
    if prog.contains(&b'/') {
        return try_one(prog).map_err(io::Error::from_raw_os_error);
    }
    // djb's search, as in pathexec.
    let mut saved = None;
    let mut buf = Vec::with_capacity(prog.len() + 256);
    for dir in path.unwrap_or(b"/bin:/usr/bin").split(|&c| c == b':') {
        buf.clear();
        buf.extend_from_slice(if dir.is_empty() { b"." } else { dir });
        buf.push(b'/');
        buf.extend_from_slice(prog);
        match try_one(&buf) {
            Ok(pid) => return Ok(pid),
            Err(libc::ENOENT) => {}
            Err(code) => {
                saved = Some(code);
                if !matches!(code, libc::EACCES | libc::EPERM | libc::EISDIR) {
                    break;
                }
            }
        }
    }
    Err(io::Error::from_raw_os_error(saved.unwrap_or(libc::ENOENT)))
}

/// Runs `prog` with `args` (argv[0] included) and the environment `env`, searching `env`'s
/// `$PATH`, as djb's tools do after their work; returns the error when it could not run.
pub fn run(prog: &OsStr, args: &[OsString], env: &Env) -> io::Error {
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let ptrs = CStrArray::of(&cargs);
    let envp = env.envp();
    let path = env.get(b"PATH").map(<[u8]>::to_vec);
    // Rust starts every program with SIGPIPE ignored, and an ignored signal stays ignored
    // across exec: give the program the default that djb's tools leave it.
    // SAFETY: setting a default disposition installs no handler.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    pathexec(prog.as_bytes(), &ptrs, &envp, path.as_deref())
}

/// [`run`] with the process's own environment and `args[0]` as the program.
pub fn run_argv(args: &[OsString]) -> io::Error {
    run(&args[0], args, &Env::from_process())
}
