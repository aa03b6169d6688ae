//! rblsmtpd against Debian's: $RBLSMTPD, -r TXT and -a A lookups of the reversed client
//! address, -b/-B and -c/-C in their left-to-right order, the refusing SMTP conversation,
//! -t, the log line and exit codes. Beyond: IPv6 nibble lookups, `-r base:message` with
//! %IP%, the overall lookup deadline -T and the greeting delay -w. All DNS answers come
//! from a responder on 127.0.42.1.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use blackbox::{djb, dns_zone, ours, run_with_input, show, Rr};

const DNS: &str = "127.0.42.1";
const LIMIT: Duration = Duration::from_secs(30);

fn txt(s: &str) -> Rr {
    Rr::Txt(vec![s.as_bytes().to_vec()])
}

fn dns() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let mut long = vec![b'L'; 150];
        long.extend_from_slice(b"\x01\x7f tab\there");
        let nib6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0";
        let table: Vec<(String, u16, Rr)> = vec![
            (
                "2.0.0.127.rbl.test".into(),
                16,
                txt("listed: see http://rbl.test/?127.0.0.2"),
            ),
            ("3.0.0.127.rbl.test".into(), 16, txt("three is listed")),
            (
                "2.0.0.127.multi.test".into(),
                16,
                Rr::Txt(vec![b"part one, ".to_vec(), b"part two".to_vec()]),
            ),
            (
                "2.0.0.127.multi.test".into(),
                16,
                txt(" and a second record"),
            ),
            (
                "2.0.0.127.long.test".into(),
                16,
                Rr::Txt(vec![long.clone(), long]),
            ),
            ("2.0.0.127.fail.test".into(), 16, Rr::Truncated),
            ("2.0.0.127.fail.test".into(), 1, Rr::Truncated),
            ("3.0.0.127.fail.test".into(), 16, Rr::Truncated),
            ("3.0.0.127.fail.test".into(), 1, Rr::Truncated),
            ("2.0.0.127.servfail.test".into(), 16, Rr::ServFail),
            ("2.0.0.127.white.test".into(), 1, Rr::A([127, 0, 0, 2])),
            ("2.0.0.127.arec.test".into(), 1, Rr::A([127, 0, 0, 2])),
            ("rbl.test".into(), 16, txt("no address at all")),
            (
                format!("{nib6}.rbl6.test"),
                16,
                txt("IPv6 loopback is listed"),
            ),
            ("2.0.0.127.silent.test".into(), 16, Rr::Silent),
            ("2.0.0.127.silent.test".into(), 1, Rr::Silent),
        ];
        dns_zone(DNS, table, Duration::from_secs(240));
    });
}

/// The SMTP a client says: every command djb's rblsmtpd knows and some it does not.
const SESSION: &[u8] = b"HELO client.test\r\nEHLO client.test\r\nmail FROM:<a@b.test>\r\n\
RCPT TO:<c@d.test>\r\nDATA\r\nnoop\r\nrset\nhelp me\r\n  leading space\r\nQUIT now\r\nNOOP\r\n";

fn run(bin: &Path, ip: Option<&str>, env_rbl: Option<&str>, args: &[&str], input: &[u8]) -> Output {
    let mut c = Command::new(bin);
    c.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DNSCACHEIP", DNS);
    if let Some(ip) = ip {
        c.env("TCPREMOTEIP", ip);
    }
    if let Some(v) = env_rbl {
        c.env("RBLSMTPD", v);
    }
    run_with_input(&mut c, input, LIMIT)
}

/// The smtpd both run when they let a client through.
const SMTPD: [&str; 3] = ["sh", "-c", "echo \"smtpd ran for $TCPREMOTEIP\"; cat"];

fn norm_pid(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b).into_owned();
    s.lines()
        .map(|l| match l.split_once(" pid ") {
            Some((a, rest)) => {
                let r = rest.trim_start_matches(|c: char| c.is_ascii_digit());
                format!("{a} pid PID{r}\n")
            }
            None => format!("{l}\n"),
        })
        .collect()
}

fn same(ip: Option<&str>, env_rbl: Option<&str>, args: &[&str]) -> Output {
    let mut full: Vec<&str> = args.to_vec();
    full.extend(SMTPD);
    let a = run(&djb("rblsmtpd"), ip, env_rbl, &full, SESSION);
    let b = run(&ours("rblsmtpd"), ip, env_rbl, &full, SESSION);
    let what = format!(
        "{ip:?} RBLSMTPD={env_rbl:?} {args:?}\ndjb: {}\nours: {}",
        show(&a),
        show(&b)
    );
    assert_eq!(a.stdout, b.stdout, "stdout {what}");
    assert_eq!(norm_pid(&a.stderr), norm_pid(&b.stderr), "stderr {what}");
    assert_eq!(a.status.code(), b.status.code(), "exit {what}");
    b
}

const TWO: Option<&str> = Some("127.0.0.2");
const THREE: Option<&str> = Some("127.0.0.3");
const ONE: Option<&str> = Some("127.0.0.1");

#[test]
fn decisions_match_djb() {
    dns();
    let cases: Vec<(Option<&str>, Option<&str>, Vec<&str>)> = vec![
        (TWO, None, vec!["-r", "rbl.test"]),
        (TWO, None, vec!["-b", "-r", "rbl.test"]),
        (TWO, None, vec!["-r", "rbl.test", "-b"]),
        (TWO, None, vec!["-bB", "-r", "rbl.test"]),
        (ONE, None, vec!["-r", "rbl.test"]),
        (ONE, None, vec!["-b", "-r", "rbl.test", "-r", "multi.test"]),
        (TWO, None, vec!["-r", "multi.test"]),
        (TWO, None, vec!["-b", "-r", "long.test"]),
        (TWO, None, vec!["-a", "white.test", "-r", "rbl.test"]),
        (TWO, None, vec!["-r", "rbl.test", "-a", "white.test"]),
        (TWO, None, vec!["-c", "-r", "fail.test", "-r", "rbl.test"]),
        (
            TWO,
            None,
            vec!["-C", "-r", "fail.test", "-b", "-r", "rbl.test"],
        ),
        (TWO, None, vec!["-Cb", "-r", "fail.test", "-r", "rbl.test"]),
        (THREE, None, vec!["-a", "fail.test", "-r", "rbl.test"]),
        (
            THREE,
            None,
            vec!["-c", "-a", "fail.test", "-b", "-r", "rbl.test"],
        ),
        (TWO, Some(""), vec!["-r", "rbl.test"]),
        (TWO, Some("-go away"), vec!["-r", "rbl.test"]),
        (ONE, Some("come back later"), vec![]),
        (ONE, Some("-"), vec![]),
        (ONE, Some("bad\x01byte"), vec![]),
        (None, None, vec!["-r", "rbl.test"]),
        (ONE, None, vec![]),
        (TWO, None, vec!["-t", "0", "-r", "rbl.test"]),
        (TWO, None, vec!["-t0", "-b", "-r", "rbl.test"]),
    ];
    for (ip, env_rbl, args) in cases {
        same(ip, env_rbl, &args);
    }
    // The values themselves, for the central cases.
    let o = same(TWO, None, &["-r", "rbl.test"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "220 rblsmtpd.local\r\n250 rblsmtpd.local\r\n250 rblsmtpd.local\r\n250 rblsmtpd.local\r\n\
         451 listed: see http://rbl.test/?127.0.0.2\r\n451 listed: see http://rbl.test/?127.0.0.2\r\n\
         250 rblsmtpd.local\r\n250 rblsmtpd.local\r\n451 listed: see http://rbl.test/?127.0.0.2\r\n\
         451 listed: see http://rbl.test/?127.0.0.2\r\n221 rblsmtpd.local\r\n"
    );
    assert_eq!(
        norm_pid(&o.stderr),
        "rblsmtpd: 127.0.0.2 pid PID: 451 listed: see http://rbl.test/?127.0.0.2\n"
    );
    assert_eq!(o.status.code(), Some(0));
    let o = same(TWO, None, &["-c", "-r", "fail.test"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("451 temporary RBL lookup error\r\n"));
    let o = same(ONE, None, &["-r", "rbl.test"]);
    assert!(
        o.stdout.starts_with(b"smtpd ran for 127.0.0.1\n"),
        "{}",
        show(&o)
    );
    assert_eq!(
        &o.stdout[24..],
        SESSION,
        "smtpd gets the client's bytes untouched"
    );
    let o = same(TWO, None, &["-t0", "-b", "-r", "rbl.test"]);
    assert_eq!(o.stdout, b"553 listed: see http://rbl.test/?127.0.0.2\r\n");
}

#[test]
fn usage_and_failures_match_djb() {
    dns();
    for args in [
        vec![],
        vec!["-r", "rbl.test"],
        vec!["-x", "true"],
        vec!["-t"],
        vec!["-r", "rbl.test", "/nonexistent/smtpd"],
    ] {
        let a = run(&djb("rblsmtpd"), ONE, None, &args, b"");
        let b = run(&ours("rblsmtpd"), ONE, None, &args, b"");
        assert_eq!(a.stderr, b.stderr, "{args:?}\n{}\n{}", show(&a), show(&b));
        assert_eq!(a.status.code(), b.status.code(), "{args:?}");
    }
    let b = run(&ours("rblsmtpd"), ONE, None, &[], b"");
    assert_eq!(b.status.code(), Some(100));
    let b = run(&ours("rblsmtpd"), ONE, None, &["/nonexistent/smtpd"], b"");
    assert_eq!(b.status.code(), Some(111));
    assert_eq!(
        String::from_utf8_lossy(&b.stderr),
        "rblsmtpd: fatal: unable to run /nonexistent/smtpd: file does not exist\n"
    );
}

/// Starts rblsmtpd with a client that says nothing and keeps its side open; returns what
/// it wrote, its status and how long it took.
fn silent_client(bin: &Path, args: &[&str]) -> (Vec<u8>, Option<i32>, Duration) {
    let mut c = Command::new(bin);
    c.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DNSCACHEIP", DNS)
        .env("TCPREMOTEIP", "127.0.0.2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let start = Instant::now();
    let mut child = c.spawn().unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("{bin:?} {args:?} did not stop");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    drop(stdin);
    (reader.join().unwrap(), status.code(), took)
}

#[test]
fn timeout_ends_a_silent_session() {
    dns();
    for bin in [djb("rblsmtpd"), ours("rblsmtpd")] {
        let (out, code, took) = silent_client(&bin, &["-t", "1", "-r", "rbl.test", "true"]);
        assert_eq!(out, b"220 rblsmtpd.local\r\n", "{bin:?}");
        assert_eq!(code, Some(0));
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(10),
            "{took:?}"
        );
    }
}

fn ours_with(ip: &str, args: &[&str], input: &[u8]) -> Output {
    let mut full: Vec<&str> = args.to_vec();
    full.extend(SMTPD);
    run(&ours("rblsmtpd"), Some(ip), None, &full, input)
}

#[test]
fn ipv6_clients_are_looked_up_by_nibbles() {
    dns();
    let o = ours_with("::1", &["-t0", "-r", "rbl6.test"], b"");
    assert_eq!(o.stdout, b"451 IPv6 loopback is listed\r\n", "{}", show(&o));
    assert_eq!(
        norm_pid(&o.stderr),
        "rblsmtpd: ::1 pid PID: 451 IPv6 loopback is listed\n"
    );
    let o = ours_with("::2", &["-t0", "-r", "rbl6.test"], b"");
    assert!(o.stdout.starts_with(b"smtpd ran for ::2\n"), "{}", show(&o));
    // A v4-mapped client is looked up as IPv4.
    let o = ours_with("::ffff:127.0.0.2", &["-t0", "-r", "rbl.test"], b"");
    assert!(o.stdout.starts_with(b"451 listed"), "{}", show(&o));
}

#[test]
fn custom_message_with_the_client_ip() {
    dns();
    let o = ours_with(
        "127.0.0.2",
        &[
            "-t0",
            "-b",
            "-r",
            "arec.test:Blocked %IP%, see http://arec.test/?ip=%IP% (100%)",
        ],
        b"",
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "553 Blocked 127.0.0.2, see http://arec.test/?ip=127.0.0.2 (100%)\r\n"
    );
    // Not listed: no A record, smtpd runs.
    let o = ours_with("127.0.0.1", &["-t0", "-r", "arec.test:Blocked %IP%"], b"");
    assert!(o.stdout.starts_with(b"smtpd ran"), "{}", show(&o));
    // A lookup failure counts as one (fail closed with -c).
    let o = ours_with(
        "127.0.0.2",
        &["-t0", "-c", "-r", "fail.test:Blocked %IP%"],
        b"",
    );
    assert_eq!(
        o.stdout,
        b"451 temporary RBL lookup error\r\n",
        "{}",
        show(&o)
    );
}

#[test]
fn overall_lookup_deadline() {
    dns();
    // Three lists that never answer: without -T each would take the resolver's 4 s.
    let start = Instant::now();
    let o = ours_with(
        "127.0.0.2",
        &[
            "-T",
            "1",
            "-r",
            "silent.test",
            "-r",
            "silent.test",
            "-a",
            "silent.test",
        ],
        b"QUIT\r\n",
    );
    let took = start.elapsed();
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    // Fail-open: a lookup past the deadline is a DNS failure, so -a accepts.
    assert!(o.stdout.starts_with(b"smtpd ran"), "{}", show(&o));
    let o = ours_with("127.0.0.2", &["-T1", "-c", "-r", "silent.test", "-t0"], b"");
    assert_eq!(
        o.stdout,
        b"451 temporary RBL lookup error\r\n",
        "{}",
        show(&o)
    );
    // Lists after the deadline are not asked: rbl.test would list this client.
    let o = ours_with(
        "127.0.0.2",
        &["-T1", "-r", "silent.test", "-r", "rbl.test", "-t0"],
        b"",
    );
    assert!(o.stdout.starts_with(b"smtpd ran"), "{}", show(&o));
}

#[test]
fn greeting_delay_rejects_early_talkers() {
    dns();
    // The client talks at once: refused, smtpd never runs.
    let start = Instant::now();
    let o = ours_with("127.0.0.1", &["-w", "2"], b"EHLO eager\r\n");
    assert!(start.elapsed() < Duration::from_secs(2), "refused at once");
    assert_eq!(
        o.stdout,
        b"554 SMTP protocol violation: talked before the greeting\r\n",
        "{}",
        show(&o)
    );
    assert!(
        norm_pid(&o.stderr).starts_with("rblsmtpd: 127.0.0.1 pid PID: 554 "),
        "{}",
        show(&o)
    );
    // A patient client gets smtpd after the delay.
    let mut c = Command::new(ours("rblsmtpd"));
    c.args(["-w", "1"])
        .args(SMTPD)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TCPREMOTEIP", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 24];
    out.read_exact(&mut first).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert_eq!(&first, b"smtpd ran for 127.0.0.1\n");
    stdin.write_all(b"HELO late\r\n").unwrap();
    drop(stdin);
    let mut rest = Vec::new();
    out.read_to_end(&mut rest).unwrap();
    let _ = child.wait();
    assert_eq!(rest, b"HELO late\r\n");
}
