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

    /// The pointers, NULL last, for a caller that keeps the strings alive itself for as
    /// long as it uses them.
    pub fn into_ptrs(self) -> Vec<*const c_char> {
        self.ptrs
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

/// The file names djb's `pathexec_run` tries for `prog`, in order: `prog` itself when it
/// has a `/`; else `DIR/prog` for each `$PATH` element (an empty one is `.`; PATH unset is
/// `/bin:/usr/bin`).
pub fn search_names(prog: &[u8], path: Option<&[u8]>) -> Vec<CString> {
    if prog.contains(&b'/') {
        return CString::new(prog).into_iter().collect();
    }
    path.unwrap_or(b"/bin:/usr/bin")
        .split(|&c| c == b':')
        .filter_map(|dir| {
            let mut n = Vec::with_capacity(dir.len() + prog.len() + 2);
            n.extend_from_slice(if dir.is_empty() { b"." } else { dir });
            n.push(b'/');
            n.extend_from_slice(prog);
            CString::new(n).ok()
        })
        .collect()
}

/// djb's search: `start` on each of `names` in turn (see [`search_names`]) until one
/// succeeds. It goes on after "not found", EACCES, EPERM and EISDIR, and stops at any
/// other error; the error to report is the last one other than "not found", else "not
/// found". Allocates nothing, so that a child sharing its parent's memory may run it.
pub fn search<'n, T>(
    names: impl IntoIterator<Item = &'n CStr>,
    mut start: impl FnMut(&CStr) -> Result<T, i32>,
) -> Result<T, i32> {
    let mut saved = libc::ENOENT;
    for name in names {
        match start(name) {
            Ok(t) => return Ok(t),
            Err(code) => {
                if code != libc::ENOENT {
                    saved = code;
                }
                if !matches!(
                    code,
                    libc::ENOENT | libc::EACCES | libc::EPERM | libc::EISDIR
                ) {
                    break;
                }
            }
        }
    }
    Err(saved)
}

/// djb's `pathexec_run`: execve of each of [`search_names`] as [`search`] goes. Returns
/// only on failure, with the error to report.
pub fn pathexec(
    prog: &[u8],
    argv: &CStrArray<'_>,
    envp: &CStrArray<'_>,
    path: Option<&[u8]>,
) -> io::Error {
    let (argv, envp) = (argv.as_ptrs(), envp.as_ptrs());
    let names = search_names(prog, path);
    let failed = search(
        names.iter().map(CString::as_c_str),
        |name| -> Result<(), i32> {
            // SAFETY: name is NUL-terminated; argv and envp are CStrArrays, NULL-terminated
            // arrays of pointers to NUL-terminated strings that outlive them.
            unsafe { libc::execve(name.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::ENOENT))
        },
    );
    io::Error::from_raw_os_error(failed.err().unwrap_or(libc::ENOENT))
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
    let names = search_names(prog, path);
    search(names.iter().map(CString::as_c_str), |name| {
        posix_spawn(name, &actions, &attr, &args, &env).map_err(|e| e as i32)
    })
    .map_err(io::Error::from_raw_os_error)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_djbs_order() {
        let n = |prog: &[u8], path: Option<&[u8]>| -> Vec<String> {
            search_names(prog, path)
                .into_iter()
                .map(|c| c.into_string().unwrap())
                .collect()
        };
        assert_eq!(n(b"sh", Some(b"/a::/b")), ["/a/sh", "./sh", "/b/sh"]);
        assert_eq!(n(b"sh", None), ["/bin/sh", "/usr/bin/sh"]);
        assert_eq!(n(b"./x/sh", Some(b"/a")), ["./x/sh"]);
    }

    #[test]
    fn search_goes_on_and_reports_as_djbs() {
        let names = search_names(b"p", Some(b"/1:/2:/3"));
        let run = |codes: [i32; 3]| {
            let mut tried = 0;
            let r = search(
                names.iter().map(CString::as_c_str),
                |_| -> Result<(), i32> {
                    tried += 1;
                    Err(codes[tried - 1])
                },
            );
            (r, tried)
        };
        use libc::*;
        assert_eq!(run([ENOENT, ENOENT, ENOENT]), (Err(ENOENT), 3));
        assert_eq!(run([ENOENT, EACCES, ENOENT]), (Err(EACCES), 3));
        assert_eq!(run([EACCES, EPERM, ENOENT]), (Err(EPERM), 3));
        assert_eq!(run([ENOENT, EIO, EACCES]), (Err(EIO), 2));
        let mut tried = 0;
        let found = search(names.iter().map(CString::as_c_str), |n| {
            tried += 1;
            if n.to_bytes() == b"/2/p" {
                Ok(7)
            } else {
                Err(ENOENT)
            }
        });
        assert_eq!((found, tried), (Ok(7), 2));
    }
}
