//! sslserver benchmark: our sslserver, Debian's stunnel4 in inetd-style (exec) mode and
//! our plain tcpserver (no TLS: the floor), alternated round by round in one run, each
//! running a program per connection. Prints, per K = clients in flight, the medians of
//! full and resumed TLS 1.3 handshakes per second and of connect-to-first-byte p50/p99,
//! the median per-round ratio ours/stunnel4 and ours resumed/full; `openssl s_time`
//! (serial, the method); relay throughput through one connection, both ways; the
//! memory of a live connection (Pss and Rss of the server's processes, programs excluded).
//!
//! Usage: sslserver-bench --sslserver PATH --tcpserver PATH [--stunnel PATH]
//!        [--alt LABEL=PATH] [--seconds S] [--rounds R] [--k 1,10,100] [--hold N]
//!        [--mb M] [--stime-seconds T] [--skip load,stime,relay,memory]
//!        [--only LABEL,...] [--stunnel-opt LINE] [--stderr]
//! `--alt` adds another sslserver build as a column of its own (same rounds, same order
//! rotation); `--only` keeps the servers named (stunnel4, sslserver, tcpserver, the `--alt`
//! labels; ratios need stunnel4); `--stunnel-opt` appends a line to stunnel4's service
//! section. Loopback only; needs `openssl` (certificates, s_time) and stunnel4. See
//! README.md for what each figure means.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::Tls13ClientSessionValue;
use rustls::client::{ClientSessionStore, Resumption, Tls12ClientSessionValue};
use rustls::crypto::aws_lc_rs as provider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, NamedGroup, RootCertStore};

struct Args {
    sslserver: String,
    tcpserver: String,
    stunnel: String,
    alt: Vec<(String, String)>,
    seconds: f64,
    rounds: usize,
    ks: Vec<usize>,
    hold: usize,
    mb: u64,
    stime_seconds: u64,
    skip: Vec<String>,
    only: Vec<String>,
    stunnel_opts: Vec<String>,
    stderr: bool,
}

fn args() -> Args {
    let mut a = Args {
        sslserver: String::new(),
        tcpserver: String::new(),
        stunnel: "/usr/bin/stunnel4".into(),
        alt: Vec::new(),
        seconds: 3.0,
        rounds: 5,
        ks: vec![1, 10, 100],
        hold: 200,
        mb: 256,
        stime_seconds: 10,
        skip: Vec::new(),
        only: Vec::new(),
        stunnel_opts: Vec::new(),
        stderr: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        if v[i] == "--stderr" {
            a.stderr = true;
            i += 1;
            continue;
        }
        let val = v
            .get(i + 1)
            .unwrap_or_else(|| panic!("{} needs a value", v[i]));
        match v[i].as_str() {
            "--sslserver" => a.sslserver = val.clone(),
            "--tcpserver" => a.tcpserver = val.clone(),
            "--stunnel" => a.stunnel = val.clone(),
            "--alt" => {
                let (l, p) = val.split_once('=').expect("--alt LABEL=PATH");
                a.alt.push((l.to_string(), p.to_string()));
            }
            "--seconds" => a.seconds = val.parse().expect("--seconds"),
            "--rounds" => a.rounds = val.parse().expect("--rounds"),
            "--k" => a.ks = val.split(',').map(|k| k.parse().expect("--k")).collect(),
            "--hold" => a.hold = val.parse().expect("--hold"),
            "--mb" => a.mb = val.parse().expect("--mb"),
            "--stime-seconds" => a.stime_seconds = val.parse().expect("--stime-seconds"),
            "--skip" => a.skip = val.split(',').map(str::to_string).collect(),
            "--stunnel-opt" => a.stunnel_opts.push(val.clone()),
            "--only" => a.only = val.split(',').map(str::to_string).collect(),
            _ => panic!("unknown argument {}", v[i]),
        }
        i += 2;
    }
    assert!(!a.sslserver.is_empty(), "--sslserver PATH is required");
    assert!(!a.tcpserver.is_empty(), "--tcpserver PATH is required");
    assert!(a.rounds > 0 && !a.ks.is_empty() && a.hold > 0);
    a
}

// ---------------------------------------------------------------------------------------
// Certificates: a CA and an RSA-2048 leaf for localhost and 127.0.0.1, made with openssl.

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes ca.pem, ca.der, leaf.pem, leaf.key into `dir`.
fn make_certs(dir: &Path) {
    let rsa = ["-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(rsa);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=sslserver-bench CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut req = vec!["req"];
    req.extend(rsa);
    req.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &req);
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ],
    );
    openssl(
        dir,
        &["x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der"],
    );
}

// ---------------------------------------------------------------------------------------
// Servers.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Stunnel,
    /// sslserver (ours, or an `--alt` build).
    Ssl,
    /// tcpserver: no TLS.
    Plain,
}

#[derive(Clone)]
struct Srv {
    label: String,
    kind: Kind,
    bin: String,
}

impl Srv {
    fn tls(&self) -> bool {
        self.kind != Kind::Plain
    }
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Ctx {
    a: Args,
    dir: PathBuf,
    ca: CertificateDer<'static>,
    /// stunnel4 first, then sslserver, the `--alt` builds, tcpserver last.
    servers: Vec<Srv>,
}

impl Ctx {
    /// Whether server `s` gets a ratio to stunnel4 (which is first when it runs at all).
    fn vs_stunnel(&self, s: &Srv) -> bool {
        s.kind == Kind::Ssl && self.servers[0].kind == Kind::Stunnel
    }

    fn tls_servers(&self) -> Vec<Srv> {
        self.servers.iter().filter(|s| s.tls()).cloned().collect()
    }
}

/// The port in a `-1` line: tcpserver's `PORT`, or sslserver's `IP : PORT [c/c]`.
fn port_of(line: &str) -> u16 {
    let t = match line.split_once(" : ") {
        Some((_, rest)) => rest.split_whitespace().next().unwrap_or(""),
        None => line.trim(),
    };
    t.parse()
        .unwrap_or_else(|_| panic!("no port in -1 line {line:?}"))
}

/// Whether something listens on 127.0.0.1:`port` (from /proc/net/tcp, without connecting:
/// a probe connection would cost stunnel a failed handshake).
fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == want && f[3] == "0A"
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `s` on 127.0.0.1 running `prog` (absolute path, then its arguments) for each
/// connection.
fn start(cx: &Ctx, s: &Srv, prog: &[&str]) -> Server {
    let err = || {
        if cx.a.stderr {
            Stdio::inherit()
        } else {
            Stdio::null()
        }
    };
    if s.kind != Kind::Stunnel {
        let mut c = Command::new(&s.bin);
        c.args(["-1", "-HRl0", "-c", "1000", "127.0.0.1", "0"])
            .args(prog)
            .env_clear()
            .env("PATH", "/bin:/usr/bin");
        if s.kind == Kind::Ssl {
            c.env("CERTFILE", cx.dir.join("leaf.pem"))
                .env("KEYFILE", cx.dir.join("leaf.key"));
        }
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(err());
        let mut child = c.spawn().expect("start server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = port_of(&line);
        return Server { child, port };
    }
    // stunnel4 cannot report the port it bound: pick a free one, and retry on a clash.
    for _attempt in 0..5 {
        let port = free_port();
        let conf = cx.dir.join(format!("stunnel-{port}.conf"));
        let argv0 = Path::new(prog[0]).file_name().unwrap().to_str().unwrap();
        let mut exec_args = vec![argv0];
        exec_args.extend(&prog[1..]);
        std::fs::write(
            &conf,
            format!(
                "; global\n\
                 foreground = yes\n\
                 pid =\n\
                 syslog = no\n\
                 debug = err\n\
                 [bench]\n\
                 accept = 127.0.0.1:{port}\n\
                 exec = {}\n\
                 execArgs = {}\n\
                 cert = {}\n\
                 key = {}\n\
                 sslVersionMin = TLSv1.3\n\
                 libwrap = no\n\
                 {}",
                prog[0],
                exec_args.join(" "),
                cx.dir.join("leaf.pem").display(),
                cx.dir.join("leaf.key").display(),
                cx.a.stunnel_opts
                    .iter()
                    .map(|o| format!("{o}\n"))
                    .collect::<String>(),
            ),
        )
        .unwrap();
        let mut child = Command::new(&s.bin)
            .arg(&conf)
            .env_clear()
            .env("PATH", "/bin:/usr/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err())
            .spawn()
            .expect("start stunnel4");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if listening(port) {
                return Server { child, port };
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("stunnel4 did not start (run with --stderr to see why)");
}

// ---------------------------------------------------------------------------------------
// The client.

/// The session store all K clients of one run share. rustls's ClientSessionMemoryCache
/// keeps at most 8 TLS 1.3 tickets per server name, so at K = 100 most of the first
/// hundred connections would find none and go full; this one keeps up to 10,000. Each
/// ticket is handed out once (the newest first), as rustls requires.
#[derive(Debug, Default)]
struct TicketPool {
    tickets: Mutex<Vec<Tls13ClientSessionValue>>,
    kx: Mutex<Option<NamedGroup>>,
    /// Connections that found the pool empty (and so went full).
    empty: AtomicUsize,
}

impl TicketPool {
    fn len(&self) -> usize {
        self.tickets.lock().unwrap().len()
    }
}

impl ClientSessionStore for TicketPool {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        *self.kx.lock().unwrap() = Some(group);
    }
    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        *self.kx.lock().unwrap()
    }
    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}
    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }
    fn remove_tls12_session(&self, _: &ServerName<'static>) {}
    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        let mut t = self.tickets.lock().unwrap();
        if t.len() < 10_000 {
            t.push(value);
        }
    }
    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        let t = self.tickets.lock().unwrap().pop();
        if t.is_none() {
            self.empty.fetch_add(1, Ordering::Relaxed);
        }
        t
    }
}

/// Fills a [`TicketPool`] without taking from it: the warm-up's connections are full
/// handshakes, so each leaves all the tickets the server sends after one (two, for both
/// servers; after a resumed handshake stunnel4 sends only one).
#[derive(Debug)]
struct Filler(Arc<TicketPool>);

impl ClientSessionStore for Filler {
    fn set_kx_hint(&self, n: ServerName<'static>, group: NamedGroup) {
        self.0.set_kx_hint(n, group)
    }
    fn kx_hint(&self, n: &ServerName<'_>) -> Option<NamedGroup> {
        self.0.kx_hint(n)
    }
    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}
    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }
    fn remove_tls12_session(&self, _: &ServerName<'static>) {}
    fn insert_tls13_ticket(&self, n: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.0.insert_tls13_ticket(n, value)
    }
    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        None
    }
}

/// TLS 1.3 only, X25519 only (both servers take it without a retry), verifying the
/// server against the benchmark's CA; resumption from `store`, or none.
fn client_config(
    ca: &CertificateDer<'static>,
    store: Option<Arc<dyn ClientSessionStore>>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut p = provider::default_provider();
    p.kx_groups = vec![provider::kx_group::X25519];
    let mut c = ClientConfig::builder_with_provider(Arc::new(p))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.resumption = match store {
        Some(s) => Resumption::store(s),
        None => Resumption::disabled(),
    };
    Arc::new(c)
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).ok()?;
    s.set_nodelay(true).ok()?;
    s.set_read_timeout(Some(TIMEOUT)).ok()?;
    s.set_write_timeout(Some(TIMEOUT)).ok()?;
    Some(s)
}

/// One connection's result: seconds from connect to the program's first byte, and how
/// the handshake went (`None` for plain TCP).
struct One {
    first_byte: f64,
    kind: Option<HandshakeKind>,
    suite: String,
}

/// Connect, handshake, read the program's output to the end, close (with close_notify).
fn once(cfg: Option<&Arc<ClientConfig>>, addr: SocketAddr) -> Option<One> {
    let t0 = Instant::now();
    let mut sock = connect(addr)?;
    let mut buf = [0u8; 512];
    let mut first = None;
    let Some(cfg) = cfg else {
        loop {
            match sock.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    first.get_or_insert(t0.elapsed().as_secs_f64());
                }
            }
        }
        return first.map(|f| One {
            first_byte: f,
            kind: None,
            suite: String::new(),
        });
    };
    let mut conn = ClientConnection::new(cfg.clone(), server_name()).ok()?;
    {
        let mut s = rustls::Stream::new(&mut conn, &mut sock);
        loop {
            match s.read(&mut buf) {
                // Ok(0): close_notify; an error: end of stream without it, or a reset.
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    first.get_or_insert(t0.elapsed().as_secs_f64());
                }
            }
        }
    }
    let first = first?;
    conn.send_close_notify();
    let _ = conn.write_tls(&mut sock);
    let suite = format!(
        "{:?} {:?}",
        conn.negotiated_cipher_suite().map(|s| s.suite()),
        conn.negotiated_key_exchange_group().map(|g| g.name())
    );
    Some(One {
        first_byte: first,
        kind: conn.handshake_kind(),
        suite,
    })
}

struct Sample {
    rate: f64,
    p50: f64,
    p99: f64,
    /// Of the completed connections: the fraction resumed, and the fraction that found
    /// no ticket to offer; the failures.
    resumed: f64,
    no_ticket: f64,
    failed: usize,
}

/// K clients, each connecting, handshaking, reading to the end, again, for `secs` seconds.
/// `resume`: one session store shared by all K, holding 2K tickets before the clock starts
/// (after a resumed handshake stunnel4 sends one ticket, ours two: with stunnel4 the pool
/// only keeps its size).
fn load(cx: &Ctx, port: u16, tls: bool, resume: bool, k: usize, secs: f64) -> Sample {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let store = resume.then(|| Arc::new(TicketPool::default()));
    let cfg = tls.then(|| {
        client_config(
            &cx.ca,
            store.clone().map(|s| s as Arc<dyn ClientSessionStore>),
        )
    });
    if let Some(store) = &store {
        // Serial full handshakes until there is a ticket for each client and as many
        // spare (bounded).
        // A copy of the same configuration: rustls offers a ticket only to a
        // configuration with the certificate verifier that stored it.
        let mut fill = (**cfg.as_ref().unwrap()).clone();
        fill.resumption = Resumption::store(Arc::new(Filler(store.clone())));
        let fill = Arc::new(fill);
        for _ in 0..2 * k + 2 {
            if store.len() >= 2 * k {
                break;
            }
            once(Some(&fill), addr);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let hs: Vec<_> = (0..k)
        .map(|_| {
            let stop = stop.clone();
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let (mut lat, mut resumed, mut failed) = (Vec::new(), 0usize, 0usize);
                while !stop.load(Ordering::Relaxed) {
                    match once(cfg.as_ref(), addr) {
                        Some(o) => {
                            lat.push(o.first_byte);
                            if o.kind == Some(HandshakeKind::Resumed) {
                                resumed += 1;
                            }
                        }
                        None => failed += 1,
                    }
                }
                (lat, resumed, failed)
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut resumed, mut failed) = (Vec::new(), 0, 0);
    for h in hs {
        let (l, r, f) = h.join().unwrap();
        all.extend(l);
        resumed += r;
        failed += f;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let empty = store
        .as_ref()
        .map_or(0, |s| s.empty.load(Ordering::Relaxed));
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if all.is_empty() {
            f64::NAN
        } else {
            all[((all.len() - 1) as f64 * p) as usize] * 1000.0
        }
    };
    Sample {
        rate: all.len() as f64 / elapsed,
        p50: pct(0.5),
        p99: pct(0.99),
        resumed: resumed as f64 / all.len().max(1) as f64,
        no_ticket: empty as f64 / all.len().max(1) as f64,
        failed,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One table row: a name, then one cell per server.
fn row(name: &str, cells: &[String]) {
    print!("{name:<28}");
    for c in cells {
        print!(" {c:>12}");
    }
    println!();
}

fn header(servers: &[Srv]) {
    row(
        "",
        &servers.iter().map(|s| s.label.clone()).collect::<Vec<_>>(),
    );
}

fn num(x: f64, prec: usize) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{x:.prec$}")
    }
}

// ---------------------------------------------------------------------------------------
// Handshakes per second and latency, per K.

#[derive(Default)]
struct Series {
    rate: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    resumed: Vec<f64>,
    no_ticket: Vec<f64>,
    failed: usize,
}

impl Series {
    fn push(&mut self, s: &Sample) {
        self.rate.push(s.rate);
        self.p50.push(s.p50);
        self.p99.push(s.p99);
        self.resumed.push(s.resumed);
        self.no_ticket.push(s.no_ticket);
        self.failed += s.failed;
    }
}

fn handshakes(cx: &Ctx) {
    let a = &cx.a;
    let sv = &cx.servers;
    let n = sv.len();
    println!(
        "\n== handshakes: {} s per run, {} rounds, server order rotated each round, a fresh \
         server per run; medians over rounds; ratios are medians of per-round ratios ==",
        a.seconds, a.rounds
    );
    for &k in &a.ks {
        // [server][full = 0, resumed = 1]
        let mut s: Vec<[Series; 2]> = (0..n).map(|_| Default::default()).collect();
        // Per round: [server][mode] rate.
        let mut rounds: Vec<Vec<[f64; 2]>> = Vec::new();
        for round in 0..a.rounds {
            let mut got = vec![[f64::NAN; 2]; n];
            for j in 0..n {
                let i = (round + j) % n;
                let modes: &[bool] = if !sv[i].tls() {
                    &[false]
                } else if round % 2 == 0 {
                    &[false, true]
                } else {
                    &[true, false]
                };
                for &resume in modes {
                    let srv = start(cx, &sv[i], &["/bin/echo", "ok"]);
                    let r = load(cx, srv.port, sv[i].tls(), resume, k, a.seconds);
                    s[i][resume as usize].push(&r);
                    got[i][resume as usize] = r.rate;
                }
            }
            rounds.push(got);
        }
        let ratio = |i: usize, mi: usize, j: usize, mj: usize| {
            median(rounds.iter().map(|g| g[i][mi] / g[j][mj]).collect())
        };
        println!("\nK = {k}");
        header(sv);
        let m = |f: &dyn Fn(&[Series; 2]) -> f64, prec: usize| -> Vec<String> {
            s.iter().map(|x| num(f(x), prec)).collect()
        };
        let tls_only = |f: &dyn Fn(&[Series; 2]) -> f64, prec: usize| -> Vec<String> {
            s.iter()
                .zip(sv)
                .map(|(x, srv)| {
                    if srv.tls() {
                        num(f(x), prec)
                    } else {
                        "-".into()
                    }
                })
                .collect()
        };
        row("full handshakes/s", &m(&|x| median(x[0].rate.clone()), 0));
        row("  p50 first byte ms", &m(&|x| median(x[0].p50.clone()), 2));
        row("  p99 first byte ms", &m(&|x| median(x[0].p99.clone()), 2));
        row(
            "resumed handshakes/s",
            &tls_only(&|x| median(x[1].rate.clone()), 0),
        );
        row(
            "  p50 first byte ms",
            &tls_only(&|x| median(x[1].p50.clone()), 2),
        );
        row(
            "  p99 first byte ms",
            &tls_only(&|x| median(x[1].p99.clone()), 2),
        );
        row(
            "  fraction resumed",
            &tls_only(&|x| median(x[1].resumed.clone()), 3),
        );
        row(
            "  fraction with no ticket",
            &tls_only(&|x| median(x[1].no_ticket.clone()), 3),
        );
        let cells = |f: &dyn Fn(usize) -> f64| -> Vec<String> {
            (0..n)
                .map(|i| {
                    if cx.vs_stunnel(&sv[i]) {
                        num(f(i), 3)
                    } else {
                        "-".into()
                    }
                })
                .collect()
        };
        row("full / stunnel4 full", &cells(&|i| ratio(i, 0, 0, 0)));
        row("resumed / stunnel4 resumed", &cells(&|i| ratio(i, 1, 0, 1)));
        let own: Vec<String> = (0..n)
            .map(|i| {
                if sv[i].tls() {
                    num(ratio(i, 1, i, 0), 3)
                } else {
                    "-".into()
                }
            })
            .collect();
        row("resumed / own full", &own);
        let failed: Vec<String> = (0..n)
            .flat_map(|i| {
                let s = &s;
                (0..2).filter_map(move |m| {
                    let f = s[i][m].failed;
                    (f > 0).then(|| format!("{} {}: {f}", sv[i].label, ["full", "resumed"][m]))
                })
            })
            .collect();
        if !failed.is_empty() {
            println!("failed connections: {}", failed.join(", "));
        }
    }
}

/// The suite and group each TLS server negotiates with this client, and whether a second
/// connection resumes.
fn negotiated(cx: &Ctx) {
    for s in cx.tls_servers() {
        let srv = start(cx, &s, &["/bin/echo", "ok"]);
        let addr = ([127, 0, 0, 1], srv.port).into();
        let cfg = client_config(&cx.ca, Some(Arc::new(TicketPool::default())));
        // (a first full handshake, then a second that should resume)
        match (once(Some(&cfg), addr), once(Some(&cfg), addr)) {
            (Some(a), Some(b)) => println!(
                "{:<11} negotiates {}; first connection {:?}, second {:?}",
                s.label, a.suite, a.kind, b.kind
            ),
            _ => println!("{:<11} FAILED a test connection", s.label),
        }
    }
}

// ---------------------------------------------------------------------------------------
// openssl s_time: serial, new sessions and reused ones.

fn s_time(cx: &Ctx) {
    let t = cx.a.stime_seconds;
    let sv = cx.tls_servers();
    // `-reuse` alone reuses nothing under TLS 1.3: s_time reads nothing, so it never
    // sees the tickets, which come after the handshake. With `-www /` it sends a request
    // (ignored by the program) and reads the answer, tickets included.
    let modes: [&[&str]; 3] = [&["-new"], &["-new", "-www", "/"], &["-reuse", "-www", "/"]];
    println!(
        "\n== openssl s_time -connect 127.0.0.1:PORT MODE -time {t} (serial): connections per \
         wall-clock second; [s_time's connections per user-CPU second of its own] =="
    );
    header(&sv);
    // [mode][server]
    let mut rates = vec![vec![f64::NAN; sv.len()]; modes.len()];
    let mut cells = vec![vec![String::new(); sv.len()]; modes.len()];
    let mut reuse = vec![String::new(); sv.len()];
    for (m, mode) in modes.iter().enumerate() {
        for (i, s) in sv.iter().enumerate() {
            let srv = start(cx, s, &["/bin/echo", "ok"]);
            let t0 = Instant::now();
            let out = Command::new("openssl")
                .args(["s_time", "-connect"])
                .arg(format!("127.0.0.1:{}", srv.port))
                .args(*mode)
                .args(["-time", &t.to_string()])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .expect("openssl s_time");
            let wall = t0.elapsed().as_secs_f64();
            // "N connections in X.XXs; Y connections/user sec, ..." (its "real seconds"
            // are whole seconds: the wall clock is used instead). Each connection is
            // marked `*` (new session) or `r` (reused).
            let text = String::from_utf8_lossy(&out.stdout);
            let (mut n, mut user) = (f64::NAN, f64::NAN);
            for l in text.lines() {
                let w: Vec<&str> = l.split_whitespace().collect();
                if w.len() > 4 && w[1] == "connections" && l.contains("connections/user sec") {
                    n = w[0].parse().unwrap_or(f64::NAN);
                    user = w[4].parse().unwrap_or(f64::NAN);
                }
            }
            let reused = text
                .lines()
                .filter(|l| !l.is_empty() && l.bytes().all(|b| b == b'*' || b == b'r'))
                .map(|l| l.bytes().filter(|&b| b == b'r').count())
                .sum::<usize>();
            rates[m][i] = n / wall;
            cells[m][i] = format!("{} [{}]", num(n / wall, 0), num(user, 0));
            if m == 2 {
                reuse[i] = num(reused as f64 / n, 3);
            }
        }
        row(&mode.join(" "), &cells[m]);
    }
    row("  fraction reused", &reuse);
    for (m, mode) in modes.iter().enumerate() {
        row(
            &format!("/ stunnel4, {}", mode.join(" ")),
            &(0..sv.len())
                .map(|i| {
                    if cx.vs_stunnel(&sv[i]) {
                        num(rates[m][i] / rates[m][0], 3)
                    } else {
                        "-".into()
                    }
                })
                .collect::<Vec<_>>(),
        );
    }
    println!(
        "(fraction reused: of -reuse's connections, those s_time marked reused; the issue's \
         run: stunnel4 168/s, ucspi-ssl's sslserver 279/s, -new)"
    );
}

// ---------------------------------------------------------------------------------------
// Relay throughput through one connection.

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// Connected, handshake done.
    fn open(cx: &Ctx, tls: bool, port: u16) -> Stream {
        let sock = connect(([127, 0, 0, 1], port).into()).expect("connect");
        if !tls {
            return Stream::Plain(sock);
        }
        let conn = ClientConnection::new(client_config(&cx.ca, None), server_name()).unwrap();
        let mut s = rustls::StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).expect("handshake");
        }
        Stream::Tls(Box::new(s))
    }
    fn read(&mut self, buf: &mut [u8]) -> usize {
        match self {
            Stream::Plain(s) => s.read(buf).unwrap_or(0),
            Stream::Tls(s) => s.read(buf).unwrap_or(0),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf),
            Stream::Tls(s) => s.write_all(buf),
        }
    }
    /// The end of our data: close_notify, or a TCP half-close.
    fn finish(&mut self) {
        match self {
            Stream::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            Stream::Tls(s) => {
                s.conn.send_close_notify();
                while s.conn.wants_write() {
                    if s.conn.write_tls(&mut s.sock).is_err() {
                        break;
                    }
                }
            }
        }
    }
}

/// MB/s (10^6 bytes) server → client: the program writes `bytes` of zeros; timed from the
/// end of the handshake to the end of the data.
fn download(cx: &Ctx, s: &Srv, bytes: u64) -> f64 {
    let n = bytes.to_string();
    let srv = start(cx, s, &["/usr/bin/head", "-c", &n, "/dev/zero"]);
    let mut st = Stream::open(cx, s.tls(), srv.port);
    let t0 = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let r = st.read(&mut buf);
        if r == 0 {
            break;
        }
        got += r as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    if got != bytes {
        println!("  {} download: got {got} of {bytes} bytes", s.label);
        return f64::NAN;
    }
    bytes as f64 / 1e6 / secs
}

/// MB/s client → server: `bytes` sent, then close_notify (or a half-close); the program
/// (`wc -c`) answers with the count. From the end of the handshake to the answer.
fn upload(cx: &Ctx, s: &Srv, bytes: u64) -> f64 {
    let srv = start(cx, s, &["/usr/bin/wc", "-c"]);
    let mut st = Stream::open(cx, s.tls(), srv.port);
    let t0 = Instant::now();
    let chunk = vec![b'x'; 1 << 16];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if let Err(e) = st.write_all(&chunk[..n]) {
            println!(
                "  {} upload: write failed after {} bytes: {e}",
                s.label,
                bytes - left
            );
            return f64::NAN;
        }
        left -= n as u64;
    }
    st.finish();
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let r = st.read(&mut buf);
        if r == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..r]);
    }
    let secs = t0.elapsed().as_secs_f64();
    let count: u64 = String::from_utf8_lossy(&reply).trim().parse().unwrap_or(0);
    if count != bytes {
        println!(
            "  {} upload: the program counted {:?}, not {bytes}",
            s.label,
            String::from_utf8_lossy(&reply)
        );
        return f64::NAN;
    }
    bytes as f64 / 1e6 / secs
}

fn relay(cx: &Ctx) {
    let bytes = cx.a.mb << 20;
    let rounds = cx.a.rounds.min(3);
    let sv = &cx.servers;
    let n = sv.len();
    println!(
        "\n== relay throughput: {} MiB through one connection, MB/s (10^6 bytes/s, from the end \
         of the handshake to the last byte), median of {rounds} rounds ==",
        cx.a.mb
    );
    // [direction][round][server]
    let mut got = vec![Vec::new(); 2];
    for round in 0..rounds {
        let (mut down, mut up) = (vec![f64::NAN; n], vec![f64::NAN; n]);
        for j in 0..n {
            let i = (round + j) % n;
            down[i] = download(cx, &sv[i], bytes);
            up[i] = upload(cx, &sv[i], bytes);
        }
        got[0].push(down);
        got[1].push(up);
    }
    header(sv);
    for (d, name) in ["server -> client (head -c)", "client -> server (wc -c)"]
        .into_iter()
        .enumerate()
    {
        let g = &got[d];
        row(
            name,
            &(0..n)
                .map(|i| num(median(g.iter().map(|r| r[i]).collect()), 0))
                .collect::<Vec<_>>(),
        );
        row(
            "  / stunnel4",
            &(0..n)
                .map(|i| {
                    if cx.vs_stunnel(&sv[i]) {
                        num(median(g.iter().map(|r| r[i] / r[0]).collect()), 3)
                    } else {
                        "-".into()
                    }
                })
                .collect::<Vec<_>>(),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Memory per live connection.

#[derive(Default, Clone, Copy)]
struct Mem {
    pss: u64,
    rss: u64,
    pte: u64,
    procs: usize,
    threads: u64,
    programs: usize,
}

fn field_kb(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `root` and every process below it, from /proc's parent links.
fn tree(root: u32) -> Vec<u32> {
    let mut parent = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(n) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(st) = std::fs::read_to_string(format!("/proc/{n}/stat")) {
            let rest = &st[st.rfind(')').map_or(0, |i| i + 2)..];
            if let Some(pp) = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok()) {
                parent.push((n, pp));
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// The server's processes summed; those running `program` counted, not summed.
fn tree_mem(root: u32, program: &Path) -> Mem {
    let mut m = Mem::default();
    for pid in tree(root) {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        if exe.as_deref() == Some(program) {
            m.programs += 1;
            continue;
        }
        let roll = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        m.pss += field_kb(&roll, "Pss:");
        m.rss += field_kb(&roll, "Rss:");
        m.pte += field_kb(&status, "VmPTE:");
        m.threads += field_kb(&status, "Threads:");
        m.procs += 1;
    }
    m
}

fn memory(cx: &Ctx) {
    let n = cx.a.hold;
    let cat = std::fs::canonicalize("/bin/cat").unwrap();
    let sv = cx.tls_servers();
    println!(
        "\n== memory per live connection: {n} connections held open (program /bin/cat, one \
         line echoed through each); the server's processes summed, the cat processes not; \
         kB =="
    );
    println!(
        "{:<11} {:>9} {:>9} {:>11} {:>11} {:>9} {:>9} {:>9} {:>6} {:>8}",
        "",
        "idle Pss",
        "idle Rss",
        "loaded Pss",
        "loaded Rss",
        "Pss/conn",
        "Rss/conn",
        "PTE/conn",
        "procs",
        "threads"
    );
    let mut per = vec![f64::NAN; sv.len()];
    for (i, s) in sv.iter().enumerate() {
        let srv = start(cx, s, &["/bin/cat"]);
        std::thread::sleep(Duration::from_millis(300));
        let idle = tree_mem(srv.child.id(), &cat);
        let cfg = client_config(&cx.ca, None);
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            let sock = connect(([127, 0, 0, 1], srv.port).into()).expect("connect");
            let conn = ClientConnection::new(cfg.clone(), server_name()).unwrap();
            let mut s = rustls::StreamOwned::new(conn, sock);
            s.write_all(b"hello\n").expect("write");
            let mut line = [0u8; 6];
            s.read_exact(&mut line).expect("echo");
            held.push(s);
        }
        let t0 = Instant::now();
        let mut loaded = tree_mem(srv.child.id(), &cat);
        while loaded.programs < n && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            loaded = tree_mem(srv.child.id(), &cat);
        }
        std::thread::sleep(Duration::from_millis(500));
        loaded = tree_mem(srv.child.id(), &cat);
        let d = |a: u64, b: u64| (b as f64 - a as f64) / n as f64;
        per[i] = d(idle.pss, loaded.pss);
        println!(
            "{:<11} {:>9} {:>9} {:>11} {:>11} {:>9.1} {:>9.1} {:>9.1} {:>6} {:>8}",
            s.label,
            idle.pss,
            idle.rss,
            loaded.pss,
            loaded.rss,
            d(idle.pss, loaded.pss),
            d(idle.rss, loaded.rss),
            d(idle.pte, loaded.pte),
            loaded.procs,
            loaded.threads
        );
        if loaded.programs != n {
            println!("  (only {} of {n} programs running)", loaded.programs);
        }
        drop(held);
    }
    let ratios: Vec<String> = sv
        .iter()
        .enumerate()
        .filter(|(_, s)| cx.vs_stunnel(s))
        .map(|(i, s)| format!("{} {:.3}", s.label, per[i] / per[0]))
        .collect();
    println!(
        "Pss per connection / stunnel4's: {} (procs, threads: the server's at load)",
        ratios.join(", ")
    );
}

fn main() {
    let a = args();
    let dir = std::env::temp_dir().join(format!("sslserver-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certs(&dir);
    let ca = CertificateDer::from(std::fs::read(dir.join("ca.der")).unwrap());
    let mut servers = vec![
        Srv {
            label: "stunnel4".into(),
            kind: Kind::Stunnel,
            bin: a.stunnel.clone(),
        },
        Srv {
            label: "sslserver".into(),
            kind: Kind::Ssl,
            bin: a.sslserver.clone(),
        },
    ];
    for (label, bin) in &a.alt {
        servers.push(Srv {
            label: label.clone(),
            kind: Kind::Ssl,
            bin: bin.clone(),
        });
    }
    servers.push(Srv {
        label: "tcpserver".into(),
        kind: Kind::Plain,
        bin: a.tcpserver.clone(),
    });
    if !a.only.is_empty() {
        servers.retain(|s| a.only.contains(&s.label));
    }
    let cx = Ctx {
        a,
        dir,
        ca,
        servers,
    };
    let skip = |w: &str| cx.a.skip.iter().any(|s| s == w);
    println!(
        "sslserver benchmark: TLS 1.3, RSA-2048 server certificate, the client offers X25519 \
         only; program /bin/echo ok"
    );
    for s in &cx.servers {
        println!("  {:<11} {}", s.label, s.bin);
    }
    negotiated(&cx);
    if !skip("load") {
        handshakes(&cx);
    }
    if !skip("stime") && cx.a.stime_seconds > 0 {
        s_time(&cx);
    }
    if !skip("relay") {
        relay(&cx);
    }
    if !skip("memory") {
        memory(&cx);
    }
    let _ = std::fs::remove_dir_all(&cx.dir);
}
