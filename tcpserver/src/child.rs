//! The per-connection child, top to bottom in djb's order: the `pid` line, IP options and
//! Nagle, banner, the names (local, remote with the paranoid check, ident), the rule for
//! the client, admission under the per-IP limit, the `ok`/`deny` line, then the
//! connection on fds 0 and 1, default signals and an empty mask, and exec. The parent
//! only counts each client's connections (and, without a rules file, applies the same
//! admission before it forks: see [`over_limit`]).

use std::borrow::Cow;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use socket2::Socket;
use ucspi::addr::unmapped;
use ucspi::cdb::{Cdb, CdbFile};
use ucspi::dns::Resolver;
use ucspi::env::{set_tcp_vars, Connection, Env};
use ucspi::exec::{pathexec, CStrArray};
use ucspi::fmt::scan_ulong;
use ucspi::lookup::{items, lookup, split_setting, Client, Item};
use ucspi::msg::{Line, Msg, EXIT_TEMP, EXIT_USAGE};

use crate::options::Config;
use crate::rules_cache::RulesCache;

/// What the parent prepares once for all children.
pub struct Shared {
    pub env: Env,
    pub path: Option<Vec<u8>>,
    pub resolver: Resolver,
    pub rules: RulesCache,
}

impl Shared {
    pub fn from_process() -> Shared {
        Shared {
            env: Env::from_process(),
            path: std::env::var_os("PATH")
                .map(|p| std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec()),
            resolver: Resolver::from_env(),
            rules: RulesCache::default(),
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the child without exit(3)'s atexit handlers and buffer flushes,
    // which belong to the parent's state; nix has no wrapper for it.
    unsafe { libc::_exit(code) }
}

fn drop_conn(msg: &Msg, parts: &[&[u8]], e: &io::Error) -> ! {
    let mut all: Vec<&[u8]> = vec![b"dropping connection, "];
    all.extend_from_slice(parts);
    msg.warn_sys(&all, e);
    exit(EXIT_TEMP)
}

/// Serves one connection; never returns. `from_ip` counts this client's connections,
/// this one included, as the parent counted them at accept.
pub fn serve(
    c: &Config,
    msg: &Msg,
    shared: &Shared,
    conn: Socket,
    remote: SocketAddr,
    from_ip: u64,
) -> ! {
    let verbose = c.verbosity >= 2;
    let pid = u64::from(nix::unistd::getpid().as_raw() as u32);
    let mut remote_ip = Vec::with_capacity(46);
    ucspi::addr::ip_text(remote.ip(), &mut remote_ip);
    if verbose {
        Line::new()
            .push(b"tcpserver: pid ")
            .num(pid)
            .push(b" from ")
            .push(&remote_ip)
            .write();
    }
    socket_options(c, &conn, remote);
    if !c.banner.is_empty() {
        // One write of the banner, as djb's.
        if let Err(e) = nix::unistd::write(&conn, &c.banner) {
            drop_conn(msg, &[b"unable to print banner"], &e.into());
        }
    }
    let local = match conn.local_addr().map(|a| a.as_socket()) {
        Ok(Some(a)) => a,
        Ok(None) => drop_conn(
            msg,
            &[b"unable to get local address"],
            &io::Error::from_raw_os_error(libc::EAFNOSUPPORT),
        ),
        Err(e) => drop_conn(msg, &[b"unable to get local address"], &e),
    };
    let names = Names::look_up(c, &shared.resolver, local, remote);

    let mut env = Env::overlay();
    let mut scratch = Vec::with_capacity(64);
    set_tcp_vars(&mut env, &names.connection(local, remote), &mut scratch);
    if c.per_ip > 0 {
        env.set(
            b"TCPCONCURRENCY",
            ucspi::fmt::fmt_u64(&mut ucspi::fmt::itoa_buf(), from_ip),
        );
    }
    let opened;
    let cdb = match &c.rules {
        None => None,
        Some(path) => match shared.rules.bytes() {
            Some(b) => Some(Cdb::new(b)),
            None => match CdbFile::open(path) {
                Ok(f) => {
                    opened = f;
                    Some(opened.cdb())
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && c.allow_no_rules => None,
                Err(e) => drop_conn(msg, &[b"unable to read ", rules_name(c)], &e),
            },
        },
    };
    let client = Client {
        ip: &remote_ip,
        host: names.remote_host.as_deref(),
        info: names.remote_info.as_deref(),
    };
    let rule = match Rule::find(c, cdb.as_ref(), &client) {
        Ok(r) => r,
        Err(e) => drop_conn(msg, &[b"unable to read ", rules_name(c)], &e),
    };
    rule.apply(&mut env);
    if !rule.deny && over_limit(c, &conn, remote.ip(), from_ip, rule.max_per_ip) {
        exit(EXIT_USAGE);
    }
    if verbose {
        log_connection(rule.deny, pid, &names, local, remote, &remote_ip);
    }
    if rule.deny {
        exit(EXIT_USAGE);
    }
    run(c, msg, shared, conn, &env)
}

/// The rules file's name as the warnings quote it.
fn rules_name(c: &Config) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    c.rules.as_deref().map_or(b"", |p| p.as_os_str().as_bytes())
}

/// djb's `ipoptionskill` (source routes a client set must not steer our replies) and
/// `-D`'s TCP_NODELAY.
fn socket_options(c: &Config, conn: &Socket, remote: SocketAddr) {
    if c.kill_ip_options && remote.is_ipv4() {
        // SAFETY: IP_OPTIONS with a NULL value of length 0 clears the options; socket2 has
        // no call for it.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(conn),
                libc::IPPROTO_IP,
                libc::IP_OPTIONS,
                std::ptr::null(),
                0,
            )
        };
    }
    if c.nodelay {
        let _ = conn.set_tcp_nodelay(true);
    }
}

/// What the child learns about both ends: `TCPLOCALHOST`, `TCPREMOTEHOST` (checked
/// forward under `-p`), `TCPREMOTEINFO`.
struct Names<'c> {
    local_host: Option<Cow<'c, [u8]>>,
    remote_host: Option<Vec<u8>>,
    remote_info: Option<Vec<u8>>,
}

impl<'c> Names<'c> {
    fn look_up(c: &'c Config, res: &Resolver, local: SocketAddr, remote: SocketAddr) -> Self {
        let local_host = match &c.local_name {
            Some(n) => Some(Cow::Borrowed(&n[..])),
            None => res
                .name_of(unmapped(local.ip()))
                .ok()
                .flatten()
                .map(Cow::Owned),
        };
        let peer = unmapped(remote.ip());
        let remote_host = if c.remote_host {
            match res.name_of(peer).ok().flatten() {
                Some(name) if c.paranoid && !res.has_address(&name, peer) => None,
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
        Names {
            local_host,
            remote_host,
            remote_info,
        }
    }

    fn connection(&self, local: SocketAddr, remote: SocketAddr) -> Connection<'_> {
        Connection {
            local,
            remote,
            local_host: self.local_host.as_deref(),
            remote_host: self.remote_host.as_deref(),
            remote_info: self.remote_info.as_deref(),
        }
    }
}

/// What the rules say about the client: deny, its per-IP limit (`-C`, unless the rule
/// sets `MAXCONIP`), and the rule's settings for the environment.
struct Rule<'r> {
    deny: bool,
    max_per_ip: u64,
    data: &'r [u8],
}

impl<'r> Rule<'r> {
    /// The first matching rule of `cdb` in djb's lookup order; no rules file or no match
    /// is djb's allow with nothing set.
    fn find(c: &Config, cdb: Option<&Cdb<'r>>, client: &Client<'_>) -> io::Result<Rule<'r>> {
        let mut rule = Rule {
            deny: false,
            max_per_ip: c.per_ip,
            data: b"",
        };
        let Some(cdb) = cdb else {
            return Ok(rule);
        };
        let mut key = Vec::with_capacity(64);
        rule.data = lookup(cdb, client, &mut key)?.unwrap_or_default();
        for item in items(rule.data) {
            match item {
                Item::Deny => rule.deny = true,
                Item::Set(s) => {
                    if let Some((b"MAXCONIP", value)) = split_setting(s) {
                        rule.max_per_ip = scan_ulong(value).0;
                    }
                }
            }
        }
        Ok(rule)
    }

    /// The rule's `NAME=value` settings into `env`, in file order (a setting without `=`
    /// is skipped, as djb's does).
    fn apply(&self, env: &mut Env) {
        for item in items(self.data) {
            if let Item::Set(s) = item {
                if let Some((name, value)) = split_setting(s) {
                    env.set(name, value);
                }
            }
        }
    }
}

/// Admission under the per-IP limit: a client that would hold more than `max`
/// connections (0: no limit) gets the `-C` message, and a `limit` line is logged; true
/// when it is refused.
///
/// The parent also applies it at accept when there is no rules file, since then nothing
/// the child learns can change the verdict: an over-limit client then costs no fork, and
/// a flood from one address takes no slot of the `-c` limit.
pub fn over_limit(c: &Config, conn: &Socket, ip: IpAddr, from_ip: u64, max: u64) -> bool {
    if max == 0 || from_ip <= max {
        return false;
    }
    if !c.per_ip_msg.is_empty() {
        let mut m = c.per_ip_msg.clone();
        m.extend_from_slice(b"\r\n");
        let _ = conn.send_with_flags(&m, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
    }
    if c.verbosity >= 2 {
        Line::new()
            .push(b"tcpserver: limit from ")
            .ip(unmapped(ip))
            .push(b" ")
            .num(from_ip - 1)
            .push(b"/")
            .num(max)
            .write();
    }
    true
}

/// djb's `ok`/`deny` line: `ok PID LOCALHOST:LOCALIP:LOCALPORT REMOTEHOST:REMOTEIP:INFO:PORT`.
fn log_connection(
    deny: bool,
    pid: u64,
    names: &Names<'_>,
    local: SocketAddr,
    remote: SocketAddr,
    remote_ip: &[u8],
) {
    let mut local_ip = Vec::with_capacity(46);
    ucspi::addr::ip_text(local.ip(), &mut local_ip);
    let mut l = Line::new();
    l.push(if deny {
        b"tcpserver: deny "
    } else {
        b"tcpserver: ok "
    });
    l.num(pid).push(b" ");
    l.field(names.local_host.as_deref().unwrap_or_default());
    l.push(b":");
    ip_field(&mut l, &local_ip)
        .push(b":")
        .num(local.port().into());
    l.push(b" ");
    l.field(names.remote_host.as_deref().unwrap_or_default());
    l.push(b":");
    ip_field(&mut l, remote_ip).push(b":");
    l.field(names.remote_info.as_deref().unwrap_or_default());
    l.push(b":").num(remote.port().into());
    l.write();
}

/// An address field of the `ok`/`deny` line: djb's sanitising for IPv4; an IPv6 address
/// (our own formatting, hex digits and colons only) keeps its colons, as ucspi-tcp6 and
/// fefe's patch print it.
fn ip_field<'l>(line: &'l mut Line, ip: &[u8]) -> &'l mut Line {
    if ip.contains(&b':') {
        line.push(ip)
    } else {
        line.field(ip)
    }
}

/// The connection on fds 0 and 1, the signal state a program expects (default
/// dispositions for what the server changed, an empty mask), and exec.
fn run(c: &Config, msg: &Msg, shared: &Shared, conn: Socket, env: &Env) -> ! {
    let fds = ucspi::fd::move_to(0, conn.into()).and_then(|zero| ucspi::fd::copy_to(1, zero));
    if let Err(e) = fds {
        drop_conn(msg, &[b"unable to set up descriptors"], &e);
    }
    for sig in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGPIPE] {
        // SAFETY: a default disposition installs no handler.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let argv = CStrArray::of(&c.argv);
    let envp = shared.env.envp_with(env);
    let prog = c.argv[0].to_bytes();
    let e = pathexec(prog, &argv, &envp, shared.path.as_deref());
    drop_conn(msg, &[b"unable to run ", prog], &e)
}
