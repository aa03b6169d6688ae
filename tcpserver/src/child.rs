//! The per-connection child, in djb's order: `pid` line, IP options and Nagle, banner,
//! local address and name, remote name (paranoid check), ident, rules, `ok`/`deny` line,
//! then the socket on fd 0 and 1, default signals and an empty mask, and exec.

use std::ffi::OsStr;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::raw::c_char;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use ucspi::cdb::{Cdb, CdbFile};
use ucspi::dns::Resolver;
use ucspi::env::{fmt_u64, ip_text, itoa_buf, sanitize_field, set_tcp_vars, Connection, Env};
use ucspi::getopt::scan_ulong;
use ucspi::lookup::{items, lookup, split_setting, Client, Item};
use ucspi::msg::{write_line, Msg, EXIT_TEMP, EXIT_USAGE};
use ucspi::sock::{local_addr, set_int};

use crate::options::Config;
use crate::rules_cache::RulesCache;

/// What the parent prepares once for all children.
pub struct Shared {
    pub env: Env,
    pub path: Option<Vec<u8>>,
    pub resolver: Resolver,
    pub rules: RulesCache,
}

fn exit(code: i32) -> ! {
    // SAFETY: leaving the child without running anything of the parent's.
    unsafe { libc::_exit(code) }
}

fn drop_conn(msg: &Msg, parts: &[&[u8]], e: &io::Error) -> ! {
    let mut all: Vec<&[u8]> = vec![b"dropping connection, "];
    all.extend_from_slice(parts);
    msg.warn_sys(&all, e);
    exit(EXIT_TEMP)
}

/// The unmapped address (a v4-mapped IPv6 peer as its IPv4 address).
fn plain(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Tells a client over the per-IP limit (if there is a message), and logs it.
pub fn refuse_over_limit(c: &Config, t: i32, ip: IpAddr, have: u64, max: u64) {
    if !c.per_ip_msg.is_empty() {
        let mut m = c.per_ip_msg.clone();
        m.extend_from_slice(b"\r\n");
        // SAFETY: a non-blocking send of a live buffer on the connection.
        unsafe {
            libc::send(
                t,
                m.as_ptr().cast(),
                m.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
    }
    if c.verbosity >= 2 {
        let mut ipt = Vec::new();
        ip_text(ip, &mut ipt);
        let (mut a, mut b) = (itoa_buf(), itoa_buf());
        write_line(&[
            b"tcpserver: limit from ",
            &ipt,
            b" ",
            fmt_u64(&mut a, have),
            b"/",
            fmt_u64(&mut b, max),
        ]);
    }
}

/// An address field of the `ok`/`deny` line: djb's sanitising for IPv4; an IPv6 address
/// (our own formatting, hex digits and colons only) keeps its colons, as ucspi-tcp6 and
/// fefe's patch print it.
fn ip_field(line: &mut Vec<u8>, ip: &[u8]) {
    if ip.contains(&b':') {
        line.extend_from_slice(ip);
    } else {
        sanitize_field(line, ip);
    }
}

/// Serves one connection on fd `t`; never returns. `from_ip` counts this client's
/// connections including this one.
pub fn serve(
    c: &Config,
    msg: &Msg,
    shared: &Shared,
    t: i32,
    remote: SocketAddr,
    from_ip: u64,
) -> ! {
    let verbose = c.verbosity >= 2;
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() } as u64;
    let mut pidbuf = itoa_buf();
    let pidtext = fmt_u64(&mut pidbuf, pid).to_vec();
    let mut remote_ip = Vec::with_capacity(46);
    ip_text(remote.ip(), &mut remote_ip);
    if verbose {
        write_line(&[b"tcpserver: pid ", &pidtext, b" from ", &remote_ip]);
    }
    let v4_socket = matches!(remote, SocketAddr::V4(_));
    if c.kill_ip_options && v4_socket {
        // SAFETY: clearing IP options: a NULL value of length 0, as djb's ipoptionskill.
        unsafe { libc::setsockopt(t, libc::IPPROTO_IP, libc::IP_OPTIONS, std::ptr::null(), 0) };
    }
    if c.nodelay {
        let _ = set_int(t, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
    }
    if !c.banner.is_empty() {
        // SAFETY: one write of the banner, as djb's.
        let n = unsafe { libc::write(t, c.banner.as_ptr().cast(), c.banner.len()) };
        if n < 0 {
            drop_conn(
                msg,
                &[b"unable to print banner"],
                &io::Error::last_os_error(),
            );
        }
    }
    let local = match local_addr(t) {
        Ok(a) => a,
        Err(e) => drop_conn(msg, &[b"unable to get local address"], &e),
    };
    let res = &shared.resolver;
    let local_host: Option<Vec<u8>> = match &c.local_name {
        Some(n) => Some(n.clone()),
        None => res.name_of(plain(local.ip())).ok().flatten(),
    };
    let remote_host: Option<Vec<u8>> = if c.remote_host {
        match res.name_of(plain(remote.ip())).ok().flatten() {
            Some(name) if c.paranoid && !res.has_address(&name, plain(remote.ip())) => None,
            other => other,
        }
    } else {
        None
    };
    let remote_info = if c.remote_info {
        ucspi::ident::query(local, remote, Duration::from_secs(c.timeout))
    } else {
        None
    };

    let mut env = Env::overlay();
    let mut scratch = Vec::with_capacity(64);
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
    if c.per_ip > 0 {
        let mut b = itoa_buf();
        env.set(b"TCPCONCURRENCY", fmt_u64(&mut b, from_ip));
    }

    let mut deny = false;
    let mut max_per_ip = c.per_ip;
    if let Some(rules) = &c.rules {
        let opened;
        let cdb = match shared.rules.bytes() {
            Some(b) => Some(Cdb::new(b)),
            None => match CdbFile::open(Path::new(OsStr::from_bytes(rules.to_bytes()))) {
                Ok(f) => {
                    opened = f;
                    Some(opened.cdb())
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && c.allow_no_rules => None,
                Err(e) => drop_conn(msg, &[b"unable to read ", rules.to_bytes()], &e),
            },
        };
        if let Some(cdb) = cdb {
            let mut key = Vec::with_capacity(64);
            let client = Client {
                ip: &remote_ip,
                host: remote_host.as_deref(),
                info: remote_info.as_deref(),
            };
            match lookup(&cdb, &client, &mut key) {
                Ok(Some(data)) => {
                    for item in items(data) {
                        match item {
                            Item::Deny => deny = true,
                            Item::Set(s) => {
                                if let Some((name, value)) = split_setting(s) {
                                    if name == b"MAXCONIP" {
                                        max_per_ip = scan_ulong(value).0;
                                    }
                                    env.set(name, value);
                                }
                            }
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => drop_conn(msg, &[b"unable to read ", rules.to_bytes()], &e),
            }
        }
    }

    if !deny && max_per_ip > 0 && from_ip > max_per_ip {
        refuse_over_limit(c, t, plain(remote.ip()), from_ip - 1, max_per_ip);
        exit(EXIT_USAGE);
    }

    if verbose {
        let mut line = Vec::with_capacity(256);
        line.extend_from_slice(b"tcpserver: ");
        line.extend_from_slice(if deny { b"deny " } else { b"ok " });
        sanitize_field(&mut line, &pidtext);
        line.push(b' ');
        if let Some(h) = &local_host {
            sanitize_field(&mut line, h);
        }
        line.push(b':');
        scratch.clear();
        ip_text(local.ip(), &mut scratch);
        ip_field(&mut line, &scratch);
        line.push(b':');
        let mut pb = itoa_buf();
        sanitize_field(&mut line, fmt_u64(&mut pb, u64::from(local.port())));
        line.push(b' ');
        if let Some(h) = &remote_host {
            sanitize_field(&mut line, h);
        }
        line.push(b':');
        ip_field(&mut line, &remote_ip);
        line.push(b':');
        if let Some(i) = &remote_info {
            sanitize_field(&mut line, i);
        }
        line.push(b':');
        sanitize_field(&mut line, fmt_u64(&mut pb, u64::from(remote.port())));
        write_line(&[&line]);
    }
    if deny {
        exit(EXIT_USAGE);
    }

    // SAFETY: moving the connection to fds 0 and 1 and restoring the signal state the
    // program expects: default dispositions for what the server changed, empty mask.
    unsafe {
        if t != 0 {
            if libc::dup2(t, 0) < 0 {
                drop_conn(
                    msg,
                    &[b"unable to set up descriptors"],
                    &io::Error::last_os_error(),
                );
            }
            libc::close(t);
        }
        // accept4 gave the socket close-on-exec; fd 0 must survive the exec.
        libc::fcntl(0, libc::F_SETFD, 0);
        if libc::dup2(0, 1) < 0 {
            drop_conn(
                msg,
                &[b"unable to set up descriptors"],
                &io::Error::last_os_error(),
            );
        }
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        libc::sigprocmask(libc::SIG_SETMASK, &s, std::ptr::null_mut());
    }
    let mut argv: Vec<*const c_char> = c.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envp = shared.env.envp_with(&env);
    let prog = c.argv[0].to_bytes();
    // SAFETY: argv and envp are NULL-terminated arrays of NUL-terminated strings that
    // live until the call returns.
    let e = unsafe { ucspi::env::pathexec(prog, &argv, &envp, shared.path.as_deref()) };
    drop_conn(msg, &[b"unable to run ", prog], &e)
}
