//! sslserver deployed as tcpserver is (see tcpserver_deploy.rs): socket-activated by
//! Debian's `systemd-socket-activate`, and behind a real HAProxy in TCP mode whose
//! PROXY header comes before the TLS handshake. The TLS client is Python's ssl module,
//! which can bind the source address and send a header in clear text first.

mod tls_util;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use blackbox::{ours, proxy_header, socket_activated, HaProxy, TempDir};
use tls_util::*;

const SHORT: Duration = Duration::from_secs(5);

fn env_map(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn get<'a>(v: &'a BTreeMap<String, String>, k: &str) -> Option<&'a str> {
    v.get(k).map(String::as_str)
}

/// systemd-socket-activate binds 127.0.0.1 and ::1 at one port named `tls`; sslserver
/// `-L tls` serves both from one process: TLS clients over IPv4 and IPv6 get their
/// addresses in SSLREMOTEIP, `-1` prints `IP : PORT [limit/perip]` for each socket, no
/// LISTEN_* variable reaches the program.
#[test]
fn sslserver_socket_activation_serves_both_sockets() {
    let pki = Pki::new();
    let mut argv: Vec<OsString> = vec![ours("sslserver").into()];
    argv.extend(
        [
            "-1", "-v", "-HRl0", "-L", "tls", "0", "0", "sh", "-c", "env",
        ]
        .iter()
        .map(OsString::from),
    );
    let argv_ref: Vec<&std::ffi::OsStr> = argv.iter().map(OsString::as_os_str).collect();
    let setenv = [
        format!("CERTFILE={}", pki.s("server.pem")),
        format!("KEYFILE={}", pki.s("server.key")),
    ];
    let (d, port) = socket_activated(&["127.0.0.1", "[::1]"], "tls:tls", &setenv, &argv_ref);
    let ca = pki.s("ca.pem");
    for host in ["127.0.0.1", "::1"] {
        let (lport, out) = tls_fetch(host, port, &ca, None, b"");
        let v = env_map(&out);
        let ctx = format!("{host}: {out}\nlog {:?}", d.log());
        assert_eq!(get(&v, "SSLREMOTEIP"), Some(host), "{ctx}");
        assert_eq!(get(&v, "TCPREMOTEIP"), Some(host), "{ctx}");
        assert_eq!(v.get("SSLREMOTEPORT"), Some(&lport.to_string()), "{ctx}");
        assert_eq!(v.get("SSLLOCALPORT"), Some(&port.to_string()), "{ctx}");
        assert!(
            !v.keys().any(|k| k.starts_with("LISTEN_")),
            "LISTEN_* reached the program: {ctx}"
        );
    }
    assert_eq!(
        d.wait_stdout(2, SHORT),
        Some(vec![
            format!("127.0.0.1 : {port} [40/40]"),
            format!("::1 : {port} [40/40]"),
        ]),
        "{:?}",
        d.log()
    );
    let log = d.log();
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("sslserver: ok "))
            .count(),
        2,
        "{log:#?}"
    );
}

/// HAProxy in TCP mode with `send-proxy-v2` from 127.0.0.3, trusted by a rule, in front
/// of sslserver: the header comes before the TLS handshake, which then goes through as
/// usual; the program sees the client (127.0.0.6) in SSLREMOTEIP and TCPREMOTEIP and
/// the balancer in PROXYREMOTEIP; a client from 127.0.0.5 is denied by its rule before
/// any TLS.
#[test]
fn sslserver_behind_haproxy_sees_the_client() {
    if blackbox::haproxy_bin().is_none() {
        eprintln!("skipped: /usr/sbin/haproxy is missing (Debian package haproxy)");
        return;
    }
    let pki = Pki::new();
    let d = TempDir::new("ssl-hap");
    let cdb = blackbox::compile_rules(
        &ours("tcprules"),
        &d,
        "rules.cdb",
        "127.0.0.3:allow,PROXY_PROTOCOL=\"v2\"\n127.0.0.5:deny\n127.0.0.6:allow,WHO=\"six\"\n:allow\n",
    );
    let s = Server::start(
        &[
            ("CERTFILE", &pki.s("server.pem")),
            ("KEYFILE", &pki.s("server.key")),
        ],
        &["-v", "-HRl0", "-x", &cdb],
        "127.0.0.1",
        &["sh", "-c", "env"],
    );
    let backend = SocketAddr::from(([127, 0, 0, 1], s.port));
    let hap = HaProxy::start(&[(backend, "send-proxy-v2 source 127.0.0.3")]);
    let ca = pki.s("ca.pem");
    let (lport, out) = tls_fetch("127.0.0.1", hap.ports[0], &ca, Some("127.0.0.6"), b"");
    let v = env_map(&out);
    let ctx = format!("{out}\nlog {:#?}", s.log());
    let want = [
        ("SSLREMOTEIP", "127.0.0.6".to_string()),
        ("TCPREMOTEIP", "127.0.0.6".into()),
        ("SSLREMOTEPORT", lport.to_string()),
        ("TCPREMOTEPORT", lport.to_string()),
        ("SSLLOCALPORT", hap.ports[0].to_string()),
        ("WHO", "six".into()),
        ("PROXYREMOTEIP", "127.0.0.3".into()),
        ("PROXYLOCALPORT", s.port.to_string()),
    ];
    for (k, val) in want {
        assert_eq!(v.get(k), Some(&val), "{k}: {ctx}");
    }
    let line = s.wait_log(&format!(" 127.0.0.6:{lport} via 127.0.0.3:"));
    assert!(line.starts_with("sslserver: proxy "), "{line}");

    let (lport, out) = tls_fetch("127.0.0.1", hap.ports[0], &ca, Some("127.0.0.5"), b"");
    assert!(out.starts_with("ERROR"), "127.0.0.5 was served: {out}");
    let deny = s.wait_log(&format!(":127.0.0.5::{lport}"));
    assert!(deny.starts_with("sslserver: deny "), "{deny}");
    assert_eq!(s.count("warning"), 0, "{:#?}", s.log());
}

/// `-a` without a balancer: the client itself sends the header in clear text, then
/// does TLS (v1 and v2 headers); a TLS client that sends no header is dropped with a
/// warning before any handshake.
#[test]
fn sslserver_reads_the_header_before_the_handshake() {
    let pki = Pki::new();
    let s = Server::start(
        &[
            ("CERTFILE", &pki.s("server.pem")),
            ("KEYFILE", &pki.s("server.key")),
        ],
        &["-v", "-HRl0", "-a"],
        "127.0.0.1",
        &["sh", "-c", "env"],
    );
    let ca = pki.s("ca.pem");
    for (h, client) in [
        (
            proxy_header::v1(sa("192.0.2.9:4000"), sa("198.51.100.1:465")),
            "192.0.2.9",
        ),
        (
            proxy_header::v2_tcp(sa("[2001:db8::9]:4001"), sa("[2001:db8::1]:465"), &[]),
            "2001:db8::9",
        ),
    ] {
        let (lport, out) = tls_fetch("127.0.0.1", s.port, &ca, None, &h);
        let v = env_map(&out);
        assert_eq!(get(&v, "SSLREMOTEIP"), Some(client), "{out}");
        assert_eq!(get(&v, "TCPREMOTEIP"), Some(client), "{out}");
        assert_eq!(get(&v, "PROXYREMOTEIP"), Some("127.0.0.1"), "{out}");
        assert_eq!(v.get("PROXYREMOTEPORT"), Some(&lport.to_string()), "{out}");
        assert_eq!(get(&v, "SSLLOCALPORT"), Some("465"), "{out}");
    }
    let (_, out) = tls_fetch("127.0.0.1", s.port, &ca, None, b"");
    assert!(out.starts_with("ERROR"), "served without a header: {out}");
    let w = s.wait_log("warning");
    assert_eq!(
        w,
        "sslserver: warning: dropping connection, PROXY header from 127.0.0.1: bad signature"
    );
}
