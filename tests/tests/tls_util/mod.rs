//! What the TLS tests share: a private CA and certificates made by Debian's `openssl`
//! command for each test, and our sslserver started on a loopback port it picked itself
//! (`-1`), with its log collected.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use blackbox::{ours, TempDir};

/// Runs `openssl` with `args` in `dir`; panics with its output when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command is missing: install Debian's openssl package");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A private CA, server certificates signed by it, a client CA with a client
/// certificate, and a few bad ones, all in one temporary directory.
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = TempDir::new("pki");
        let d = dir.path();
        std::fs::write(
            d.join("ca.cnf"),
            "[ca]\ndefault_ca = ca\n[ca]\ndir = .\ndatabase = index.txt\nnew_certs_dir = .\n\
             certificate = ca.pem\nprivate_key = ca.key\nserial = serial\ndefault_md = sha256\n\
             policy = any\ncopy_extensions = copy\nunique_subject = no\n[any]\ncommonName = supplied\n",
        )
        .unwrap();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), "1000\n").unwrap();
        // The server's CA (EC) and the client CA (another EC key).
        for (name, cn) in [("ca", "Test Server CA"), ("clientca", "Test Client CA")] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "30",
                    "-subj",
                    &format!("/O=ucspi-rs tests/CN={cn}"),
                ],
            );
        }
        let p = Pki { dir };
        p.leaf(
            "server",
            "localhost",
            "DNS:localhost,IP:127.0.0.1,IP:::1",
            "ca",
            "rsa",
            None,
        );
        p.leaf(
            "mail",
            "mail.example.com",
            "DNS:mail.example.com",
            "ca",
            "rsa",
            None,
        );
        p.leaf(
            "wild",
            "*.example.org",
            "DNS:*.example.org",
            "ca",
            "ec",
            None,
        );
        p.leaf(
            "client",
            "client.example",
            "DNS:client.example",
            "clientca",
            "ec",
            None,
        );
        p.leaf(
            "expired",
            "localhost",
            "DNS:localhost,IP:127.0.0.1",
            "ca",
            "rsa",
            Some(("20200101000000Z", "20200201000000Z")),
        );
        p
    }

    /// Makes `NAME.pem` and `NAME.key`: a certificate for `cn` with `san`, signed by
    /// `ca` (`ca` or `clientca`), with an RSA-2048 or EC P-256 key, valid now or in the
    /// given window (openssl's `ca` command, which can date it).
    pub fn leaf(
        &self,
        name: &str,
        cn: &str,
        san: &str,
        ca: &str,
        kind: &str,
        dates: Option<(&str, &str)>,
    ) {
        let d = self.dir.path();
        let key = format!("{name}.key");
        let keygen: Vec<&str> = if kind == "rsa" {
            vec!["-newkey", "rsa:2048"]
        } else {
            vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        };
        let mut req = vec!["req", "-new"];
        req.extend(keygen);
        let subj = format!("/O=ucspi-rs tests/CN={cn}");
        let csr = format!("{name}.csr");
        req.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj]);
        let ext = format!("subjectAltName={san}");
        req.extend(["-addext", &ext, "-addext", "basicConstraints=CA:FALSE"]);
        openssl(d, &req);
        let out = format!("{name}.pem");
        let (start, end) = dates.unwrap_or(("", ""));
        let mut sign = vec![
            "ca", "-batch", "-config", "ca.cnf", "-in", &csr, "-out", &out, "-notext", "-cert",
        ];
        let ca_pem = format!("{ca}.pem");
        let ca_key = format!("{ca}.key");
        sign.extend([ca_pem.as_str(), "-keyfile", &ca_key]);
        if dates.is_some() {
            sign.extend(["-startdate", start, "-enddate", end]);
        } else {
            sign.extend(["-days", "30"]);
        }
        openssl(d, &sign);
    }

    pub fn path(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }

    pub fn s(&self, f: &str) -> String {
        self.path(f).display().to_string()
    }
}

/// Our sslserver with its `-1` line and its log (stderr, line by line).
pub struct Server {
    pub child: Child,
    pub port: u16,
    /// `-1`'s line: `IP : PORT [limit/maxconip]`.
    pub first: String,
    pub ip: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `env` is the server's whole environment (PATH added); `-1` and `args` go before
    /// `host 0 program...`.
    pub fn start(env: &[(&str, &str)], args: &[&str], host: &str, program: &[&str]) -> Server {
        let mut c = Command::new(ours("sslserver"));
        c.env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            )
            .envs(env.iter().copied())
            .arg("-1")
            .args(args)
            .arg(host)
            .arg("0")
            .args(program);
        Server::spawn(c, host)
    }

    /// Runs `c` (which must end up as sslserver with `-1` on `host`, port 0).
    pub fn spawn(mut c: Command, host: &str) -> Server {
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn sslserver");
        let log = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().unwrap();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(line);
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = BufReader::new(out).read_line(&mut first);
            let _ = tx.send(first);
        });
        let first = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default()
            .trim_end()
            .to_string();
        let port = first
            .split(" : ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "sslserver printed no port ({first:?}); log: {:?}",
                log.lock().unwrap()
            )
        };
        Server {
            child,
            port,
            first,
            ip: host.to_string(),
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn addr(&self) -> String {
        if self.ip.contains(':') {
            format!("[{}]:{}", self.ip, self.port)
        } else {
            format!("{}:{}", self.ip, self.port)
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to 15 s) until `n` log lines contain `needle`; returns them.
    pub fn wait_lines(&self, needle: &str, n: usize) -> Vec<String> {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let found: Vec<String> = self
                .log()
                .into_iter()
                .filter(|l| l.contains(needle))
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < end,
                "not {n} log lines with {needle:?} within 15 s; log: {:#?}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The first log line containing `needle`, waited for up to 15 s.
    pub fn wait_log(&self, needle: &str) -> String {
        self.wait_lines(needle, 1).remove(0)
    }

    /// Log lines containing `needle` now.
    pub fn count(&self, needle: &str) -> usize {
        self.log().iter().filter(|l| l.contains(needle)).count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `openssl s_client` against `addr` with `extra` options, `input` on its stdin (it
/// stays open 1 s after, for the server's answer); its stdout and stderr, within 20 s.
pub fn s_client(addr: &str, extra: &[&str], input: &[u8]) -> (String, String) {
    let mut c = Command::new("openssl");
    c.arg("s_client")
        .args(["-connect", addr, "-ign_eof"])
        .args(extra);
    let o = blackbox::run_with_input(&mut c, input, Duration::from_secs(20));
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Python for clients and programs: Debian's (the one in PATH may be a pyenv shim that
/// needs a HOME the server's cleared environment does not have).
pub fn py() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// A Python script run with `args`, within `limit`.
pub fn python(script: &str, args: &[&str], limit: Duration) -> Output {
    let mut c = Command::new(py());
    c.arg("-c").arg(script).args(args);
    blackbox::run_with_input(&mut c, b"", limit)
}

/// A Python TLS client: connects to `argv[1]`:`argv[2]` (from source address `argv[4]`
/// unless empty), sends the bytes `argv[5]` (hex) in clear text first (a PROXY
/// header), then does TLS trusting CA file `argv[3]` for the name localhost, sends
/// nothing and reads until the end. Prints its local port on a line, then what it read,
/// or `ERROR` and why when TLS fails.
pub const TLS_FETCH: &str = r#"
import socket, ssl, sys
host, port, ca, src = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
header = bytes.fromhex(sys.argv[5])
raw = socket.create_connection((host, port), timeout=10, source_address=(src, 0) if src else None)
print(raw.getsockname()[1], flush=True)
try:
    raw.sendall(header)
    ctx = ssl.create_default_context(cafile=ca)
    t = ctx.wrap_socket(raw, server_hostname="localhost")
    data = b""
    while True:
        b = t.recv(65536)
        if not b:
            break
        data += b
    sys.stdout.write(data.decode())
except Exception as e:
    print("ERROR", type(e).__name__, e)
"#;

/// [`TLS_FETCH`] against `host`:`port` trusting `ca`, from `source` if given, with
/// `header` sent before the handshake: the client's local port and what it printed
/// after it (the program's output, or `ERROR ...`).
pub fn tls_fetch(
    host: &str,
    port: u16,
    ca: &str,
    source: Option<&str>,
    header: &[u8],
) -> (u16, String) {
    let hex: String = header.iter().map(|b| format!("{b:02x}")).collect();
    let port = port.to_string();
    let o = python(
        TLS_FETCH,
        &[host, &port, ca, source.unwrap_or(""), &hex],
        Duration::from_secs(30),
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (first, rest) = out
        .split_once('\n')
        .unwrap_or_else(|| panic!("TLS client failed: {}", blackbox::show(&o)));
    (
        first
            .parse()
            .unwrap_or_else(|_| panic!("{}", blackbox::show(&o))),
        rest.to_string(),
    )
}
