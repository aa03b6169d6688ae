//! tcpclient: connect to host:port, then run a program with fd 6 reading from and fd 7
//! writing to the connection, and djb's TCP environment describing it.

use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use ucspi::env::{set_tcp_vars, Connection, Env};
use ucspi::fmt::scan_ulong;
use ucspi::getopt::{parse, Opt};
use ucspi::hostport::{client_addresses, port_or_exit, Want};
use ucspi::msg::{write_line, Line, Msg, EXIT_TEMP};

pub const USAGE: &str = "tcpclient [ -hHrRdDqQv ] [ -i localip ] [ -p localport ] [ -T timeoutconn ] [ -l localname ] [ -t timeoutinfo ] host port program";
const SPEC: &str = "46dDvqQhHrRi:p:t:T:l:";

/// Everything the options decide.
#[derive(Clone, Debug)]
pub struct Config {
    pub verbosity: u8,
    pub nodelay: bool,
    pub remote_host: bool,
    pub remote_info: bool,
    pub info_timeout: u64,
    pub conn_timeout: [u64; 2],
    pub local_name: Option<Vec<u8>>,
    pub local_ip: Option<IpAddr>,
    pub local_port: u16,
    pub want: Want,
    pub host: Vec<u8>,
    pub port: Vec<u8>,
    pub program: Vec<OsString>,
}

/// Why the command line was refused: print the message (if any) and the usage line.
/// `quiet`: the refusal came after `-q` took effect (djb's missing operands), when djb's
/// usage line goes nowhere.
#[derive(Debug)]
pub struct Usage(pub Option<Vec<u8>>, pub bool);

/// djb's `ip4_scan`: a dotted quad at the start of `s` (trailing bytes are ignored).
pub fn ip4_prefix(s: &[u8]) -> Option<Ipv4Addr> {
    let mut o = [0u8; 4];
    let mut i = 0;
    for (k, oct) in o.iter_mut().enumerate() {
        let (v, n) = scan_ulong(&s[i..]);
        if n == 0 || v > 255 {
            return None;
        }
        *oct = v as u8;
        i += n;
        if k < 3 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    Some(Ipv4Addr::from(o))
}

/// `-i`'s address: djb's dotted quad (trailing bytes ignored) or an IPv6 address.
pub fn local_ip(v: &[u8]) -> Option<IpAddr> {
    match ip4_prefix(v) {
        Some(ip) => Some(IpAddr::V4(ip)),
        None => ucspi::addr::parse_v6(v).map(IpAddr::V6),
    }
}

impl Default for Config {
    /// djb's defaults.
    fn default() -> Config {
        Config {
            verbosity: 1,
            nodelay: false,
            remote_host: true,
            remote_info: true,
            info_timeout: 26,
            conn_timeout: [2, 58],
            local_name: None,
            local_ip: None,
            local_port: 0,
            want: Want::Any,
            host: Vec::new(),
            port: Vec::new(),
            program: Vec::new(),
        }
    }
}

/// A value an option cannot take (`-i` that is no address).
#[derive(Debug, PartialEq, Eq)]
pub struct BadValue;

/// Applies one of tcpclient's options (sslclient shares them): `Ok(false)` for a letter
/// that is not one of them.
pub fn apply_option(c: &mut Config, o: &Opt) -> Result<bool, BadValue> {
    match o {
        Opt::Flag(b'd') => c.nodelay = false,
        Opt::Flag(b'D') => c.nodelay = true,
        Opt::Flag(b'v') => c.verbosity = 2,
        Opt::Flag(b'q') => c.verbosity = 0,
        Opt::Flag(b'Q') => c.verbosity = 1,
        Opt::Flag(b'h') => c.remote_host = true,
        Opt::Flag(b'H') => c.remote_host = false,
        Opt::Flag(b'r') => c.remote_info = true,
        Opt::Flag(b'R') => c.remote_info = false,
        Opt::Flag(b'4') => c.want = Want::V4,
        Opt::Flag(b'6') => c.want = Want::V6,
        Opt::Value(b'l', v) => c.local_name = Some(v.as_bytes().to_vec()),
        Opt::Value(b't', v) => c.info_timeout = scan_ulong(v.as_bytes()).0,
        Opt::Value(b'T', v) => {
            let v = v.as_bytes();
            let (x, mut j) = scan_ulong(v);
            if v.get(j) == Some(&b'+') {
                j += 1;
            }
            c.conn_timeout = [x, scan_ulong(&v[j..]).0];
        }
        Opt::Value(b'i', v) => c.local_ip = Some(local_ip(v.as_bytes()).ok_or(BadValue)?),
        Opt::Value(b'p', v) => c.local_port = scan_ulong(v.as_bytes()).0 as u16,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Parses the command line (without argv[0]).
pub fn parse_args(args: &[OsString]) -> Result<Config, Usage> {
    let (opts, first) =
        parse(args, SPEC).map_err(|e| Usage(Some(e.message("tcpclient")), false))?;
    let mut c = Config::default();
    for o in opts {
        if !apply_option(&mut c, &o).map_err(|_| Usage(None, false))? {
            return Err(Usage(None, false));
        }
    }
    let rest = &args[first..];
    if rest.len() < 3 {
        return Err(Usage(None, c.verbosity == 0));
    }
    c.host = rest[0].as_bytes().to_vec();
    c.port = rest[1].as_bytes().to_vec();
    c.program = rest[2..].to_vec();
    Ok(c)
}

/// How one connection attempt ended.
enum Attempt {
    Connected(Socket),
    TimedOut,
    Failed(io::Error),
}

/// djb's `timeoutconn`: a connect waited for up to `secs` seconds (plus iopause's 20 ms
/// of slack, so `-T 0` still lets a loopback connect finish), from `-i`/`-p`'s address.
fn attempt(msg: &Msg, c: &Config, ip: IpAddr, port: u16, secs: u64) -> Attempt {
    let remote = SocketAddr::new(ip, port);
    let s = match Socket::new(Domain::for_address(remote), Type::STREAM, None) {
        Ok(s) => s,
        Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to create socket"], &e),
    };
    let local_ip = match (c.local_ip, ip) {
        (Some(l), _) if l.is_ipv6() == ip.is_ipv6() => l,
        (_, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (_, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    if let Err(e) = s.bind(&SocketAddr::new(local_ip, c.local_port).into()) {
        msg.fatal_sys(EXIT_TEMP, &[b"unable to bind socket"], &e);
    }
    let wait = Duration::from_secs(secs.min(1 << 30)) + Duration::from_millis(20);
    match s.connect_timeout(&remote.into(), wait) {
        Ok(()) => Attempt::Connected(s),
        // The wait ran out (socket2 says so without an errno; the kernel's own ETIMEDOUT
        // is a failure like any other).
        Err(e) if e.kind() == io::ErrorKind::TimedOut && e.raw_os_error().is_none() => {
            Attempt::TimedOut
        }
        Err(e) => Attempt::Failed(e),
    }
}

/// djb's two passes: with several addresses, pass 1 gives each `x` seconds and keeps
/// those that timed out for pass 2 with `y` seconds; a single address gets `x+y` at once.
/// Failures go to `failed` as they happen.
pub fn connect_any(
    msg: &Msg,
    c: &Config,
    ips: Vec<IpAddr>,
    port: u16,
    failed: &mut dyn FnMut(IpAddr, &io::Error),
) -> Option<Socket> {
    let mut t = c.conn_timeout;
    if ips.len() == 1 {
        t = [t[0].saturating_add(t[1]), 0];
    }
    let mut todo = ips;
    for (pass, secs) in t.into_iter().enumerate() {
        let mut again = Vec::new();
        for ip in todo {
            let e = match attempt(msg, c, ip, port, secs) {
                Attempt::Connected(s) => return Some(s),
                Attempt::TimedOut if pass == 0 && t[1] != 0 => {
                    again.push(ip);
                    continue;
                }
                Attempt::TimedOut => io::Error::from_raw_os_error(libc::ETIMEDOUT),
                Attempt::Failed(e) => e,
            };
            failed(ip, &e);
        }
        todo = again;
    }
    None
}

/// A socket's local or remote address, or the error message's errno.
pub fn address(a: io::Result<socket2::SockAddr>) -> io::Result<SocketAddr> {
    a?.as_socket()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))
}

/// djb's tcpclient takes `dns_name4`'s answer as it is: no PTR record gives an empty
/// name (the variable set, but empty), only a failed lookup leaves it unset.
pub fn ptr_name(res: &ucspi::dns::Resolver, ip: IpAddr) -> Option<Vec<u8>> {
    match res.name_of(ip) {
        Ok(Some(n)) => Some(n),
        Ok(None) => Some(Vec::new()),
        Err(_) => None,
    }
}

/// What the program is told about a connection.
pub struct Described {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub local_host: Option<Vec<u8>>,
    pub remote_host: Option<Vec<u8>>,
    pub remote_info: Option<Vec<u8>>,
}

impl Described {
    pub fn connection(&self) -> Connection<'_> {
        Connection {
            local: self.local,
            remote: self.remote,
            local_host: self.local_host.as_deref(),
            remote_host: self.remote_host.as_deref(),
            remote_info: self.remote_info.as_deref(),
        }
    }
}

/// Host and port to a connected socket (with `-D`'s TCP_NODELAY), or `None` after every
/// address failed (each reported to `failed`).
pub fn connect(
    c: &Config,
    msg: &Msg,
    failed: &mut dyn FnMut(IpAddr, u16, &io::Error),
) -> Option<Socket> {
    let port = port_or_exit(msg, &c.port);
    let ips = client_addresses(&c.host, c.want).unwrap_or_else(|e| e.exit(msg, &c.host));
    let s = connect_any(msg, c, ips, port, &mut |ip, e| failed(ip, port, e))?;
    if c.nodelay {
        let _ = s.set_tcp_nodelay(true);
    }
    Some(s)
}

/// The names of both ends (`-l`, PTR lookups under `-h`, ident under `-r`); `connected`
/// is called once the remote address is known, before the lookups.
pub fn describe(c: &Config, msg: &Msg, s: &Socket, connected: &dyn Fn(SocketAddr)) -> Described {
    let local = address(s.local_addr())
        .unwrap_or_else(|e| msg.fatal_sys(EXIT_TEMP, &[b"unable to get local address"], &e));
    let res = ucspi::dns::Resolver::from_env();
    let local_host = match &c.local_name {
        Some(n) => Some(n.clone()),
        None => ptr_name(&res, local.ip()),
    };
    let remote = address(s.peer_addr())
        .unwrap_or_else(|e| msg.fatal_sys(EXIT_TEMP, &[b"unable to get remote address"], &e));
    connected(remote);
    let remote_host = if c.remote_host {
        ptr_name(&res, remote.ip())
    } else {
        None
    };
    let remote_info = if c.remote_info {
        ucspi::ident::query(
            local,
            remote,
            Duration::from_secs(c.info_timeout.min(1 << 30)),
        )
    } else {
        None
    };
    Described {
        local,
        remote,
        local_host,
        remote_host,
        remote_info,
    }
}

/// Everything after option parsing; returns only through exec or exit.
pub fn run(c: &Config) -> ! {
    let msg = Msg {
        prog: "tcpclient",
        quiet: c.verbosity == 0,
    };
    let report = |ip: IpAddr, port: u16, e: &io::Error| {
        if c.verbosity > 0 {
            Line::new()
                .push(b"tcpclient: unable to connect to ")
                .ip(ip)
                .push(b" port ")
                .num(port.into())
                .push(b": ")
                .push(ucspi::errstr::io_str(e).as_bytes())
                .write();
        }
    };
    let Some(s) = connect(c, &msg, &mut { report }) else {
        ucspi::msg::exit(EXIT_TEMP)
    };
    let d = describe(c, &msg, &s, &|remote| {
        if c.verbosity >= 2 {
            Line::new()
                .push(b"tcpclient: connected to ")
                .ip(remote.ip())
                .push(b" port ")
                .num(remote.port().into())
                .write();
        }
    });
    let mut env = Env::from_process();
    let mut scratch = Vec::new();
    set_tcp_vars(&mut env, &d.connection(), &mut scratch);
    let six = match ucspi::fd::move_to(6, s.into()) {
        Ok(fd) => fd,
        Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to set up descriptor 6"], &e),
    };
    if let Err(e) = ucspi::fd::copy_to(7, six) {
        msg.fatal_sys(EXIT_TEMP, &[b"unable to set up descriptor 7"], &e);
    }
    let e = ucspi::exec::run(&c.program[0], &c.program, &env);
    msg.fatal_sys(EXIT_TEMP, &[b"unable to run ", c.program[0].as_bytes()], &e)
}

/// main: close fds 6 and 7 (a stale one must not be taken for the socket), parse, run.
pub fn main_with(args: &[OsString]) -> ! {
    let _ = nix::unistd::close(6);
    let _ = nix::unistd::close(7);
    match parse_args(args) {
        Ok(c) => run(&c),
        Err(Usage(_, true)) => ucspi::msg::exit(ucspi::msg::EXIT_USAGE),
        Err(Usage(m, false)) => {
            if let Some(m) = m {
                write_line(&[&m]);
            }
            Msg::new("tcpclient").usage(USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn options() {
        let c = parse_args(&args(&[
            "-vRHl0",
            "-T10",
            "-i",
            "127.0.0.1x",
            "h",
            "25",
            "p",
            "a",
        ]))
        .unwrap();
        assert_eq!(c.verbosity, 2);
        assert!(!c.remote_info && !c.remote_host);
        assert_eq!(c.local_name.as_deref(), Some(&b"0"[..]));
        assert_eq!(c.conn_timeout, [10, 0]);
        assert_eq!(c.local_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(c.program.len(), 2);
        let c = parse_args(&args(&["-T3+4", "-p70000", "h", "p", "x"])).unwrap();
        assert_eq!(c.conn_timeout, [3, 4]);
        assert_eq!(c.local_port, 70000u32 as u16);
        assert!(parse_args(&args(&["-i", "bad", "h", "p", "x"])).is_err());
        assert!(parse_args(&args(&["h", "p"])).is_err());
        assert!(parse_args(&args(&["-z", "h", "p", "x"]))
            .unwrap_err()
            .0
            .is_some());
    }
}
