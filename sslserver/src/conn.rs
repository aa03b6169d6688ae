//! One connection of sslserver once tcpserver's admission (names, rules, limits, the `ok`
//! line) let it in, top to bottom:
//!
//! 1. the program's two pipes and the control socket;
//! 2. when the program must run before TLS (`-n`) or under other ids than the relay
//!    (`SSL_UID`, `SSL_GID`, `SSL_CHROOT`: this process still has root to give them), it
//!    is forked now: under `-n` it runs at once on the plain connection and asks for TLS
//!    on the control socket (UCSPI-TLS); otherwise it waits for the handshake's outcome
//!    and the `SSL_*` variables on that socket, so a failed handshake never runs it;
//! 3. this process, the relay, takes the ids it runs under and becomes undumpable (the
//!    program may run as the same user; it must not read the key from our memory);
//! 4. under `-n`, the program's command: `y`, or `Y` for the variables back;
//! 5. the handshake within `-T`; a client certificate checked (`-m`, `-z`);
//! 6. the variables to the program, or, in the usual case (TLS at once, the relay with
//!    the program's ids since the fork), the program spawned only now, with them in its
//!    environment: no fork of our memory, no process waiting; then the relay between
//!    the connection and its pipes;
//! 7. the program's exit status becomes this process's (a signal is raised again), so
//!    the server's `ended by` line reports what the program did.

use std::ffi::OsString;
use std::io;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::unistd::{ForkResult, Pid};
use rustls::pki_types::CertificateDer;
use rustls::server::ParsedCertificate;
use rustls::Connection;
use socket2::Socket;
use tcpserver::child::{set_concurrency, Admitted, Service, Shared};
use tcpserver::listen::set_ids;
use tcpserver::options::Config;
use tls::modssl::Side;
use tls::relay::{self, Failure, Pipes};
use tls::vars::{self, Block};
use ucspi::env::{set_ssl_vars, set_tcp_vars, unset_tcp_vars, Connection as Peers, Env};
use ucspi::exec::{pathexec, CStrArray};
use ucspi::fmt::scan_ulong;
use ucspi::msg::{Line, Msg, EXIT_TEMP, EXIT_USAGE};

use crate::certs::Context;
use crate::options::{ClientCert, Tls};
use crate::program::{self, default_signals, exit, Fds, ProgramFds, RelayFds};

/// The ids the relay runs under: ucspi-ssl's `SSL_CHROOT`, `SSL_UID`, `SSL_GID`, else the
/// program's (`-u`, `-g`), read from the server's environment at start.
pub struct RelayIds {
    chroot: Option<PathBuf>,
    uid: u32,
    gid: u32,
    /// Nothing of the three is set: the connection's process takes the program's ids as
    /// soon as it is forked, before any lookup, and the program inherits them.
    early: bool,
}

impl RelayIds {
    pub fn from_env(c: &Config, env: &dyn Fn(&str) -> Option<OsString>) -> RelayIds {
        let get = |n: &str| env(n).filter(|v| !v.is_empty());
        let id =
            |n: &str, default: u32| get(n).map_or(default, |v| scan_ulong(v.as_bytes()).0 as u32);
        let chroot = get("SSL_CHROOT").map(PathBuf::from);
        let early = chroot.is_none() && get("SSL_UID").is_none() && get("SSL_GID").is_none();
        RelayIds {
            chroot,
            uid: id("SSL_UID", c.uid),
            gid: id("SSL_GID", c.gid),
            early,
        }
    }

    fn take(&self, msg: &Msg) {
        if let Some(dir) = &self.chroot {
            if let Err(e) = nix::unistd::chroot(dir.as_path()).and_then(|_| nix::unistd::chdir("/"))
            {
                msg.fatal_sys(EXIT_TEMP, &[b"unable to chroot"], &e.into());
            }
        }
        set_ids(self.uid, self.gid, msg);
        undumpable();
    }
}

/// No core dump, and no ptrace or /proc/PID/mem for a process of the same user: the
/// relay holds the server's private keys in memory.
fn undumpable() {
    let _ = nix::sys::prctl::set_dumpable(false);
}

/// sslserver's service.
pub struct Ssl {
    pub opts: Tls,
    pub ctx: Context,
    pub relay: RelayIds,
}

impl Service for Ssl {
    const VARS_OVER_RULES: bool = true;

    fn before_fork(&mut self) {
        self.ctx.refresh(Instant::now());
    }

    fn in_child(&self, c: &Config, msg: &Msg) {
        if self.relay.early {
            set_ids(c.uid, c.gid, msg);
            undumpable();
        }
    }

    fn set_vars(
        &self,
        c: &Config,
        env: &mut Env,
        conn: &Peers<'_>,
        from_ip: u64,
        scratch: &mut Vec<u8>,
    ) {
        set_ssl_vars(env, conn, scratch);
        if self.opts.tcp_env {
            set_tcp_vars(env, conn, scratch);
            set_concurrency(c, env, from_ip);
        } else {
            // `-E`: no TCP* variable at all (TCPCONCURRENCY and TCPCONNNUM, ours,
            // included).
            unset_tcp_vars(env);
            env.unset(b"TCPCONCURRENCY");
            env.unset(b"TCPCONNNUM");
            env.set(b"PROTO", b"TLS");
        }
    }

    fn serve(
        &self,
        c: &Config,
        msg: &Msg,
        shared: &Shared,
        sock: Socket,
        env: Env,
        who: &Admitted<'_>,
    ) -> ! {
        serve(self, c, msg, shared, sock, env, who)
    }
}

/// The connection after admission; never returns.
fn serve(
    s: &Ssl,
    c: &Config,
    msg: &Msg,
    shared: &Shared,
    sock: Socket,
    mut env: Env,
    who: &Admitted<'_>,
) -> ! {
    let o = &s.opts;
    let f =
        Fds::new().unwrap_or_else(|e| msg.fatal_sys(EXIT_TEMP, &[b"unable to create pipe"], &e));
    f.set_vars(&mut env, o.delayed);
    let (prog_fds, relay_fds) = f.split();
    let mut prog_fds = Some(prog_fds);
    let mut prog = Program { pid: None, who };
    // The program is forked now when it must run before TLS (-n) or under other ids than
    // the relay's (it still has root to take them); otherwise it is spawned after a good
    // handshake, from this process, which already has its ids: no fork of our memory.
    if o.delayed || !s.relay.early {
        // SAFETY: the connection's process is single-threaded (forked from the server's).
        match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Child) => {
                drop(relay_fds);
                let fds = prog_fds.take().expect("taken once");
                program(c, msg, o, shared, sock, env, fds, !s.relay.early)
            }
            Ok(ForkResult::Parent { child }) => prog.pid = Some(child),
            Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to fork"], &e.into()),
        }
        drop(prog_fds.take());
    }
    let RelayFds {
        to_prog: relay_out,
        from_prog: relay_in,
        ctl: ctl_relay,
    } = relay_fds;
    if !s.relay.early {
        s.relay.take(msg);
    }

    let mut command = b'y';
    if o.delayed {
        command = match program::read_command(&ctl_relay) {
            // The program ended, or gave up on TLS: the connection is its own.
            None => {
                drop(sock);
                prog.finish()
            }
            Some(b @ (b'y' | b'Y')) => b,
            Some(_) => {
                prog.line(b"sslserver: warning: unknown UCSPI-TLS command from: ");
                prog.stop(EXIT_USAGE)
            }
        };
    }
    for fd in [sock.as_fd(), relay_out.as_fd(), relay_in.as_fd()] {
        if let Err(e) = relay::nonblocking(fd) {
            msg.warn_sys(&[b"unable to set socket options"], &e);
            prog.stop(EXIT_TEMP);
        }
    }
    let server = match rustls::ServerConnection::new(s.ctx.config.clone()) {
        Ok(sc) => sc,
        Err(e) => {
            prog.failed(b"unable to create TLS instance", &e.to_string(), EXIT_TEMP);
        }
    };
    let mut conn = Connection::Server(server);
    if let Err(f) = relay::handshake(&mut conn, &sock, deadline(o.handshake_timeout)) {
        handshake_failed(&prog, o.client_cert, &f);
    }
    let peer = conn.peer_certificates().map(<[_]>::to_vec);
    if o.client_cert != ClientCert::None {
        check_client_name(&prog, o.client_cert, who.remote_host, peer.as_deref());
        if c.verbosity >= 2 {
            prog.line(b"sslserver: info: valid client cert received from: ");
        }
    }
    if c.verbosity >= 2 {
        let mut l = Line::new();
        l.push(b"sslserver: tls ").num(who.pid).push(b" accept");
        if c.verbosity >= 3 {
            l.push(b" ").push(vars::summary(&conn).as_bytes());
        }
        l.write();
    }
    if !o.delayed || command == b'Y' {
        let mut block = Block::new();
        if o.ssl_env || command == b'Y' {
            block = ssl_vars(s, &conn, peer.as_deref());
        }
        match prog_fds.take() {
            // Not started yet: the variables go into its environment, the banner first
            // into TLS, then it runs.
            Some(fds) => {
                apply(&mut env, &block.finish());
                if let Err(e) = conn.writer().write_all(&o.banner) {
                    prog.failed(b"unable to print banner", &e.to_string(), EXIT_TEMP);
                }
                prog.pid = Some(spawn(c, msg, shared, &env, fds));
            }
            None => {
                if let Err(e) = ucspi::fd::write_all(&ctl_relay, &block.finish()) {
                    prog.failed(
                        b"unable to write TLS environment",
                        ucspi::errstr::io_str(&e),
                        EXIT_TEMP,
                    );
                }
            }
        }
    }
    let pipes = Pipes {
        to_prog: relay_out,
        from_prog: relay_in,
    };
    if let Err(f) = relay::relay(&mut conn, &sock, pipes, idle(o.idle_timeout)) {
        prog.failed(b"unable to speak TLS with: ", &f.to_string(), EXIT_TEMP);
    }
    drop(ctl_relay);
    prog.finish()
}

/// The `SSL_*` variables of `-s` and of UCSPI-TLS's `Y`: the session's, the server's
/// certificate (computed when it was loaded), the client's.
fn ssl_vars(s: &Ssl, conn: &Connection, peer: Option<&[CertificateDer<'static>]>) -> Block {
    let mut block = vars::session(conn);
    let name = match conn {
        Connection::Server(sc) => sc.server_name(),
        Connection::Client(_) => None,
    };
    if let Some(e) = s.ctx.certs.select(name) {
        block.extend(&e.vars);
    }
    match peer {
        Some(chain) => {
            block.extend(&vars::certificate(Side::Client, chain));
            block.push("SSL_CLIENT_VERIFY", b"SUCCESS");
        }
        None => block.push("SSL_CLIENT_VERIFY", b"NONE"),
    }
    block
}

/// A variable block's entries into `env`.
fn apply(env: &mut Env, block: &[u8]) {
    for e in vars::entries(block) {
        if let Some(eq) = e.iter().position(|&b| b == b'=') {
            env.set(&e[..eq], &e[eq + 1..]);
        }
    }
}

/// The program started from this process after the handshake, its pipes on 0 and 1.
fn spawn(c: &Config, msg: &Msg, shared: &Shared, env: &Env, fds: ProgramFds) -> Pid {
    let argv = CStrArray::of(&c.argv);
    let envp = shared.env.envp_with(env);
    let prog = c.argv[0].to_bytes();
    let onto = [(fds.input.as_raw_fd(), 0), (fds.output.as_raw_fd(), 1)];
    let defaults = tcpserver::server::CHANGED_SIGNALS;
    match ucspi::exec::spawn(prog, &argv, &envp, shared.path.as_deref(), &onto, &defaults) {
        Ok(pid) => pid,
        Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"(111) unable to run: ", prog], &e),
    }
}

/// `-T` and `-w` in seconds; 0 means no limit.
fn deadline(secs: u64) -> Instant {
    Instant::now() + idle(secs)
}

fn idle(secs: u64) -> Duration {
    Duration::from_secs(if secs == 0 {
        1 << 30
    } else {
        secs.min(1 << 30)
    })
}

/// The program's side of the fork; never returns. `set_own_ids` when the connection's
/// process still has the server's.
#[allow(clippy::too_many_arguments)]
fn program(
    c: &Config,
    msg: &Msg,
    o: &Tls,
    shared: &Shared,
    sock: Socket,
    mut env: Env,
    fds: ProgramFds,
    set_own_ids: bool,
) -> ! {
    if set_own_ids {
        set_ids(c.uid, c.gid, msg);
    }
    let set_up = if o.delayed {
        // Plain text on the connection itself, and UCSPI-TLS's three descriptors.
        ucspi::fd::copy_to(0, &sock)
            .and_then(|_| ucspi::fd::copy_to(1, &sock))
            .and_then(|_| fds.keep_open())
            .map(|_| None)
    } else {
        let ProgramFds { input, output, ctl } = fds;
        ucspi::fd::move_to(0, input)
            .and_then(|_| ucspi::fd::move_to(1, output))
            .map(|_| Some(ctl))
    };
    let ctl = match set_up {
        Ok(ctl) => ctl,
        Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to set up descriptors"], &e),
    };
    // The program never holds the connection in normal mode.
    drop(sock);
    if let Some(ctl) = ctl {
        // The handshake's outcome: the variables, or end of file when it failed.
        let Some(block) = read_block(&ctl) else {
            exit(EXIT_TEMP)
        };
        apply(&mut env, &block);
    }
    default_signals();
    if !o.banner.is_empty() {
        if let Err(e) = ucspi::fd::write_all(io::stdout(), &o.banner) {
            msg.fatal_sys(EXIT_TEMP, &[b"unable to print banner"], &e);
        }
    }
    let argv = CStrArray::of(&c.argv);
    let envp = shared.env.envp_with(&env);
    let prog = c.argv[0].to_bytes();
    let e = pathexec(prog, &argv, &envp, shared.path.as_deref());
    msg.fatal_sys(EXIT_TEMP, &[b"(111) unable to run: ", prog], &e)
}

/// The largest variable block read: certificates in PEM and their fields.
const MAX_BLOCK: usize = 1 << 20;

/// A whole variable block from the relay, or `None` when it ended without one.
fn read_block(ctl: &OwnedFd) -> Option<Vec<u8>> {
    let mut block = Vec::with_capacity(8192);
    let mut buf = [0u8; 8192];
    while !vars::is_complete(&block) {
        match ucspi::fd::read(ctl, &mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => block.extend_from_slice(&buf[..n]),
        }
        if block.len() > MAX_BLOCK {
            return None;
        }
    }
    Some(block)
}

/// The program as the relay sees it (`pid`: once started).
struct Program<'a> {
    pid: Option<Pid>,
    who: &'a Admitted<'a>,
}

impl Program<'_> {
    /// A line ending in `IP for pid: N`.
    fn line(&self, head: &[u8]) {
        Line::new()
            .push(head)
            .push(self.who.remote_ip)
            .push(b" for pid: ")
            .num(self.who.pid)
            .write();
    }

    /// ucspi-ssl's `PROG: CLASS: (CODE) WHAT IP for pid: N REASON` line, then
    /// [`Program::stop`].
    fn failed(&self, what: &[u8], reason: &str, code: i32) -> ! {
        let mut l = Line::new();
        l.push(b"sslserver: ")
            .push(if code == EXIT_TEMP {
                b"fatal: ("
            } else {
                b"error: ("
            })
            .num(code as u64)
            .push(b") ")
            .push(what);
        if what.ends_with(b": ") {
            l.push(self.who.remote_ip)
                .push(b" for pid: ")
                .num(self.who.pid);
        }
        if !reason.is_empty() {
            l.push(b" ").push(reason.as_bytes());
        }
        l.write();
        self.stop(code)
    }

    fn stop(&self, code: i32) -> ! {
        match self.pid {
            Some(pid) => program::stop(pid, code),
            None => exit(code),
        }
    }

    fn finish(&self) -> ! {
        match self.pid {
            Some(pid) => program::finish(pid),
            None => exit(EXIT_TEMP),
        }
    }
}

/// Logs why the handshake failed (ucspi-ssl's words for a missing or refused client
/// certificate, 110) and leaves.
fn handshake_failed(prog: &Program<'_>, mode: ClientCert, f: &Failure) -> ! {
    if mode != ClientCert::None {
        if let Failure::Tls(e) = f {
            match e {
                rustls::Error::NoCertificatesPresented => {
                    prog.failed(b"no client certificate from: ", "", 110)
                }
                rustls::Error::InvalidCertificate(why) => prog.failed(
                    b"missing credentials (CA) or unable to validate client certificate from: ",
                    &format!("{why:?}"),
                    110,
                ),
                _ => {}
            }
        }
    }
    prog.failed(b"unable to accept TLS from: ", &f.to_string(), EXIT_TEMP)
}

/// `-z`: the verified client certificate must name the client's host, when its lookup
/// found one (`-H`, or no PTR record: `-m` alone).
fn check_client_name(
    prog: &Program<'_>,
    mode: ClientCert,
    host: Option<&[u8]>,
    chain: Option<&[rustls::pki_types::CertificateDer<'static>]>,
) {
    let (ClientCert::RequiredWithName, Some(host), Some(leaf)) =
        (mode, host, chain.and_then(|c| c.first()))
    else {
        return;
    };
    let host = String::from_utf8_lossy(host).into_owned();
    let ok = rustls::pki_types::ServerName::try_from(host.as_str())
        .ok()
        .zip(ParsedCertificate::try_from(leaf).ok())
        .is_some_and(|(name, cert)| rustls::client::verify_server_name(&cert, &name).is_ok());
    if ok {
        return;
    }
    let mut cert_name = Vec::new();
    let _ = tls::modssl::cert_vars(Side::Client, leaf, &mut |n, v| {
        if n == "SSL_CLIENT_S_DN_CN" {
            cert_name = v.to_vec();
        }
    });
    let mut l = Line::new();
    l.push(b"sslserver: error: (110) client hostname does not match certificate for pid: ")
        .num(prog.who.pid)
        .push(b" ")
        .push(host.as_bytes())
        .push(b" <=> ")
        .push(&cert_name);
    l.write();
    prog.stop(110)
}
