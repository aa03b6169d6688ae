//! Startup: the host and port arguments, the listening socket, the privilege drop and
//! `-1`, with djb's fatal messages.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ucspi::hostport::{client_addresses, LookupError, Want};
use ucspi::msg::{Msg, EXIT_TEMP};
use ucspi::sock::{check, local_addr, set_int, to_sockaddr};

use crate::options::{Config, Family};

/// Where to listen and whether an IPv6 socket also takes IPv4 clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bind {
    pub ip: IpAddr,
    pub v6only: bool,
}

/// Why the host argument gave no address.
#[derive(Debug)]
pub enum HostError {
    Temporary(io::Error),
    NoAddress,
}

/// The host argument: `0` or empty is 0.0.0.0 (as djb; `::` with `-6`), `::` or `:0` one
/// dual-stack IPv6 socket; anything else as [`client_addresses`] finds it.
pub fn resolve_host(host: &[u8], family: Family) -> Result<Bind, HostError> {
    let any6 = Bind {
        ip: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        v6only: family == Family::V6,
    };
    // client_addresses keeps only the wanted family; prefer IPv4 as djb's binds an A.
    let pick = |ips: &[IpAddr]| -> Option<Bind> {
        let first = ips.iter().find(|ip| ip.is_ipv4()).or(ips.first())?;
        Some(Bind {
            ip: *first,
            v6only: true,
        })
    };
    if host.is_empty() || host == b"0" {
        if family == Family::V6 {
            return Ok(any6);
        }
        return Ok(Bind {
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            v6only: false,
        });
    }
    if host == b"::" || host == b":0" {
        if family == Family::V4 {
            return Err(HostError::NoAddress);
        }
        return Ok(any6);
    }
    let want = match family {
        Family::V4 => Want::V4,
        Family::V6 => Want::V6,
        Family::Any => Want::Any,
    };
    // The same literals, /etc/hosts and DNS steps as tcpclient's.
    match client_addresses(host, want) {
        Ok(ips) => pick(&ips).ok_or(HostError::NoAddress),
        Err(LookupError::Temporary(e)) => Err(HostError::Temporary(e)),
        Err(LookupError::NoAddress) => Err(HostError::NoAddress),
    }
}

/// Everything djb's main does before the accept loop. Returns the listening fd (non-
/// blocking, close-on-exec, never 0 or 1) and its address.
pub fn setup(c: &Config, msg: &Msg) -> (i32, SocketAddr) {
    let Some(port) = ucspi::hostport::port_number(&c.port) else {
        msg.fatal(
            EXIT_TEMP,
            &[b"unable to figure out port number for ", &c.port],
        )
    };
    let bind = match resolve_host(&c.host, c.family) {
        Ok(b) => b,
        Err(HostError::Temporary(e)) => msg.fatal_sys(
            EXIT_TEMP,
            &[b"temporarily unable to figure out IP address for ", &c.host],
            &e,
        ),
        Err(HostError::NoAddress) => msg.fatal(EXIT_TEMP, &[b"no IP address for ", &c.host]),
    };
    let domain = if bind.ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2).
    let fd = match check(unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    }) {
        Ok(fd) => fd,
        Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to create socket"], &e),
    };
    let _ = set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
    if domain == libc::AF_INET6 {
        let _ = set_int(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            libc::c_int::from(bind.v6only),
        );
    }
    let mut addr = SocketAddr::new(bind.ip, port);
    if let (Some(name), SocketAddr::V6(a)) = (&c.interface, &mut addr) {
        let index = std::ffi::CString::new(name.as_slice())
            .ok()
            // SAFETY: a NUL-terminated interface name.
            .map_or(0, |n| unsafe { libc::if_nametoindex(n.as_ptr()) });
        if index == 0 {
            msg.fatal(EXIT_TEMP, &[b"unknown interface ", name])
        }
        a.set_scope_id(index);
    }
    let (sa, len) = to_sockaddr(&addr);
    // SAFETY: sa/len describe a valid address.
    if let Err(e) =
        check(unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_storage).cast(), len) })
    {
        msg.fatal_sys(EXIT_TEMP, &[b"unable to bind"], &e)
    }
    let local = match local_addr(fd) {
        Ok(a) => a,
        Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to get local address"], &e),
    };
    // SAFETY: listen(2) on our socket.
    if let Err(e) = check(unsafe { libc::listen(fd, c.backlog) }) {
        msg.fatal_sys(EXIT_TEMP, &[b"unable to listen"], &e)
    }
    if c.gid != 0 {
        let g = c.gid as libc::gid_t;
        // SAFETY: one gid from a live variable; setgid with a plain number.
        if let Err(e) =
            check(unsafe { libc::setgroups(1, &g) }).and_then(|_| check(unsafe { libc::setgid(g) }))
        {
            msg.fatal_sys(EXIT_TEMP, &[b"unable to set gid"], &e)
        }
    }
    if c.uid != 0 {
        // SAFETY: setuid with a plain number.
        if let Err(e) = check(unsafe { libc::setuid(c.uid as libc::uid_t) }) {
            msg.fatal_sys(EXIT_TEMP, &[b"unable to set uid"], &e)
        }
    }
    if c.print_port {
        let mut b = ucspi::env::itoa_buf();
        let mut line = ucspi::env::fmt_u64(&mut b, u64::from(local.port())).to_vec();
        line.push(b'\n');
        // SAFETY: writing a live buffer to fd 1.
        unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
    }
    // The server keeps fd 0 and 1 closed, as djb's; keep the listener above them.
    let fd = if fd <= 1 {
        // SAFETY: duplicating our own socket to a number >= 3.
        let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if n < 0 {
            msg.fatal_sys(
                EXIT_TEMP,
                &[b"unable to create socket"],
                &io::Error::last_os_error(),
            )
        }
        // SAFETY: closing the original after the dup.
        unsafe { libc::close(fd) };
        n
    } else {
        fd
    };
    // SAFETY: closing our own fds 0 and 1, as djb's server does.
    unsafe {
        libc::close(0);
        libc::close(1);
    }
    (fd, local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let b = resolve_host(b"0", Family::Any).unwrap();
        assert_eq!(b.ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let b = resolve_host(b":0", Family::Any).unwrap();
        assert!(b.ip.is_ipv6() && !b.v6only);
        assert!(resolve_host(b"0", Family::V6).unwrap().v6only);
        assert_eq!(
            resolve_host(b"[127.0.0.2]", Family::Any).unwrap().ip,
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
        );
        assert!(matches!(
            resolve_host(b"127.0.0.1", Family::V6),
            Err(HostError::NoAddress)
        ));
        assert!(resolve_host(b"::1", Family::Any).unwrap().ip.is_ipv6());
    }
}
