//! The checkpassword interface on fd 3: `login\0password\0timestamp\0`, read to end of
//! file before anything else is opened (so a missing fd 3 can never be confused with a
//! config file that happened to get that number), bounded in size and in time.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use ucspi::fd::{self, Want};
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

/// Reads fd 3 to end of file (at most [`MAX_INPUT`] bytes, within `limit`), then closes
/// it: the interface requires that, and it must not leak into the program exec'd next.
pub fn read_all(limit: Duration) -> Result<Zeroizing<Vec<u8>>, Fd3Error> {
    // Nothing has been opened yet, so fd 3 is the caller's; dropping it closes it.
    let fd3 = fd::take_interface(3).ok_or(Fd3Error::NotOpen)?;
    read_bounded(&fd3, Instant::now() + limit)
}

fn read_bounded(fd: &OwnedFd, deadline: Instant) -> Result<Zeroizing<Vec<u8>>, Fd3Error> {
    let errno = |e: io::Error| Fd3Error::Read(e.raw_os_error().unwrap_or(libc::EIO));
    let mut buf = Zeroizing::new(vec![0u8; MAX_INPUT + 1]);
    let mut len = 0usize;
    loop {
        if !fd::wait(fd, Want::Read, deadline).map_err(errno)? {
            return Err(Fd3Error::Timeout);
        }
        let got = match fd::read(fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(errno(e)),
        };
        len += got;
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
