//! sslserver against real TLS clients (openssl s_client, Python's ssl and smtplib, curl)
//! on loopback, with certificates made by the test. Every server listens on a port the
//! kernel picked (`-1`); names are not looked up (`-H -l0`) unless a test brings its own
//! DNS responder.

mod tls_util;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blackbox::{dns_responder, ours, run_with_input, show, Rr, TempDir};
use tls_util::*;

fn path_var() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
}

/// CERTFILE and KEYFILE of the localhost certificate.
fn server_env(pki: &Pki) -> Vec<(String, String)> {
    vec![
        ("CERTFILE".into(), pki.s("server.pem")),
        ("KEYFILE".into(), pki.s("server.key")),
    ]
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// sslserver with the localhost certificate on 127.0.0.1 and `extra` variables.
fn start(pki: &Pki, extra: &[(&str, &str)], args: &[&str], program: &[&str]) -> Server {
    let env = server_env(pki);
    let mut e = refs(&env);
    e.extend_from_slice(extra);
    Server::start(&e, args, "127.0.0.1", program)
}

/// What s_client prints with `-quiet` (the program's output), trusting our CA.
fn tls_out(s: &Server, pki: &Pki, extra: &[&str], input: &[u8]) -> String {
    let ca = pki.s("ca.pem");
    let mut a = vec!["-quiet", "-CAfile", ca.as_str()];
    a.extend_from_slice(extra);
    s_client(&s.addr(), &a, input).0
}

/// `NAME=value` lines of `env` output.
fn vars(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A plain TCP client: sends `data`, then reads until end of file, reset or 10 s; what
/// it read and how long that took.
fn raw(addr: &str, data: &[u8]) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if !data.is_empty() {
        c.write_all(data).unwrap();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read after {:?}: {e} (got {got:?})", start.elapsed()),
        }
    }
    (got, start.elapsed())
}

/// A shell program that leaves `marker` behind when it runs, then says hello.
fn marking(marker: &Path) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("touch '{}'; echo hello", marker.display()),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The pid in `sslserver: WORD PID ...`.
fn pid_in(line: &str, word: &str) -> u32 {
    let rest = line.split(word).nth(1).unwrap_or_else(|| panic!("{line}"));
    rest.split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid after {word:?} in {line}"))
}

/// A rules cdb compiled by our tcprules.
fn rules(dir: &TempDir, name: &str, text: &str) -> String {
    blackbox::compile_rules(&ours("tcprules"), dir, name, text)
}

/// Runs sslserver that is expected to exit by itself (startup errors, usage).
fn run_server(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(ours("sslserver"));
    c.env_clear()
        .env("PATH", path_var())
        .envs(env.iter().copied())
        .args(args);
    run_with_input(&mut c, b"", Duration::from_secs(10))
}

/// An s_client kept connected: its stdin stays open until [`Held::send`] or drop, its
/// output is collected.
struct Held {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Held {
    fn connect(addr: &str, ca: &str) -> Held {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", addr, "-CAfile", ca])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn s_client");
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let o2 = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                o2.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Held { child, stdin, out }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Waits up to 15 s for `needle` in the output.
    fn wait_for(&self, needle: &str) {
        let end = Instant::now() + Duration::from_secs(15);
        while !self.output().contains(needle) {
            assert!(
                Instant::now() < end,
                "no {needle:?} within 15 s: {:?}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn send(&mut self, line: &[u8]) {
        self.stdin.as_mut().unwrap().write_all(line).unwrap();
    }

    /// Waits up to 15 s for s_client to end.
    fn wait_end(&mut self) {
        let end = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < end, "s_client still running");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ls -l /proc/PID/fd` as fd number → target.
fn fd_table(listing: &str) -> BTreeMap<u32, String> {
    listing
        .lines()
        .filter_map(|l| l.split_once(" -> "))
        .filter_map(|(left, target)| {
            let n = left.split_whitespace().last()?.parse().ok()?;
            Some((n, target.trim().to_string()))
        })
        .collect()
}

/// The descriptors a plain `sh` started by this test process holds beyond 0, 1 and 2:
/// whatever the test harness leaks into its children (and so into our server), which
/// the server passes on as tcpserver does. Our own descriptors must come on top.
fn inherited_fds() -> BTreeMap<u32, String> {
    let mut c = Command::new("sh");
    c.args(["-c", "ls -l /proc/$$/fd"])
        .env_clear()
        .env("PATH", path_var());
    let o = run_with_input(&mut c, b"", Duration::from_secs(10));
    let mut t = fd_table(&String::from_utf8_lossy(&o.stdout));
    t.retain(|n, _| *n > 2);
    t
}

// ---------------------------------------------------------------------------------------
// Protocols, ciphers, SNI, client certificates, resumption.

/// The `SSL_PROTOCOL` and `SSL_CIPHER` the program saw, the `-V` line, and s_client's own
/// summary agree, for TLS 1.3 and TLS 1.2.
#[test]
fn tls13_and_tls12_reach_the_program_and_the_log() {
    let pki = Pki::new();
    let s = start(
        &pki,
        &[],
        &["-VsHl0"],
        &[
            "sh",
            "-c",
            "echo \"P=$SSL_PROTOCOL C=$SSL_CIPHER K=$SSL_CIPHER_USEKEYSIZE\"",
        ],
    );
    let ca = pki.s("ca.pem");
    for (flag, proto) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let (out, err) = s_client(&s.addr(), &[flag, "-CAfile", &ca], b"");
        let line = out
            .lines()
            .find(|l| l.starts_with("P="))
            .unwrap_or_else(|| panic!("{out}\n{err}"));
        let v: BTreeMap<&str, &str> = line.split(' ').filter_map(|w| w.split_once('=')).collect();
        assert_eq!(v["P"], proto, "{line}");
        let cipher = v["C"];
        // s_client's view of the same session.
        assert!(
            out.contains(&format!("New, {proto}, Cipher is {cipher}")),
            "{out}"
        );
        if proto == "TLSv1.3" {
            assert_eq!(cipher, "TLS_AES_256_GCM_SHA384");
        } else {
            assert!(cipher.starts_with("ECDHE-RSA-AES"), "{cipher}");
        }
        assert_eq!(v["K"], if cipher.contains("128") { "128" } else { "256" });
        let accept = s.wait_log(&format!("accept {proto}:"));
        assert!(
            accept.starts_with("sslserver: tls ")
                && accept.ends_with(&format!(" accept {proto}:{cipher}")),
            "{accept}"
        );
    }
    assert_eq!(s.wait_lines("ended by", 2).len(), 2);
}

/// `CIPHERS` in OpenSSL's names picks the suites the server offers.
#[test]
fn ciphers_variable_limits_the_suites() {
    let pki = Pki::new();
    let s = start(
        &pki,
        &[(
            "CIPHERS",
            "TLS_CHACHA20_POLY1305_SHA256:ECDHE-RSA-AES128-GCM-SHA256",
        )],
        &["-VHl0"],
        &["echo", "hi"],
    );
    let ca = pki.s("ca.pem");
    let (out, _) = s_client(&s.addr(), &["-tls1_3", "-CAfile", &ca], b"");
    assert!(
        out.contains("Cipher is TLS_CHACHA20_POLY1305_SHA256"),
        "{out}"
    );
    let (out, _) = s_client(&s.addr(), &["-tls1_2", "-CAfile", &ca], b"");
    assert!(
        out.contains("Cipher is ECDHE-RSA-AES128-GCM-SHA256"),
        "{out}"
    );
    s.wait_log("accept TLSv1.3:TLS_CHACHA20_POLY1305_SHA256");
    s.wait_log("accept TLSv1.2:ECDHE-RSA-AES128-GCM-SHA256");
}

/// `CERTFILE:name`: the exact name, then a `*.domain` entry, else CERTFILE.
#[test]
fn sni_chooses_the_certificate() {
    let pki = Pki::new();
    let (mail, mail_key) = (pki.s("mail.pem"), pki.s("mail.key"));
    let (wild, wild_key) = (pki.s("wild.pem"), pki.s("wild.key"));
    let s = start(
        &pki,
        &[
            ("CERTFILE:mail.example.com", &mail),
            ("KEYFILE:mail.example.com", &mail_key),
            ("CERTFILE:*.example.org", &wild),
            ("KEYFILE:*.example.org", &wild_key),
            // An exact name wins over the wildcard that also matches it.
            ("CERTFILE:x.example.org", &mail),
            ("KEYFILE:x.example.org", &mail_key),
        ],
        &["-sHl0"],
        &[
            "sh",
            "-c",
            "echo \"SNI=$SSL_TLS_SNI CN=$SSL_SERVER_S_DN_CN\"",
        ],
    );
    let ca = pki.s("ca.pem");
    let cases: [(&[&str], &str, &str); 7] = [
        (
            &["-servername", "mail.example.com"],
            "mail.example.com",
            "SNI=mail.example.com CN=mail.example.com",
        ),
        (
            &["-servername", "MAIL.example.com"],
            "mail.example.com",
            "CN=mail.example.com",
        ),
        (
            &["-servername", "www.example.org"],
            "www.example.org",
            "SNI=www.example.org CN=*.example.org",
        ),
        (
            &["-servername", "x.example.org"],
            "mail.example.com",
            "SNI=x.example.org CN=mail.example.com",
        ),
        // A wildcard covers one label only.
        (
            &["-servername", "a.b.example.org"],
            "localhost",
            "SNI=a.b.example.org CN=localhost",
        ),
        (&["-noservername"], "localhost", "SNI= CN=localhost"),
        (
            &["-servername", "unknown.example.net"],
            "localhost",
            "SNI=unknown.example.net CN=localhost",
        ),
    ];
    for (opts, verify_as, program_says) in cases {
        let mut a = vec![
            "-CAfile",
            ca.as_str(),
            "-verify_return_error",
            "-verify_hostname",
            verify_as,
        ];
        a.extend_from_slice(opts);
        let (out, err) = s_client(&s.addr(), &a, b"");
        assert!(
            out.contains("Verify return code: 0 (ok)"),
            "{opts:?}: {out}\n{err}"
        );
        // The name in the certificate that matched.
        let cn = program_says.rsplit("CN=").next().unwrap();
        assert!(
            out.contains(&format!("Verified peername: {cn}\n")),
            "{opts:?}: {out}\n{err}"
        );
        assert!(
            out.contains(&format!("subject=CN = {cn}")),
            "{opts:?}: {out}"
        );
        assert!(out.contains(program_says), "{opts:?}: {out}");
    }
}

/// `-m`: a client certificate from CAFILE's CAs runs the program with SSL_CLIENT_*; none,
/// or one from another CA, never runs it.
#[test]
fn client_certificates_are_required_with_m() {
    let pki = Pki::new();
    let d = TempDir::new("ssl-m");
    let marker = d.join("ran");
    let program = format!(
        "touch '{}'; echo \"CN=$SSL_CLIENT_S_DN_CN VERIFY=$SSL_CLIENT_VERIFY I=$SSL_CLIENT_I_DN_CN\"",
        marker.display()
    );
    let (cca, ca) = (pki.s("clientca.pem"), pki.s("ca.pem"));
    let s = start(
        &pki,
        &[("CAFILE", &cca), ("CCAFILE", &cca)],
        &["-vsmHl0"],
        &["sh", "-c", &program],
    );
    let (cert, key) = (pki.s("client.pem"), pki.s("client.key"));
    let (out, err) = s_client(
        &s.addr(),
        &["-CAfile", &ca, "-cert", &cert, "-key", &key],
        b"",
    );
    assert!(
        out.contains("CN=client.example VERIFY=SUCCESS I=Test Client CA"),
        "{out}\n{err}"
    );
    // CCAFILE's CA is named in the request.
    assert!(
        out.contains(
            "Acceptable client certificate CA names\nO = ucspi-rs tests, CN = Test Client CA\n"
        ),
        "{out}"
    );
    // A resumed session keeps the client certificate it was verified with (it travels
    // in the ticket), as OpenSSL's server does.
    let sess = pki.s("client.sess");
    let _ = s_client(
        &s.addr(),
        &[
            "-CAfile",
            &ca,
            "-cert",
            &cert,
            "-key",
            &key,
            "-sess_out",
            &sess,
        ],
        b"",
    );
    let (out, err) = s_client(&s.addr(), &["-CAfile", &ca, "-sess_in", &sess], b"");
    assert!(out.contains("Reused, TLSv1.3"), "{out}\n{err}");
    assert!(
        out.contains("CN=client.example VERIFY=SUCCESS"),
        "{out}\n{err}"
    );
    s.wait_lines("ended by", 3);
    let info = s.wait_log("info: valid client cert received from: 127.0.0.1 for pid: ");
    let ok = s.wait_log(": ok ");
    assert_eq!(pid_in(&info, "for pid:"), pid_in(&ok, "ok"));
    s.wait_lines("ended by", 1);
    std::fs::remove_file(&marker).unwrap();

    // Three connections so far; each refused one adds an `ended by` line with 110.
    for (n, version) in [(1, "-tls1_3"), (2, "-tls1_2")] {
        let _ = s_client(&s.addr(), &[version, "-CAfile", &ca], b"");
        let lines = s.wait_lines(
            "error: (110) no client certificate from: 127.0.0.1 for pid: ",
            n,
        );
        assert_eq!(lines.len(), n);
        let ended = s.wait_lines("ended by", 3 + n);
        assert!(ended[2 + n].ends_with(" status 28160"), "{ended:?}");
        assert!(!marker.exists(), "the program ran without a certificate");
    }

    // The server's certificate is from the other CA.
    let (cert, key) = (pki.s("server.pem"), pki.s("server.key"));
    let _ = s_client(
        &s.addr(),
        &["-CAfile", &ca, "-cert", &cert, "-key", &key],
        b"",
    );
    s.wait_log(
        "error: (110) missing credentials (CA) or unable to validate client certificate from: 127.0.0.1 for pid: ",
    );
    let ended = s.wait_lines("ended by", 6);
    assert!(ended[5].ends_with(" status 28160"), "{ended:?}");
    assert!(!marker.exists(), "the program ran with a bad certificate");
}

/// `CCAFILE=-` asks for no certificate even with `-m`: SSL_CLIENT_VERIFY=NONE.
#[test]
fn ccafile_dash_requests_no_client_certificate() {
    let pki = Pki::new();
    let cca = pki.s("clientca.pem");
    let s = start(
        &pki,
        &[("CAFILE", &cca), ("CCAFILE", "-")],
        &["-smHl0"],
        &[
            "sh",
            "-c",
            "echo \"VERIFY=$SSL_CLIENT_VERIFY CN=$SSL_CLIENT_S_DN_CN\"",
        ],
    );
    let (out, err) = s_client(&s.addr(), &["-CAfile", &pki.s("ca.pem")], b"");
    assert!(out.contains("VERIFY=NONE CN=\n"), "{out}\n{err}");
    assert!(
        !out.contains("Acceptable client certificate CA names"),
        "{out}"
    );
}

/// `-z`: the certificate must name the client's host (its PTR record, from our DNS
/// responder).
#[test]
fn z_checks_the_client_name_against_reverse_dns() {
    let dns = "127.0.53.2";
    let table = vec![
        (
            "20.53.0.127.in-addr.arpa".to_string(),
            12,
            Rr::Ptr("client.example".into()),
        ),
        (
            "21.53.0.127.in-addr.arpa".to_string(),
            12,
            Rr::Ptr("other.example".into()),
        ),
    ];
    let _asked = dns_responder(dns, table, Duration::from_secs(90), false);
    let pki = Pki::new();
    let d = TempDir::new("ssl-z");
    let marker = d.join("ran");
    let program = format!(
        "touch '{}'; echo \"HOST=$SSLREMOTEHOST CN=$SSL_CLIENT_S_DN_CN\"",
        marker.display()
    );
    let cca = pki.s("clientca.pem");
    let s = start(
        &pki,
        &[("CAFILE", &cca), ("DNSCACHEIP", dns)],
        &["-vszhl0"],
        &["sh", "-c", &program],
    );
    let (ca, cert, key) = (pki.s("ca.pem"), pki.s("client.pem"), pki.s("client.key"));
    let client = |from: &str| {
        s_client(
            &s.addr(),
            &["-bind", from, "-CAfile", &ca, "-cert", &cert, "-key", &key],
            b"",
        )
    };
    let (out, err) = client("127.0.53.20:0");
    assert!(
        out.contains("HOST=client.example CN=client.example"),
        "{out}\n{err}"
    );
    assert!(marker.exists());
    std::fs::remove_file(&marker).unwrap();
    s.wait_lines("ended by", 1);

    let (out, _) = client("127.0.53.21:0");
    assert!(!out.contains("HOST="), "{out}");
    let line = s.wait_log("client hostname does not match certificate");
    assert!(
        line.starts_with("sslserver: error: (110) ")
            && line.ends_with(" other.example <=> client.example"),
        "{line}"
    );
    let ended = s.wait_lines("ended by", 2);
    assert!(ended[1].ends_with(" status 28160"), "{ended:?}");
    assert!(!marker.exists(), "the program ran for the wrong name");

    // With -H there is no name to check: -z acts as -m.
    let s = start(
        &pki,
        &[("CAFILE", &cca), ("DNSCACHEIP", dns)],
        &["-szHl0"],
        &["sh", "-c", &program],
    );
    let (out, err) = s_client(
        &s.addr(),
        &[
            "-bind",
            "127.0.53.21:0",
            "-CAfile",
            &ca,
            "-cert",
            &cert,
            "-key",
            &key,
        ],
        b"",
    );
    assert!(out.contains("HOST= CN=client.example"), "{out}\n{err}");
}

/// Session tickets made by the server's parent resume sessions in later connections,
/// served by other processes, in TLS 1.3 and TLS 1.2.
#[test]
fn sessions_resume_across_connections() {
    let pki = Pki::new();
    let d = TempDir::new("ssl-resume");
    let s = start(&pki, &[], &["-vHl0"], &["echo", "hi"]);
    let ca = pki.s("ca.pem");
    let mut served = 0;
    for (flag, proto) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let sess = d.join(&format!("{proto}.sess")).display().to_string();
        let (out, err) = s_client(&s.addr(), &[flag, "-CAfile", &ca, "-sess_out", &sess], b"");
        assert!(out.contains(&format!("New, {proto},")), "{out}\n{err}");
        assert!(std::fs::metadata(&sess)
            .map(|m| m.len() > 0)
            .unwrap_or(false));
        let (out, err) = s_client(&s.addr(), &[flag, "-CAfile", &ca, "-sess_in", &sess], b"");
        assert!(
            out.contains(&format!("Reused, {proto},")),
            "{proto} not resumed: {out}\n{err}"
        );
        assert!(out.contains("hi\n"), "{out}");
        served += 2;
        let pids: Vec<u32> = s
            .wait_lines("sslserver: pid ", served)
            .iter()
            .map(|l| pid_in(l, "pid"))
            .collect();
        assert_ne!(
            pids[served - 2],
            pids[served - 1],
            "one process served both"
        );
    }
    // -v (not -V): the accept line without protocol and cipher.
    let accepts = s.wait_lines("sslserver: tls ", 4);
    assert!(
        accepts.iter().all(|l| l.ends_with(" accept")),
        "{accepts:?}"
    );
    assert_eq!(s.wait_lines("ended by", 4).len(), 4);
}

// ---------------------------------------------------------------------------------------
// Other clients.

/// Python's ssl module with certificate checks, and curl (the client speaks first).
#[test]
fn python_and_curl_clients() {
    let pki = Pki::new();
    let s = start(
        &pki,
        &[],
        &["-sHl0"],
        &["sh", "-c", "read x; echo \"got $x over $SSL_PROTOCOL\""],
    );
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as t:
        t.sendall(b"ping\n")
        data = b""
        while True:
            b = t.recv(1024)
            if not b:
                break
            data += b
        print(t.version(), data.decode().strip())
"#;
    let o = python(
        script,
        &[&s.port.to_string(), &pki.s("ca.pem")],
        Duration::from_secs(30),
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "TLSv1.3 got ping over TLSv1.3\n",
        "{}",
        show(&o)
    );

    let http = start(
        &pki,
        &[],
        &["-sHl0"],
        &[
            "sh",
            "-c",
            "read line; set -- $line; printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nhello %s %s %s\\r\\n' \"$1\" \"$2\" \"$SSL_PROTOCOL\"",
        ],
    );
    let url = format!("https://localhost:{}/path", http.port);
    let resolve = format!("localhost:{}:127.0.0.1", http.port);
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "--max-time",
        "20",
        "--cacert",
        &pki.s("ca.pem"),
        "--resolve",
        &resolve,
        &url,
    ]);
    let o = run_with_input(&mut c, b"", Duration::from_secs(30));
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello GET /path TLSv1.3\r\n",
        "{}",
        show(&o)
    );
}

const BOTH_WAYS: &str = r#"
import hashlib, selectors, socket, ssl, sys, time
port, n, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30), server_hostname="localhost")
t.setblocking(False)
block = bytes((i * 7 + 3) & 255 for i in range(65536))
sent = got = 0
h_out, h_in = hashlib.sha256(), hashlib.sha256()
sel = selectors.DefaultSelector()
sel.register(t, selectors.EVENT_READ | selectors.EVENT_WRITE)
end = time.time() + 60
while got < n and time.time() < end:
    sel.select(1)
    if sent < n:
        off = sent % len(block)
        chunk = block[off:off + min(16384, n - sent, len(block) - off)]
        try:
            k = t.send(chunk)
            h_out.update(chunk[:k])
            sent += k
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            pass
        if sent >= n:
            sel.modify(t, selectors.EVENT_READ)
    try:
        while True:
            b = t.recv(65536)
            if not b:
                break
            h_in.update(b)
            got += len(b)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        pass
t.close()
print(sent, got, h_out.hexdigest() == h_in.hexdigest())
"#;

/// 8 MB each way at once through `cat`: both directions flow together (the client only
/// reads what the program echoes while it still sends), nothing lost or reordered.
#[test]
fn relay_carries_megabytes_both_ways() {
    let pki = Pki::new();
    let s = start(&pki, &[], &["-vHl0"], &["cat"]);
    let n = 8 << 20;
    let o = python(
        BOTH_WAYS,
        &[&s.port.to_string(), &n.to_string(), &pki.s("ca.pem")],
        Duration::from_secs(90),
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{n} {n} True\n"),
        "{}",
        show(&o)
    );
    let ended = s.wait_log("ended by");
    assert!(ended.ends_with(" status 0"), "{ended}");
}

/// A client that sends its request and then ends its side (TLS close_notify, or a TCP
/// half-close without it), then reads the answer; Python's ssl over memory BIOs, which
/// can do both.
const HALF_CLOSE: &str = r#"
import socket, ssl, sys
port, mode, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
def flush():
    d = out.read()
    if d:
        sock.sendall(d)
def fill():
    d = sock.recv(65536)
    if d:
        inc.write(d)
    else:
        inc.write_eof()
    return d
while True:
    try:
        obj.do_handshake()
        break
    except ssl.SSLWantReadError:
        flush()
        fill()
flush()
payload = b"x" * 100000
obj.write(payload)
flush()
if mode == "close_notify":
    try:
        obj.unwrap()
    except ssl.SSLWantReadError:
        pass
    flush()
else:
    flush()
    sock.shutdown(socket.SHUT_WR)
reply = b""
while True:
    try:
        b = obj.read(65536)
        if not b:
            break
        reply += b
    except ssl.SSLWantReadError:
        if not fill():
            break
    except ssl.SSLZeroReturnError:
        break
print(mode, reply.decode().strip())
"#;

/// The client's end of data is the program's end of file, and what the program writes
/// after it still reaches the client.
#[test]
fn client_end_of_data_reaches_the_program_and_its_answer_the_client() {
    let pki = Pki::new();
    let s = start(
        &pki,
        &[],
        &["-vHl0"],
        &["sh", "-c", "n=$(wc -c); echo \"got $n bytes\""],
    );
    for mode in ["close_notify", "shutdown"] {
        let o = python(
            HALF_CLOSE,
            &[&s.port.to_string(), mode, &pki.s("ca.pem")],
            Duration::from_secs(30),
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("{mode} got 100000 bytes\n"),
            "{}",
            show(&o)
        );
    }
    let ended = s.wait_lines("ended by", 2);
    assert!(ended.iter().all(|l| l.ends_with(" status 0")), "{ended:?}");
}

// ---------------------------------------------------------------------------------------
// Handshakes that fail: the program never runs.

/// A plain-text client gets its connection closed; the handshake failure is logged and
/// the program never ran.
#[test]
fn plain_text_client_is_dropped_before_the_program() {
    let pki = Pki::new();
    let d = TempDir::new("ssl-plain");
    let marker = d.join("ran");
    let s = start(&pki, &[], &["-vHl0"], &strs(&marking(&marker)));
    let (got, _) = raw(&s.addr(), b"EHLO x\r\n");
    assert!(!String::from_utf8_lossy(&got).contains("hello"), "{got:?}");
    // At most a TLS alert record (content type 21) came back.
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    let line = s.wait_log("unable to accept TLS from: 127.0.0.1 for pid: ");
    assert!(line.starts_with("sslserver: fatal: (111) "), "{line}");
    let ended = s.wait_log("ended by");
    assert!(ended.ends_with(" status 28416"), "{ended}");
    assert!(!marker.exists(), "the program ran");
}

/// The client does not trust the server's CA; an expired server certificate.
#[test]
fn client_side_verification_failures() {
    let pki = Pki::new();
    let d = TempDir::new("ssl-verify");
    let marker = d.join("ran");
    let s = start(&pki, &[], &["-vHl0"], &strs(&marking(&marker)));
    let (out, err) = s_client(
        &s.addr(),
        &["-CAfile", &pki.s("clientca.pem"), "-verify_return_error"],
        b"",
    );
    assert!(!out.contains("hello"), "{out}");
    assert!(
        err.contains("unable to get local issuer certificate")
            || out.contains("unable to get local issuer certificate"),
        "{out}\n{err}"
    );
    let line = s.wait_log("unable to accept TLS from: 127.0.0.1 for pid: ");
    assert!(line.starts_with("sslserver: fatal: (111) "), "{line}");
    s.wait_log("ended by");
    assert!(!marker.exists(), "the program ran");

    let expired = Server::start(
        &[
            ("CERTFILE", &pki.s("expired.pem")),
            ("KEYFILE", &pki.s("expired.key")),
        ],
        &["-Hl0"],
        "127.0.0.1",
        &strs(&marking(&marker)),
    );
    let (out, err) = s_client(
        &expired.addr(),
        &["-CAfile", &pki.s("ca.pem"), "-verify_return_error"],
        b"",
    );
    assert!(
        format!("{out}{err}").contains("certificate has expired"),
        "{out}\n{err}"
    );
    assert!(!out.contains("hello"), "{out}");
    assert!(!marker.exists(), "the program ran");
}

/// `-T 1`: a silent client, and one that sends half a ClientHello, are dropped within a
/// few seconds; the program never runs.
#[test]
fn handshake_deadline_drops_stalled_clients() {
    let pki = Pki::new();
    let d = TempDir::new("ssl-stall");
    let marker = d.join("ran");
    let s = start(&pki, &[], &["-vHl0", "-T", "1"], &strs(&marking(&marker)));
    // A TLS record header announcing 512 bytes, the start of a ClientHello, and no more.
    let mut half = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    half.extend_from_slice(&[0x5a; 32]);
    for (n, send) in [(1, &b""[..]), (2, &half[..])] {
        let (got, took) = raw(&s.addr(), send);
        assert!(took < Duration::from_secs(8), "dropped only after {took:?}");
        assert!(got.is_empty() || got[0] == 21, "{got:?}");
        let lines = s.wait_lines("unable to accept TLS from: 127.0.0.1 for pid: ", n);
        assert!(lines[n - 1].ends_with(" timed out"), "{lines:?}");
        s.wait_lines("ended by", n);
    }
    assert!(!marker.exists(), "the program ran");
}

// ---------------------------------------------------------------------------------------
// Rules and limits.

#[test]
fn rules_deny_before_tls_and_connection_variables_win() {
    let pki = Pki::new();
    let d = TempDir::new("ssl-rules");
    let deny = rules(&d, "deny.cdb", "127.0.0.1:deny\n");
    let s = start(&pki, &[], &["-vHl0", "-x", &deny], &["echo", "hello"]);
    let (got, _) = raw(&s.addr(), b"");
    assert_eq!(got, b"", "a denied client gets no TLS byte");
    let (out, err) = s_client(&s.addr(), &["-CAfile", &pki.s("ca.pem")], b"");
    assert!(!out.contains("hello"), "{out}");
    assert!(out.contains("Cipher is (NONE)"), "{out}\n{err}");
    let line = s.wait_log(": deny ");
    assert!(
        line.starts_with("sslserver: deny ")
            && line.contains(" 0:127.0.0.1:")
            && line.contains(" :127.0.0.1::"),
        "{line}"
    );
    let ended = s.wait_lines("ended by", 2);
    assert!(
        ended.iter().all(|l| l.ends_with(" status 25600")),
        "{ended:?}"
    );
    assert_eq!(s.count("sslserver: tls "), 0);

    let allow = rules(
        &d,
        "allow.cdb",
        "127.0.0.1:allow,FOO=\"bar\",TCPREMOTEIP=\"fake\",SSLREMOTEIP=\"fake\",PROTO=\"X\"\n",
    );
    let s = start(&pki, &[], &["-Hl0", "-x", &allow], &["env"]);
    let v = vars(&tls_out(&s, &pki, &[], b""));
    assert_eq!(v.get("FOO").map(String::as_str), Some("bar"), "{v:?}");
    assert_eq!(v["TCPREMOTEIP"], "127.0.0.1");
    assert_eq!(v["SSLREMOTEIP"], "127.0.0.1");
    assert_eq!(v["PROTO"], "TCP");
}

/// `-y`: looked up by address before any DNS query; its match is the client's rule and
/// `-x` is not consulted.
#[test]
fn ip_rules_apply_before_dns_and_skip_x() {
    let dns = "127.0.53.1";
    let table = vec![(
        "1.0.0.127.in-addr.arpa".to_string(),
        12,
        Rr::Ptr("loop.example".into()),
    )];
    let asked = dns_responder(dns, table, Duration::from_secs(90), false);
    let pki = Pki::new();
    let d = TempDir::new("ssl-iprules");
    let deny = rules(&d, "deny.cdb", "127.0.0.1:deny\n");
    let env = [("DNSCACHEIP", dns)];

    let s = start(&pki, &env, &["-vhl0", "-y", &deny], &["echo", "hello"]);
    assert_eq!(raw(&s.addr(), b"").0, b"");
    let line = s.wait_log(": deny ");
    assert!(line.contains(" :127.0.0.1::"), "no host looked up: {line}");
    s.wait_log("ended by");
    assert!(
        asked.lock().unwrap().is_empty(),
        "{:?}",
        asked.lock().unwrap()
    );

    // The same rule under -x comes after the lookup.
    let s = start(&pki, &env, &["-vhl0", "-x", &deny], &["echo", "hello"]);
    assert_eq!(raw(&s.addr(), b"").0, b"");
    let line = s.wait_log(": deny ");
    assert!(line.contains(" loop.example:127.0.0.1::"), "{line}");
    assert!(
        asked
            .lock()
            .unwrap()
            .contains(&"1.0.0.127.in-addr.arpa/12".to_string()),
        "{:?}",
        asked.lock().unwrap()
    );

    // A -y match is the rule: the -x deny is not read.
    let y = rules(&d, "y.cdb", "127.0.0.1:allow,FROMY=\"1\"\n");
    let s = start(&pki, &env, &["-Hl0", "-y", &y, "-x", &deny], &["env"]);
    let v = vars(&tls_out(&s, &pki, &[], b""));
    assert_eq!(v.get("FROMY").map(String::as_str), Some("1"), "{v:?}");
    // No -y match: -x decides.
    let other = rules(&d, "other.cdb", "10.:deny\n");
    let s = start(&pki, &env, &["-vHl0", "-y", &other, "-x", &deny], &["env"]);
    assert_eq!(raw(&s.addr(), b"").0, b"");
    s.wait_log(": deny ");
}

/// A rule's MAXCONIP=0 refuses every connection from its addresses, as ucspi-ssl's
/// (`deny ... ip connection limit:0 exceeded`).
#[test]
fn maxconip_zero_in_a_rule_denies() {
    let pki = Pki::new();
    let d = TempDir::new("ssl-maxconip0");
    let zero = rules(&d, "zero.cdb", "127.0.0.1:allow,MAXCONIP=\"0\"\n");
    // -T 2: if it is wrongly admitted, the silent client is dropped soon anyway.
    let s = start(
        &pki,
        &[],
        &["-vHl0", "-T", "2", "-x", &zero],
        &["echo", "hello"],
    );
    assert_eq!(raw(&s.addr(), b"").0, b"");
    s.wait_log("ended by");
    let line = s
        .log()
        .into_iter()
        .find(|l| l.contains(": deny ") || l.contains(": ok "))
        .unwrap();
    assert!(
        line.starts_with("sslserver: deny ") && line.ends_with(" ip connection limit:0 exceeded"),
        "{line}"
    );
}

/// A rule's MAXCONIP=1 refuses a second concurrent connection, said on the deny line.
#[test]
fn maxconip_in_rules_denies_with_the_limit_on_the_deny_line() {
    let pki = Pki::new();
    let d = TempDir::new("ssl-maxconip");
    let one = rules(&d, "one.cdb", "127.0.0.1:allow,MAXCONIP=\"1\"\n");
    let s = start(
        &pki,
        &[],
        &["-vHl0", "-x", &one],
        &["sh", "-c", "echo hello; read x"],
    );
    let mut first = Held::connect(&s.addr(), &pki.s("ca.pem"));
    first.wait_for("hello");
    assert_eq!(raw(&s.addr(), b"").0, b"");
    let line = s.wait_log(": deny ");
    assert!(line.ends_with(" ip connection limit:1 exceeded"), "{line}");
    first.send(b"x\n");
    first.wait_end();
}

/// `-c 1`: the second client waits in the backlog and is served when the first ends.
#[test]
fn connection_limit_makes_the_second_client_wait() {
    let pki = Pki::new();
    let s = start(
        &pki,
        &[],
        &["-vHl0", "-c", "1"],
        &["sh", "-c", "echo hello $$; read x; echo bye $x"],
    );
    assert!(s.first.ends_with(" [1/1]"), "{}", s.first);
    let ca = pki.s("ca.pem");
    let mut a = Held::connect(&s.addr(), &ca);
    a.wait_for("hello");
    let mut b = Held::connect(&s.addr(), &ca);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(b.output(), "", "the second client was served at once");
    assert_eq!(s.count(": ok "), 1, "{:#?}", s.log());
    a.send(b"1\n");
    a.wait_for("bye 1");
    a.wait_end();
    b.wait_for("hello");
    b.send(b"2\n");
    b.wait_for("bye 2");
    b.wait_end();
    s.wait_lines("ended by", 2);
    let log = s.log();
    assert!(
        log.contains(&"sslserver: status: 1/1/1".to_string()),
        "{log:#?}"
    );
    assert!(log.iter().all(|l| !l.contains("status: 2/")), "{log:#?}");
}

/// The per-IP limit without rules: `$MAXCONIP`, then `-C` over it; the parent refuses
/// with ucspi-ssl's warning.
#[test]
fn per_ip_limit_from_maxconip_and_c() {
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    let program = ["sh", "-c", "echo hello; read x"];
    let s = start(&pki, &[("MAXCONIP", "1")], &["-vHl0"], &program);
    assert!(s.first.ends_with(" [40/1]"), "{}", s.first);
    let mut a = Held::connect(&s.addr(), &ca);
    a.wait_for("hello");
    assert_eq!(raw(&s.addr(), b"").0, b"");
    s.wait_log("sslserver: warning: ip connection limit of 1 exceeded for: 127.0.0.1");
    assert_eq!(
        s.count(": pid "),
        1,
        "refused before a fork: {:#?}",
        s.log()
    );
    a.send(b"x\n");
    a.wait_end();

    let s = start(
        &pki,
        &[("MAXCONIP", "5")],
        &["-Hl0", "-C", "1:busy"],
        &program,
    );
    assert!(s.first.ends_with(" [40/1]"), "{}", s.first);
    let mut a = Held::connect(&s.addr(), &ca);
    a.wait_for("hello");
    assert_eq!(raw(&s.addr(), b"").0, b"busy\r\n");
    a.send(b"x\n");
    a.wait_end();
}

// ---------------------------------------------------------------------------------------
// The program's descriptors and environment.

/// Normal mode: the program holds 0 and 1 (pipes to the relay), 2, and only what the
/// server itself inherited: no socket, no control socket.
#[test]
fn program_holds_no_socket_in_normal_mode() {
    let pki = Pki::new();
    let before = inherited_fds();
    let s = start(&pki, &[], &["-Hl0"], &["sh", "-c", "ls -l /proc/$$/fd"]);
    let out = tls_out(&s, &pki, &[], b"");
    let fds = fd_table(&out);
    assert!(fds[&0].starts_with("pipe:"), "{out}");
    assert!(fds[&1].starts_with("pipe:"), "{out}");
    assert_ne!(fds[&0], fds[&1], "{out}");
    assert!(fds.contains_key(&2), "{out}");
    let extra: BTreeMap<u32, String> = fds.into_iter().filter(|(n, _)| *n > 2).collect();
    assert_eq!(extra, before, "descriptors beyond 0, 1, 2: {out}");
    assert!(!out.contains("socket:"), "{out}");
}

/// `-n`: 0 and 1 are the connection, plus exactly the three UCSPI-TLS descriptors.
#[test]
fn program_holds_the_socket_and_three_fds_under_n() {
    let pki = Pki::new();
    let before = inherited_fds();
    let s = start(
        &pki,
        &[],
        &["-nHl0"],
        &[
            "sh",
            "-c",
            "echo \"CTL=$SSLCTLFD READ=$SSLREADFD WRITE=$SSLWRITEFD\"; ls -l /proc/$$/fd",
        ],
    );
    let (got, _) = raw(&s.addr(), b"");
    let out = String::from_utf8_lossy(&got).into_owned();
    let v: BTreeMap<&str, u32> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split(' ')
        .filter_map(|w| w.split_once('='))
        .map(|(k, n)| (k, n.parse().unwrap_or_else(|_| panic!("{out}"))))
        .collect();
    let (ctl, r, w) = (v["CTL"], v["READ"], v["WRITE"]);
    let mut fds = fd_table(&out);
    assert!(fds[&0].starts_with("socket:"), "{out}");
    assert_eq!(fds[&0], fds[&1], "{out}");
    assert!(fds[&ctl].starts_with("socket:"), "{out}");
    assert_ne!(fds[&ctl], fds[&0], "{out}");
    assert!(fds[&r].starts_with("pipe:"), "{out}");
    assert!(fds[&w].starts_with("pipe:"), "{out}");
    assert_ne!(fds[&r], fds[&w], "{out}");
    for n in [0, 1, 2, ctl, r, w] {
        fds.remove(&n);
    }
    assert_eq!(fds, before, "descriptors beyond the six: {out}");
}

/// `-e` (default), `-E`, `-s`; UCSPI-TLS's variables only under `-n`.
#[test]
fn environment_under_e_big_e_and_s() {
    let pki = Pki::new();
    let e = start(&pki, &[("SSLCTLFD", "77")], &["-Hl0"], &["env"]);
    let v = vars(&tls_out(&e, &pki, &[], b""));
    assert_eq!(v["PROTO"], "TCP", "{v:?}");
    assert_eq!(v["TCPREMOTEIP"], "127.0.0.1");
    assert_eq!(v["SSLREMOTEIP"], "127.0.0.1");
    assert_eq!(v["TCPLOCALPORT"], e.port.to_string());
    assert_eq!(v["SSLLOCALPORT"], e.port.to_string());
    assert_eq!(v["TCPCONCURRENCY"], "1");
    assert!(!v.contains_key("SSL_PROTOCOL"), "no -s: {v:?}");
    for k in ["SSLCTLFD", "SSLREADFD", "SSLWRITEFD"] {
        assert!(!v.contains_key(k), "{k} in normal mode: {v:?}");
    }

    let big_e = start(&pki, &[], &["-EsHl0"], &["env"]);
    let v = vars(&tls_out(&big_e, &pki, &["-servername", "localhost"], b""));
    assert_eq!(v["PROTO"], "TLS", "{v:?}");
    assert!(
        !v.keys().any(|k| k.starts_with("TCP")),
        "TCP variables under -E: {v:?}"
    );
    assert_eq!(v["SSLREMOTEIP"], "127.0.0.1");
    assert_eq!(v["SSL_PROTOCOL"], "TLSv1.3");
    assert_eq!(v["SSL_TLS_SNI"], "localhost");
    assert_eq!(v["SSL_CLIENT_VERIFY"], "NONE");
    assert_eq!(v["SSL_SERVER_S_DN_CN"], "localhost");
    assert_eq!(v["SSL_SERVER_I_DN"], "/O=ucspi-rs tests/CN=Test Server CA");
    assert_eq!(v["SSL_SERVER_M_VERSION"], "3");
    assert_eq!(v["SSL_SERVER_A_KEY"], "rsaEncryption");
    assert!(v["SSL_SERVER_M_SERIAL"].parse::<u64>().is_ok(), "{v:?}");
    assert!(v["SSL_SERVER_V_END"].ends_with(" GMT"), "{v:?}");
    assert!(v.contains_key("SSL_SERVER_CERT"), "{v:?}");
}

/// The program's output starts with `-B`'s banner, inside TLS.
#[test]
fn banner_goes_inside_tls_first() {
    let pki = Pki::new();
    let s = start(&pki, &[], &["-Hl0", "-B", "banner "], &["echo", "program"]);
    assert_eq!(tls_out(&s, &pki, &[], b""), "banner program\n");
}

/// `-1` prints the port the kernel gave; `-I` takes an argument; IPv6 clients get TCP6*.
#[test]
fn port_zero_interface_option_and_ipv6() {
    let pki = Pki::new();
    let s = start(&pki, &[], &["-Hl0"], &["echo", "hi"]);
    assert_ne!(s.port, 0);
    assert_eq!(s.first, format!("127.0.0.1 : {} [40/40]", s.port));
    assert!(TcpStream::connect(s.addr()).is_ok());

    let env = server_env(&pki);
    let v6 = Server::start(&refs(&env), &["-Hl0", "-I", "lo"], "::1", &["env"]);
    assert_eq!(v6.first, format!("::1 : {} [40/40]", v6.port));
    let v = vars(&tls_out(&v6, &pki, &[], b""));
    assert_eq!(v.get("PROTO").map(String::as_str), Some("TCP6"), "{v:?}");
    assert_eq!(v["TCP6REMOTEIP"], "::1");
    assert_eq!(v["TCP6LOCALIP"], "::1");
    assert_eq!(v["SSLREMOTEIP"], "::1");
    // The IPv6 forks' TCP* copies.
    assert_eq!(v["TCPREMOTEIP"], "::1");
}

/// An SMTP-like UCSPI-TLS program: 220, EHLO offers STARTTLS, STARTTLS writes `Y` and
/// reads the variables, then the dialogue goes on over SSLREADFD/SSLWRITEFD.
const SMTP_PROGRAM: &str = r#"
import os, sys
ctl, rfd, wfd = (int(os.environ[k]) for k in ("SSLCTLFD", "SSLREADFD", "SSLWRITEFD"))
def readline(fd):
    b = b""
    while not b.endswith(b"\n"):
        c = os.read(fd, 1)
        if not c:
            break
        b += c
    return b
inp, out, tls = 0, 1, {}
os.write(out, b"220 test ESMTP\r\n")
while True:
    line = readline(inp)
    if not line:
        sys.exit(0)
    cmd = line.strip().upper()
    if cmd.startswith(b"EHLO"):
        if inp == 0:
            os.write(out, b"250-test\r\n250 STARTTLS\r\n")
        else:
            os.write(out, ("250-test\r\n250 X-TLS %s %s %s\r\n" % (tls.get("SSL_PROTOCOL"), tls.get("SSL_TLS_SNI"), tls.get("SSL_SERVER_S_DN_CN"))).encode())
    elif cmd == b"STARTTLS" and inp == 0:
        os.write(out, b"220 go ahead\r\n")
        os.write(ctl, sys.argv[1].encode())
        block = b"" if sys.argv[1] == "Y" else b"\0"
        while not (block == b"\0" or block.endswith(b"\0\0")):
            c = os.read(ctl, 65536)
            if not c:
                sys.exit(3)
            block += c
        for e in block.split(b"\0"):
            if b"=" in e:
                k, v = e.split(b"=", 1)
                tls[k.decode()] = v.decode()
        inp, out = rfd, wfd
    elif cmd == b"QUIT":
        os.write(out, b"221 bye\r\n")
        sys.exit(0)
    else:
        os.write(out, b"500 what\r\n")
"#;

const SMTP_CLIENT: &str = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = smtplib.SMTP("localhost", int(sys.argv[1]), timeout=10)
code, msg = s.ehlo("x")
print("plain", code, msg.decode().replace("\n", " "))
s.starttls(context=ctx)
print("version", s.sock.version())
code, msg = s.ehlo("x")
print("tls", code, msg.decode().replace("\n", " "))
print("quit", s.quit()[0])
"#;

/// `Y` starts TLS and sends the variables back; `y` only starts TLS.
#[test]
fn ucspi_tls_starttls_with_smtplib() {
    let pki = Pki::new();
    for (command, tls_says) in [
        ("Y", "X-TLS TLSv1.3 localhost localhost"),
        ("y", "X-TLS None None None"),
    ] {
        let s = start(&pki, &[], &["-VnHl0"], &[py(), "-c", SMTP_PROGRAM, command]);
        let o = python(
            SMTP_CLIENT,
            &[&s.port.to_string(), &pki.s("ca.pem")],
            Duration::from_secs(30),
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("plain 250 test STARTTLS\n"), "{}", show(&o));
        assert!(out.contains("version TLSv1.3\n"), "{}", show(&o));
        assert!(
            out.contains(&format!("tls 250 test {tls_says}\n")),
            "{command}: {}",
            show(&o)
        );
        assert!(out.contains("quit 221\n"), "{}", show(&o));
        s.wait_log("accept TLSv1.3:TLS_AES_256_GCM_SHA384");
        let ended = s.wait_log("ended by");
        assert!(ended.ends_with(" status 0"), "{ended}");
    }
}

/// `-n`: a command byte other than y/Y drops the connection and ends the program (100).
#[test]
fn ucspi_tls_unknown_command_drops_the_connection() {
    let pki = Pki::new();
    let s = start(
        &pki,
        &[],
        &["-vnHl0"],
        &[
            "bash",
            "-c",
            "printf '220 hi\\r\\n'; printf x >&$SSLCTLFD; exec sleep 20",
        ],
    );
    let (got, took) = raw(&s.addr(), b"");
    assert_eq!(got, b"220 hi\r\n");
    // Well before the program's sleep would have ended.
    assert!(took < Duration::from_secs(10), "{took:?}");
    let line = s.wait_log("unknown UCSPI-TLS command");
    assert!(
        line.starts_with("sslserver: warning: unknown UCSPI-TLS command from: 127.0.0.1 for pid: "),
        "{line}"
    );
    let ended = s.wait_log("ended by");
    assert!(ended.ends_with(" status 25600"), "{ended}");
}

/// `-n`: a program that closes SSLCTLFD goes on in plain text; its status is the
/// connection's.
#[test]
fn ucspi_tls_program_may_stay_in_plain_text() {
    let pki = Pki::new();
    let program = r#"
import os
os.close(int(os.environ["SSLCTLFD"]))
os.write(1, b"220 plain\r\n")
line = b""
while not line.endswith(b"\n"):
    c = os.read(0, 1)
    if not c:
        break
    line += c
os.write(1, b"echo: " + line)
"#;
    let s = start(&pki, &[], &["-vnHl0"], &[py(), "-c", program]);
    let (got, _) = raw(&s.addr(), b"hello\r\n");
    assert_eq!(
        String::from_utf8_lossy(&got),
        "220 plain\r\necho: hello\r\n"
    );
    let ended = s.wait_log("ended by");
    assert!(ended.ends_with(" status 0"), "{ended}");
}

// ---------------------------------------------------------------------------------------
// The server's life: reloads, statuses, startup errors, keys with passwords, many
// connections.

/// Replace `path` by rename, as deployment tools do.
fn replace(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The subject s_client prints for the certificate the server sends without SNI.
fn served_subject(s: &Server, pki: &Pki) -> String {
    let (out, err) = s_client(
        &s.addr(),
        &["-CAfile", &pki.s("ca.pem"), "-noservername"],
        b"",
    );
    out.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("{out}\n{err}"))
        .to_string()
}

#[test]
fn certificates_reload_when_their_files_change() {
    let pki = Pki::new();
    let d = TempDir::new("ssl-reload");
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    std::fs::copy(pki.path("server.pem"), &cert).unwrap();
    std::fs::copy(pki.path("server.key"), &key).unwrap();
    let s = Server::start(
        &[
            ("CERTFILE", &cert.display().to_string()),
            ("KEYFILE", &key.display().to_string()),
        ],
        &["-Hl0"],
        "127.0.0.1",
        &["echo", "hi"],
    );
    assert_eq!(served_subject(&s, &pki), "subject=CN = localhost");
    replace(&cert, &std::fs::read(pki.path("mail.pem")).unwrap());
    replace(&key, &std::fs::read(pki.path("mail.key")).unwrap());
    assert_eq!(served_subject(&s, &pki), "subject=CN = mail.example.com");
    assert!(s.log().is_empty(), "{:?}", s.log());
    replace(&cert, b"garbage\n");
    assert_eq!(served_subject(&s, &pki), "subject=CN = mail.example.com");
    let w = s.wait_log("sslserver: warning: keeping the old certificates: ");
    assert!(w.contains(&cert.display().to_string()), "{w}");
    // Checked again only when the files change again: one warning.
    let _ = served_subject(&s, &pki);
    assert_eq!(s.count("warning"), 1, "{:?}", s.log());
}

/// The program's exit status, or its signal, is the connection's (`ended by` prints the
/// raw wait status).
#[test]
fn program_exit_status_reaches_the_log() {
    let pki = Pki::new();
    let s = start(&pki, &[], &["-vHl0"], &["sh", "-c", "echo bye; exit 3"]);
    assert_eq!(tls_out(&s, &pki, &[], b""), "bye\n");
    let ended = s.wait_log("ended by");
    assert!(ended.ends_with(" status 768"), "{ended}");

    let s = start(
        &pki,
        &[],
        &["-vHl0"],
        &["sh", "-c", "echo bye; kill -TERM $$"],
    );
    assert_eq!(tls_out(&s, &pki, &[], b""), "bye\n");
    let ended = s.wait_log("ended by");
    assert!(ended.ends_with(" status 15"), "{ended}");
}

/// `-w`: a connection where nothing moves for that long is ended, and its program with
/// it.
#[test]
fn idle_timeout_ends_the_relay() {
    let pki = Pki::new();
    let s = start(
        &pki,
        &[],
        &["-vHl0", "-w", "1"],
        &["sh", "-c", "echo hi; exec sleep 30"],
    );
    let start = Instant::now();
    assert_eq!(tls_out(&s, &pki, &[], b""), "hi\n");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    let line = s.wait_log("unable to speak TLS with: 127.0.0.1 for pid: ");
    assert!(line.ends_with(" timed out"), "{line}");
}

#[test]
fn startup_errors_and_usage() {
    let pki = Pki::new();
    let (cert, key) = (pki.s("server.pem"), pki.s("server.key"));
    let base = [("CERTFILE", cert.as_str()), ("KEYFILE", key.as_str())];
    let args = ["-Hl0", "127.0.0.1", "0", "true"];
    let check = |extra: &[(&str, &str)], want: &str| {
        let mut env: Vec<(&str, &str)> = base.to_vec();
        for (k, v) in extra {
            env.retain(|(n, _)| n != k);
            env.push((k, v));
        }
        // -m: CAFILE is read (only) when client certificates are asked for.
        let mut args = args.to_vec();
        if extra.iter().any(|(k, _)| *k == "CAFILE") {
            args.insert(0, "-m");
        }
        let o = run_server(&env, &args);
        assert_eq!(o.status.code(), Some(111), "{extra:?}: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with("sslserver: error: (111) ") && err.contains(want),
            "{extra:?}: {err}"
        );
    };
    check(&[("CIPHERS", "HIGH")], "unable to set cipher list");
    check(
        &[("CERTFILE", "/nonexistent/cert.pem")],
        "unable to load certificate",
    );
    check(&[("KEYFILE", &pki.s("mail.key"))], &pki.s("mail.key"));
    check(&[("DHFILE", "/nonexistent")], "unable to set DH parameters");
    check(&[("DHFILE", &cert)], "unable to set DH parameters");
    check(
        &[("CERTFILE", ""), ("KEYFILE", "")],
        "unable to load certificate",
    );
    check(&[("CAFILE", "/nonexistent")], "unable to load CA list");
    // A real DH parameters file is accepted (and unused).
    openssl(
        pki.dir.path(),
        &[
            "genpkey",
            "-genparam",
            "-algorithm",
            "DH",
            "-pkeyopt",
            "group:ffdhe2048",
            "-out",
            "dh.pem",
        ],
    );
    let dh = pki.s("dh.pem");
    let s = start(&pki, &[("DHFILE", &dh)], &["-Hl0"], &["echo", "dh"]);
    assert_eq!(tls_out(&s, &pki, &[], b""), "dh\n");

    let o = run_server(&base, &["-k", "0", "0", "x"]);
    assert_eq!(o.status.code(), Some(100), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(lines[0], "sslserver: illegal option -- k");
    assert!(
        lines[1].starts_with("sslserver: usage: sslserver [ -1346"),
        "{err}"
    );
    for args in [&["0", "0"][..], &["-v", "0"], &[]] {
        let o = run_server(&base, args);
        assert_eq!(o.status.code(), Some(100), "{args:?}: {}", show(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).starts_with("sslserver: usage: sslserver "),
            "{}",
            show(&o)
        );
    }
}

/// `-3`: the key's password, NUL-terminated, on fd 3.
#[test]
fn password_on_fd3_opens_an_encrypted_key() {
    let pki = Pki::new();
    openssl(
        pki.dir.path(),
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            "server.key",
            "-out",
            "enc.key",
            "-passout",
            "pass:secret",
        ],
    );
    let d = TempDir::new("ssl-pw");
    let (good, bad) = (d.join("good"), d.join("bad"));
    std::fs::write(&good, b"secret\0").unwrap();
    std::fs::write(&bad, b"wrong\0").unwrap();
    let (cert, key) = (pki.s("server.pem"), pki.s("enc.key"));
    let command = |pw: &Path, extra: &[&str]| {
        let mut c = Command::new("sh");
        c.args(["-c", "exec 3<\"$1\"; shift; exec \"$@\"", "sh"])
            .arg(pw)
            .arg(ours("sslserver"))
            .args(extra)
            .args(["-Hl0", "127.0.0.1", "0", "echo", "unlocked"])
            .env_clear()
            .env("PATH", path_var())
            .env("CERTFILE", &cert)
            .env("KEYFILE", &key);
        c
    };
    let s = Server::spawn(command(&good, &["-1", "-3"]), "127.0.0.1");
    assert_eq!(tls_out(&s, &pki, &[], b""), "unlocked\n");

    for (pw, extra) in [(&bad, &["-3"][..]), (&good, &[][..])] {
        let o = run_with_input(&mut command(pw, extra), b"", Duration::from_secs(10));
        assert_eq!(o.status.code(), Some(111), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("unable to load key"), "{err}");
    }
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kb(pid: i32) -> u64 {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    st.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Processes whose parent is `pid`.
fn children_of(pid: i32) -> usize {
    let Ok(d) = std::fs::read_dir("/proc") else {
        return 0;
    };
    d.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|n| {
            std::fs::read_to_string(format!("/proc/{n}/stat")).is_ok_and(|st| {
                let rest = &st[st.rfind(')').map_or(0, |i| i + 2)..];
                rest.split(' ').nth(1).and_then(|p| p.parse().ok()) == Some(pid)
            })
        })
        .count()
}

const HANDSHAKES: &str = r#"
import socket, ssl, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context(cafile=sys.argv[3])
bad = 0
for i in range(n):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            data = b""
            while True:
                b = t.recv(64)
                if not b:
                    break
                data += b
            if data != b"x\n":
                bad += 1
print("done", n, "bad", bad)
"#;

/// 10,000 full handshakes, one after another: the server's descriptors and memory after
/// 1,000 and after 10,000 are the same.
#[test]
fn ten_thousand_handshakes_leak_nothing() {
    let pki = Pki::new();
    let s = start(&pki, &[], &["-Hl0"], &["echo", "x"]);
    let ca = pki.s("ca.pem");
    let port = s.port.to_string();
    let run = |n: usize| {
        let started = Instant::now();
        let o = python(
            HANDSHAKES,
            &[&port, &n.to_string(), &ca],
            Duration::from_secs(1200),
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("done {n} bad 0\n"),
            "{}",
            show(&o)
        );
        let end = Instant::now() + Duration::from_secs(15);
        while children_of(s.pid()) > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(children_of(s.pid()), 0, "children left (or zombies)");
        eprintln!("{n} handshakes in {:?}", started.elapsed());
    };
    run(1000);
    let (fds, rss) = (fd_count(s.pid()), rss_kb(s.pid()));
    run(9000);
    assert_eq!(fd_count(s.pid()), fds, "descriptors leaked");
    let after = rss_kb(s.pid());
    // The parent's heap holds nothing per connection (configuration, ticket keys and the
    // per-IP table entries are freed when a child is reaped), so it stays flat; the
    // slack is for the allocator's page-granular bookkeeping and the kernel's RSS
    // accounting (a stack page or a few malloc arena pages touched once more), not for
    // anything that grows with connections: 9,000 more connections leaking even 32 bytes
    // each would exceed it.
    assert!(
        after <= rss + 256,
        "RSS {rss} kB after 1,000 handshakes, {after} kB after 10,000"
    );
    assert!(s.log().is_empty(), "{:?}", s.log());
}

/// Who runs what: without SSL_UID/SSL_GID/SSL_CHROOT the connection's process takes the
/// program's ids (`-u`, `-g`) at once and starts the program after the handshake; with
/// SSL_UID/SSL_GID it keeps root until it has forked the program, which takes `-u`/`-g`,
/// and the relay takes SSL_UID/SSL_GID. Either way the program has only its pipes, the
/// `-s` variables, and a relay it cannot read the keys from (undumpable).
#[test]
fn relay_and_program_ids_and_both_ways_of_starting_it() {
    let pki = Pki::new();
    let show = "id -u; id -g; grep -E '^(Uid|Gid):' /proc/$PPID/status; \
                if cat /proc/$PPID/mem >/dev/null 2>&1 || cat /proc/$PPID/environ >/dev/null 2>&1; \
                then echo relay=readable; else echo relay=closed; fi; \
                echo proto=$SSL_PROTOCOL; echo fds:; ls /proc/$$/fd";
    for (extra, prog_ids, relay_uid) in [
        (vec![], ("1", "1"), "1"),
        (
            vec![("SSL_UID", "65534"), ("SSL_GID", "65534")],
            ("1", "1"),
            "65534",
        ),
    ] {
        let s = start(
            &pki,
            &extra,
            &["-Hl0", "-s", "-u1", "-g1"],
            &["sh", "-c", show],
        );
        let out = tls_out(&s, &pki, &[], b"");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!((lines[0], lines[1]), prog_ids, "{extra:?}: {out}");
        let uid_line = lines.iter().find(|l| l.starts_with("Uid:")).unwrap();
        let uids: Vec<&str> = uid_line.split_whitespace().skip(1).collect();
        assert!(
            uids.iter().all(|u| *u == relay_uid),
            "{extra:?}: the relay's ids {uid_line}: {out}"
        );
        assert!(out.contains("proto=TLSv1."), "{extra:?}: {out}");
        assert!(out.contains("relay=closed"), "{extra:?}: {out}");
        // One per line, and not through a pipe: the shell would hold the pipe's ends
        // while ls reads its descriptors.
        let fds: Vec<&str> = lines
            .iter()
            .skip_while(|l| **l != "fds:")
            .skip(1)
            .copied()
            .collect();
        let before = inherited_fds();
        let extra_fds: Vec<&&str> = fds
            .iter()
            .filter(|f| !["0", "1", "2"].contains(f) && !before.contains_key(&f.parse().unwrap()))
            .collect();
        assert!(
            extra_fds.is_empty(),
            "{extra:?}: leaked {extra_fds:?}: {out}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// IPv4 clients on a dual-stack socket (project issue 13). On host `::` or `:0` one IPv6
// socket takes both families, so an IPv4 client arrives as `::ffff:a.b.c.d`; every IPv4
// rule form, under `-x` and under `-y`, must still match it, or a deny written for its
// address would be escaped. Each deny has a positive control: the same server with a rule
// of the same form that does not match serves the client.

/// The dual-stack hosts: `::` and `:0` both bind one socket with IPV6_V6ONLY off.
const DUAL: [&str; 2] = ["::", ":0"];

/// sslserver with the localhost certificate on the dual-stack `host`, checked to be one
/// IPv6 socket; its `addr()` is then 127.0.0.1, so every client of it arrives mapped.
fn start_dual(
    pki: &Pki,
    extra: &[(&str, &str)],
    args: &[&str],
    host: &str,
    program: &[&str],
) -> Server {
    let env = server_env(pki);
    let mut e = refs(&env);
    e.extend_from_slice(extra);
    let mut s = Server::start(&e, args, host, program);
    assert!(
        blackbox::dual_stack_only(s.port),
        "{host}: port {} is not one dual-stack IPv6 socket",
        s.port
    );
    s.ip = "127.0.0.1".into();
    s
}

/// The same server's address for an IPv6 client.
fn v6_addr(s: &Server) -> String {
    format!("[::1]:{}", s.port)
}

/// A program that leaves `marker` when it runs, then prints its environment.
fn marking_env(marker: &Path) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("touch '{}'; env", marker.display()),
    ]
}

/// The `n`th connection's `ok`/`deny` line (waited for, up to 15 s), asserted to be
/// `verdict` and to name 127.0.0.1 at both ends in IPv4 form; no line of the log may name
/// a `::ffff:` address.
fn names_the_ipv4_client(s: &Server, n: usize, verdict: &str, what: &str) -> String {
    let end = Instant::now() + Duration::from_secs(15);
    let line = loop {
        let lines: Vec<String> = s
            .log()
            .into_iter()
            .filter(|l| l.starts_with("sslserver: ok ") || l.starts_with("sslserver: deny "))
            .collect();
        if let Some(l) = lines.into_iter().nth(n - 1) {
            break l;
        }
        assert!(
            Instant::now() < end,
            "{what}: no ok/deny line for connection {n} within 15 s: {:#?}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        line.starts_with(&format!("sslserver: {verdict} ")),
        "{what}: connection {n} not {verdict}: {line}"
    );
    assert!(
        line.contains(" 0:127.0.0.1:") && line.contains(" :127.0.0.1::"),
        "{what}: {line}"
    );
    assert!(
        s.log()
            .iter()
            .all(|l| !l.to_ascii_lowercase().contains("ffff")),
        "{what}: a mapped address in the log: {:#?}",
        s.log()
    );
    line
}

/// `rule` (one IPv4 rule form, denying) in `-x` and in `-y` refuses 127.0.0.1 arriving
/// mapped on each dual-stack host: no TLS byte, the program never ran, a `deny` line for
/// 127.0.0.1; IPv6 clients of the same server are served. `miss` (the same form for
/// other addresses) lets the client in, with TCPREMOTEIP and SSLREMOTEIP 127.0.0.1.
fn ssl_mapped_client_is_denied_by(pki: &Pki, rule: &str, miss: &str) {
    let d = TempDir::new("ssl-mapped");
    let marker = d.join("ran");
    let program = marking_env(&marker);
    let program = strs(&program);
    let deny = rules(&d, "deny.cdb", &format!("{rule}\n"));
    let other = rules(&d, "miss.cdb", &format!("{miss}\n"));
    for host in DUAL {
        for opt in ["-x", "-y"] {
            let what = format!("{opt} {rule:?} on {host:?}");
            // -T 2: a client wrongly admitted is dropped soon, and its ok line says so.
            let s = start_dual(pki, &[], &["-vHl0", "-T2", opt, &deny], host, &program);
            assert_eq!(
                raw(&s.addr(), b"").0,
                b"",
                "{what}: a denied client gets no TLS byte"
            );
            names_the_ipv4_client(&s, 1, "deny", &what);
            let ended = s.wait_log("ended by");
            assert!(ended.ends_with(" status 25600"), "{what}: {ended}");
            assert!(
                !marker.exists(),
                "{what}: the program ran for a denied client"
            );
            // The rule is IPv4's: an IPv6 client is served.
            let mut c = s_client(&v6_addr(&s), &["-quiet", "-CAfile", &pki.s("ca.pem")], b"");
            let v = vars(&std::mem::take(&mut c.0));
            assert_eq!(
                v.get("TCPREMOTEIP").map(String::as_str),
                Some("::1"),
                "{what}: {c:?}"
            );
            drop(s);
            std::fs::remove_file(&marker).unwrap();

            // Positive control: a rule of the same form for other addresses.
            let what = format!("{opt} {miss:?} on {host:?}");
            let s = start_dual(pki, &[], &["-vHl0", opt, &other], host, &program);
            let v = vars(&tls_out(&s, pki, &[], b""));
            assert_eq!(
                v.get("TCPREMOTEIP").map(String::as_str),
                Some("127.0.0.1"),
                "{what}: {v:?}"
            );
            assert_eq!(
                v.get("SSLREMOTEIP").map(String::as_str),
                Some("127.0.0.1"),
                "{what}: {v:?}"
            );
            assert_eq!(
                v.get("PROTO").map(String::as_str),
                Some("TCP"),
                "{what}: {v:?}"
            );
            assert!(!v.contains_key("TCP6REMOTEIP"), "{what}: {v:?}");
            assert!(marker.exists(), "{what}: the program did not run");
            names_the_ipv4_client(&s, 1, "ok", &what);
            std::fs::remove_file(&marker).unwrap();
        }
    }
}

#[test]
fn mapped_client_is_denied_by_an_exact_ipv4_rule() {
    if !blackbox::ipv6_loopback("mapped_client_is_denied_by_an_exact_ipv4_rule") {
        return;
    }
    ssl_mapped_client_is_denied_by(&Pki::new(), "127.0.0.1:deny", "127.0.0.2:deny");
}

#[test]
fn mapped_client_is_denied_by_ipv4_prefix_rules() {
    if !blackbox::ipv6_loopback("mapped_client_is_denied_by_ipv4_prefix_rules") {
        return;
    }
    let pki = Pki::new();
    ssl_mapped_client_is_denied_by(&pki, "127.0.0.:deny", "127.0.1.:deny");
    ssl_mapped_client_is_denied_by(&pki, "127.:deny", "128.:deny");
}

#[test]
fn mapped_client_is_denied_by_an_ipv4_range_rule() {
    if !blackbox::ipv6_loopback("mapped_client_is_denied_by_an_ipv4_range_rule") {
        return;
    }
    ssl_mapped_client_is_denied_by(&Pki::new(), "127.0.0.1-9:deny", "127.0.0.2-9:deny");
}

#[test]
fn mapped_client_is_denied_by_ipv4_cidr_rules() {
    if !blackbox::ipv6_loopback("mapped_client_is_denied_by_ipv4_cidr_rules") {
        return;
    }
    let pki = Pki::new();
    ssl_mapped_client_is_denied_by(&pki, "127.0.0.0/24:deny", "127.0.1.0/24:deny");
    ssl_mapped_client_is_denied_by(&pki, "127.0.0.1/32:deny", "127.0.0.2/32:deny");
}

/// An allow rule's settings, in `-x` and in `-y`, reach the mapped client's program;
/// under a default deny, so only a match of the IPv4 rule lets it in (and the IPv6
/// client is refused).
#[test]
fn mapped_client_gets_the_settings_of_its_ipv4_allow_rule() {
    if !blackbox::ipv6_loopback("mapped_client_gets_the_settings_of_its_ipv4_allow_rule") {
        return;
    }
    let pki = Pki::new();
    let d = TempDir::new("ssl-mapped-set");
    let cdb = rules(&d, "r.cdb", "127.0.0.1:allow,X=\"y\"\n:deny\n");
    for host in DUAL {
        for opt in ["-x", "-y"] {
            let what = format!("{opt} on {host:?}");
            let s = start_dual(&pki, &[], &["-vHl0", opt, &cdb], host, &["env"]);
            let v = vars(&tls_out(&s, &pki, &[], b""));
            assert_eq!(v.get("X").map(String::as_str), Some("y"), "{what}: {v:?}");
            assert_eq!(
                v.get("TCPREMOTEIP").map(String::as_str),
                Some("127.0.0.1"),
                "{what}: {v:?}"
            );
            assert_eq!(
                v.get("SSLREMOTEIP").map(String::as_str),
                Some("127.0.0.1"),
                "{what}: {v:?}"
            );
            names_the_ipv4_client(&s, 1, "ok", &what);
            assert_eq!(raw(&v6_addr(&s), b"").0, b"", "{what}: ::1 was served");
            s.wait_lines("ended by", 2);
        }
    }
}

/// A rule's MAXCONIP=1 for 127.0.0.1, in `-x` and in `-y`, applies to the mapped client:
/// its second concurrent connection is refused (the deny line says so, naming
/// 127.0.0.1), where sslserver's own per-IP limit (40) would admit it; an IPv6 client is
/// still served meanwhile.
#[test]
fn mapped_client_gets_the_maxconip_of_its_ipv4_rule() {
    if !blackbox::ipv6_loopback("mapped_client_gets_the_maxconip_of_its_ipv4_rule") {
        return;
    }
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    let d = TempDir::new("ssl-mapped-maxconip");
    let one = rules(&d, "one.cdb", "127.0.0.1:allow,MAXCONIP=\"1\"\n");
    let program = ["sh", "-c", "echo hello $TCPREMOTEIP; read x"];
    for host in DUAL {
        for opt in ["-x", "-y"] {
            let what = format!("{opt} on {host:?}");
            let s = start_dual(&pki, &[], &["-vHl0", "-T2", opt, &one], host, &program);
            let mut first = Held::connect(&s.addr(), &ca);
            first.wait_for("hello 127.0.0.1\n");
            assert_eq!(raw(&s.addr(), b"").0, b"", "{what}: the second was served");
            let line = names_the_ipv4_client(&s, 2, "deny", &what);
            assert!(
                line.ends_with(" ip connection limit:1 exceeded"),
                "{what}: {line}"
            );
            let mut v6 = Held::connect(&v6_addr(&s), &ca);
            v6.wait_for("hello ::1\n");
            first.send(b"x\n");
            first.wait_end();
            v6.send(b"x\n");
            v6.wait_end();
        }
    }
}

/// The parent's per-IP count (`$MAXCONIP` without rules; no fork for a refused client)
/// counts the mapped client under 127.0.0.1 and an IPv6 client apart.
#[test]
fn mapped_client_is_counted_under_its_ipv4_address_by_maxconip() {
    if !blackbox::ipv6_loopback("mapped_client_is_counted_under_its_ipv4_address_by_maxconip") {
        return;
    }
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    let program = ["sh", "-c", "echo hello $TCPREMOTEIP; read x"];
    for host in DUAL {
        let s = start_dual(
            &pki,
            &[("MAXCONIP", "1")],
            &["-vHl0", "-T2"],
            host,
            &program,
        );
        let mut first = Held::connect(&s.addr(), &ca);
        first.wait_for("hello 127.0.0.1\n");
        assert_eq!(raw(&s.addr(), b"").0, b"", "{host}: the second was served");
        s.wait_log("sslserver: warning: ip connection limit of 1 exceeded for: 127.0.0.1");
        assert_eq!(
            s.count(": pid "),
            1,
            "{host}: refused before a fork: {:#?}",
            s.log()
        );
        let mut v6 = Held::connect(&v6_addr(&s), &ca);
        v6.wait_for("hello ::1\n");
        assert!(
            s.log()
                .iter()
                .all(|l| !l.to_ascii_lowercase().contains("ffff")),
            "{host}: {:#?}",
            s.log()
        );
        first.send(b"x\n");
        first.wait_end();
        v6.send(b"x\n");
        v6.wait_end();
    }
}
