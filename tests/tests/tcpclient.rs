//! tcpclient against Debian's (djb's 0.88): options and getopt, the environment and fds of
//! the program, -i/-p binding, -T over several addresses, DNS and ident, messages and exit
//! codes; ours and djb's against our tcpserver and djb's. Beyond: IPv6, -4/-6, /etc/hosts,
//! alternation of families. Every DNS answer comes from a responder on 127.0.41.x.

#[path = "tcpserver_util/mod.rs"]
mod util;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use blackbox::{djb, dns_zone, ours, run_with_input, show, Rr};
use util::Server;

const LIMIT: Duration = Duration::from_secs(30);
/// The test DNS server; the names below are all it knows.
const DNS: &str = "127.0.41.1";

fn dns() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let ptr = |ip: &str, name: &str| {
            let rev: Vec<&str> = ip.split('.').rev().collect();
            (
                format!("{}.in-addr.arpa", rev.join(".")),
                12,
                Rr::Ptr(name.into()),
            )
        };
        let table = vec![
            ptr("127.0.41.10", "server.example"),
            ptr("127.0.41.20", "client.example"),
            ("server.example".into(), 1, Rr::A([127, 0, 41, 10])),
            ("dead.example".into(), 1, Rr::A([127, 0, 41, 30])),
            ("dead.example".into(), 1, Rr::A([127, 0, 41, 31])),
            ("dual.example".into(), 1, Rr::A([127, 0, 41, 10])),
            (
                "dual.example".into(),
                28,
                Rr::Aaaa(std::net::Ipv6Addr::LOCALHOST.octets()),
            ),
            // SERVFAIL: djb's resolver waits ~11 s for a better answer, then reports
            // a temporary failure, as ours does at once.
            ("broken.example".into(), 1, Rr::ServFail),
            ("broken.example".into(), 28, Rr::ServFail),
            (
                "v6only.example".into(),
                28,
                Rr::Aaaa(std::net::Ipv6Addr::LOCALHOST.octets()),
            ),
            (
                "v6only.example".into(),
                1,
                Rr::Txt(vec![b"not an address".to_vec()]),
            ),
        ];
        dns_zone(DNS, table, Duration::from_secs(240));
    });
}

fn client_env() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("DNSCACHEIP".into(), DNS.into()),
        ("TCPREMOTEHOST".into(), "stale.example".into()),
        ("TCPREMOTEINFO".into(), "stale".into()),
        ("TCPLOCALHOST".into(), "stale.example".into()),
        ("KEEP".into(), "me".into()),
    ]
}

fn server_env() -> Vec<(String, String)> {
    let mut e = util::base_env();
    e.push(("DNSCACHEIP".into(), DNS.into()));
    e
}

/// Runs a tcpclient binary with `args`, the client environment and `input`.
fn tc(bin: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut c = Command::new(bin);
    c.args(args).env_clear();
    for (k, v) in client_env() {
        c.env(k, v);
    }
    run_with_input(&mut c, input, LIMIT)
}

/// Runs djb's and ours with the same arguments.
fn both(args: &[&str], input: &[u8]) -> (Output, Output) {
    (
        tc(&djb("tcpclient"), args, input),
        tc(&ours("tcpclient"), args, input),
    )
}

/// Replaces every number after `PORT=` or ` port ` and the given port numbers by `N`.
fn norm(b: &[u8], ports: &[u16]) -> String {
    let mut s = String::from_utf8_lossy(b).into_owned();
    for p in ports {
        s = s.replace(&p.to_string(), "PORT");
    }
    let mut out = String::new();
    for line in s.lines() {
        let mut line = match line.split_once("LOCALPORT=") {
            Some((a, _)) => format!("{a}LOCALPORT=N"),
            None => line.to_string(),
        };
        if let Some((a, b)) = line.split_once(" from port ") {
            let rest = b.trim_start_matches(|c: char| c.is_ascii_digit());
            line = format!("{a} from port N{rest}");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The program both clients run: the environment they build, sorted, then what the
/// server said, read from fd 6.
const SHOW_ENV: &str = "env | grep -E '^(PROTO|TCP|KEEP)' | sort; echo ---; cat <&6";

fn server(bin: &Path, host: &str) -> Server {
    Server::start(
        bin,
        &["-RHl0"],
        host,
        &[
            "sh",
            "-c",
            "echo \"server sees $TCPREMOTEIP from port $TCPREMOTEPORT info=${TCPREMOTEINFO-unset}\"",
        ],
        &server_env(),
    )
}

fn assert_same(a: &Output, b: &Output, ports: &[u16], what: &str) {
    assert_eq!(
        norm(&a.stdout, ports),
        norm(&b.stdout, ports),
        "{what} stdout\ndjb: {}\nours: {}",
        show(a),
        show(b)
    );
    assert_eq!(
        norm(&a.stderr, ports),
        norm(&b.stderr, ports),
        "{what} stderr\ndjb: {}\nours: {}",
        show(a),
        show(b)
    );
    assert_eq!(a.status.code(), b.status.code(), "{what} exit");
}

#[test]
fn environment_matches_djb_against_both_servers() {
    dns();
    for sbin in [util::djb(), util::ours()] {
        let srv = server(&sbin, "127.0.41.10");
        let port = srv.port.to_string();
        for args in [
            vec!["-RHl0"],
            vec!["-vRHl0"],
            vec!["-vR", "-i", "127.0.41.20"],
            vec!["-R", "-h", "-i", "127.0.41.20", "-l", "me.local"],
            vec!["-RH", "-i", "127.0.41.21"],
        ] {
            let mut a: Vec<&str> = args.clone();
            a.extend(["127.0.41.10", &port, "sh", "-c", SHOW_ENV]);
            let (x, y) = both(&a, b"");
            assert_same(
                &x,
                &y,
                &[srv.port],
                &format!("{args:?} vs {}", sbin.display()),
            );
            assert_eq!(y.status.code(), Some(0));
        }
        // The values themselves, for one case.
        let y = tc(
            &ours("tcpclient"),
            &[
                "-vR",
                "-i",
                "127.0.41.20",
                "127.0.41.10",
                &port,
                "sh",
                "-c",
                SHOW_ENV,
            ],
            b"",
        );
        let out = String::from_utf8_lossy(&y.stdout);
        for want in [
            "KEEP=me",
            "PROTO=TCP",
            "TCPLOCALHOST=client.example",
            "TCPLOCALIP=127.0.41.20",
            "TCPREMOTEHOST=server.example",
            "TCPREMOTEIP=127.0.41.10",
            &format!("TCPREMOTEPORT={port}"),
            "server sees 127.0.41.20 from port",
        ] {
            assert!(out.contains(want), "{want} missing: {}", show(&y));
        }
        assert!(!out.contains("TCPREMOTEINFO"), "{}", show(&y));
        assert_eq!(
            String::from_utf8_lossy(&y.stderr),
            format!("tcpclient: connected to 127.0.41.10 port {port}\n")
        );
    }
}

#[test]
fn djb_client_against_our_server_and_ours_against_djb_server() {
    dns();
    let ours_srv = server(&util::ours(), "127.0.41.11");
    let djb_srv = server(&util::djb(), "127.0.41.12");
    let run = |bin: PathBuf, srv: &Server| {
        let p = srv.port.to_string();
        tc(
            &bin,
            &[
                "-RHl0",
                "-i",
                "127.0.41.20",
                &srv.host,
                &p,
                "sh",
                "-c",
                SHOW_ENV,
            ],
            b"",
        )
    };
    // The same client against both servers says the same, but for the addresses.
    let a = run(djb("tcpclient"), &ours_srv);
    let b = run(djb("tcpclient"), &djb_srv);
    let c = run(ours("tcpclient"), &djb_srv);
    let d = run(ours("tcpclient"), &ours_srv);
    let ports = [ours_srv.port, djb_srv.port];
    let fix = |o: &Output| {
        norm(&o.stdout, &ports)
            .replace("127.0.41.11", "SRV")
            .replace("127.0.41.12", "SRV")
    };
    assert_eq!(fix(&a), fix(&b), "\n{}\n{}", show(&a), show(&b));
    assert_eq!(fix(&b), fix(&c), "\n{}\n{}", show(&b), show(&c));
    assert_eq!(fix(&c), fix(&d), "\n{}\n{}", show(&c), show(&d));
    assert!(
        fix(&d).contains("server sees 127.0.41.20 from port"),
        "{}",
        show(&d)
    );
}

#[test]
fn fds_six_and_seven_and_stdio() {
    dns();
    let srv = Server::start(
        &util::ours(),
        &["-RHl0"],
        "127.0.41.13",
        &["cat"],
        &server_env(),
    );
    let port = srv.port.to_string();
    // Writes through 7, reads the echo through 6; stdin and stdout are tcpclient's own.
    let prog = "read l; echo \"$l\" >&7; read r <&6; echo \"got $r\"; \
                [ \"$(readlink /proc/$$/fd/6)\" = \"$(readlink /proc/$$/fd/7)\" ] && echo same";
    let (a, b) = both(
        &["-RHl0", "127.0.41.13", &port, "sh", "-c", prog],
        b"hello\n",
    );
    assert_same(&a, &b, &[srv.port], "fds");
    assert_eq!(b.stdout, b"got hello\nsame\n");
    // SIGPIPE is back to its default for the program, as djb's restores it.
    let (a, b) = both(
        &[
            "-RHl0",
            "127.0.41.13",
            &port,
            "grep",
            "^SigIgn",
            "/proc/self/status",
        ],
        b"",
    );
    assert_same(&a, &b, &[srv.port], "signals");
    let mask = String::from_utf8_lossy(&b.stdout);
    let mask = u64::from_str_radix(mask.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE ignored");
    // Descriptors 6 and 7 inherited from the caller are closed first, not mistaken.
    let wrap = format!(
        "exec 6</dev/null 7>/dev/null; exec \"$0\" -RHl0 127.0.41.13 {port} sh -c 'echo hi >&7; read r <&6; echo $r'"
    );
    for bin in [djb("tcpclient"), ours("tcpclient")] {
        let mut c = Command::new("sh");
        c.args(["-c", &wrap]).arg(&bin).env("DNSCACHEIP", DNS);
        let o = run_with_input(&mut c, b"", LIMIT);
        assert_eq!(o.stdout, b"hi\n", "{}", show(&o));
    }
}

#[test]
fn local_binding_with_i_and_p() {
    dns();
    let srv = server(&util::ours(), "127.0.41.14");
    let port = srv.port.to_string();
    let lport = {
        let l = TcpListener::bind("127.0.41.22:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let lp = lport.to_string();
    for bin in [djb("tcpclient"), ours("tcpclient")] {
        let o = tc(
            &bin,
            &[
                "-RHl0",
                "-i",
                "127.0.41.22",
                "-p",
                &lp,
                "127.0.41.14",
                &port,
                "sh",
                "-c",
                SHOW_ENV,
            ],
            b"",
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains(&format!("TCPLOCALPORT={lport}")),
            "{}",
            show(&o)
        );
        assert!(out.contains("TCPLOCALIP=127.0.41.22"), "{}", show(&o));
        assert!(
            out.contains(&format!("server sees 127.0.41.22 from port {lport} ")),
            "{}",
            show(&o)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn errors_and_exit_codes_match_djb() {
    dns();
    let srv = server(&util::ours(), "127.0.41.15");
    let port = srv.port.to_string();
    let closed = {
        let l = TcpListener::bind("127.0.41.15:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let wrapped = format!("{}", u32::from(srv.port) + 65536);
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["-z", "h", "1", "true"],
        vec!["-T"],
        vec!["-i", "bad", "127.0.41.15", "1", "true"],
        vec!["-vRHl0", "127.0.41.15"],
        vec!["-vRHl0", "127.0.41.15", &port],
        vec!["-q"],
        vec!["-RHl0", "127.0.41.15", "no-such-service", "true"],
        vec!["-RHl0", "127.0.41.15", &closed, "true"],
        vec!["-qRHl0", "127.0.41.15", &closed, "true"],
        vec!["-QRHl0", "127.0.41.15", &closed, "true"],
        vec!["-RHl0", "nx.example", "25", "true"],
        vec!["-RHl0", "broken.example", "25", "true"],
        vec!["-RHl0", "127.0.41.15", &port, "/nonexistent/program"],
        vec!["-RHl0", "127.0.41.15", &port, "sh", "-c", "exit 7"],
        vec!["-RHl0", "--", "127.0.41.15", &port, "sh", "-c", "exit 0"],
        vec![
            "-R",
            "-H",
            "-l",
            "0",
            "-t",
            "1",
            "-T",
            "3+1",
            "-D",
            "-d",
            "127.0.41.15",
            &port,
            "true",
        ],
        vec!["-RHl0", "127.0.41.15", &wrapped, "true"],
    ];
    for args in cases {
        let (a, b) = both(&args, b"");
        assert_same(&a, &b, &[srv.port], &format!("{args:?}"));
    }
    let (_, b) = both(&["-RHl0", "127.0.41.15", &closed, "true"], b"");
    assert_eq!(
        String::from_utf8_lossy(&b.stderr),
        format!("tcpclient: unable to connect to 127.0.41.15 port {closed}: connection refused\n")
    );
    assert_eq!(b.status.code(), Some(111));
    let (_, b) = both(&["-RHl0", "127.0.41.15", &port, "sh", "-c", "exit 7"], b"");
    assert_eq!(b.status.code(), Some(7));
    let (_, b) = both(&["-z"], b"");
    assert_eq!(b.status.code(), Some(100));
}

#[test]
fn host_names_too_long_for_dns_are_protocol_errors_as_djb() {
    // Refused by djbdns's dns_domain_fromdot (error_proto) before any query is sent.
    dns();
    let label = "a".repeat(64);
    let dotted = format!("{label}.example");
    let long = "abcdefg.".repeat(32);
    for host in [dotted.as_str(), label.as_str(), long.as_str()] {
        let (a, b) = both(&["-RHl0", host, "25", "true"], b"");
        assert_same(&a, &b, &[], host);
        assert_eq!(
            String::from_utf8_lossy(&b.stderr),
            format!("tcpclient: fatal: temporarily unable to figure out IP address for {host}: protocol error\n")
        );
    }
}

/// A listener whose accept queue is full, so that further connects to it hang (the SYN
/// is dropped), to test connect time-outs on loopback.
fn black_hole(ip: &str, port: u16) -> (TcpListener, Vec<std::net::TcpStream>) {
    let l = TcpListener::bind((ip, port)).expect("bind black hole");
    // SAFETY: listen(2) with a zero backlog on our own socket.
    unsafe { libc::listen(l.as_raw_fd(), 0) };
    let mut fill = Vec::new();
    let addr = l.local_addr().unwrap();
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            fill.push(s);
        }
    }
    (l, fill)
}

#[test]
fn connect_timeouts_two_passes_over_all_addresses() {
    dns();
    // dead.example has two addresses: one silently dropping SYNs, one refusing.
    // The kernel picks the port: a probe-then-rebind leaves a window in which a parallel
    // test's wildcard listener can take it.
    let hole = black_hole("127.0.41.30", 0);
    let port = hole.0.local_addr().unwrap().port();
    let p = port.to_string();
    for t in ["1+1", "1"] {
        let start = Instant::now();
        let (a, b) = both(&["-RHl0", "-T", t, "dead.example", &p, "true"], b"");
        // The addresses come in random order; with -T 1 each failure is told at once.
        let sorted = |o: &Output| {
            let mut v: Vec<String> = norm(&o.stderr, &[port]).lines().map(String::from).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&a), sorted(&b), "-T {t}\n{}\n{}", show(&a), show(&b));
        assert_eq!(a.status.code(), b.status.code());
        assert_eq!(b.status.code(), Some(111));
        let err = String::from_utf8_lossy(&b.stderr);
        assert!(
            err.contains(&format!(
                "unable to connect to 127.0.41.30 port {port}: timed out"
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "unable to connect to 127.0.41.31 port {port}: connection refused"
            )),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(20));
    }
    // With -T 1+1 the refusal is told in pass 1, the time-out after pass 2.
    let (_, b) = both(&["-RHl0", "-T1+1", "dead.example", &p, "true"], b"");
    let err = String::from_utf8_lossy(&b.stderr).into_owned();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].ends_with("connection refused") && lines[1].ends_with("timed out"),
        "{err}"
    );
    // A single address gets x+y at once: -T 0+1 still waits about a second.
    let start = Instant::now();
    let (a, b) = both(&["-RHl0", "-T0+1", "127.0.41.30", &p, "true"], b"");
    assert_same(&a, &b, &[port], "single");
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "two runs of ~1 s each"
    );
}

#[test]
fn ident_as_djb() {
    dns();
    util::identd("127.0.41.16", |req| {
        let (theirs, ours) = req.split_once(',')?;
        Some(format!(
            "{} , {} : USERID : UNIX : alice \t\r\n",
            theirs.trim(),
            ours.trim()
        ))
    });
    util::identd("127.0.41.17", |_| None);
    for ip in ["127.0.41.16", "127.0.41.17"] {
        let srv = server(&util::ours(), ip);
        let port = srv.port.to_string();
        let (a, b) = both(&["-r", "-t1", "-Hl0", ip, &port, "sh", "-c", SHOW_ENV], b"");
        assert_same(&a, &b, &[srv.port], ip);
        let out = String::from_utf8_lossy(&b.stdout);
        if ip.ends_with("16") {
            assert!(out.contains("TCPREMOTEINFO=alice\n"), "{}", show(&b));
        } else {
            assert!(!out.contains("TCPREMOTEINFO"), "{}", show(&b));
        }
    }
}

#[test]
fn ipv6_peers_and_families() {
    dns();
    let Some(srv6) = Server::try_start(
        &util::ours(),
        &["-RHl0"],
        "::1",
        &["sh", "-c", "echo v6 $TCPREMOTEIP"],
        &server_env(),
    ) else {
        panic!("our tcpserver could not listen on ::1");
    };
    let p6 = srv6.port.to_string();
    let o = tc(
        &ours("tcpclient"),
        &["-vRHl0", "::1", &p6, "sh", "-c", SHOW_ENV],
        b"",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "PROTO=TCP6",
        "TCPREMOTEIP=::1",
        "TCP6REMOTEIP=::1",
        "TCPLOCALIP=::1",
        "v6 ::1",
    ] {
        assert!(out.contains(want), "{want}: {}", show(&o));
    }
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("connected to ::1 port {p6}")));
    // fefe's IPv6 tcpclient sets the same TCP* values.
    let f = tc(
        &blackbox::fefe("tcpclient"),
        &["-RHl0", "::1", &p6, "sh", "-c", SHOW_ENV],
        b"",
    );
    for line in String::from_utf8_lossy(&f.stdout).lines() {
        if !line.contains("LOCALPORT") {
            assert!(
                out.lines().any(|l| l == line),
                "fefe has {line}, ours not: {}",
                show(&o)
            );
        }
    }
    // -i binds an IPv6 source address.
    let o = tc(
        &ours("tcpclient"),
        &["-RHl0", "-i", "::1", "::1", &p6, "sh", "-c", SHOW_ENV],
        b"",
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("TCPLOCALIP=::1"),
        "{}",
        show(&o)
    );
    // -6 with 0 is ::1; -4 refuses an IPv6 literal.
    let o = tc(
        &ours("tcpclient"),
        &["-6RHl0", "0", &p6, "sh", "-c", "cat <&6"],
        b"",
    );
    assert_eq!(o.stdout, b"v6 ::1\n", "{}", show(&o));
    let o = tc(&ours("tcpclient"), &["-4RHl0", "::1", &p6, "true"], b"");
    assert_eq!(o.status.code(), Some(111));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "tcpclient: fatal: no IP address for ::1\n"
    );
    // A name with only an AAAA record.
    let o = tc(
        &ours("tcpclient"),
        &["-RHl0", "v6only.example", &p6, "sh", "-c", "cat <&6"],
        b"",
    );
    assert_eq!(o.stdout, b"v6 ::1\n", "{}", show(&o));
}

#[test]
fn both_families_alternate_and_4_6_choose() {
    dns();
    // dual.example: AAAA ::1 (nothing listens there on this port) and A 127.0.41.10.
    let srv = server(&util::ours(), "127.0.41.10");
    let p = srv.port.to_string();
    let o = tc(
        &ours("tcpclient"),
        &["-RHl0", "dual.example", &p, "sh", "-c", "cat <&6"],
        b"",
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("server sees 127.0.0.1 from port"),
        "{}",
        show(&o)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!("tcpclient: unable to connect to ::1 port {p}: connection refused\n"),
        "IPv6 is tried first, then IPv4"
    );
    let o = tc(
        &ours("tcpclient"),
        &["-4RHl0", "dual.example", &p, "sh", "-c", "cat <&6"],
        b"",
    );
    assert!(o.stderr.is_empty() && o.status.success(), "{}", show(&o));
    let o = tc(
        &ours("tcpclient"),
        &["-6RHl0", "dual.example", &p, "true"],
        b"",
    );
    assert_eq!(o.status.code(), Some(111), "{}", show(&o));
}

#[test]
fn etc_hosts_names_without_dns() {
    dns();
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let has = |ip: &str| {
        hosts.lines().any(|l| {
            l.split_whitespace().next() == Some(ip)
                && l.split_whitespace().any(|w| w == "localhost")
        })
    };
    assert!(
        has("127.0.0.1"),
        "/etc/hosts has no 127.0.0.1 localhost line"
    );
    let srv = server(&util::ours(), "127.0.0.1");
    let p = srv.port.to_string();
    // The DNS server named here does not exist: the answer must come from /etc/hosts.
    let mut c = Command::new(ours("tcpclient"));
    c.args(["-4RHl0", "localhost", &p, "sh", "-c", "cat <&6"])
        .env_clear()
        .env("DNSCACHEIP", "127.0.41.99");
    let start = Instant::now();
    let o = run_with_input(&mut c, b"", LIMIT);
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("server sees 127.0.0.1 from port"),
        "{}",
        show(&o)
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    let _ = SocketAddr::from(([127, 0, 0, 1], 0));
}
