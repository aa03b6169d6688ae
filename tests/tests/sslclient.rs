//! sslclient against real servers on loopback: `openssl s_server` (TLS 1.3 and 1.2, a
//! client-first protocol, a required client certificate), our sslserver (names, IP
//! SANs, bad certificates, SNI, the program's environment and descriptors), plain TCP
//! servers (our tcpserver), Exim's STARTTLS for UCSPI-TLS (`-y`), and our sslserver
//! `-n` with a UCSPI-TLS service (both ends UCSPI-TLS). Certificates come from the
//! test's private CA (tls_util::Pki).

mod ssl_peers;
#[path = "tcpserver_util/mod.rs"]
mod tcp_util;
mod tls_util;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blackbox::{ours, run_with_input, show, TempDir};
use ssl_peers::{PYTHON, SMTP_SERVICE, STARTTLS_CLIENT};
use tls_util::{Pki, Server};

/// What one sslclient run may take at most.
const LIMIT: Duration = Duration::from_secs(30);

/// `sslclient -H opts host port prog...` (no reverse lookups) with PATH and `env` only.
fn client_env(opts: &[&str], host: &str, port: u16, prog: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(ours("sslclient"));
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .arg("-H")
        .args(opts)
        .arg(host)
        .arg(port.to_string())
        .args(prog);
    run_with_input(&mut c, b"", LIMIT)
}

fn client(opts: &[&str], host: &str, port: u16, prog: &[&str]) -> Output {
    client_env(opts, host, port, prog, &[])
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Our sslserver on `host` serving `cert` (`NAME.pem`/`NAME.key` of `pki`), no lookups,
/// `extra` options and `vars` added to its environment.
fn server(
    pki: &Pki,
    cert: &str,
    vars: &[(&str, &str)],
    extra: &[&str],
    host: &str,
    prog: &[&str],
) -> Server {
    let certfile = pki.s(&format!("{cert}.pem"));
    let keyfile = pki.s(&format!("{cert}.key"));
    let mut env = vec![
        ("CERTFILE", certfile.as_str()),
        ("KEYFILE", keyfile.as_str()),
    ];
    env.extend_from_slice(vars);
    let mut args = vec!["-H", "-R", "-l", "0"];
    args.extend_from_slice(extra);
    Server::start(&env, &args, host, prog)
}

/// Our sslserver on 127.0.0.1 whose program says `hello`.
fn hello_server(pki: &Pki, cert: &str) -> Server {
    server(pki, cert, &[], &[], "127.0.0.1", &["echo", "hello"])
}

/// A client program that creates `marker`, then prints what the server sends.
fn marked_cat(marker: &std::path::Path) -> [String; 3] {
    [
        "sh".into(),
        "-c".into(),
        format!("touch {}; cat <&6", marker.display()),
    ]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A shell program that prints `NAME=value` (or `NAME unset`) for each of `names`,
/// after what the server sent.
fn print_vars(names: &[&str]) -> String {
    let mut s = String::from("cat <&6 >/dev/null; ");
    for n in names {
        s.push_str(&format!(
            "if [ \"${{{n}+set}}\" = set ]; then echo \"{n}=${n}\"; else echo '{n} unset'; fi; "
        ));
    }
    s
}

/// The `NAME=value` lines of `text`.
fn vars(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A port on 127.0.0.1 with nothing listening (the kernel's pick, released).
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Our tcpserver on 127.0.0.1 (no lookups) running `prog`: a plain TCP server.
fn plain_server(prog: &[&str]) -> tcp_util::Server {
    tcp_util::Server::start(
        &tcp_util::ours(),
        &["-H", "-R", "-l0"],
        "127.0.0.1",
        prog,
        &tcp_util::base_env(),
    )
}

/// `openssl s_server -www` on 127.0.0.1, port chosen by the kernel (`-accept
/// 127.0.0.1:0`; OpenSSL 3.0 prints `ACCEPT 127.0.0.1:PORT`), serving server.pem; its
/// output collected; killed on drop.
struct SServer {
    child: Child,
    port: u16,
    out: Arc<Mutex<Vec<String>>>,
}

impl SServer {
    fn start(pki: &Pki, extra: &[&str]) -> SServer {
        let mut child = Command::new("openssl")
            .args(["s_server", "-accept", "127.0.0.1:0", "-www", "-cert"])
            .arg(pki.path("server.pem"))
            .arg("-key")
            .arg(pki.path("server.key"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl s_server");
        let out = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let o2 = out.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(p) = l.strip_prefix("ACCEPT 127.0.0.1:") {
                    let _ = tx.send(p.trim().parse::<u16>().ok());
                }
                o2.lock().unwrap().push(l);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let o3 = out.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                o3.lock().unwrap().push(l);
            }
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Some(port)) => SServer { child, port, out },
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("s_server did not listen: {:?}", out.lock().unwrap());
            }
        }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The program of the `-www` tests: the client speaks first (an HTTP request), then
/// reads to end of file.
const GET: &str = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&7; cat <&6; echo \"proto=$SSL_PROTOCOL cipher=$SSL_CIPHER\"";

#[test]
fn openssl_server_tls13_and_tls12_with_the_client_speaking_first() {
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    for (flag, proto) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let s = SServer::start(&pki, &[flag]);
        let start = Instant::now();
        let o = client(&["-s", "-a", &ca], "localhost", s.port, &["sh", "-c", GET]);
        let text = out(&o);
        assert_eq!(o.status.code(), Some(0), "{}\n{}", show(&o), s.output());
        // s_server's page: its answer to our request, with the session it saw.
        assert!(text.starts_with("HTTP/1.0 200 ok\r\n"), "{text}");
        assert!(text.contains(&format!("Protocol  : {proto}")), "{text}");
        assert!(text.contains(&format!("proto={proto} cipher=")), "{text}");
        assert!(!text.contains("cipher=\n"), "{text}");
        // No wait for anything after the server's end of data (ucspi-ssl hung here).
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }
    // -z: the TLS 1.3 suite asked for is the one s_server reports.
    let s = SServer::start(&pki, &["-tls1_3"]);
    let o = client(
        &["-s", "-z", "TLS_CHACHA20_POLY1305_SHA256", "-a", &ca],
        "127.0.0.1",
        s.port,
        &["sh", "-c", GET],
    );
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        text.contains("New, TLSv1.3, Cipher is TLS_CHACHA20_POLY1305_SHA256"),
        "{text}"
    );
    assert!(
        text.contains("cipher=TLS_CHACHA20_POLY1305_SHA256"),
        "{text}"
    );
}

#[test]
fn openssl_server_requiring_a_client_certificate() {
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    let (cert, key) = (pki.s("client.pem"), pki.s("client.key"));
    let clientca = pki.s("clientca.pem");
    for flag in ["-tls1_3", "-tls1_2"] {
        let s = SServer::start(&pki, &[flag, "-Verify", "1", "-CAfile", &clientca]);
        let o = client(
            &["-a", &ca, "-c", &cert, "-k", &key],
            "localhost",
            s.port,
            &["sh", "-c", GET],
        );
        let text = out(&o);
        assert_eq!(o.status.code(), Some(0), "{}\n{}", show(&o), s.output());
        assert!(text.starts_with("HTTP/1.0 200 ok\r\n"), "{text}");
        // The page shows the client certificate the server verified.
        assert!(text.contains("Subject: CN=client.example"), "{text}");

        // No certificate: the server refuses. TLS 1.2 fails in the handshake, before
        // the program; TLS 1.3 clients finish theirs first and get the server's alert
        // in the relay, so the program has started but gets nothing.
        let dir = TempDir::new("sslc-nocert");
        let marker = dir.join("ran");
        let prog = marked_cat(&marker);
        let o = client(&["-a", &ca], "localhost", s.port, &args(&prog));
        assert!(out(&o).is_empty(), "{}", show(&o));
        if flag == "-tls1_2" {
            assert_eq!(o.status.code(), Some(111), "{}", show(&o));
            assert!(
                err(&o).starts_with("sslclient: fatal: (111) unable to TLS connect ("),
                "{}",
                show(&o)
            );
            assert!(!marker.exists(), "the program ran");
        } else {
            assert_eq!(o.status.code(), Some(110), "{}", show(&o));
            assert!(
                err(&o).starts_with("sslclient: drop: (110) unable to speak TLS: "),
                "{}",
                show(&o)
            );
            assert!(err(&o).contains("CertificateRequired"), "{}", show(&o));
        }
    }
}

#[test]
fn our_server_by_name_and_by_ipv4_and_ipv6_address() {
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    // `::` takes IPv4 connections too.
    let s = server(&pki, "server", &[], &[], "::", &["echo", "hello"]);
    let prog = ["sh", "-c", "cat <&6; echo \"remote=$SSLREMOTEIP\""];
    for (host, ip) in [
        ("localhost", None),
        ("127.0.0.1", Some("127.0.0.1")),
        ("::1", Some("::1")),
    ] {
        let o = client(&["-v", "-a", &ca], host, s.port, &prog);
        assert_eq!(o.status.code(), Some(0), "{host}: {}", show(&o));
        let text = out(&o);
        assert!(text.starts_with("hello\nremote="), "{host}: {text}");
        if let Some(ip) = ip {
            assert_eq!(text, format!("hello\nremote={ip}\n"));
            assert_eq!(
                err(&o),
                format!("sslclient: tls connected to: {ip} port: {}\n", s.port)
            );
        }
    }
}

#[test]
fn a_name_not_in_the_certificate_is_refused_unless_n_is_off() {
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    let s = hello_server(&pki, "mail");
    for host in ["127.0.0.1", "localhost"] {
        let dir = TempDir::new("sslc-name");
        let marker = dir.join("ran");
        let prog = marked_cat(&marker);
        let o = client(&["-a", &ca], host, s.port, &args(&prog));
        assert_eq!(o.status.code(), Some(110), "{}", show(&o));
        assert_eq!(
            err(&o),
            format!(
                "sslclient: error: (110) server hostname does not match certificate: \
                 {host} <=> mail.example.com\n"
            )
        );
        assert!(out(&o).is_empty());
        assert!(!marker.exists(), "the program ran");
        // -N: the chain is still checked, the name no more.
        let o = client(&["-N", "-a", &ca], host, s.port, &args(&prog));
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        assert_eq!(out(&o), "hello\n");
        assert!(marker.exists());
    }
    // -N does not let an unknown issuer through.
    let o = client(
        &["-N", "-a", &pki.s("clientca.pem")],
        "127.0.0.1",
        s.port,
        &["sh", "-c", "cat <&6"],
    );
    assert_eq!(o.status.code(), Some(110), "{}", show(&o));
    assert!(err(&o).contains("unable to validate server certificate"));
}

#[test]
fn an_unknown_issuer_is_refused_and_x_accepts_anything() {
    let pki = Pki::new();
    let s = hello_server(&pki, "server");
    let dir = TempDir::new("sslc-ca");
    let marker = dir.join("ran");
    let prog = marked_cat(&marker);
    let refused = |o: &Output| {
        assert_eq!(o.status.code(), Some(110), "{}", show(o));
        assert!(
            err(o).starts_with(
                "sslclient: error: (110) missing credentials (CA) or unable to validate \
                 server certificate ("
            ),
            "{}",
            show(o)
        );
        assert!(out(o).is_empty());
        assert!(!marker.exists(), "the program ran");
    };
    // The wrong CA.
    refused(&client(
        &["-a", &pki.s("clientca.pem")],
        "localhost",
        s.port,
        &args(&prog),
    ));
    // No -a/-A: the system's roots (Debian's bundle), which do not hold our CA.
    refused(&client(&[], "localhost", s.port, &args(&prog)));
    // ... unless SSL_CERT_FILE names it.
    let o = client_env(
        &[],
        "localhost",
        s.port,
        &["sh", "-c", "cat <&6"],
        &[("SSL_CERT_FILE", &pki.s("ca.pem"))],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(out(&o), "hello\n");
    // -A: a directory of CA files.
    let cadir = TempDir::new("sslc-cadir");
    std::fs::copy(pki.path("ca.pem"), cadir.join("ca.pem")).unwrap();
    let o = client(
        &["-A", cadir.path().to_str().unwrap()],
        "localhost",
        s.port,
        &["sh", "-c", "cat <&6"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(out(&o), "hello\n");
    // -X: neither chain nor name checked.
    let o = client(
        &["-X", "-a", &pki.s("clientca.pem")],
        "127.0.0.1",
        s.port,
        &args(&prog),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(out(&o), "hello\n");
    assert!(marker.exists());
}

#[test]
fn an_expired_server_certificate_is_refused() {
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    let s = hello_server(&pki, "expired");
    let dir = TempDir::new("sslc-exp");
    let marker = dir.join("ran");
    let prog = marked_cat(&marker);
    for opts in [&["-a", &ca][..], &["-N", "-a", &ca][..]] {
        let o = client(opts, "localhost", s.port, &args(&prog));
        assert_eq!(o.status.code(), Some(110), "{}", show(&o));
        let e = err(&o);
        assert!(
            e.starts_with("sslclient: error: (110) missing credentials (CA) or unable to validate server certificate (")
                && e.contains("Expired"),
            "{e}"
        );
        assert!(!marker.exists(), "the program ran");
    }
    let o = client(&["-X"], "localhost", s.port, &args(&prog));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(out(&o), "hello\n");
}

#[test]
fn a_plain_tcp_server_is_not_tls() {
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    let dir = TempDir::new("sslc-plain");
    let marker = dir.join("ran");
    let prog = marked_cat(&marker);
    // A server that speaks plain text first.
    let s = plain_server(&["sh", "-c", "echo 220 plain text; sleep 2"]);
    let o = client(&["-a", &ca], "127.0.0.1", s.port, &args(&prog));
    assert_eq!(o.status.code(), Some(111), "{}", show(&o));
    assert!(
        err(&o).starts_with("sslclient: fatal: (111) unable to TLS connect ("),
        "{}",
        show(&o)
    );
    assert!(out(&o).is_empty());
    assert!(!marker.exists(), "the program ran");
    // One that closes at once.
    let s = plain_server(&["true"]);
    let o = client(&["-a", &ca], "127.0.0.1", s.port, &args(&prog));
    assert_eq!(o.status.code(), Some(111), "{}", show(&o));
    // End of stream, or a reset when the server's close crossed our hello.
    assert!(
        err(&o) == "sslclient: fatal: (111) unable to TLS connect (connection closed by peer)\n"
            || err(&o)
                .starts_with("sslclient: fatal: (111) unable to TLS connect (connection reset"),
        "{}",
        show(&o)
    );
    assert!(!marker.exists(), "the program ran");
    // One that says nothing: -T x+y bounds the handshake too.
    let s = plain_server(&["sleep", "6"]);
    let start = Instant::now();
    let o = client(&["-T", "1+1", "-a", &ca], "127.0.0.1", s.port, &args(&prog));
    let took = start.elapsed();
    assert_eq!(o.status.code(), Some(111), "{}", show(&o));
    assert_eq!(
        err(&o),
        "sslclient: fatal: (111) unable to TLS connect (timed out)\n"
    );
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(!marker.exists(), "the program ran");
}

#[test]
fn connection_refused_is_a_drop_and_q_silences_it() {
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    let dir = TempDir::new("sslc-refused");
    let marker = dir.join("ran");
    let prog = marked_cat(&marker);
    let port = dead_port();
    let o = client(&["-a", &ca], "127.0.0.1", port, &args(&prog));
    assert_eq!(o.status.code(), Some(110), "{}", show(&o));
    assert_eq!(
        err(&o),
        format!("sslclient: drop: (110) unable to connect to: 127.0.0.1 port: {port}\n")
    );
    let o = client(&["-q", "-a", &ca], "127.0.0.1", port, &args(&prog));
    assert_eq!(o.status.code(), Some(110), "{}", show(&o));
    assert_eq!(err(&o), "");
    assert!(out(&o).is_empty());
    assert!(!marker.exists(), "the program ran");
}

#[test]
fn s_gives_the_session_and_both_certificates() {
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    let clientca = pki.s("clientca.pem");
    // The server requires a client certificate (-m) and reports the one it got.
    let s = server(
        &pki,
        "server",
        &[("CAFILE", &clientca)],
        &["-m", "-s"],
        "127.0.0.1",
        &[
            "sh",
            "-c",
            "echo \"server saw ${SSL_CLIENT_S_DN_CN-nothing}\" >&2",
        ],
    );
    let names = [
        "SSL_PROTOCOL",
        "SSL_CIPHER",
        "SSL_SERVER_S_DN_CN",
        "SSL_SERVER_I_DN_CN",
        "SSL_SERVER_SAN_IPaddr_0",
        "SSL_CLIENT_S_DN_CN",
        "SSL_CLIENT_I_DN_CN",
        "SSL_VERSION_INTERFACE",
    ];
    let prog = print_vars(&names);
    let o = client(
        &[
            "-s",
            "-a",
            &ca,
            "-c",
            &pki.s("client.pem"),
            "-k",
            &pki.s("client.key"),
        ],
        "localhost",
        s.port,
        &["sh", "-c", &prog],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v = vars(&out(&o));
    let want = [
        ("SSL_PROTOCOL", "TLSv1.3"),
        ("SSL_SERVER_S_DN_CN", "localhost"),
        ("SSL_SERVER_I_DN_CN", "Test Server CA"),
        ("SSL_SERVER_SAN_IPaddr_0", "127.0.0.1"),
        ("SSL_CLIENT_S_DN_CN", "client.example"),
        ("SSL_CLIENT_I_DN_CN", "Test Client CA"),
        ("SSL_VERSION_INTERFACE", "ucspi-ssl"),
    ];
    for (k, val) in want {
        assert_eq!(v.get(k).map(String::as_str), Some(val), "{k}: {v:?}");
    }
    assert!(v["SSL_CIPHER"].starts_with("TLS_"), "{v:?}");
    s.wait_log("server saw client.example");

    // Without -s none of them; without -c no SSL_CLIENT_* (a server that asks for no
    // certificate).
    let s = hello_server(&pki, "server");
    let o = client(&["-a", &ca], "localhost", s.port, &["sh", "-c", &prog]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    for n in names {
        assert!(
            out(&o).contains(&format!("{n} unset\n")),
            "{n}: {}",
            out(&o)
        );
    }
    let o = client(
        &["-s", "-a", &ca],
        "localhost",
        s.port,
        &["sh", "-c", &prog],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v = vars(&out(&o));
    assert_eq!(v["SSL_SERVER_S_DN_CN"], "localhost");
    assert!(
        out(&o).contains("SSL_CLIENT_S_DN_CN unset\n"),
        "{}",
        out(&o)
    );
}

#[test]
fn e_gives_tcp_variables_and_the_ssl_ones_are_always_there() {
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    let s = server(&pki, "server", &[], &[], "::", &["echo", "hello"]);
    let port = s.port.to_string();
    let names = [
        "PROTO",
        "TCPREMOTEIP",
        "TCPREMOTEPORT",
        "TCPLOCALIP",
        "TCPLOCALPORT",
        "TCP6REMOTEIP",
        "SSLREMOTEIP",
        "SSLREMOTEPORT",
        "SSLLOCALIP",
        "SSLLOCALPORT",
        "SSLCTLFD",
        "SSLREADFD",
        "SSLWRITEFD",
    ];
    let prog = print_vars(&names);
    // Stale values from an outer connection must not reach the program.
    let stale = [
        ("TCPREMOTEIP", "192.0.2.1"),
        ("TCPLOCALPORT", "1"),
        ("TCP6REMOTEIP", "2001:db8::1"),
        ("SSLCTLFD", "9"),
        ("SSLREADFD", "9"),
        ("SSLWRITEFD", "9"),
    ];
    let o = client_env(
        &["-e", "-a", &ca],
        "127.0.0.1",
        s.port,
        &["sh", "-c", &prog],
        &stale,
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v = vars(&out(&o));
    assert_eq!(v["PROTO"], "TCP");
    assert_eq!(v["TCPREMOTEIP"], "127.0.0.1");
    assert_eq!(v["TCPREMOTEPORT"], port);
    assert_eq!(v["TCPLOCALIP"], "127.0.0.1");
    assert_eq!(v["TCPLOCALPORT"], v["SSLLOCALPORT"]);
    assert_eq!(v["SSLREMOTEIP"], "127.0.0.1");
    assert_eq!(v["SSLREMOTEPORT"], port);
    assert_eq!(v["SSLLOCALIP"], "127.0.0.1");
    for n in ["TCP6REMOTEIP", "SSLCTLFD", "SSLREADFD", "SSLWRITEFD"] {
        assert!(
            out(&o).contains(&format!("{n} unset\n")),
            "{n}: {}",
            out(&o)
        );
    }
    // IPv6: PROTO=TCP6.
    let o = client(&["-e", "-a", &ca], "::1", s.port, &["sh", "-c", &prog]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v = vars(&out(&o));
    assert_eq!(v["PROTO"], "TCP6");
    assert_eq!(v["TCPREMOTEIP"], "::1");
    assert_eq!(v["TCP6REMOTEIP"], "::1");
    assert_eq!(v["SSLREMOTEIP"], "::1");
    // Without -e: PROTO=TLS, no TCP* at all (not even stale ones), SSL* as before.
    let o = client_env(
        &["-a", &ca],
        "127.0.0.1",
        s.port,
        &["sh", "-c", &prog],
        &stale,
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v = vars(&out(&o));
    assert_eq!(v["PROTO"], "TLS");
    for n in [
        "TCPREMOTEIP",
        "TCPREMOTEPORT",
        "TCPLOCALIP",
        "TCPLOCALPORT",
        "TCP6REMOTEIP",
    ] {
        assert!(
            out(&o).contains(&format!("{n} unset\n")),
            "{n}: {}",
            out(&o)
        );
    }
    assert_eq!(v["SSLREMOTEIP"], "127.0.0.1");
    assert_eq!(v["SSLREMOTEPORT"], port);
    assert_eq!(v["SSLLOCALIP"], "127.0.0.1");
    assert!(v["SSLLOCALPORT"].parse::<u16>().is_ok(), "{v:?}");
}

/// A shell program listing its open descriptors as `N TARGET` lines (the one its glob
/// itself opens is gone by the time readlink runs, and left out).
const LIST_FDS: &str = "for f in /proc/$$/fd/*; do t=$(readlink $f) && echo \"${f##*/} $t\"; done";

/// Descriptor → target from [`LIST_FDS`]'s output.
fn fd_table(text: &str) -> BTreeMap<u32, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, t)| t.starts_with('/') || t.contains(":["))
        .filter_map(|(n, t)| Some((n.parse().ok()?, t.to_string())))
        .collect()
}

/// The descriptors the same program has when the test harness runs it directly: what
/// every child of this test process inherits anyway.
fn baseline_fds() -> BTreeMap<u32, String> {
    let mut c = Command::new("sh");
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["-c", LIST_FDS]);
    let o = run_with_input(&mut c, b"", LIMIT);
    assert!(o.status.success(), "{}", show(&o));
    fd_table(&out(&o))
}

#[test]
fn the_program_gets_pipes_on_6_and_7_and_no_socket() {
    let pki = Pki::new();
    let s = hello_server(&pki, "server");
    let base = baseline_fds();
    let prog = format!("cat <&6 >/dev/null; {LIST_FDS}");
    let o = client(
        &["-a", &pki.s("ca.pem")],
        "localhost",
        s.port,
        &["sh", "-c", &prog],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let fds = fd_table(&out(&o));
    assert!(fds[&6].starts_with("pipe:"), "{fds:?}");
    assert!(fds[&7].starts_with("pipe:"), "{fds:?}");
    assert_ne!(fds[&6], fds[&7], "{fds:?}");
    let extra: Vec<_> = fds
        .iter()
        .filter(|(n, _)| **n != 6 && **n != 7 && !base.contains_key(n))
        .collect();
    assert!(extra.is_empty(), "leaked: {extra:?} (baseline {base:?})");
    for (n, t) in &fds {
        assert!(
            !t.starts_with("socket:") || base.get(n) == Some(t),
            "a socket on fd {n}: {fds:?}"
        );
    }
    // The standard descriptors are the caller's, untouched.
    for n in [0, 1, 2] {
        assert_eq!(
            fds.get(&n)
                .map(|t| t.split(':').next().unwrap_or("").to_string()),
            base.get(&n)
                .map(|t| t.split(':').next().unwrap_or("").to_string()),
            "fd {n}: {fds:?} vs {base:?}"
        );
    }
}

#[test]
fn y_gives_the_socket_on_6_and_7_and_the_ucspi_tls_descriptors() {
    // Regression: SSLWRITEFD used to be created as fd 7 and then overwritten by the
    // socket, so the program's "encrypted" writes went out in plain text.
    let s = plain_server(&["sh", "-c", "echo 220 plain; sleep 2"]);
    let base = baseline_fds();
    let prog = format!(
        "read greeting <&6; echo \"$greeting\"; echo ctl=$SSLCTLFD read=$SSLREADFD write=$SSLWRITEFD; {LIST_FDS}; exit 5"
    );
    let o = client(&["-y", "-X"], "127.0.0.1", s.port, &["sh", "-c", &prog]);
    // The program never asked for TLS: sslclient leaves as it did.
    assert_eq!(o.status.code(), Some(5), "{}", show(&o));
    let text = out(&o);
    assert!(text.starts_with("220 plain\nctl="), "{text}");
    let v = vars(&text.lines().nth(1).unwrap().replace(' ', "\n").to_string());
    let num = |k: &str| -> u32 { v[k].parse().unwrap_or_else(|_| panic!("{k}: {v:?}")) };
    let (ctl, rd, wr) = (num("ctl"), num("read"), num("write"));
    let fds = fd_table(&text);
    assert!(fds[&6].starts_with("socket:"), "{fds:?}");
    assert_eq!(fds[&6], fds[&7], "{fds:?}");
    assert!(
        fds[&ctl].starts_with("socket:") && fds[&ctl] != fds[&6],
        "{fds:?}"
    );
    assert!(fds[&rd].starts_with("pipe:"), "{fds:?}");
    assert!(
        fds[&wr].starts_with("pipe:") && fds[&wr] != fds[&rd],
        "{fds:?}"
    );
    let extra: Vec<_> = fds
        .iter()
        .filter(|(n, _)| ![6, 7, ctl, rd, wr].contains(*n) && !base.contains_key(n))
        .collect();
    assert!(extra.is_empty(), "leaked: {extra:?} (baseline {base:?})");
}

#[test]
fn the_programs_exit_status_and_signal_are_sslclients() {
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    let s = hello_server(&pki, "server");
    let o = client(
        &["-a", &ca],
        "localhost",
        s.port,
        &["sh", "-c", "cat <&6; exit 7"],
    );
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));
    assert_eq!(out(&o), "hello\n");
    for (sig, num) in [("TERM", 15), ("PIPE", 13)] {
        let o = client(
            &["-a", &ca],
            "localhost",
            s.port,
            &["sh", "-c", &format!("cat <&6 >/dev/null; kill -{sig} $$")],
        );
        assert_eq!(o.status.signal(), Some(num), "{sig}: {}", show(&o));
    }
}

#[test]
fn usage_errors_exit_100() {
    let run = |a: &[&str]| {
        let mut c = Command::new(ours("sslclient"));
        c.env_clear().env("PATH", "/usr/bin:/bin").args(a);
        run_with_input(&mut c, b"", LIMIT)
    };
    let dir = TempDir::new("sslc-usage");
    let marker = dir.join("ran");
    let touch = format!("touch {}", marker.display());
    for (a, first) in [
        (vec![], "sslclient: usage: sslclient "),
        (vec!["127.0.0.1", "443"], "sslclient: usage: sslclient "),
        (
            vec!["-Z", "127.0.0.1", "443", "sh", "-c", &touch],
            "sslclient: illegal option -- Z\nsslclient: usage: sslclient ",
        ),
        (vec!["-T"], "sslclient: "),
        (
            vec![
                "-i",
                "not-an-address",
                "127.0.0.1",
                "443",
                "sh",
                "-c",
                &touch,
            ],
            "sslclient: usage: sslclient ",
        ),
    ] {
        let o = run(&a);
        assert_eq!(o.status.code(), Some(100), "{a:?}: {}", show(&o));
        assert!(err(&o).starts_with(first), "{a:?}: {}", show(&o));
        assert!(
            err(&o).contains("sslclient: usage: "),
            "{a:?}: {}",
            show(&o)
        );
        assert!(!marker.exists());
    }
}

#[test]
fn i_binds_the_local_address() {
    // ucspi-ssl declares -i without an argument and crashes.
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    let s = server(
        &pki,
        "server",
        &[],
        &[],
        "127.0.0.1",
        &["sh", "-c", "echo \"server sees $SSLREMOTEIP\""],
    );
    for ip in ["127.0.0.1", "127.0.0.3"] {
        let o = client(
            &["-i", ip, "-a", &ca],
            "127.0.0.1",
            s.port,
            &["sh", "-c", "cat <&6; echo \"local=$SSLLOCALIP\""],
        );
        assert_eq!(o.status.code(), Some(0), "{ip}: {}", show(&o));
        assert_eq!(out(&o), format!("server sees {ip}\nlocal={ip}\n"));
    }
}

#[test]
fn sni_is_sent_for_names_only_and_m_turns_it_off() {
    let pki = Pki::new();
    let ca = pki.s("ca.pem");
    let s = server(
        &pki,
        "server",
        &[],
        &["-s"],
        "127.0.0.1",
        &["sh", "-c", "echo \"sni=${SSL_TLS_SNI-none}\""],
    );
    for (opts, host, want) in [
        (&["-a", &ca][..], "localhost", "sni=localhost\n"),
        (&["-m", "-a", &ca][..], "localhost", "sni=localhost\n"),
        (&["-M", "-a", &ca][..], "localhost", "sni=none\n"),
        (&["-a", &ca][..], "127.0.0.1", "sni=none\n"),
    ] {
        let o = client(opts, host, s.port, &["sh", "-c", "cat <&6"]);
        assert_eq!(o.status.code(), Some(0), "{opts:?} {host}: {}", show(&o));
        assert_eq!(out(&o), want, "{opts:?} {host}");
    }
}

#[test]
fn w_ends_an_idle_connection() {
    let pki = Pki::new();
    let s = server(
        &pki,
        "server",
        &[],
        &[],
        "127.0.0.1",
        &["sh", "-c", "echo hello; sleep 6"],
    );
    let start = Instant::now();
    let o = client(
        &["-w", "1", "-a", &pki.s("ca.pem")],
        "localhost",
        s.port,
        &["sh", "-c", "cat <&6"],
    );
    let took = start.elapsed();
    assert_eq!(o.status.code(), Some(110), "{}", show(&o));
    assert_eq!(
        err(&o),
        "sslclient: drop: (110) unable to speak TLS: timed out\n"
    );
    assert_eq!(out(&o), "hello\n");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// Sends 4 MiB on fd 7 while reading fd 6 to its end; checks that what came back is what
/// went out followed by the server's `done`.
const BULK: &str = r#"
import hashlib, os, random, threading
data = random.Random(7).randbytes(4 << 20)
def send():
    view = memoryview(data)
    while view:
        view = view[os.write(7, view[:65536]):]
    os.close(7)
t = threading.Thread(target=send)
t.start()
got = bytearray()
while True:
    b = os.read(6, 1 << 16)
    if not b:
        break
    got += b
t.join()
want = data + b"done\n"
print("ok" if got == want else "differ: %d bytes of %d" % (len(got), len(want)))
"#;

#[test]
fn bulk_data_both_ways_and_a_half_close() {
    // The server echoes until our end of data, then adds a line: the program's end of
    // output reaches it (close_notify, half-close) while its answer still comes back.
    let pki = Pki::new();
    let s = server(
        &pki,
        "server",
        &[],
        &[],
        "127.0.0.1",
        &["sh", "-c", "cat; echo done"],
    );
    let o = client(
        &["-a", &pki.s("ca.pem")],
        "localhost",
        s.port,
        &[PYTHON, "-c", BULK],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(out(&o), "ok\n");
}

#[test]
fn y_speaks_starttls_with_exim() {
    ssl_peers::need_exim();
    let pki = Pki::new();
    let dir = TempDir::new("sslc-exim");
    let conf = ssl_peers::exim_conf(&dir, true, &pki.path("server.pem"), &pki.path("server.key"));
    let s = plain_server(&[ssl_peers::EXIM, "-C", &conf, "-bs"]);
    let o = client(
        &["-y", "-a", &pki.s("ca.pem")],
        "localhost",
        s.port,
        &[PYTHON, "-c", STARTTLS_CLIENT],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("greeting 220 mx.test ESMTP Exim"),
        "{text}"
    );
    // Exim (GnuTLS) and rustls agree on TLS 1.3; the Y block names the server.
    assert_eq!(lines[1], "tls TLSv1.3 localhost");
    // EHLO again, now inside TLS: Exim no longer offers STARTTLS.
    assert!(
        lines[2].starts_with("ehlo 250-mx.test Hello client.test [127.0.0.1]|"),
        "{text}"
    );
    assert!(lines[2].ends_with("|250 HELP"), "{text}");
    assert!(!lines[2].contains("STARTTLS"), "{text}");
    assert_eq!(lines[3], "quit 221 mx.test closing connection");
}

#[test]
fn y_against_our_sslserver_n_both_ends_ucspi_tls() {
    let pki = Pki::new();
    let dir = TempDir::new("sslc-ucspitls");
    let service = ssl_peers::script(&dir, "service.py", SMTP_SERVICE);
    let log = dir.join("service.log");
    let s = server(
        &pki,
        "server",
        &[],
        &["-n"],
        "127.0.0.1",
        &[PYTHON, &service, log.to_str().unwrap()],
    );
    let o = client(
        &["-y", "-a", &pki.s("ca.pem")],
        "localhost",
        s.port,
        &[PYTHON, "-c", STARTTLS_CLIENT],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        out(&o),
        "greeting 220 ucspi-tls.test ESMTP test service\n\
         tls TLSv1.3 localhost\n\
         ehlo 250-ucspi-tls.test hello client.test|250 8BITMIME\n\
         quit 221 ucspi-tls.test bye\n"
    );
    let end = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        if t.contains("QUIT") || Instant::now() > end {
            break t;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.starts_with("TLS TLSv1.3 TLS_") && first.ends_with(" SNI=localhost"),
        "{text}"
    );
    assert!(text.ends_with("QUIT\n"), "{text}");
}

#[test]
fn y_with_a_bad_command_byte_exits_100() {
    let s = plain_server(&["sh", "-c", "echo 220 plain; sleep 2"]);
    let o = client(
        &["-y", "-X"],
        "127.0.0.1",
        s.port,
        &[
            PYTHON,
            "-c",
            "import os\nos.read(6, 100)\nos.write(int(os.environ['SSLCTLFD']), b'x')\n\
             os.read(6, 100)\nprint('still running')",
        ],
    );
    assert_eq!(o.status.code(), Some(100), "{}", show(&o));
    assert!(!out(&o).contains("still running"));
}
