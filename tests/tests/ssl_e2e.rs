//! End to end with real mail software: swaks (Net::SSLeay, i.e. OpenSSL) over SMTPS to
//! Debian's Exim run inetd-style (`exim4 -C private.conf -bs`) under our sslserver, which
//! does the TLS; swaks with STARTTLS to a UCSPI-TLS service under `sslserver -n`; and our
//! sslclient delivering to the same Exim through our sslserver. Needs the Debian packages
//! exim4-daemon-light, swaks and libnet-ssleay-perl (scripts/test.d/20-smtp.sh).

mod ssl_peers;
mod tls_util;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use blackbox::{ours, run_with_input, show, TempDir};
use ssl_peers::{EXIM, PYTHON, SMTP_SERVICE};
use tls_util::{Pki, Server};

fn swaks(port: u16, ca: &str, extra: &[&str]) -> Output {
    let mut c = Command::new("swaks");
    c.args([
        "--server",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--helo",
        "client.test",
        "--from",
        "sender@client.test",
        "--to",
        "user@mx.test",
        "--tls-verify",
        "--tls-ca-path",
        ca,
        "--tls-sni",
        "localhost",
        "--timeout",
        "20",
    ])
    .args(extra)
    .env_clear()
    .env("PATH", "/usr/bin:/bin");
    run_with_input(&mut c, b"", Duration::from_secs(60))
}

fn need_swaks_tls() {
    let o = Command::new("perl")
        .args(["-MNet::SSLeay", "-e", "1"])
        .output()
        .expect("perl");
    assert!(
        o.status.success() && std::path::Path::new("/usr/bin/swaks").exists(),
        "swaks with TLS needs the Debian packages swaks and libnet-ssleay-perl \
         (scripts/test.d/20-smtp.sh installs them)"
    );
}

/// Our sslserver on 127.0.0.1 with server.pem, no lookups, `-v`.
fn sslserver(pki: &Pki, extra: &[&str], prog: &[&str]) -> Server {
    let (cert, key) = (pki.s("server.pem"), pki.s("server.key"));
    let mut args = vec!["-v", "-H", "-R", "-l", "0"];
    args.extend_from_slice(extra);
    Server::start(
        &[("CERTFILE", &cert), ("KEYFILE", &key)],
        &args,
        "127.0.0.1",
        prog,
    )
}

/// Waits (up to 10 s) until `f` holds for Exim's main log; returns the log.
fn exim_log_until(dir: &TempDir, f: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let log = ssl_peers::exim_log(dir);
        if f(&log) || Instant::now() > end {
            return log;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn swaks_over_smtps_to_exim_under_sslserver() {
    ssl_peers::need_exim();
    need_swaks_tls();
    let pki = Pki::new();
    let dir = TempDir::new("e2e-smtps");
    let conf = ssl_peers::exim_conf(
        &dir,
        false,
        &pki.path("server.pem"),
        &pki.path("server.key"),
    );
    let s = sslserver(&pki, &[], &[EXIM, "-C", &conf, "-bs"]);
    let ca = pki.s("ca.pem");
    for (proto, subject) in [("tlsv1_3", "over TLSv1.3"), ("tlsv1_2", "over TLSv1.2")] {
        let o = swaks(
            s.port,
            &ca,
            &[
                "--tlsc",
                "--tls-protocol",
                proto,
                "--header",
                &format!("Subject: {subject}"),
            ],
        );
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{}", show(&o));
        // TLS from the first byte (`~` marks swaks's TLS lines), the certificate
        // verified by OpenSSL against our CA.
        let version = if proto == "tlsv1_3" {
            "TLSv1.3"
        } else {
            "TLSv1.2"
        };
        assert!(
            text.contains(&format!("=== TLS started with cipher {version}:")),
            "{text}"
        );
        assert!(text.contains("=== TLS peer DN=\"/CN=localhost\""), "{text}");
        assert!(text.contains("<~  220 mx.test ESMTP Exim"), "{text}");
        assert!(!text.contains("<-  "), "a plain-text reply: {text}");
        assert!(text.contains("<~  250 OK id="), "{text}");
        assert!(
            text.contains("<~  221 mx.test closing connection"),
            "{text}"
        );
    }
    // Both messages are in Exim's queue, with their subjects, and in its log.
    let q = ssl_peers::queued(&dir);
    assert_eq!(q.len(), 2, "{q:?}");
    assert!(
        q.iter().any(|h| h.contains("Subject: over TLSv1.3")),
        "{q:?}"
    );
    assert!(
        q.iter().any(|h| h.contains("Subject: over TLSv1.2")),
        "{q:?}"
    );
    let log = exim_log_until(&dir, |l| l.matches("<= sender@client.test").count() == 2);
    assert_eq!(log.matches("<= sender@client.test").count(), 2, "{log}");
    // sslserver saw two connections whose programs (Exim) ended well.
    s.wait_log("sslserver: tls ");
    let end = Instant::now() + Duration::from_secs(10);
    while s.log().iter().filter(|l| l.contains("ended by")).count() < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ended: Vec<String> = s
        .log()
        .into_iter()
        .filter(|l| l.contains("ended by"))
        .collect();
    assert_eq!(ended.len(), 2, "{:?}", s.log());
    assert!(ended.iter().all(|l| l.ends_with("status 0")), "{ended:?}");
}

#[test]
fn swaks_with_starttls_to_a_ucspi_tls_service_under_sslserver_n() {
    need_swaks_tls();
    let pki = Pki::new();
    let dir = TempDir::new("e2e-starttls");
    let service = ssl_peers::script(&dir, "service.py", SMTP_SERVICE);
    let log = dir.join("service.log");
    let s = sslserver(&pki, &["-n"], &[PYTHON, &service, log.to_str().unwrap()]);
    let ca = pki.s("ca.pem");

    // Without TLS the service refuses the sender.
    let o = swaks(s.port, &ca, &["--quit-after", "MAIL"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!o.status.success(), "{}", show(&o));
    assert!(text.contains("<** 530 must issue STARTTLS first"), "{text}");

    let o = swaks(s.port, &ca, &["--tls", "--header", "Subject: via STARTTLS"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", show(&o));
    // Plain text first (`-`), then TLS (`~`).
    assert!(
        text.contains("<-  220 ucspi-tls.test ESMTP test service"),
        "{text}"
    );
    assert!(text.contains("<-  250 STARTTLS"), "{text}");
    assert!(text.contains(" -> STARTTLS"), "{text}");
    assert!(text.contains("<-  220 go ahead"), "{text}");
    assert!(
        text.contains("=== TLS started with cipher TLSv1.3:"),
        "{text}"
    );
    assert!(text.contains("=== TLS peer DN=\"/CN=localhost\""), "{text}");
    assert!(text.contains("<~  250 8BITMIME"), "{text}");
    assert!(text.contains("<~  250 queued over TLSv1.3"), "{text}");
    assert!(
        text.ends_with("<~  221 ucspi-tls.test bye\n=== Connection closed with remote host.\n"),
        "{text}"
    );

    // The service's view: the Y block (protocol, cipher, the name swaks asked for),
    // the message, the end.
    let end = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        if t.contains("QUIT") || Instant::now() > end {
            break t;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let tls_line = seen
        .lines()
        .find(|l| l.starts_with("TLS "))
        .unwrap_or_else(|| panic!("{seen}"));
    assert!(
        tls_line.starts_with("TLS TLSv1.3 TLS_") && tls_line.ends_with(" SNI=localhost"),
        "{seen}"
    );
    assert!(seen.contains("BODY Subject: via STARTTLS\n"), "{seen}");
    assert!(seen.ends_with("QUIT\n"), "{seen}");
}

/// An SMTP client on fds 6 and 7 (sslclient's): one message to user@mx.test; prints
/// each reply's last line.
const SMTP_SEND: &str = r#"
import os, sys
def line():
    b = b""
    while not b.endswith(b"\n"):
        c = os.read(6, 1)
        if not c:
            sys.exit("end of file after %r" % b)
        b += c
    return b.decode().rstrip("\r\n")
def reply():
    while True:
        l = line()
        if l[3:4] != "-":
            print(l)
            return l
def send(s):
    b = (s + "\r\n").encode()
    while b:
        b = b[os.write(7, b):]
reply()
for cmd in ["EHLO client.test", "MAIL FROM:<sender@client.test>", "RCPT TO:<user@mx.test>",
            "DATA"]:
    send(cmd)
    reply()
send("Subject: from sslclient\r\n\r\nhello over %s\r\n." % os.environ.get("SSL_PROTOCOL"))
reply()
send("QUIT")
reply()
"#;

#[test]
fn sslclient_delivers_to_exim_under_sslserver() {
    ssl_peers::need_exim();
    let pki = Pki::new();
    let dir = TempDir::new("e2e-ours");
    let conf = ssl_peers::exim_conf(
        &dir,
        false,
        &pki.path("server.pem"),
        &pki.path("server.key"),
    );
    let s = sslserver(&pki, &[], &[EXIM, "-C", &conf, "-bs"]);
    let mut c = Command::new(ours("sslclient"));
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["-H", "-s", "-a", &pki.s("ca.pem"), "localhost"])
        .arg(s.port.to_string())
        .args([PYTHON, "-c", SMTP_SEND]);
    let o = run_with_input(&mut c, b"", Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(lines[0].starts_with("220 mx.test ESMTP Exim"), "{text}");
    assert_eq!(lines[1], "250 HELP");
    assert_eq!(lines[2], "250 OK");
    assert_eq!(lines[3], "250 Accepted");
    assert!(lines[4].starts_with("354 "), "{text}");
    assert!(lines[5].starts_with("250 OK id="), "{text}");
    assert_eq!(lines[6], "221 mx.test closing connection");
    let q = ssl_peers::queued(&dir);
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(q[0].contains("Subject: from sslclient"), "{q:?}");
    let id = lines[5].trim_start_matches("250 OK id=");
    let log = exim_log_until(&dir, |l| l.contains(id));
    assert!(
        log.lines()
            .any(|l| l.contains(id) && l.contains("<= sender@client.test")),
        "{log}"
    );
    // The body went through both relays: the data file holds the protocol line.
    let data =
        std::fs::read_to_string(dir.join(&format!("spool/input/{id}-D"))).unwrap_or_default();
    assert!(data.contains("hello over TLSv1.3"), "{data}");
}
