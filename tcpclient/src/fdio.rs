//! Raw file-descriptor reads and writes that retry on EINTR, for the tools that work
//! below std's buffered streams (they fork, dup2 and exec around their copying).

use std::io;

/// read(2) retried on EINTR.
pub fn read(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: reading into a live buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Writes all of `buf` to `fd`, retrying on EINTR and short writes.
pub fn write_all(fd: i32, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: writing from a live buffer of the given length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Copies `from` to `to` through `filter` until end of input; `finish` may add a tail.
/// Errors are the read or write failure, tagged by which side failed.
pub fn filter_copy(
    from: i32,
    to: i32,
    mut filter: impl FnMut(&[u8], &mut Vec<u8>),
    finish: impl FnOnce(&mut Vec<u8>),
) -> Result<(), Side> {
    let mut buf = [0u8; 8192];
    let mut out = Vec::with_capacity(2 * buf.len());
    loop {
        let n = read(from, &mut buf).map_err(Side::Read)?;
        out.clear();
        if n == 0 {
            finish(&mut out);
            return write_all(to, &out).map_err(Side::Write);
        }
        filter(&buf[..n], &mut out);
        write_all(to, &out).map_err(Side::Write)?;
    }
}

/// Which end of a copy failed.
#[derive(Debug)]
pub enum Side {
    Read(io::Error),
    Write(io::Error),
}

/// dup2 `from` onto `to` and close `from` (djb's `fd_move`); nothing when they are equal.
pub fn fd_move(to: i32, from: i32) -> io::Result<()> {
    if to == from {
        return Ok(());
    }
    fd_copy(to, from)?;
    // SAFETY: closing a descriptor this process owns.
    unsafe { libc::close(from) };
    Ok(())
}

/// dup2 `from` onto `to` (djb's `fd_copy`).
pub fn fd_copy(to: i32, from: i32) -> io::Result<()> {
    if to == from {
        return Ok(());
    }
    // SAFETY: dup2 on descriptors; failure is reported.
    if unsafe { libc::dup2(from, to) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs argv (program name first) via `$PATH` as djb's pathexec with the process
/// environment; returns the error when it could not be run.
pub fn exec_argv(argv: &[std::ffi::OsString]) -> io::Error {
    exec_with(&argv[0], argv, &ucspi::env::Env::from_process())
}

/// Runs `prog` with `argv` (argv[0] included) and environment `env` via `$PATH`.
pub fn exec_with(
    prog: &std::ffi::OsStr,
    argv: &[std::ffi::OsString],
    env: &ucspi::env::Env,
) -> io::Error {
    use std::os::unix::ffi::OsStrExt;
    let cargs: Vec<std::ffi::CString> = argv
        .iter()
        .map(|a| std::ffi::CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let envp = env.envp();
    let path = env.get(b"PATH").map(<[u8]>::to_vec);
    // Rust starts every program with SIGPIPE ignored, and an ignored signal stays
    // ignored across exec: give the program the default that djb's tools leave it.
    // SAFETY: resetting a signal disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // SAFETY: ptrs and envp are NULL-terminated arrays of live C strings.
    unsafe { ucspi::env::pathexec(prog.as_bytes(), &ptrs, &envp, path.as_deref()) }
}
