//! Startup: the host and port arguments, the listening socket, the privilege drop and
//! `-1`, with djb's fatal messages.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
use socket2::{Domain, Socket, Type};
use ucspi::hostport::{client_addresses, port_or_exit, LookupError, Want};
use ucspi::msg::{Line, Msg, EXIT_TEMP};

use crate::options::{Config, Family, Flavour};

/// Where to listen and whether an IPv6 socket also takes IPv4 clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bind {
    pub ip: IpAddr,
    pub v6only: bool,
}

/// The host argument: `0` or empty is 0.0.0.0 (as djb; `::` with `-6`), `::` or `:0` one
/// dual-stack IPv6 socket; anything else as [`client_addresses`] finds it.
pub fn resolve_host(host: &[u8], family: Family) -> Result<Bind, LookupError> {
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
            return Err(LookupError::NoAddress);
        }
        return Ok(any6);
    }
    let want = match family {
        Family::V4 => Want::V4,
        Family::V6 => Want::V6,
        Family::Any => Want::Any,
    };
    // The same literals, /etc/hosts and DNS steps as tcpclient's.
    pick(&client_addresses(host, want)?).ok_or(LookupError::NoAddress)
}

/// The address to bind: host, port and, for a link-local IPv6 address, `-I`'s scope.
fn address(c: &Config, msg: &Msg) -> (SocketAddr, bool) {
    let port = port_or_exit(msg, &c.port);
    let bind = resolve_host(&c.host, c.family).unwrap_or_else(|e| e.exit(msg, &c.host));
    let mut addr = SocketAddr::new(bind.ip, port);
    if let (Some(name), SocketAddr::V6(a)) = (&c.interface, &mut addr) {
        match nix::net::if_::if_nametoindex(name.as_slice()) {
            Ok(index) if index != 0 => a.set_scope_id(index),
            _ => msg.fatal(EXIT_TEMP, &[b"unknown interface ", name]),
        }
    }
    (addr, bind.v6only)
}

/// Everything djb's main does before the accept loop. Returns the listening sockets
/// (non-blocking, close-on-exec, never fd 0 or 1): the inherited ones
/// ([`crate::inherited`]) or the one bound to the host and port arguments.
///
/// sslserver's server keeps its privileges, as ucspi-ssl's does, so that it can read a
/// renewed key that only root may read; `-u` and `-g` apply to its children.
pub fn setup(c: &Config, msg: &Msg) -> Vec<Socket> {
    let socks = match crate::inherited::take(c, msg) {
        Some(socks) => socks,
        None => vec![bind(c, msg)],
    };
    if c.flavour == Flavour::Tcp {
        drop_privileges(c, msg);
    }
    if c.print_port {
        let mut line = Line::new();
        for sock in &socks {
            let local = local_address(sock, msg);
            if c.flavour == Flavour::Ssl {
                // ucspi-ssl's form, with the port bound (its own prints the argument).
                line.ip(local.ip())
                    .push(b" : ")
                    .num(u64::from(local.port()))
                    .push(b" [")
                    .num(c.limit)
                    .push(b"/")
                    .num(c.per_ip)
                    .push(b"]\n");
            } else {
                line.num(u64::from(local.port())).push(b"\n");
            }
        }
        let _ = ucspi::fd::write_all(io::stdout(), line.as_bytes());
    }
    // The server keeps fds 0 and 1 closed, as djb's; keep the listeners above them (std's
    // try_clone duplicates to 3 or more, close-on-exec).
    let socks = socks
        .into_iter()
        .map(|sock| {
            if sock.as_raw_fd() > 1 {
                return sock;
            }
            match OwnedFd::from(sock).try_clone() {
                Ok(fd) => Socket::from(fd),
                Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to create socket"], &e),
            }
        })
        .collect();
    let _ = nix::unistd::close(0);
    let _ = nix::unistd::close(1);
    if c.flavour == Flavour::Ssl {
        // ucspi-ssl's: /dev/null on 0 and 1, so that the pipes and sockets a connection
        // makes are never numbered 0 or 1.
        use nix::fcntl::{open, OFlag};
        use nix::sys::stat::Mode;
        let r = open("/dev/null", OFlag::O_RDONLY, Mode::empty());
        let w = open(
            "/dev/null",
            OFlag::O_WRONLY | OFlag::O_APPEND,
            Mode::empty(),
        );
        if let (Ok(r), Ok(w)) = (r, w) {
            // Leave them open for the rest of the server's life, on 0 and 1.
            std::mem::forget(r);
            std::mem::forget(w);
        }
    }
    socks
}

/// The socket of the host and port arguments, bound and listening.
fn bind(c: &Config, msg: &Msg) -> Socket {
    let (addr, v6only) = address(c, msg);
    let sock = match Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), None) {
        Ok(s) => s,
        Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to create socket"], &e),
    };
    let _ = sock.set_reuse_address(true);
    if addr.is_ipv6() {
        let _ = sock.set_only_v6(v6only);
    }
    if let Err(e) = sock.bind(&addr.into()) {
        msg.fatal_sys(EXIT_TEMP, &[b"unable to bind"], &e)
    }
    local_address(&sock, msg);
    if let Err(e) = sock.listen(c.backlog) {
        msg.fatal_sys(EXIT_TEMP, &[b"unable to listen"], &e)
    }
    sock
}

fn local_address(sock: &Socket, msg: &Msg) -> SocketAddr {
    match sock.local_addr().map(|a| a.as_socket()) {
        Ok(Some(a)) => a,
        Ok(None) => msg.fatal_sys(
            EXIT_TEMP,
            &[b"unable to get local address"],
            &io::Error::from_raw_os_error(libc::EAFNOSUPPORT),
        ),
        Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to get local address"], &e),
    }
}

/// `-g` and `-u`: the server gives up root once it listens (djb's tcpserver).
fn drop_privileges(c: &Config, msg: &Msg) {
    set_ids(c.uid, c.gid, msg);
}

/// Becomes `gid` (the only group) and `uid`, each unless 0, as djb's `prot_gid` and
/// `prot_uid`; exits 111 with his message when the system refuses.
pub fn set_ids(uid: u32, gid: u32, msg: &Msg) {
    if gid != 0 {
        let g = Gid::from_raw(gid);
        if let Err(e) = setgroups(&[g]).and_then(|_| setgid(g)) {
            msg.fatal_sys(EXIT_TEMP, &[b"unable to set gid"], &e.into())
        }
    }
    if uid != 0 {
        if let Err(e) = setuid(Uid::from_raw(uid)) {
            msg.fatal_sys(EXIT_TEMP, &[b"unable to set uid"], &e.into())
        }
    }
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
            Err(LookupError::NoAddress)
        ));
        assert!(resolve_host(b"::1", Family::Any).unwrap().ip.is_ipv6());
    }
}
