//! The per-connection child, top to bottom in djb's order: the `pid` line, IP options and
//! Nagle, (behind a load balancer, the PROXY header), banner, the names (local, remote
//! with the paranoid check, ident), the rule for the client, admission under the per-IP
//! limit, the `ok`/`deny` line, then the connection on fds 0 and 1, default signals and
//! an empty mask, and exec. The parent only counts each client's connections (and,
//! without a rules file, applies the same admission before it forks: see [`over_limit`]).
//!
//! A PROXY header is read only from a peer the admin trusts to send one: `-a` trusts
//! every peer, and otherwise the rule for the peer's address alone (before DNS and
//! ident, which would be the balancer's) must set `PROXY_PROTOCOL` to `v1`, `v2` or
//! `any`. From then on the header's addresses are the connection's: DNS, the rules,
//! `-C` and the variables are about the client; the balancer's own addresses go into
//! `PROXYREMOTEIP`, `PROXYREMOTEPORT`, `PROXYLOCALIP` and `PROXYLOCALPORT`.
//!
//! sslserver admits a client through the same steps; only what follows admission (the
//! TLS handshake and relay instead of exec) and the variables describing the connection
//! are its own: see [`Service`].

use std::borrow::Cow;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow};
use socket2::Socket;
use ucspi::addr::unmapped;
use ucspi::cdb::{Cdb, CdbFile};
use ucspi::dns::Resolver;
use ucspi::env::{set_tcp_vars, Connection, Env};
use ucspi::exec::{pathexec, CStrArray};
use ucspi::fmt::scan_ulong;
use ucspi::lookup::{items, lookup, split_setting, Client, Item};
use ucspi::msg::{Line, Msg, EXIT_TEMP, EXIT_USAGE};
use ucspi::proxy::{self, Accept, Header};

use crate::client_slots::ClientSlots;
use crate::options::{Config, Flavour};
use crate::rules_cache::{RulesCache, PROXY_SETTING};

/// How long a trusted peer may take to send its PROXY header (a balancer sends it at
/// once, in the connection's first segment).
pub const PROXY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a server does with a connection once the child has admitted it; tcpserver's is
/// [`Exec`]. Generic, so that tcpserver's path compiles to what it was before.
pub trait Service {
    /// Whether the connection's variables are set after the rule's settings (ucspi-ssl:
    /// they win) instead of before (djb: a rule may override them).
    const VARS_OVER_RULES: bool = false;

    /// In the parent, before each fork: bring what children share up to date.
    fn before_fork(&mut self) {}

    /// First thing in the child.
    fn in_child(&self, _c: &Config, _msg: &Msg) {}

    /// The variables describing the connection; `scratch` is room for their text.
    fn set_vars(
        &self,
        c: &Config,
        env: &mut Env,
        conn: &Connection<'_>,
        from_ip: u64,
        scratch: &mut Vec<u8>,
    );

    /// Serves the admitted connection with `env` (the changes to the server's own
    /// environment); never returns.
    fn serve(
        &self,
        c: &Config,
        msg: &Msg,
        shared: &Shared,
        conn: Socket,
        env: Env,
        who: &Admitted<'_>,
    ) -> !;
}

/// What the child learnt about an admitted client, for the service's log lines and
/// checks.
pub struct Admitted<'a> {
    /// This process's pid, as the `pid` and `ok` lines print it.
    pub pid: u64,
    pub remote_ip: &'a [u8],
    pub remote_host: Option<&'a [u8]>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// The client's connections, this one included: `TCPCONCURRENCY` when a per-IP limit
/// counts them, `TCPCONNNUM` (s6-tcpserver's name) whenever they are counted.
#[inline]
pub fn set_concurrency(c: &Config, env: &mut Env, from_ip: u64) {
    if c.counts_clients() {
        let mut buf = ucspi::fmt::itoa_buf();
        let n = ucspi::fmt::fmt_u64(&mut buf, from_ip);
        env.set(b"TCPCONNNUM", n);
        if c.per_ip > 0 {
            env.set(b"TCPCONCURRENCY", n);
        }
    }
}

/// How the child learns how many connections its client has.
pub struct Count<'a> {
    /// As the parent counted them at accept, this one included (1 when not counted).
    pub from_ip: u64,
    /// Whether a PROXY header may come: `-a`, or a rule may trust the peer.
    pub proxy: bool,
    /// Under `proxy`: this child's slot in the table of client addresses, where it
    /// counts its client instead of the parent.
    pub slot: Option<(&'a ClientSlots, u32)>,
}

/// tcpserver's service: the program runs on the connection itself.
pub struct Exec;

impl Service for Exec {
    #[inline]
    fn in_child(&self, _c: &Config, _msg: &Msg) {
        crate::child_alloc::enter();
    }

    #[inline]
    fn set_vars(
        &self,
        c: &Config,
        env: &mut Env,
        conn: &Connection<'_>,
        from_ip: u64,
        scratch: &mut Vec<u8>,
    ) {
        set_tcp_vars(env, conn, scratch);
        set_concurrency(c, env, from_ip);
    }

    fn serve(
        &self,
        c: &Config,
        msg: &Msg,
        shared: &Shared,
        conn: Socket,
        env: Env,
        _: &Admitted<'_>,
    ) -> ! {
        run(c, msg, shared, conn, &env)
    }
}

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

/// A rules file that cannot be read: djb's warning and 111, or ucspi-ssl's `fatal: (110)
/// unable to read: FILE` and 110.
fn drop_rules(c: &Config, msg: &Msg, path: &std::path::Path, e: &io::Error) -> ! {
    use std::os::unix::ffi::OsStrExt;
    let name = path.as_os_str().as_bytes();
    match c.flavour {
        Flavour::Tcp => drop_conn(msg, &[b"unable to read ", name], e),
        Flavour::Ssl => {
            msg.fatal(EXIT_RULES, &[b"(110) unable to read: ", name]);
        }
    }
}

/// ucspi-ssl's exit code for a rules file it cannot read.
const EXIT_RULES: i32 = 110;

/// Serves one connection; never returns. `count` says how many connections the client
/// has, as the parent counted them at accept.
pub fn serve<S: Service>(
    c: &Config,
    msg: &Msg,
    svc: &S,
    shared: &Shared,
    conn: Socket,
    mut remote: SocketAddr,
    count: Count<'_>,
) -> ! {
    svc.in_child(c, msg);
    let verbose = c.verbosity >= 2;
    let pid = u64::from(nix::unistd::getpid().as_raw() as u32);
    let mut remote_ip = Vec::with_capacity(46);
    ucspi::addr::ip_text(remote.ip(), &mut remote_ip);
    if verbose {
        log_pid(msg, pid, &remote_ip);
    }
    socket_options(c, &conn, remote);
    let mut local = match conn.local_addr().map(|a| a.as_socket()) {
        Ok(Some(a)) => a,
        Ok(None) => drop_conn(
            msg,
            &[b"unable to get local address"],
            &io::Error::from_raw_os_error(libc::EAFNOSUPPORT),
        ),
        Err(e) => drop_conn(msg, &[b"unable to get local address"], &e),
    };
    let mut from_ip = count.from_ip;
    // The balancer's addresses, when a header named the client.
    let mut balancer = None;
    if count.proxy {
        let header = match proxy_trust(c, msg, shared, &remote_ip) {
            Some(accept) => {
                let deadline = Instant::now() + PROXY_TIMEOUT;
                match proxy::read_header(conn.as_fd(), accept, deadline) {
                    Ok(h) => h,
                    Err(e) => drop_proxy(msg, &remote_ip, e.what()),
                }
            }
            None if sends_header(&conn) => {
                drop_proxy(msg, &remote_ip, "sent by a peer not trusted to send one")
            }
            None => Header::Local(proxy::Version::V1),
        };
        if let Header::Proxied {
            source,
            destination,
            ..
        } = header
        {
            let peer = remote;
            balancer = Some((remote, local));
            remote = source;
            local = destination;
            remote_ip.clear();
            ucspi::addr::ip_text(remote.ip(), &mut remote_ip);
            if verbose {
                Line::new()
                    .push(msg.prog.as_bytes())
                    .push(b": proxy ")
                    .num(pid)
                    .push(b" ")
                    .push(&remote_ip)
                    .push(b":")
                    .num(remote.port().into())
                    .push(b" via ")
                    .ip(unmapped(peer.ip()))
                    .push(b":")
                    .num(peer.port().into())
                    .write();
            }
        }
        if let Some((slots, slot)) = count.slot {
            from_ip = slots.claim(slot, unmapped(remote.ip()));
        }
    }
    if !c.banner.is_empty() {
        // One write of the banner, as djb's.
        if let Err(e) = nix::unistd::write(&conn, &c.banner) {
            drop_conn(msg, &[b"unable to print banner"], &e.into());
        }
    }
    let by_ip = match &c.ip_rules {
        None => None,
        Some(path) => match ip_rule(c, path, &remote_ip) {
            Ok(r) => r,
            Err(e) => drop_rules(c, msg, path, &e),
        },
    };
    if let Some(rule) = by_ip.as_ref().filter(|r| r.deny) {
        // Denied by address: no lookups at all.
        let names = Names::unknown(c);
        if verbose {
            log_connection(msg, rule, pid, &names, local, remote, &remote_ip);
        }
        exit(EXIT_USAGE);
    }
    // No ident through a balancer: the client's identd could not reach us.
    let names = Names::look_up(c, &shared.resolver, local, remote, balancer.is_none());

    let mut env = Env::overlay();
    // Never freed: the process execs or exits.
    let mut scratch = Vec::with_capacity(64);
    let connection = names.connection(local, remote);
    if count.proxy {
        set_proxy_vars(&mut env, balancer, &mut scratch);
    }
    if !S::VARS_OVER_RULES {
        svc.set_vars(c, &mut env, &connection, from_ip, &mut scratch);
    }
    let cdb_bytes;
    let rule = match (by_ip, &c.rules) {
        (Some(rule), _) => rule,
        (None, None) => Rule::none(c),
        (None, Some(path)) => {
            cdb_bytes = match rules_cdb(c, shared, path) {
                Ok(b) => b,
                Err(e) => drop_rules(c, msg, path, &e),
            };
            let client = Client {
                ip: &remote_ip,
                host: names.remote_host.as_deref(),
                info: names.remote_info.as_deref(),
            };
            match Rule::find(c, cdb_bytes.as_ref().map(|b| b.cdb()).as_ref(), &client) {
                Ok(r) => r,
                Err(e) => drop_rules(c, msg, path, &e),
            }
        }
    };
    rule.apply(&mut env);
    if S::VARS_OVER_RULES {
        svc.set_vars(c, &mut env, &connection, from_ip, &mut scratch);
    }
    let mut rule = rule;
    if !rule.deny
        && (rule.none_allowed || over_limit(c, &conn, remote.ip(), from_ip, rule.max_per_ip, false))
    {
        if c.flavour == Flavour::Tcp {
            exit(EXIT_USAGE);
        }
        // ucspi-ssl reports a rule's MAXCONIP on the deny line.
        rule.deny = true;
        rule.over_limit = true;
    }
    if verbose {
        log_connection(msg, &rule, pid, &names, local, remote, &remote_ip);
    }
    if rule.deny {
        exit(EXIT_USAGE);
    }
    let who = Admitted {
        pid,
        remote_ip: &remote_ip,
        remote_host: names.remote_host.as_deref(),
        local,
        remote,
    };
    svc.serve(c, msg, shared, conn, env, &who)
}

/// Whether the parent can decide connections itself under `c`, so that a child only
/// execs ([`crate::clone_exec`]): tcpserver with nothing to look up or read from the
/// client first (`-H`, `-R`, `-l`, no `-B`, no `-a`).
pub fn parent_may_decide(c: &Config) -> bool {
    c.flavour == Flavour::Tcp
        && !c.remote_host
        && !c.remote_info
        && c.local_name.is_some()
        && !c.proxy_all
        && c.banner.is_empty()
        && c.ip_rules.is_none()
}

/// A connection the parent admitted: the child's changes to the environment, and what
/// the `pid` and `ok` lines print.
pub struct Decided {
    pub env: Env,
    remote_ip: Vec<u8>,
    local: SocketAddr,
    remote: SocketAddr,
}

/// The steps of [`serve`] for a connection under [`parent_may_decide`], taken in the
/// parent; `None` when a child must take them after all, as it reports what it finds:
/// a rules file the parent does not hold or cannot read, a rule that may trust a PROXY
/// header, a deny, a client over its limit, an unknown local address.
pub fn decide(
    c: &Config,
    shared: &Shared,
    conn: &Socket,
    remote: SocketAddr,
    from_ip: u64,
) -> Option<Decided> {
    let cdb = match &c.rules {
        None => None,
        Some(_) if shared.rules.may_trust_proxy() => return None,
        Some(_) => Some(Cdb::new(shared.rules.bytes()?)),
    };
    let local = conn.local_addr().ok()?.as_socket()?;
    socket_options(c, conn, remote);
    let mut remote_ip = Vec::with_capacity(46);
    ucspi::addr::ip_text(remote.ip(), &mut remote_ip);
    let client = Client {
        ip: &remote_ip,
        host: None,
        info: None,
    };
    let rule = Rule::find(c, cdb.as_ref(), &client).ok()?;
    if rule.deny || (rule.max_per_ip > 0 && from_ip > rule.max_per_ip) {
        return None;
    }
    let mut env = Env::overlay();
    let mut scratch = Vec::with_capacity(64);
    let names = Names::unknown(c);
    Exec.set_vars(
        c,
        &mut env,
        &names.connection(local, remote),
        from_ip,
        &mut scratch,
    );
    rule.apply(&mut env);
    Some(Decided {
        env,
        remote_ip,
        local,
        remote,
    })
}

/// The `pid` and `ok` lines of a child started by the parent, which prints them for it.
pub fn log_decided(c: &Config, msg: &Msg, d: &Decided, pid: u64) {
    log_pid(msg, pid, &d.remote_ip);
    let names = Names::unknown(c);
    log_connection(
        msg,
        &Rule::none(c),
        pid,
        &names,
        d.local,
        d.remote,
        &d.remote_ip,
    );
}

/// Which PROXY headers the peer at `peer_ip` may send (`None`: none): all under `-a`;
/// else as its rule by address alone sets `PROXY_PROTOCOL` (`v1`, `v2`, `any`; empty,
/// `0`, `no` or `off`: none). A rules file that cannot be read, or a value that means
/// nothing, drops the connection.
fn proxy_trust(c: &Config, msg: &Msg, shared: &Shared, peer_ip: &[u8]) -> Option<Accept> {
    if c.proxy_all {
        return Some(Accept::Any);
    }
    let path = c.rules.as_deref()?;
    let bytes = rules_cdb(c, shared, path).unwrap_or_else(|e| drop_rules(c, msg, path, &e))?;
    let client = Client {
        ip: peer_ip,
        host: None,
        info: None,
    };
    let cdb = bytes.cdb();
    let mut key = Vec::with_capacity(64);
    let data = lookup(&cdb, &client, &mut key)
        .unwrap_or_else(|e| drop_rules(c, msg, path, &e))
        .unwrap_or_default();
    let mut trust = None;
    for item in items(data) {
        if let Item::Set(s) = item {
            if let Some((PROXY_SETTING, value)) = split_setting(s) {
                trust = match value {
                    b"v1" => Some(Accept::V1),
                    b"v2" => Some(Accept::V2),
                    b"any" => Some(Accept::Any),
                    b"" | b"0" | b"no" | b"off" => None,
                    _ => drop_proxy(msg, peer_ip, "trusted by a rule with a bad PROXY_PROTOCOL"),
                };
            }
        }
    }
    trust
}

/// Whether an untrusted peer's first bytes, already here, begin with a whole PROXY
/// signature: such a connection is dropped rather than handing the program a header it
/// would take for data. Looks without waiting, so a client that waits for the server
/// costs nothing.
fn sends_header(conn: &Socket) -> bool {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 16];
    match conn.recv_with_flags(&mut buf, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
        Ok(n) if n > 0 => {
            // SAFETY: recv initialised the first n bytes (n <= buf's length).
            let got = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
            proxy::starts_with_signature(got)
        }
        _ => false,
    }
}

/// A PROXY header refused: a warning naming the peer and why, and no program.
fn drop_proxy(msg: &Msg, peer_ip: &[u8], why: &str) -> ! {
    msg.warn(&[
        b"dropping connection, PROXY header from ",
        peer_ip,
        b": ",
        why.as_bytes(),
    ]);
    exit(EXIT_USAGE)
}

/// The balancer's addresses, when a PROXY header named the client; removed otherwise,
/// so that a value from the server's own environment never passes for one.
fn set_proxy_vars(
    env: &mut Env,
    balancer: Option<(SocketAddr, SocketAddr)>,
    scratch: &mut Vec<u8>,
) {
    let Some((remote, local)) = balancer else {
        for name in [
            &b"PROXYREMOTEIP"[..],
            b"PROXYREMOTEPORT",
            b"PROXYLOCALIP",
            b"PROXYLOCALPORT",
        ] {
            env.unset(name);
        }
        return;
    };
    let mut port = ucspi::fmt::itoa_buf();
    for (ip_name, port_name, addr) in [
        (&b"PROXYREMOTEIP"[..], &b"PROXYREMOTEPORT"[..], remote),
        (b"PROXYLOCALIP", b"PROXYLOCALPORT", local),
    ] {
        scratch.clear();
        ucspi::addr::ip_text(unmapped(addr.ip()), scratch);
        env.set(ip_name, scratch);
        env.set(
            port_name,
            ucspi::fmt::fmt_u64(&mut port, u64::from(addr.port())),
        );
    }
}

/// The rules cdb's bytes: the parent's copy, or the file opened here (`None`: no file,
/// and `-X` allows that).
fn rules_cdb<'s>(
    c: &Config,
    shared: &'s Shared,
    path: &std::path::Path,
) -> io::Result<Option<RulesBytes<'s>>> {
    if let Some(b) = shared.rules.bytes() {
        return Ok(Some(RulesBytes::Shared(b)));
    }
    match CdbFile::open(path) {
        Ok(f) => Ok(Some(RulesBytes::Opened(f))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && c.allow_no_rules => Ok(None),
        Err(e) => Err(e),
    }
}

/// A rules cdb as the child reads it.
enum RulesBytes<'s> {
    Shared(&'s [u8]),
    Opened(CdbFile),
}

impl RulesBytes<'_> {
    fn cdb(&self) -> Cdb<'_> {
        match self {
            RulesBytes::Shared(b) => Cdb::new(b),
            RulesBytes::Opened(f) => f.cdb(),
        }
    }
}

/// sslserver's `-y`: the rule for the client's address alone (`None`: no file under
/// `-X`, or no match).
fn ip_rule(
    c: &Config,
    path: &std::path::Path,
    remote_ip: &[u8],
) -> io::Result<Option<Rule<'static>>> {
    let f = match CdbFile::open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && c.allow_no_rules => return Ok(None),
        Err(e) => return Err(e),
    };
    let client = Client {
        ip: remote_ip,
        host: None,
        info: None,
    };
    let cdb = f.cdb();
    let mut key = Vec::with_capacity(64);
    let Some(data) = lookup(&cdb, &client, &mut key)? else {
        return Ok(None);
    };
    // The data outlives the mapping: copy it (a rule is a few bytes).
    Ok(Some(Rule::from_data(c, Cow::Owned(data.to_vec()))))
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
    #[inline]
    fn look_up(
        c: &'c Config,
        res: &Resolver,
        local: SocketAddr,
        remote: SocketAddr,
        ident: bool,
    ) -> Self {
        // The identd's round trip runs while the names are looked up (djb's asks it
        // last); `finish` still gives it the whole `-t` from there.
        let ident = if c.remote_info && ident {
            ucspi::ident::start(local, remote, Duration::from_secs(c.timeout))
        } else {
            None
        };
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
        let remote_info = ident.and_then(ucspi::ident::Started::finish);
        Names {
            local_host,
            remote_host,
            remote_info,
        }
    }

    /// Nothing looked up: only `-l`'s name.
    fn unknown(c: &'c Config) -> Self {
        Names {
            local_host: c.local_name.as_deref().map(Cow::Borrowed),
            remote_host: None,
            remote_info: None,
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
    /// Denied for being over its per-IP limit (said so on ucspi-ssl's deny line).
    over_limit: bool,
    max_per_ip: u64,
    /// ucspi-ssl: a rule's `MAXCONIP=0` admits no one (only `-c`'s and the environment's 0
    /// mean no limit).
    none_allowed: bool,
    data: Cow<'r, [u8]>,
}

impl<'r> Rule<'r> {
    /// No rules file: djb's allow with nothing set.
    fn none(c: &Config) -> Rule<'r> {
        Rule {
            deny: false,
            over_limit: false,
            max_per_ip: c.per_ip,
            none_allowed: false,
            data: Cow::Borrowed(b""),
        }
    }

    /// The rule of a cdb record's data.
    fn from_data(c: &Config, data: Cow<'r, [u8]>) -> Rule<'r> {
        let mut rule = Rule {
            data,
            ..Rule::none(c)
        };
        for item in items(&rule.data) {
            match item {
                Item::Deny => rule.deny = true,
                Item::Set(s) => {
                    if let Some((b"MAXCONIP", value)) = split_setting(s) {
                        rule.max_per_ip = scan_ulong(value).0;
                        if c.flavour == Flavour::Ssl {
                            // ucspi-ssl: a rule cannot raise it above `-c`.
                            if c.limit > 0 {
                                rule.max_per_ip = rule.max_per_ip.min(c.limit);
                            }
                            rule.none_allowed = rule.max_per_ip == 0;
                        }
                    }
                }
            }
        }
        rule
    }

    /// The first matching rule of `cdb` in djb's lookup order; no rules file or no match
    /// is djb's allow with nothing set.
    fn find(c: &Config, cdb: Option<&Cdb<'r>>, client: &Client<'_>) -> io::Result<Rule<'r>> {
        let Some(cdb) = cdb else {
            return Ok(Rule::none(c));
        };
        let mut key = Vec::with_capacity(64);
        let data = lookup(cdb, client, &mut key)?.unwrap_or_default();
        Ok(Rule::from_data(c, Cow::Borrowed(data)))
    }

    /// The rule's `NAME=value` settings into `env`, in file order (a setting without `=`
    /// is skipped, as djb's does).
    fn apply(&self, env: &mut Env) {
        for item in items(&self.data) {
            if let Item::Set(s) = item {
                if let Some((name, value)) = split_setting(s) {
                    env.set(name, value);
                }
            }
        }
    }
}

/// Admission under the per-IP limit: a client that would hold more than `max`
/// connections (0: no limit) gets the `-C` message, and a `limit` line is logged (ucspi-
/// ssl's warning, in the parent; a rule's limit goes on its deny line); true when it is
/// refused.
///
/// The parent also applies it at accept when there is no rules file, since then nothing
/// the child learns can change the verdict: an over-limit client then costs no fork, and
/// a flood from one address takes no slot of the `-c` limit.
pub fn over_limit(
    c: &Config,
    conn: &Socket,
    ip: IpAddr,
    from_ip: u64,
    max: u64,
    in_parent: bool,
) -> bool {
    if max == 0 || from_ip <= max {
        return false;
    }
    if !c.per_ip_msg.is_empty() {
        let mut m = c.per_ip_msg.clone();
        m.extend_from_slice(b"\r\n");
        let _ = conn.send_with_flags(&m, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
    }
    match c.flavour {
        Flavour::Tcp if c.verbosity >= 2 => {
            Line::new()
                .push(b"tcpserver: limit from ")
                .ip(unmapped(ip))
                .push(b" ")
                .num(from_ip - 1)
                .push(b"/")
                .num(max)
                .write();
        }
        Flavour::Ssl if c.verbosity >= 1 && in_parent => {
            Line::new()
                .push(b"sslserver: warning: ip connection limit of ")
                .num(max)
                .push(b" exceeded for: ")
                .ip(unmapped(ip))
                .write();
        }
        _ => {}
    }
    true
}

/// djb's `pid` line: `pid PID from REMOTEIP`.
fn log_pid(msg: &Msg, pid: u64, remote_ip: &[u8]) {
    Line::new()
        .push(msg.prog.as_bytes())
        .push(b": pid ")
        .num(pid)
        .push(b" from ")
        .push(remote_ip)
        .write();
}

/// djb's `ok`/`deny` line: `ok PID LOCALHOST:LOCALIP:LOCALPORT REMOTEHOST:REMOTEIP:INFO:PORT`
/// (ucspi-ssl adds why a rule's per-IP limit denied).
fn log_connection(
    msg: &Msg,
    rule: &Rule<'_>,
    pid: u64,
    names: &Names<'_>,
    local: SocketAddr,
    remote: SocketAddr,
    remote_ip: &[u8],
) {
    let mut local_ip = Vec::with_capacity(46);
    ucspi::addr::ip_text(local.ip(), &mut local_ip);
    let mut l = Line::new();
    l.push(msg.prog.as_bytes())
        .push(if rule.deny { b": deny " } else { b": ok " });
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
    if rule.over_limit {
        l.push(b" ip connection limit:")
            .num(rule.max_per_ip)
            .push(b" exceeded");
    }
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
    for sig in crate::server::CHANGED_SIGNALS {
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
