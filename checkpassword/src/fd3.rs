//! The checkpassword interface on fd 3: `login\0password\0timestamp\0`, read to end of
//! file before anything else is opened (so a missing fd 3 can never be confused with a
//! config file that happened to get that number), bounded in size and in time.

use std::io;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// The interface's limit: at most 512 bytes before end of file.
pub const MAX_INPUT: usize = 512;

/// Why fd 3 gave no usable credentials.
#[derive(Debug, PartialEq, Eq)]
pub enum Fd3Error {
    /// fd 3 is not open: the caller did not follow the interface (misuse).
    NotOpen,
    /// More than [`MAX_INPUT`] bytes (misuse).
    TooLong,
    /// Not `login\0password\0...` (misuse).
    Malformed,
    /// The caller did not finish writing in time (temporary).
    Timeout,
    /// read(2) failed (temporary).
    Read(i32),
}

/// What the caller sent. The password is wiped when dropped.
pub struct Credentials {
    pub login: Vec<u8>,
    pub password: Zeroizing<Vec<u8>>,
    /// The APOP banner or CRAM-MD5 challenge; empty when absent.
    pub challenge: Vec<u8>,
}

/// Whether `fd` is open, without opening anything.
pub fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Reads `fd` to end of file (at most [`MAX_INPUT`] bytes, within `limit`), then closes it.
pub fn read_all(fd: i32, limit: Duration) -> Result<Zeroizing<Vec<u8>>, Fd3Error> {
    if !is_open(fd) {
        return Err(Fd3Error::NotOpen);
    }
    let r = read_bounded(fd, limit);
    // SAFETY: fd is ours to close; the interface requires closing it so it cannot leak
    // into the program we exec.
    unsafe { libc::close(fd) };
    r
}

fn read_bounded(fd: i32, limit: Duration) -> Result<Zeroizing<Vec<u8>>, Fd3Error> {
    let mut buf = Zeroizing::new(vec![0u8; MAX_INPUT + 1]);
    let mut len = 0usize;
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Fd3Error::Timeout);
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Fd3Error::Read(e.raw_os_error().unwrap_or(libc::EIO)));
        }
        if n == 0 {
            continue;
        }
        // SAFETY: reading into the unused tail of a live buffer.
        let got = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if got < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) || e.raw_os_error() == Some(libc::EAGAIN) {
                continue;
            }
            return Err(Fd3Error::Read(e.raw_os_error().unwrap_or(libc::EIO)));
        }
        if got == 0 {
            break;
        }
        len += got as usize;
        if len > MAX_INPUT {
            return Err(Fd3Error::TooLong);
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// Splits the record as djb's checkpassword does: the login must be NUL-terminated and
/// followed by something, the password NUL-terminated; the third field is optional.
pub fn parse(buf: &[u8]) -> Result<Credentials, Fd3Error> {
    let nul = |from: usize| buf[from..].iter().position(|&b| b == 0).map(|p| p + from);
    let l_end = nul(0).ok_or(Fd3Error::Malformed)?;
    if l_end + 1 >= buf.len() {
        return Err(Fd3Error::Malformed);
    }
    let p_end = nul(l_end + 1).ok_or(Fd3Error::Malformed)?;
    let rest = &buf[p_end + 1..];
    let challenge = match rest.iter().position(|&b| b == 0) {
        Some(e) => &rest[..e],
        None => rest,
    };
    Ok(Credentials {
        login: buf[..l_end].to_vec(),
        password: Zeroizing::new(buf[l_end + 1..p_end].to_vec()),
        challenge: challenge.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_callers_send() {
        let c = parse(b"alice\0secret\0<1.2@h>\0").unwrap();
        assert_eq!(c.login, b"alice");
        assert_eq!(&c.password[..], b"secret");
        assert_eq!(c.challenge, b"<1.2@h>");
        let c = parse(b"alice\0secret\0").unwrap();
        assert!(c.challenge.is_empty());
        let c = parse(b"alice\0\0\0").unwrap();
        assert!(c.password.is_empty());
        assert_eq!(parse(b"alice\0secret").err(), Some(Fd3Error::Malformed));
        assert_eq!(parse(b"alice\0").err(), Some(Fd3Error::Malformed));
        assert_eq!(parse(b"alice").err(), Some(Fd3Error::Malformed));
        assert_eq!(parse(b"").err(), Some(Fd3Error::Malformed));
    }
}
