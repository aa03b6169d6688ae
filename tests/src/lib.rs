//! Helpers for the black-box tests: where our binaries and Debian's are, temporary
//! directories, running a program with input and a bounded wait.

pub mod accounts;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Our binaries: `$UCSPI_BIN_DIR`, else the cargo target directory the tests run from.
pub fn ours(name: &str) -> PathBuf {
    if let Some(d) = std::env::var_os("UCSPI_BIN_DIR") {
        return Path::new(&d).join(name);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace` first (scripts/test.sh does)",
        p.display()
    );
    p
}

fn ext_dir(var: &str, sub: &str) -> PathBuf {
    if let Some(d) = std::env::var_os(var) {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(".ext")
        .join(sub)
        .join("usr/bin")
}

/// Debian's `ucspi-tcp` (djb's 0.88), unpacked by scripts/test.sh.
pub fn djb(name: &str) -> PathBuf {
    let p = ext_dir("UCSPI_DJB_BIN", "ucspi-tcp").join(name);
    assert!(
        p.exists(),
        "{} missing: run scripts/test.sh, which unpacks Debian's ucspi-tcp",
        p.display()
    );
    p
}

/// Debian's `ucspi-tcp-ipv6` (fefe's patch), unpacked by scripts/test.sh.
pub fn fefe(name: &str) -> PathBuf {
    let p = ext_dir("UCSPI_FEFE_BIN", "ucspi-tcp-ipv6").join(name);
    assert!(
        p.exists(),
        "{} missing: run scripts/test.sh, which unpacks Debian's ucspi-tcp-ipv6",
        p.display()
    );
    p
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "ucspi-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd` with `input` on stdin, killing it after `limit`. Panics on a time-out.
pub fn run_with_input(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let reader_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{:?} did not finish within {:?}", cmd, limit);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = feeder.join();
    Output {
        status,
        stdout: reader_out.join().unwrap(),
        stderr: reader_err.join().unwrap(),
    }
}

/// Runs `prog args` with `input`, environment cleared but for `env`, within 60 s.
pub fn run(prog: &Path, args: &[&OsStr], env: &[(&str, &OsStr)], input: &[u8]) -> Output {
    let mut c = Command::new(prog);
    c.args(args).env_clear();
    for (k, v) in env {
        c.env(k, v);
    }
    run_with_input(&mut c, input, Duration::from_secs(60))
}

/// Output as text for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A directory to put first in `PATH`: symlinks named `names` to our built binaries, and
/// `scripts` copied from tcpclient/scripts (so that they find our binaries by name).
pub fn our_path_dir(names: &[&str], scripts: &[&str]) -> TempDir {
    let d = TempDir::new("path");
    for n in names {
        std::os::unix::fs::symlink(ours(n), d.join(n)).expect("symlink");
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tcpclient/scripts");
    for s in scripts {
        std::fs::copy(src.join(s), d.join(s)).expect("copy script");
    }
    d
}

/// djb's shell script `name` from Debian's package with its `/usr/bin/` paths pointed at
/// the unpacked binaries, written into `dir`.
pub fn djb_script(dir: &TempDir, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(djb(name)).expect("read djb script");
    let bin = djb("tcpclient");
    let bin_dir = bin.parent().unwrap().display().to_string();
    let p = dir.join(name);
    std::fs::write(&p, text.replace("/usr/bin/", &format!("{bin_dir}/"))).expect("write");
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    p
}

/// One DNS answer for [`dns_zone`] and [`dns_responder`].
#[derive(Clone, Debug)]
pub enum Rr {
    A([u8; 4]),
    Aaaa([u8; 16]),
    Ptr(String),
    /// One TXT record holding these character-strings.
    Txt(Vec<Vec<u8>>),
    /// Answer SERVFAIL.
    ServFail,
    /// Over UDP: an empty reply with the TC bit. The client retries over TCP, where
    /// [`dns_zone`] has nothing listening (a lookup failure that djbdns reports at once,
    /// unlike SERVFAIL) and [`dns_responder`] with `tcp` sends the name's other records.
    Truncated,
    /// Never answer.
    Silent,
}

fn name_to_wire(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in s.split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// The question of query `q` as (name in lower case, qtype, end of the question).
fn dns_question(q: &[u8]) -> Option<(String, u16, usize)> {
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let l = *q.get(pos)? as usize;
        pos += 1;
        if l == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(pos..pos + l)?).to_ascii_lowercase());
        pos += l;
    }
    let qtype = u16::from_be_bytes([*q.get(pos)?, *q.get(pos + 1)?]);
    q.get(pos + 3)?;
    Some((labels.join("."), qtype, pos + 4))
}

/// The reply to query `q` from `table` (`None`: stay silent); a name the table does not
/// know is NXDOMAIN. `udp`: whether a `Truncated` answer sets TC (over TCP the real
/// records are sent).
fn dns_reply(q: &[u8], table: &[(String, u16, Rr)], udp: bool) -> Option<Vec<u8>> {
    let (name, qtype, end) = dns_question(q)?;
    let rrs: Vec<&Rr> = table
        .iter()
        .filter(|(nm, t, _)| *nm == name && *t == qtype)
        .map(|(_, _, r)| r)
        .collect();
    if rrs.iter().any(|r| matches!(r, Rr::Silent)) {
        return None;
    }
    let known = table.iter().any(|(nm, _, _)| *nm == name);
    let question = &q[12..end];
    let mut r = vec![q[0], q[1], 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
    r.extend_from_slice(question);
    let mut count = 0u16;
    let mut rcode = if known { 0 } else { 3 };
    let truncated = udp && rrs.iter().any(|r| matches!(r, Rr::Truncated));
    for rr in &rrs {
        let (t, data) = match rr {
            Rr::A(b) => (1u16, b.to_vec()),
            Rr::Aaaa(b) => (28, b.to_vec()),
            Rr::Ptr(s) => (12, name_to_wire(s)),
            Rr::Txt(strings) => {
                let mut d = Vec::new();
                for s in strings {
                    d.push(s.len() as u8);
                    d.extend_from_slice(s);
                }
                (16, d)
            }
            Rr::ServFail => {
                rcode = 2;
                continue;
            }
            Rr::Silent | Rr::Truncated => continue,
        };
        r.extend_from_slice(&[0xc0, 12]);
        r.extend_from_slice(&t.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(&data);
        count += 1;
    }
    if rcode == 2 || truncated {
        r.truncate(12 + question.len());
        count = 0;
    }
    if truncated {
        r[2] |= 0x02;
    }
    r[3] = 0x80 | rcode;
    r[6..8].copy_from_slice(&count.to_be_bytes());
    Some(r)
}

/// A DNS responder on `ip`:53 (UDP) for `limit` at most, answering (name, qtype) from
/// `table` (names lower case, without the final dot); other questions get NXDOMAIN. The
/// returned list collects every question asked over UDP as `name/qtype`.
pub fn dns_zone(
    ip: &str,
    table: Vec<(String, u16, Rr)>,
    limit: Duration,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    dns_responder(ip, table, limit, false)
}

/// [`dns_zone`], and with `tcp` also on TCP port 53 (at most 20 connections), where
/// `Truncated` answers give way to the name's other records.
pub fn dns_responder(
    ip: &str,
    table: Vec<(String, u16, Rr)>,
    limit: Duration,
    tcp: bool,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use std::sync::{Arc, Mutex};
    let sock = std::net::UdpSocket::bind((ip, 53)).expect("bind DNS responder (needs root)");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let table = Arc::new(table);
    if tcp {
        let l = std::net::TcpListener::bind((ip, 53)).expect("bind DNS TCP responder");
        let t2 = table.clone();
        std::thread::spawn(move || {
            for s in l.incoming().take(20) {
                let Ok(mut s) = s else { continue };
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if s.read_exact(&mut q).is_err() {
                    continue;
                }
                if let Some(r) = dns_reply(&q, &t2, false) {
                    let _ = s.write_all(&(r.len() as u16).to_be_bytes());
                    let _ = s.write_all(&r);
                }
            }
        });
    }
    let asked = Arc::new(Mutex::new(Vec::new()));
    let a2 = asked.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut buf = [0u8; 512];
        while start.elapsed() < limit {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let q = &buf[..n];
            if let Some((name, qtype, _)) = dns_question(q) {
                a2.lock().unwrap().push(format!("{name}/{qtype}"));
            }
            if let Some(r) = dns_reply(q, &table, true) {
                let _ = sock.send_to(&r, from);
            }
        }
    });
    asked
}

/// A TCP server on `ip`:`port` for `limit` at most: each connection is handed to
/// `serve` on its own thread (with 10 s read and write time-outs).
pub fn tcp_service(
    ip: &str,
    port: u16,
    limit: Duration,
    serve: fn(std::net::TcpStream),
) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind((ip, port)).expect("bind test service");
    let addr = l.local_addr().unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < limit {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
                    std::thread::spawn(move || serve(s));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    addr
}

/// Whether this machine has an IPv6 loopback (`[::1]` can be bound), which the dual-stack
/// tests need. When it has none, says so on stderr (past the test harness's capture, so
/// that the skip is seen) and `test` should return at once: skipped, not failed.
pub fn ipv6_loopback(test: &str) -> bool {
    match std::net::TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "{test}: skipped: no IPv6 loopback on this machine (cannot bind [::1]: {e})"
            );
            false
        }
    }
}

/// Whether `port` is listened on by an IPv6 socket and by no IPv4 one (/proc/net), so that
/// an IPv4 client of it can only arrive v4-mapped (`::ffff:a.b.c.d`).
pub fn dual_stack_only(port: u16) -> bool {
    let listening = |table: &str| {
        let text = std::fs::read_to_string(format!("/proc/net/{table}")).unwrap_or_default();
        text.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&format!(":{port:04X}")) && f[3] == "0A"
        })
    };
    listening("tcp6") && !listening("tcp")
}

/// Fails the test unless it runs as root, saying why root is needed.
pub fn need_root(why: &str) {
    // SAFETY: plain id query.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests run as root (scripts/test.sh does): {why}"
    );
}

/// One test per database back end for each named function `fn name(kind: Kind)`; the
/// calling file defines `enum Kind { Sqlite, Mysql, Pg }`.
#[macro_export]
macro_rules! backend_matrix {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name(super::Kind::Sqlite)
                }
                #[test]
                fn mysql() {
                    super::$name(super::Kind::Mysql)
                }
                #[test]
                fn postgres() {
                    super::$name(super::Kind::Pg)
                }
            }
        )*
    };
}

/// Compiles rules `text` with the `tcprules` at `tcprules` (djb's or ours) into
/// `dir/name`; returns the cdb's path.
pub fn compile_rules(tcprules: &Path, dir: &TempDir, name: &str, text: &str) -> String {
    let cdb = dir.join(name);
    let tmp = dir.join(&format!("{name}.tmp"));
    let o = run_with_input(
        Command::new(tcprules).arg(&cdb).arg(&tmp),
        text.as_bytes(),
        Duration::from_secs(10),
    );
    assert!(o.status.success(), "{}", show(&o));
    cdb.display().to_string()
}

/// Polls `f` every 10 ms until it gives `Some`, for at most `limit`.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A long-running process (a server, a load balancer, a socket activator) with its
/// standard output and standard error collected line by line; killed on drop.
pub struct Daemon {
    pub child: std::process::Child,
    out: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    err: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `c` with standard input from /dev/null (unless `c` set it) and its output
    /// collected.
    pub fn spawn(c: &mut Command) -> Daemon {
        use std::io::BufRead;
        use std::sync::{Arc, Mutex};
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {c:?}: {e}"));
        let collect = |r: Box<dyn Read + Send>| {
            let v = Arc::new(Mutex::new(Vec::new()));
            let v2 = v.clone();
            std::thread::spawn(move || {
                for l in std::io::BufReader::new(r).lines().map_while(Result::ok) {
                    v2.lock().unwrap().push(l);
                }
            });
            v
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        Daemon { child, out, err }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Standard output's lines so far.
    pub fn stdout(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }

    /// Standard error's lines so far.
    pub fn log(&self) -> Vec<String> {
        self.err.lock().unwrap().clone()
    }

    /// The first `n` lines of standard output, waited for up to `limit`.
    pub fn wait_stdout(&self, n: usize, limit: Duration) -> Option<Vec<String>> {
        poll(limit, || {
            let o = self.stdout();
            (o.len() >= n).then(|| o[..n].to_vec())
        })
    }

    /// Waits up to `limit` until `f` holds for standard error's lines; returns them
    /// either way.
    pub fn wait_log(&self, limit: Duration, f: impl Fn(&[String]) -> bool) -> Vec<String> {
        poll(limit, || {
            let l = self.log();
            f(&l).then_some(l)
        })
        .unwrap_or_else(|| self.log())
    }

    /// The exit status, waited for up to `limit` (`None`: still running).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        poll(limit, || self.child.try_wait().ok().flatten())
    }

    /// Sends signal `sig` to the process.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: a signal to our own child.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0, "kill {sig}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a TCP socket listens on local `port` (any address), from /proc/net/tcp{,6}.
pub fn listening(port: u16) -> bool {
    let want = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() > 3 && w[1].ends_with(&want) && w[3] == "0A"
            })
        })
    })
}

/// A TCP port that is free on every address of `ips` now (the kernel picks it for the
/// first; the others are checked). A program told to bind it later may still lose a
/// race, so callers retry.
pub fn free_port(ips: &[std::net::IpAddr]) -> u16 {
    for _ in 0..100 {
        let first = std::net::TcpListener::bind((ips[0], 0)).expect("bind port 0");
        let port = first.local_addr().unwrap().port();
        let rest: Vec<_> = ips[1..]
            .iter()
            .map(|ip| std::net::TcpListener::bind((*ip, port)))
            .collect();
        if rest.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no port free on all of {ips:?}")
}

/// Debian's HAProxy, if installed.
pub fn haproxy_bin() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/sbin/haproxy");
    p.exists().then_some(p)
}

/// A TCP-mode HAProxy in the foreground (`-db`): frontend `i` listens on 127.0.0.1 at
/// `ports[i]` and sends its clients to `backends[i]` = (address, options of the server
/// line, such as `send-proxy-v2 source 127.0.0.3`). Killed on drop.
pub struct HaProxy {
    pub daemon: Daemon,
    pub ports: Vec<u16>,
    _dir: TempDir,
}

impl HaProxy {
    pub fn start(backends: &[(std::net::SocketAddr, &str)]) -> HaProxy {
        let bin = haproxy_bin().expect("haproxy is not installed");
        let mut last = String::new();
        for _ in 0..5 {
            let dir = TempDir::new("haproxy");
            let lo = std::net::IpAddr::from([127, 0, 0, 1]);
            let ports: Vec<u16> = backends.iter().map(|_| free_port(&[lo])).collect();
            let mut cfg = String::from(
                "global\n    maxconn 100\n\
                 defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n    \
                 timeout server 10s\n    timeout check 5s\n",
            );
            for (i, ((addr, opts), port)) in backends.iter().zip(&ports).enumerate() {
                cfg.push_str(&format!(
                    "frontend f{i}\n    bind 127.0.0.1:{port}\n    default_backend b{i}\n\
                     backend b{i}\n    server s{i} {addr} {opts}\n"
                ));
            }
            let cfg_path = dir.join("haproxy.cfg");
            std::fs::write(&cfg_path, &cfg).unwrap();
            let mut c = Command::new(&bin);
            c.arg("-f").arg(&cfg_path).arg("-db").stdin(Stdio::null());
            let mut daemon = Daemon::spawn(&mut c);
            let up = poll(Duration::from_secs(10), || {
                if ports.iter().all(|p| listening(*p)) {
                    return Some(true);
                }
                daemon.child.try_wait().ok().flatten().map(|_| false)
            });
            if up == Some(true) {
                return HaProxy {
                    daemon,
                    ports,
                    _dir: dir,
                };
            }
            let _ = daemon.child.kill();
            let _ = daemon.child.wait();
            std::thread::sleep(Duration::from_millis(100));
            last = format!("{cfg}\n{:?}", daemon.log());
        }
        panic!("haproxy did not start: {last}")
    }

    /// Frontend `i`'s address.
    pub fn addr(&self, i: usize) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.ports[i]))
    }
}

/// Debian's `systemd-socket-activate` (package systemd).
pub fn socket_activate_bin() -> PathBuf {
    let p = PathBuf::from("/usr/bin/systemd-socket-activate");
    assert!(
        p.exists(),
        "{} missing: install Debian's systemd package (scripts/test.d/40-deploy.sh does)",
        p.display()
    );
    p
}

/// `systemd-socket-activate` listening on `hosts` (`127.0.0.1`, `[::1]`, ...) at one
/// port free on all of them, naming the sockets `fdnames` (`a:b`; empty: no names),
/// setting `setenv` (`NAME=value`) for `prog`, which it runs, as systemd does, at the
/// first connection with the sockets on descriptors 3, 4, ... Returns it and the port.
pub fn socket_activated(
    hosts: &[&str],
    fdnames: &str,
    setenv: &[String],
    prog: &[&OsStr],
) -> (Daemon, u16) {
    let ips: Vec<std::net::IpAddr> = hosts
        .iter()
        .map(|h| h.trim_matches(|c| c == '[' || c == ']').parse().unwrap())
        .collect();
    let mut last = Vec::new();
    for _ in 0..5 {
        let port = free_port(&ips);
        let mut c = Command::new(socket_activate_bin());
        for h in hosts {
            c.arg("-l").arg(format!("{h}:{port}"));
        }
        if !fdnames.is_empty() {
            c.arg(format!("--fdname={fdnames}"));
        }
        for e in setenv {
            c.arg("-E").arg(e);
        }
        c.args(prog)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null());
        let mut d = Daemon::spawn(&mut c);
        let up = poll(Duration::from_secs(10), || {
            let n = d
                .log()
                .iter()
                .filter(|l| l.starts_with("Listening on "))
                .count();
            if n == hosts.len() {
                return Some(true);
            }
            d.child.try_wait().ok().flatten().map(|_| false)
        });
        if up == Some(true) {
            return (d, port);
        }
        last = d.log();
    }
    panic!("systemd-socket-activate did not listen: {last:?}")
}

/// HAProxy's PROXY protocol headers, built by hand for the tests (spec: HAProxy's
/// proxy-protocol.txt).
pub mod proxy_header {
    use std::net::SocketAddr;

    /// Version 2's 12-byte signature.
    pub const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

    /// `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n`.
    pub fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
        let fam = if src.is_ipv4() { "TCP4" } else { "TCP6" };
        format!(
            "PROXY {fam} {} {} {} {}\r\n",
            src.ip(),
            dst.ip(),
            src.port(),
            dst.port()
        )
        .into_bytes()
    }

    /// A version 2 header: command `cmd` (0 LOCAL, 1 PROXY), family and transport byte
    /// `fam`, then `body` (addresses and TLVs) with its length.
    pub fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    /// A version 2 PROXY header over TCP from `src` to `dst` (both IPv4 or both IPv6),
    /// followed by `tlvs`.
    pub fn v2_tcp(src: SocketAddr, dst: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        let fam = match (src, dst) {
            (SocketAddr::V4(s), SocketAddr::V4(d)) => {
                body.extend_from_slice(&s.ip().octets());
                body.extend_from_slice(&d.ip().octets());
                0x11
            }
            (SocketAddr::V6(s), SocketAddr::V6(d)) => {
                body.extend_from_slice(&s.ip().octets());
                body.extend_from_slice(&d.ip().octets());
                0x21
            }
            _ => panic!("mixed families"),
        };
        body.extend_from_slice(&src.port().to_be_bytes());
        body.extend_from_slice(&dst.port().to_be_bytes());
        body.extend_from_slice(tlvs);
        v2(1, fam, &body)
    }

    /// One TLV.
    pub fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut t = vec![kind];
        t.extend_from_slice(&(value.len() as u16).to_be_bytes());
        t.extend_from_slice(value);
        t
    }

    /// The health checks' header: version 2 LOCAL, no addresses.
    pub fn v2_local() -> Vec<u8> {
        v2(0, 0, &[])
    }
}
