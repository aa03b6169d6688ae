//! tcpclient: connect to host:port, then run a program with fd 6 reading from and fd 7
//! writing to the connection, and djb's TCP environment describing it.

use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use ucspi::env::{set_tcp_vars, Connection, Env};
use ucspi::getopt::{parse, scan_ulong, Opt};
use ucspi::hostport::{client_addresses, port_number, LookupError, Want};
use ucspi::msg::{write_line, Msg, EXIT_TEMP};
use ucspi::sock::{check, local_addr, set_int, to_sockaddr};

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
fn ip4_prefix(s: &[u8]) -> Option<Ipv4Addr> {
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

/// Parses the command line (without argv[0]).
pub fn parse_args(args: &[OsString]) -> Result<Config, Usage> {
    let (opts, first) =
        parse(args, SPEC).map_err(|e| Usage(Some(e.message("tcpclient")), false))?;
    let mut c = Config {
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
    };
    for o in opts {
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
            Opt::Value(b'i', v) => {
                let v = v.as_bytes();
                c.local_ip = match ip4_prefix(v) {
                    Some(ip) => Some(IpAddr::V4(ip)),
                    None => Some(IpAddr::V6(
                        ucspi::addr::parse_v6(v).ok_or(Usage(None, false))?,
                    )),
                };
            }
            Opt::Value(b'p', v) => c.local_port = scan_ulong(v.as_bytes()).0 as u16,
            _ => return Err(Usage(None, false)),
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
    Connected(i32),
    TimedOut,
    Failed(io::Error),
}

fn close(fd: i32) {
    // SAFETY: closing a descriptor this process owns.
    unsafe { libc::close(fd) };
}

/// djb's `timeoutconn`: a non-blocking connect waited for up to `secs` seconds (plus
/// iopause's 20 ms of slack, so `-T 0` still lets a loopback connect finish).
fn attempt(msg: &Msg, c: &Config, ip: IpAddr, port: u16, secs: u64) -> Attempt {
    let domain = if ip.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: plain socket(2).
    let s = match check(unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) }) {
        Ok(s) => s,
        Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to create socket"], &e),
    };
    let local_ip = match (c.local_ip, ip) {
        (Some(l), _) if l.is_ipv6() == ip.is_ipv6() => l,
        (_, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (_, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let (sa, len) = to_sockaddr(&SocketAddr::new(local_ip, c.local_port));
    // SAFETY: binding to a sockaddr of the given length.
    if let Err(e) =
        check(unsafe { libc::bind(s, (&sa as *const libc::sockaddr_storage).cast(), len) })
    {
        msg.fatal_sys(EXIT_TEMP, &[b"unable to bind socket"], &e);
    }
    // SAFETY: fcntl flag changes on our socket.
    let flags = unsafe { libc::fcntl(s, libc::F_GETFL) };
    // SAFETY: as above.
    unsafe { libc::fcntl(s, libc::F_SETFL, flags | libc::O_NONBLOCK) };
    let (ra, rlen) = to_sockaddr(&SocketAddr::new(ip, port));
    // SAFETY: connecting to a sockaddr of the given length.
    let r = unsafe { libc::connect(s, (&ra as *const libc::sockaddr_storage).cast(), rlen) };
    if r == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            close(s);
            return Attempt::Failed(e);
        }
        let end =
            Instant::now() + Duration::from_secs(secs.min(1 << 30)) + Duration::from_millis(20);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                close(s);
                return Attempt::TimedOut;
            }
            let mut p = libc::pollfd {
                fd: s,
                events: libc::POLLOUT,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut p, 1, ms) } > 0 {
                break;
            }
        }
        let mut err: libc::c_int = 0;
        let mut l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: SO_ERROR into an int of the given size.
        unsafe {
            libc::getsockopt(
                s,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut l,
            )
        };
        if err != 0 {
            close(s);
            return Attempt::Failed(io::Error::from_raw_os_error(err));
        }
    }
    // SAFETY: back to blocking for the program.
    unsafe { libc::fcntl(s, libc::F_SETFL, flags) };
    Attempt::Connected(s)
}

/// djb's two passes: with several addresses, pass 1 gives each `x` seconds and keeps
/// those that timed out for pass 2 with `y` seconds; a single address gets `x+y` at once.
/// Other failures are reported as they happen.
fn connect_any(msg: &Msg, c: &Config, ips: Vec<IpAddr>, port: u16) -> Option<i32> {
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
            if c.verbosity > 0 {
                let mut ipt = Vec::new();
                ucspi::env::ip_text(ip, &mut ipt);
                write_line(&[
                    b"tcpclient: unable to connect to ",
                    &ipt,
                    b" port ",
                    port.to_string().as_bytes(),
                    b": ",
                    ucspi::errstr::io_str(&e).as_bytes(),
                ]);
            }
        }
        todo = again;
    }
    None
}

fn peer_addr(fd: i32) -> io::Result<SocketAddr> {
    // SAFETY: an all-zero sockaddr_storage is a valid out-parameter.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getpeername into a buffer of the given size.
    check(unsafe {
        libc::getpeername(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })?;
    ucspi::sock::from_sockaddr(&ss).ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))
}

/// djb's tcpclient takes `dns_name4`'s answer as it is: no PTR record gives an empty
/// name (the variable set, but empty), only a failed lookup leaves it unset.
fn ptr_name(res: &ucspi::dns::Resolver, ip: IpAddr) -> Option<Vec<u8>> {
    match res.name_of(ip) {
        Ok(Some(n)) => Some(n),
        Ok(None) => Some(Vec::new()),
        Err(_) => None,
    }
}

/// Everything after option parsing; returns only through exec or exit.
pub fn run(c: &Config) -> ! {
    let msg = Msg {
        prog: "tcpclient",
        quiet: c.verbosity == 0,
    };
    let Some(port) = port_number(&c.port) else {
        msg.fatal(
            EXIT_TEMP,
            &[b"unable to figure out port number for ", &c.port],
        );
    };
    let ips = match client_addresses(&c.host, c.want) {
        Ok(v) => v,
        Err(LookupError::Temporary(e)) => msg.fatal_sys(
            EXIT_TEMP,
            &[b"temporarily unable to figure out IP address for ", &c.host],
            &e,
        ),
        Err(LookupError::NoAddress) => msg.fatal(EXIT_TEMP, &[b"no IP address for ", &c.host]),
    };
    let Some(s) = connect_any(&msg, c, ips, port) else {
        ucspi::msg::exit(EXIT_TEMP)
    };
    if c.nodelay {
        let _ = set_int(s, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
    }
    let local = local_addr(s)
        .unwrap_or_else(|e| msg.fatal_sys(EXIT_TEMP, &[b"unable to get local address"], &e));
    let res = ucspi::dns::Resolver::from_env();
    let local_host = match &c.local_name {
        Some(n) => Some(n.clone()),
        None => ptr_name(&res, local.ip()),
    };
    let remote = peer_addr(s)
        .unwrap_or_else(|e| msg.fatal_sys(EXIT_TEMP, &[b"unable to get remote address"], &e));
    if c.verbosity >= 2 {
        let mut ipt = Vec::new();
        ucspi::env::ip_text(remote.ip(), &mut ipt);
        write_line(&[
            b"tcpclient: connected to ",
            &ipt,
            b" port ",
            remote.port().to_string().as_bytes(),
        ]);
    }
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
    let mut env = Env::from_process();
    let mut scratch = Vec::new();
    set_tcp_vars(
        &mut env,
        &Connection {
            local,
            remote,
            local_host: local_host.as_deref(),
            remote_host: remote_host.as_deref(),
            remote_info: remote_info.as_deref(),
        },
        &mut scratch,
    );
    if let Err(e) = crate::fdio::fd_move(6, s) {
        msg.fatal_sys(EXIT_TEMP, &[b"unable to set up descriptor 6"], &e);
    }
    if let Err(e) = crate::fdio::fd_copy(7, 6) {
        msg.fatal_sys(EXIT_TEMP, &[b"unable to set up descriptor 7"], &e);
    }
    let e = crate::fdio::exec_with(&c.program[0], &c.program, &env);
    msg.fatal_sys(EXIT_TEMP, &[b"unable to run ", c.program[0].as_bytes()], &e)
}

/// main: close fds 6 and 7 (a stale one must not be taken for the socket), parse, run.
pub fn main_with(args: &[OsString]) -> ! {
    close(6);
    close(7);
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
