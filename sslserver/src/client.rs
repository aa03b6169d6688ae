//! sslclient: tcpclient's connection (its options, addresses, timeouts and names, through
//! tcpclient's library), a TLS handshake that verifies the server, and the program on fds
//! 6 and 7 behind a relay, as ucspi-ssl's sslclient runs it. Top to bottom:
//!
//! 1. options; the certificate, key and CA files read before connecting;
//! 2. connect, then the names of both ends;
//! 3. the handshake (verified: the CA list or the system's, and the host argument, a
//!    name or an IP address, against the certificate) within the connect timeout; under
//!    `-y` first the program, in plain text on fds 6 and 7, asks for it (UCSPI-TLS);
//! 4. the program forked with the pipes on 6 and 7; this process relays and leaves with
//!    the program's exit status.

use std::ffi::OsString;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::unistd::{ForkResult, Pid};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, Connection};
use tcpclient::client::{self as tcp, Config as TcpConfig};
use tls::files;
use tls::modssl::Side;
use tls::relay::{self, Failure, Pipes};
use tls::vars::{self, Block};
use tls::verifiers::{AnyName, Unverified};
use ucspi::env::{set_ssl_vars, set_tcp_vars, unset_tcp_vars, Env};
use ucspi::fmt::scan_ulong;
use ucspi::getopt::{parse, Opt};
use ucspi::msg::{write_line, Line, Msg, EXIT_TEMP, EXIT_USAGE};

use crate::program::{self, Fds, ProgramFds, RelayFds};

pub const USAGE: &str = "sslclient [ -463hHrRdDqQveEsSnNxXmMy ] [ -i localip ] [ -p localport ] [ -T timeoutconn ] [ -l localname ] [ -t timeoutinfo ] [ -I interface ] [ -a cafile ] [ -A cadir ] [ -c certfile ] [ -z ciphers ] [ -k keyfile ] [ -K keypassfile ] [ -V verifydepth ] [ -w progtimeout ] host port program";

/// ucspi-ssl 0.13's letters with `-i` and `-M` as its usage means them (its getopt
/// string gives `-i` no argument and `-M` one), `-I` with its argument, and `-y` (ours:
/// TLS when the program asks for it; ucspi-ssl's `-n` means "check the name").
const SPEC: &str = "46dDvqQhHrRmMi:p:t:T:l:a:A:c:z:k:K:V:3eEsSnNxXw:I:y";

/// What sslclient adds to tcpclient's options.
#[derive(Clone, Debug)]
pub struct Tls {
    pub cafile: Option<PathBuf>,
    pub cadir: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    pub password_on_fd3: bool,
    pub ciphers: Option<String>,
    /// `-x`/`-X`: verify the server's certificate.
    pub verify: bool,
    /// `-n`/`-N`: and that it names the host argument.
    pub check_name: bool,
    /// `-m`/`-M`: send the host argument as the server name (a name, not an address).
    pub sni: bool,
    pub tcp_env: bool,
    pub ssl_env: bool,
    /// `-y`: the program starts in plain text and asks for TLS (UCSPI-TLS).
    pub delayed: bool,
    pub idle_timeout: u64,
}

/// Why the command line was refused (the message, if any).
#[derive(Debug)]
pub struct Usage(pub Option<Vec<u8>>);

fn path(v: &OsString) -> Option<PathBuf> {
    (!v.is_empty()).then(|| PathBuf::from(v))
}

/// Parses the command line (without argv[0]).
pub fn parse_args(args: &[OsString]) -> Result<(TcpConfig, Tls), Usage> {
    let (opts, first) = parse(args, SPEC).map_err(|e| Usage(Some(e.message("sslclient"))))?;
    // ucspi-ssl's defaults differ from tcpclient's: TCP_NODELAY, no ident.
    let mut c = TcpConfig {
        nodelay: true,
        remote_info: false,
        ..TcpConfig::default()
    };
    let mut t = Tls {
        cafile: None,
        cadir: None,
        certfile: None,
        keyfile: None,
        password_file: None,
        password_on_fd3: false,
        ciphers: None,
        verify: true,
        check_name: true,
        sni: true,
        tcp_env: false,
        ssl_env: false,
        delayed: false,
        idle_timeout: 3600,
    };
    let mut interface = None;
    for o in opts {
        if tcp::apply_option(&mut c, &o).map_err(|_| Usage(None))? {
            continue;
        }
        match o {
            Opt::Flag(b'm') => t.sni = true,
            Opt::Flag(b'M') => t.sni = false,
            Opt::Flag(b'3') => t.password_on_fd3 = true,
            Opt::Flag(b'e') => t.tcp_env = true,
            Opt::Flag(b'E') => t.tcp_env = false,
            Opt::Flag(b's') => t.ssl_env = true,
            Opt::Flag(b'S') => t.ssl_env = false,
            Opt::Flag(b'n') => t.check_name = true,
            Opt::Flag(b'N') => t.check_name = false,
            Opt::Flag(b'x') => t.verify = true,
            Opt::Flag(b'X') => t.verify = false,
            Opt::Flag(b'y') => t.delayed = true,
            Opt::Value(b'a', v) => t.cafile = path(&v),
            Opt::Value(b'A', v) => t.cadir = path(&v),
            Opt::Value(b'c', v) => t.certfile = path(&v),
            Opt::Value(b'k', v) => t.keyfile = path(&v),
            Opt::Value(b'K', v) => t.password_file = path(&v),
            Opt::Value(b'z', v) => {
                t.ciphers = (!v.is_empty()).then(|| v.to_string_lossy().into_owned())
            }
            // The chain's depth is rustls's to bound; read for compatibility.
            Opt::Value(b'V', _) => {}
            Opt::Value(b'w', v) => t.idle_timeout = scan_ulong(v.as_bytes()).0,
            Opt::Value(b'I', v) => interface = Some(v),
            _ => return Err(Usage(None)),
        }
    }
    let rest = &args[first..];
    if rest.len() < 3 || rest[0].is_empty() {
        return Err(Usage(None));
    }
    c.host = rest[0].as_bytes().to_vec();
    if c.host == b"0" {
        c.host = b"127.0.0.1".to_vec();
    }
    c.port = rest[1].as_bytes().to_vec();
    c.program = rest[2..].to_vec();
    if let (Some(name), Some(IpAddr::V6(_)) | None) = (&interface, c.local_ip) {
        // A scope for link-local addresses: only checked here, used by the kernel's
        // routing (the connect goes out of the interface the address belongs to).
        if nix::net::if_::if_nametoindex(name.as_bytes()).is_err() {
            return Err(Usage(Some(
                [b"sslclient: unknown interface ", name.as_bytes()].concat(),
            )));
        }
    }
    Ok((c, t))
}

/// `PROG: error: (CODE) TEXT` and exit.
fn error(class: &str, code: i32, text: &[&[u8]]) -> ! {
    let mut l = Line::new();
    l.push(b"sslclient: ")
        .push(class.as_bytes())
        .push(b": (")
        .num(code as u64)
        .push(b") ");
    for t in text {
        l.push(t);
    }
    l.write();
    std::process::exit(code)
}

/// The password of `-3` (fd 3) or `-K` (a file): up to a NUL, a newline-free line.
fn password(t: &Tls) -> Option<Vec<u8>> {
    let raw = if t.password_on_fd3 {
        let fd = ucspi::fd::take_interface(3)
            .unwrap_or_else(|| error("error", EXIT_TEMP, &[b"unable to read password from FD3"]));
        let mut v = Vec::new();
        let mut buf = [0u8; 512];
        while v.len() <= 4096 && !v.contains(&0) {
            match ucspi::fd::read(&fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => v.extend_from_slice(&buf[..n]),
                Err(_) => error("error", EXIT_TEMP, &[b"unable to read password from FD3"]),
            }
        }
        v
    } else {
        let p = t.password_file.as_ref()?;
        files::read(p).unwrap_or_else(|_| {
            error(
                "error",
                EXIT_TEMP,
                &[b"unable to read password from: ", p.as_os_str().as_bytes()],
            )
        })
    };
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    Some(raw[..end].to_vec())
}

/// The client configuration the options describe, and our certificate chain when we
/// show one; exits 111 as ucspi-ssl does when a file does not load.
fn config(t: &Tls) -> (Arc<ClientConfig>, Option<Vec<CertificateDer<'static>>>) {
    let suites = t.ciphers.as_ref().map(|c| {
        tls::suites::parse_ciphers(c)
            .unwrap_or_else(|_| error("error", EXIT_TEMP, &[b"unable to set cipher list"]))
    });
    let provider = tls::suites::provider(suites);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(tls::suites::VERSIONS)
        .unwrap_or_else(|_| error("fatal", EXIT_TEMP, &[b"unable to create TLS context"]));
    let verifier: Arc<dyn ServerCertVerifier> = if t.verify {
        let roots = if t.cafile.is_some() || t.cadir.is_some() {
            files::roots(t.cafile.as_deref(), t.cadir.as_deref())
        } else {
            files::system_roots()
        };
        let roots = roots.unwrap_or_else(|e| {
            error(
                "error",
                EXIT_TEMP,
                &[b"unable to load CA list: ", e.to_string().as_bytes()],
            )
        });
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap_or_else(|e| {
                error(
                    "error",
                    EXIT_TEMP,
                    &[b"unable to load CA list: ", e.to_string().as_bytes()],
                )
            });
        if t.check_name {
            webpki
        } else {
            Arc::new(AnyName(webpki))
        }
    } else {
        Arc::new(Unverified(provider.clone()))
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut own = None;
    let mut config = match &t.certfile {
        None => builder.with_no_client_auth(),
        Some(cert) => {
            let chain = files::certificates(cert)
                .unwrap_or_else(|_| error("error", EXIT_TEMP, &[b"unable to load certificate"]));
            let key_file = t.keyfile.as_ref().unwrap_or(cert);
            let pw = password(t);
            let key = files::private_key(key_file, pw.as_deref())
                .unwrap_or_else(|_| error("error", EXIT_TEMP, &[b"unable to load key pair"]));
            own = Some(chain.clone());
            builder
                .with_client_auth_cert(chain, key)
                .unwrap_or_else(|_| error("error", EXIT_TEMP, &[b"key does not match certificate"]))
        }
    };
    config.enable_sni = t.sni;
    config.resumption = rustls::client::Resumption::disabled();
    (Arc::new(config), own)
}

/// The host argument as the certificate must name it: an address, or a DNS name.
fn server_name(host: &[u8], remote: IpAddr) -> ServerName<'static> {
    let text = String::from_utf8_lossy(host).into_owned();
    let literal = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return ServerName::IpAddress(ip.into());
    }
    ServerName::try_from(text).unwrap_or(ServerName::IpAddress(remote.into()))
}

/// A name of the certificate as webpki reports it (`DnsName("localhost")`,
/// `IpAddress(0::1)`) the way ucspi-ssl prints it: `localhost`, `::1`.
fn presented_name(n: &str) -> String {
    if let Some(dns) = n
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
    {
        return dns.to_string();
    }
    if let Some(ip) = n
        .strip_prefix("IpAddress(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return ip
            .parse::<IpAddr>()
            .map_or(ip.to_string(), |a| a.to_string());
    }
    n.to_string()
}

/// Leaves as ucspi-ssl's sslclient does when the handshake fails: 110 for a certificate
/// that does not verify or does not name the host, 111 for anything else.
fn handshake_failed(host: &[u8], f: &Failure, prog: Option<Pid>) -> ! {
    let (code, class, text): (i32, &str, Vec<u8>) = match f {
        Failure::Tls(rustls::Error::NoCertificatesPresented) => {
            (110, "error", b"no server certificate".to_vec())
        }
        Failure::Tls(rustls::Error::InvalidCertificate(
            e @ (CertificateError::NotValidForName
            | CertificateError::NotValidForNameContext { .. }),
        )) => {
            let presented = match e {
                CertificateError::NotValidForNameContext { presented, .. } => presented
                    .iter()
                    .map(|n| presented_name(n))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => String::new(),
            };
            let mut t = b"server hostname does not match certificate: ".to_vec();
            t.extend_from_slice(host);
            t.extend_from_slice(b" <=> ");
            t.extend_from_slice(presented.as_bytes());
            (110, "error", t)
        }
        Failure::Tls(rustls::Error::InvalidCertificate(e)) => (
            110,
            "error",
            format!("missing credentials (CA) or unable to validate server certificate ({e:?})")
                .into_bytes(),
        ),
        other => (
            EXIT_TEMP,
            "fatal",
            format!("unable to TLS connect ({other})").into_bytes(),
        ),
    };
    let mut l = Line::new();
    l.push(b"sslclient: ")
        .push(class.as_bytes())
        .push(b": (")
        .num(code as u64)
        .push(b") ")
        .push(&text);
    l.write();
    match prog {
        Some(pid) => program::stop(pid, code),
        None => std::process::exit(code),
    }
}

/// The `SSL_*` variables of `-s` and of UCSPI-TLS's `Y`: the session's, the server's
/// certificate, and ours when we showed one.
fn ssl_vars(conn: &Connection, own: Option<&[CertificateDer<'static>]>) -> Block {
    let mut b = vars::session(conn);
    if let Some(chain) = conn.peer_certificates() {
        b.extend(&vars::certificate(Side::Server, chain));
    }
    if let Some(chain) = own {
        b.extend(&vars::certificate(Side::Client, chain));
    }
    b
}

/// Everything after option parsing; leaves with the program's exit status.
pub fn run(c: &TcpConfig, t: &Tls) -> ! {
    let msg = Msg {
        prog: "sslclient",
        quiet: c.verbosity == 0,
    };
    let (config, own) = config(t);
    let mut last = None;
    let sock = tcp::connect(c, &msg, &mut |ip, port, _| last = Some((ip, port)));
    let Some(sock) = sock else {
        let (ip, port) = last.unwrap_or((IpAddr::from([0, 0, 0, 0]), 0));
        if c.verbosity > 0 {
            Line::new()
                .push(b"sslclient: drop: (110) unable to connect to: ")
                .ip(ip)
                .push(b" port: ")
                .num(port.into())
                .write();
        }
        std::process::exit(110)
    };
    let d = tcp::describe(c, &msg, &sock, &|_| {});
    let mut env = Env::from_process();
    let mut scratch = Vec::new();
    set_ssl_vars(&mut env, &d.connection(), &mut scratch);
    if t.tcp_env {
        set_tcp_vars(&mut env, &d.connection(), &mut scratch);
    } else {
        // No stale TCP* of an outer connection either (as sslserver's -E).
        unset_tcp_vars(&mut env);
        env.set(b"PROTO", b"TLS");
    }
    let f =
        Fds::new().unwrap_or_else(|e| msg.fatal_sys(EXIT_TEMP, &[b"unable to create pipe"], &e));
    f.set_vars(&mut env, t.delayed);
    let server = rustls::ClientConnection::new(config, server_name(&c.host, d.remote.ip()))
        .unwrap_or_else(|_| error("fatal", EXIT_TEMP, &[b"unable to create TLS instance"]));
    let mut conn = Connection::Client(server);
    let secs = c.conn_timeout[0].saturating_add(c.conn_timeout[1]);
    let handshake_time = Duration::from_secs(secs.clamp(1, 1 << 30));
    let (prog_fds, relay_fds) = f.split();
    let mut prog_fds = Some(prog_fds);
    let RelayFds {
        to_prog,
        from_prog,
        ctl,
    } = relay_fds;

    let mut command = b'y';
    let mut pid = None;
    if t.delayed {
        // The program first, in plain text on fds 6 and 7; TLS when it asks.
        let relay_side = [&to_prog, &from_prog, &ctl];
        let fds = StartFds::Plain(&sock, prog_fds.take().expect("not taken yet"));
        let p = start(c, &msg, &env, fds, &relay_side);
        pid = Some(p);
        command = match program::read_command(&ctl) {
            None => {
                drop(sock);
                program::finish(p)
            }
            Some(b @ (b'y' | b'Y')) => b,
            Some(_) => program::stop(p, EXIT_USAGE),
        };
    }
    for fd in [sock.as_fd(), to_prog.as_fd(), from_prog.as_fd()] {
        if let Err(e) = relay::nonblocking(fd) {
            msg.fatal_sys(EXIT_TEMP, &[b"unable to set socket options"], &e);
        }
    }
    if let Err(f) = relay::handshake(&mut conn, &sock, Instant::now() + handshake_time) {
        handshake_failed(&c.host, &f, pid);
    }
    if c.verbosity >= 2 {
        Line::new()
            .push(b"sslclient: tls connected to: ")
            .ip(d.remote.ip())
            .push(b" port: ")
            .num(d.remote.port().into())
            .write();
    }
    let pid = match (pid, prog_fds.take()) {
        (Some(p), _) => {
            if command == b'Y' {
                let block = ssl_vars(&conn, own.as_deref()).finish();
                if ucspi::fd::write_all(&ctl, &block).is_err() {
                    program::stop(p, EXIT_TEMP);
                }
            }
            p
        }
        (None, Some(fds)) => {
            if t.ssl_env {
                let block = ssl_vars(&conn, own.as_deref()).finish();
                for e in vars::entries(&block) {
                    if let Some(eq) = e.iter().position(|&b| b == b'=') {
                        env.set(&e[..eq], &e[eq + 1..]);
                    }
                }
            }
            start(
                c,
                &msg,
                &env,
                StartFds::Pipes(fds),
                &[&to_prog, &from_prog, &ctl],
            )
        }
        (None, None) => unreachable!("the program's descriptors are taken once"),
    };
    let idle = Duration::from_secs(if t.idle_timeout == 0 {
        1 << 30
    } else {
        t.idle_timeout.min(1 << 30)
    });
    let pipes = Pipes { to_prog, from_prog };
    if let Err(f) = relay::relay(&mut conn, &sock, pipes, idle) {
        if c.verbosity > 0 {
            write_line(&[
                b"sslclient: drop: (110) unable to speak TLS: ",
                f.to_string().as_bytes(),
            ]);
        }
        program::stop(pid, 110);
    }
    drop(ctl);
    program::finish(pid)
}

/// What the program gets on fds 6 and 7.
enum StartFds<'a> {
    /// The pipes of the relay.
    Pipes(ProgramFds),
    /// The connection itself, with UCSPI-TLS's descriptors kept open.
    Plain(&'a socket2::Socket, ProgramFds),
}

/// Forks the program; `relay_side` are the relay's descriptors, which the program must
/// not hold.
fn start(c: &TcpConfig, msg: &Msg, env: &Env, fds: StartFds<'_>, relay_side: &[&OwnedFd]) -> Pid {
    // SAFETY: sslclient is single-threaded.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => msg.fatal_sys(EXIT_TEMP, &[b"unable to fork"], &e.into()),
        Ok(ForkResult::Child) => {
            for fd in relay_side {
                let _ = nix::unistd::close(fd.as_raw_fd());
            }
            let set_up = match fds {
                StartFds::Pipes(p) => ucspi::fd::move_to(6, p.input)
                    .and_then(|_| ucspi::fd::move_to(7, p.output))
                    .map(|_| ()),
                StartFds::Plain(sock, p) => ucspi::fd::copy_to(6, sock)
                    .and_then(|_| ucspi::fd::copy_to(7, sock))
                    .and_then(|_| p.keep_open()),
            };
            if let Err(e) = set_up {
                msg.fatal_sys(EXIT_TEMP, &[b"unable to set up descriptors"], &e);
            }
            let e = ucspi::exec::run(&c.program[0], &c.program, env);
            msg.fatal_sys(
                EXIT_TEMP,
                &[b"unable to run: ", c.program[0].as_bytes()],
                &e,
            )
        }
    }
}

/// main: hold fds 6 and 7 (see [`reserve_program_fds`]), parse, run.
pub fn main(args: &[OsString]) -> ! {
    reserve_program_fds();
    match parse_args(args.get(1..).unwrap_or(&[])) {
        Ok((c, t)) => run(&c, &t),
        Err(Usage(m)) => {
            if let Some(m) = m {
                write_line(&[&m]);
            }
            Msg::new("sslclient").usage(USAGE)
        }
    }
}

/// Fds 6 and 7 are the program's. What the caller left there is closed (a stale one must
/// not be taken for the program's), and /dev/null, close-on-exec, holds both numbers so
/// that none of sslclient's own descriptors lands on them: the child copies the socket or
/// the pipes onto 6 and 7, which would overwrite a pipe or UCSPI-TLS's `SSLWRITEFD`
/// there (the program's writes then went to the socket in plain text).
fn reserve_program_fds() {
    let _ = nix::unistd::close(6);
    let _ = nix::unistd::close(7);
    let Ok(null) = std::fs::File::open("/dev/null") else {
        return;
    };
    // Opened close-on-exec, at the lowest free number: at most 6.
    let raw = std::os::fd::IntoRawFd::into_raw_fd(null);
    for fd in [6, 7] {
        if fd != raw {
            // SAFETY: 6 and 7 are closed above and owned by nothing in this process; the
            // copy is closed on exec, or replaced by the child's dup2.
            let _ = unsafe { libc::dup3(raw, fd, libc::O_CLOEXEC) };
        }
    }
    if raw != 6 {
        // SAFETY: `raw` is the descriptor opened above, owned by nothing else.
        let _ = unsafe { libc::close(raw) };
    }
}
