//! Running the next program as djb's programs do: his `pathexec` search of `$PATH`, with
//! the argument and environment pointer arrays built once by the caller.
//!
//! execve(2) is called directly, not through nix: nix's `execve` takes `&CStr` slices and
//! collects a fresh pointer array for both on every call, so a server child trying each
//! `$PATH` element would rebuild them per element, and the environment entries (bytes
//! with one NUL at their end, see [`crate::env::Env`]) would have to be checked for NULs
//! again to become `&CStr`s.

use std::ffi::{CString, OsStr, OsString};
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
