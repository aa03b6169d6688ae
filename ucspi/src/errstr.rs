//! djb's wording of errno values (his `error_str`), which every ucspi-tcp message uses
//! instead of strerror(3) text. Scripts and log scanners match on these strings.

use std::io;

/// The text djb's programs print for `errno`.
pub fn errno_str(errno: i32) -> &'static str {
    use libc::*;
    match errno {
        0 => "no error",
        EINTR => "interrupted system call",
        ENOMEM => "out of memory",
        ENOENT => "file does not exist",
        ETXTBSY => "text busy",
        EIO => "input/output error",
        EEXIST => "file already exists",
        ETIMEDOUT => "timed out",
        EINPROGRESS => "operation in progress",
        EAGAIN => "temporary failure",
        EPIPE => "broken pipe",
        EPERM => "permission denied",
        EACCES => "access denied",
        ENXIO => "device not configured",
        EPROTO => "protocol error",
        EISDIR => "is a directory",
        ESRCH => "no such process",
        E2BIG => "argument list too long",
        ENOEXEC => "exec format error",
        EBADF => "file descriptor not open",
        ECHILD => "no child processes",
        EDEADLK => "operation would cause deadlock",
        EFAULT => "bad address",
        ENOTBLK => "not a block device",
        EBUSY => "device busy",
        EXDEV => "cross-device link",
        ENODEV => "device does not support operation",
        ENOTDIR => "not a directory",
        EINVAL => "invalid argument",
        ENFILE => "system cannot open more files",
        EMFILE => "process cannot open more files",
        ENOTTY => "not a tty",
        EFBIG => "file too big",
        ENOSPC => "out of disk space",
        ESPIPE => "unseekable descriptor",
        EROFS => "read-only file system",
        EMLINK => "too many links",
        EDOM => "input out of range",
        ERANGE => "output out of range",
        EALREADY => "operation already in progress",
        ENOTSOCK => "not a socket",
        EDESTADDRREQ => "destination address required",
        EMSGSIZE => "message too long",
        EPROTOTYPE => "incorrect protocol type",
        ENOPROTOOPT => "protocol not available",
        EPROTONOSUPPORT => "protocol not supported",
        ESOCKTNOSUPPORT => "socket type not supported",
        EOPNOTSUPP => "operation not supported",
        EPFNOSUPPORT => "protocol family not supported",
        EAFNOSUPPORT => "address family not supported",
        EADDRINUSE => "address already used",
        EADDRNOTAVAIL => "address not available",
        ENETDOWN => "network down",
        ENETUNREACH => "network unreachable",
        ENETRESET => "network reset",
        ECONNABORTED => "connection aborted",
        ECONNRESET => "connection reset",
        ENOBUFS => "out of buffer space",
        EISCONN => "already connected",
        ENOTCONN => "not connected",
        ESHUTDOWN => "socket shut down",
        ETOOMANYREFS => "too many references",
        ECONNREFUSED => "connection refused",
        ELOOP => "symbolic link loop",
        ENAMETOOLONG => "file name too long",
        EHOSTDOWN => "host down",
        EHOSTUNREACH => "host unreachable",
        ENOTEMPTY => "directory not empty",
        EUSERS => "too many users",
        EDQUOT => "disk quota exceeded",
        ESTALE => "stale NFS file handle",
        EREMOTE => "too many levels of remote in path",
        ENOLCK => "no locks available",
        ENOSYS => "system call not available",
        ENOSTR => "not a stream device",
        ETIME => "timer expired",
        ENOSR => "out of stream resources",
        ENOMSG => "no message of desired type",
        EBADMSG => "bad message type",
        EIDRM => "identifier removed",
        ENONET => "machine not on network",
        ENOLINK => "link severed",
        EADV => "advertise error",
        ESRMNT => "srmount error",
        ECOMM => "communication error",
        EMULTIHOP => "multihop attempted",
        EREMCHG => "remote address changed",
        _ => "unknown error",
    }
}

/// djb's wording for an `io::Error`. Errors that carry no errno (our own format checks,
/// for example a corrupt cdb) read as `protocol error`, which is what djb's cdb code sets.
pub fn io_str(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(n) => errno_str(n),
        None => match err.kind() {
            io::ErrorKind::NotFound => errno_str(libc::ENOENT),
            io::ErrorKind::PermissionDenied => errno_str(libc::EACCES),
            io::ErrorKind::OutOfMemory => errno_str(libc::ENOMEM),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => errno_str(libc::EPROTO),
            _ => errno_str(libc::EPROTO),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_djb() {
        assert_eq!(errno_str(libc::ENOENT), "file does not exist");
        assert_eq!(errno_str(libc::EADDRINUSE), "address already used");
        assert_eq!(errno_str(libc::ECONNREFUSED), "connection refused");
        assert_eq!(errno_str(libc::EPROTO), "protocol error");
        assert_eq!(errno_str(99_999), "unknown error");
        let e = io::Error::new(io::ErrorKind::InvalidData, "x");
        assert_eq!(io_str(&e), "protocol error");
        assert_eq!(
            io_str(&io::Error::from_raw_os_error(libc::EACCES)),
            "access denied"
        );
    }
}
