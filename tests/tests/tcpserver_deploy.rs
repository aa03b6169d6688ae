//! tcpserver deployed as operators deploy it: socket-activated by Debian's
//! `systemd-socket-activate` or handed a descriptor by a supervisor (s6 style), behind a
//! real HAProxy that sends PROXY headers (v1 and v2), fed malformed headers directly,
//! with `-C` counting the clients behind one balancer, `TCPCONNNUM`, SIGUSR1's list of
//! clients and the `-v` line when `-c` fills. Ours only (djb's has none of these).

mod tcpserver_util;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use blackbox::proxy_header::{self, V2_SIG};
use blackbox::{socket_activated, Daemon, HaProxy, TempDir};
use tcpserver_util::*;

const SHORT: Duration = Duration::from_secs(5);

/// `NAME=value` lines as a map.
fn env_map(out: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Connects to `addr`, reads until the server closes (sends nothing).
fn fetch(addr: SocketAddr) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, SHORT).expect("connect");
    read_all(&mut s)
}

/// One line (without its newline) from `s`, read byte by byte so nothing after it is
/// taken; empty at end of file.
fn read_line(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(SHORT)).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while let Ok(1) = s.read(&mut b) {
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// `tcpserver` with `-1` and `args`, host 0 port 0 (not used when sockets are
/// inherited), running `prog`: the argument list for [`socket_activated`].
fn tcpserver_argv<'a>(args: &[&'a str], prog: &[&'a str]) -> Vec<std::ffi::OsString> {
    let mut v = vec![ours().into_os_string(), "-1".into()];
    v.extend(args.iter().map(|a| a.into()));
    v.extend(["0".into(), "0".into()]);
    v.extend(prog.iter().map(|a| a.into()));
    v
}

fn os(v: &[std::ffi::OsString]) -> Vec<&OsStr> {
    v.iter().map(|s| s.as_os_str()).collect()
}

/// Makes `fd` the child's descriptor `target` (without close-on-exec) when `c` runs.
fn pass_fd(c: &mut Command, fd: RawFd, target: RawFd) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if fd == target {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------------------
// Socket activation.

/// The program of the activation tests: its parent (the server process) and environment.
const SHOW_PARENT: &[&str] = &["sh", "-c", "echo PARENT=$PPID; env"];

/// systemd-socket-activate binds 127.0.0.1 and ::1 at one port, names both `smtp`;
/// tcpserver (with `-L smtp`, and again without -L, which takes every passed socket)
/// serves both from one process: an IPv4 and an IPv6 client are served by children of
/// that one process, `-1` prints the port of each socket, and no LISTEN_* variable
/// reaches the program (KEEP, set by the activator, does).
#[test]
fn systemd_socket_activation_serves_ipv4_and_ipv6_from_one_process() {
    for with_l in [true, false] {
        let mut args = vec!["-v", "-HRl0"];
        if with_l {
            args.extend(["-L", "smtp"]);
        }
        let argv = tcpserver_argv(&args, SHOW_PARENT);
        let (d, port) = socket_activated(
            &["127.0.0.1", "[::1]"],
            "smtp:smtp",
            &["KEEP=me".into()],
            &os(&argv),
        );
        let v4 = env_map(&fetch(SocketAddr::new(ip("127.0.0.1"), port)));
        let v6 = env_map(&fetch(SocketAddr::new(ip("::1"), port)));
        let ctx = format!("-L: {with_l}; v4 {v4:?}; v6 {v6:?}; log {:?}", d.log());
        let server = d.pid().to_string();
        assert_eq!(v4.get("PARENT"), Some(&server), "{ctx}");
        assert_eq!(v6.get("PARENT"), Some(&server), "{ctx}");
        assert_eq!(v4.get("PROTO").map(String::as_str), Some("TCP"), "{ctx}");
        assert_eq!(v4.get("TCPREMOTEIP").map(String::as_str), Some("127.0.0.1"));
        assert_eq!(v6.get("PROTO").map(String::as_str), Some("TCP6"), "{ctx}");
        assert_eq!(v6.get("TCPREMOTEIP").map(String::as_str), Some("::1"));
        assert_eq!(v6.get("TCP6REMOTEIP").map(String::as_str), Some("::1"));
        for v in [&v4, &v6] {
            assert_eq!(v.get("TCPLOCALPORT"), Some(&port.to_string()), "{ctx}");
            assert_eq!(v.get("KEEP").map(String::as_str), Some("me"), "{ctx}");
            let listen: Vec<&String> = v.keys().filter(|k| k.starts_with("LISTEN_")).collect();
            assert!(listen.is_empty(), "LISTEN_* reached the program: {ctx}");
        }
        assert_eq!(
            d.wait_stdout(2, SHORT),
            Some(vec![port.to_string(), port.to_string()]),
            "-1 printed no line per socket: {ctx}"
        );
        let log = d.wait_log(SHORT, |l| {
            l.iter()
                .filter(|x| x.starts_with("tcpserver: end "))
                .count()
                == 2
        });
        assert_eq!(
            log.iter()
                .filter(|l| l.starts_with("tcpserver: ok "))
                .count(),
            2,
            "{log:?}"
        );
        assert!(
            !log.iter()
                .any(|l| l.contains("warning") || l.contains("fatal")),
            "{log:?}"
        );
    }
}

/// `--fdname=a:b` and `-L b`: only the second socket (::1) is served; the first
/// (127.0.0.1) is closed, so a client there is refused. `-1` prints one line.
#[test]
fn systemd_fdname_selects_one_socket_and_unknown_names_are_fatal() {
    let argv = tcpserver_argv(&["-v", "-HRl0", "-L", "b"], SHOW_PARENT);
    let (d, port) = socket_activated(&["127.0.0.1", "[::1]"], "a:b", &[], &os(&argv));
    let v6 = env_map(&fetch(SocketAddr::new(ip("::1"), port)));
    assert_eq!(v6.get("TCPREMOTEIP").map(String::as_str), Some("::1"));
    assert_eq!(d.wait_stdout(1, SHORT), Some(vec![port.to_string()]));
    let refused = TcpStream::connect_timeout(&SocketAddr::new(ip("127.0.0.1"), port), SHORT);
    match refused {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(mut s) => panic!(
            "socket a still accepts, served: {:?}",
            String::from_utf8_lossy(&read_all(&mut s))
        ),
    }
    assert_eq!(d.stdout().len(), 1, "{:?}", d.stdout());
    let log = d.wait_log(SHORT, |l| {
        l.iter().any(|x| x.starts_with("tcpserver: end "))
    });
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("tcpserver: pid "))
            .count(),
        1,
        "{log:?}"
    );

    // A name no socket has: exit 111 once activated.
    let argv = tcpserver_argv(&["-L", "nosuchname"], SHOW_PARENT);
    let (mut d, port) = socket_activated(&["127.0.0.1"], "smtp", &[], &os(&argv));
    let _trigger = TcpStream::connect(SocketAddr::new(ip("127.0.0.1"), port));
    let st = d.wait_exit(SHORT).expect("tcpserver kept running");
    assert_eq!(st.code(), Some(111), "{:?}", d.log());
    let log = d.wait_log(SHORT, |l| l.iter().any(|x| x.starts_with("tcpserver:")));
    assert!(
        log.iter()
            .any(|l| l == "tcpserver: fatal: no inherited socket named nosuchname"),
        "{log:?}"
    );
    assert!(d.stdout().is_empty(), "{:?}", d.stdout());
}

/// s6 style: the supervisor made the listening socket and passes it as descriptor 5;
/// `-L 5` serves it (host and port arguments unused), `-1` prints its port.
#[test]
fn descriptor_passed_by_a_supervisor_is_served() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let mut c = Command::new(ours());
    c.args(["-1", "-v", "-HRl0", "-L", "5", "0", "0"])
        .args(SHOW_PARENT)
        .env_clear()
        .envs(base_env())
        .stdin(Stdio::null());
    pass_fd(&mut c, l.as_raw_fd(), 5);
    let s = Server::spawn(c, "127.0.0.1").expect("no port printed");
    drop(l);
    assert_eq!(s.port, port);
    let v = env_map(&s.talk(b""));
    assert_eq!(v.get("TCPLOCALPORT"), Some(&port.to_string()), "{v:?}");
    assert_eq!(v.get("PARENT"), Some(&s.pid().to_string()), "{v:?}");
    assert_eq!(v.get("KEEP").map(String::as_str), Some("me"));
    let log = s.wait_idle();
    assert!(
        log.iter().any(|l| l.starts_with("tcpserver: ok ")),
        "{log:?}"
    );
}

/// LISTEN_FDS meant for another process (LISTEN_PID not ours): the server binds its
/// own socket as usual, and still removes the LISTEN_* variables for the program.
#[test]
fn listen_variables_for_another_process_are_ignored_and_removed() {
    let mut env = base_env();
    env.extend([
        ("LISTEN_PID".to_string(), "1".to_string()),
        ("LISTEN_FDS".into(), "1".into()),
        ("LISTEN_FDNAMES".into(), "smtp".into()),
    ]);
    let s = Server::start(&ours(), &opts(&[]), "127.0.0.1", SHOW_PARENT, &env);
    let v = env_map(&s.talk(b""));
    assert_eq!(v.get("TCPLOCALPORT"), Some(&s.port.to_string()), "{v:?}");
    assert!(!v.keys().any(|k| k.starts_with("LISTEN_")), "{v:?}");
}

/// A descriptor that is not a listening TCP socket, or not open, is fatal (111) with
/// one line: a file on descriptor 0, a UDP socket, a TCP socket bound but not
/// listening, a closed descriptor.
#[test]
fn descriptors_that_are_not_listening_tcp_sockets_exit_111() {
    let d = TempDir::new("dep-badfd");
    let file = d.join("file");
    std::fs::write(&file, "not a socket\n").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let bound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    bound.bind(&sa("127.0.0.1:0").into()).unwrap();
    let cases: Vec<(&str, Option<RawFd>, String)> = vec![
        (
            "0",
            None,
            "tcpserver: fatal: descriptor 0 is not a listening TCP socket".into(),
        ),
        (
            "5",
            Some(udp.as_raw_fd()),
            "tcpserver: fatal: descriptor 5 is not a listening TCP socket".into(),
        ),
        (
            "5",
            Some(bound.as_raw_fd()),
            "tcpserver: fatal: descriptor 5 is not a listening TCP socket".into(),
        ),
        (
            "900",
            None,
            "tcpserver: fatal: no inherited socket on descriptor 900".into(),
        ),
    ];
    for (fd, pass, want) in cases {
        let mut c = Command::new(ours());
        c.args(["-L", fd, "0", "0", "echo", "ran"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(std::fs::File::open(&file).unwrap());
        if let Some(raw) = pass {
            pass_fd(&mut c, raw, 5);
        }
        let mut s = Daemon::spawn(&mut c);
        let st = s.wait_exit(SHORT).expect("tcpserver kept running");
        let log = s.wait_log(SHORT, |l| !l.is_empty());
        assert_eq!(st.code(), Some(111), "-L {fd}: {log:?}");
        assert_eq!(log, [want], "-L {fd}");
    }
}

// ---------------------------------------------------------------------------------------
// Behind a real HAProxy.

/// Rules of the HAProxy tests: the balancer's two source addresses may send v1 and v2
/// headers; clients behind it are denied or allowed by their own address.
const BALANCER_RULES: &str = "127.0.0.2:allow,PROXY_PROTOCOL=\"v1\",WHO=\"balancer\"\n\
    127.0.0.3:allow,PROXY_PROTOCOL=\"v2\",WHO=\"balancer\"\n\
    127.0.0.5:deny\n\
    127.0.0.6:allow,WHO=\"six\"\n\
    :allow,WHO=\"other\"\n";

/// The server environment with stale PROXY* values that must never reach a program.
fn env_with_stale_proxy() -> Vec<(String, String)> {
    let mut e = base_env();
    e.push(("PROXYREMOTEIP".into(), "203.0.113.99".into()));
    e.push(("PROXYLOCALPORT".into(), "1".into()));
    e
}

/// HAProxy in TCP mode with `send-proxy` (from 127.0.0.2) and `send-proxy-v2` (from
/// 127.0.0.3) in front of our tcpserver, both with health checks that send the header
/// (`check-send-proxy`): a client from 127.0.0.6 gets its own addresses in TCP*, its
/// rule's WHO, the balancer in PROXY*; one from 127.0.0.5 is denied by its rule (the
/// balancer's rule allows) and its program never runs; one from 127.0.0.7 gets the
/// default rule. HAProxy's checks are served as the balancer itself (v1: a header with
/// its own addresses; v2: LOCAL) and cause no warning.
#[test]
fn haproxy_v1_and_v2_headers_name_the_client() {
    if blackbox::haproxy_bin().is_none() {
        eprintln!("skipped: /usr/sbin/haproxy is missing (Debian package haproxy)");
        return;
    }
    let d = TempDir::new("dep-hap");
    let cdb = our_rules(&d, "rules.cdb", BALANCER_RULES);
    let s = Server::start(
        &ours(),
        &opts(&["-v", "-x", &cdb]),
        "127.0.0.1",
        &["sh", "-c", "env 2>/dev/null"],
        &env_with_stale_proxy(),
    );
    let hap = HaProxy::start(&[
        (
            s.addr(),
            "send-proxy source 127.0.0.2 check check-send-proxy inter 200ms",
        ),
        (
            s.addr(),
            "send-proxy-v2 source 127.0.0.3 check check-send-proxy inter 200ms",
        ),
    ]);
    // Both health checks have reached the server at least once.
    let log = s.wait_log(|l| {
        ["127.0.0.2", "127.0.0.3"].iter().all(|b| {
            l.iter()
                .any(|x| x.starts_with("tcpserver: ok ") && x.contains(&format!(":{b}::")))
        })
    });
    assert!(
        log.iter().any(|l| l.contains(":127.0.0.3::")),
        "no health check arrived: {log:?}"
    );

    for (i, balancer) in ["127.0.0.2", "127.0.0.3"].into_iter().enumerate() {
        let front = hap.addr(i);
        let mut c = connect_from(ip("127.0.0.6"), front);
        let lport = c.local_addr().unwrap().port();
        let v = env_map(&read_all(&mut c));
        let ctx = format!("via {balancer}: {v:?}\nlog {:?}", s.log());
        let want = [
            ("TCPREMOTEIP", "127.0.0.6".to_string()),
            ("TCPREMOTEPORT", lport.to_string()),
            ("TCPLOCALIP", "127.0.0.1".into()),
            ("TCPLOCALPORT", front.port().to_string()),
            ("WHO", "six".into()),
            ("PROXYREMOTEIP", balancer.into()),
            ("PROXYLOCALIP", "127.0.0.1".into()),
            ("PROXYLOCALPORT", s.port.to_string()),
            ("PROTO", "TCP".into()),
        ];
        for (k, val) in want {
            assert_eq!(v.get(k), Some(&val), "{k}: {ctx}");
        }
        assert!(v.contains_key("PROXYREMOTEPORT"), "{ctx}");
        assert!(
            !v.contains_key("PROXY_PROTOCOL"),
            "balancer's rule applied: {ctx}"
        );
        let l = s.wait_log(|l| {
            l.iter().any(|x| {
                x.starts_with("tcpserver: proxy ")
                    && x.contains(&format!(" 127.0.0.6:{lport} via {balancer}:"))
            })
        });
        assert!(
            l.iter().any(|x| x.starts_with("tcpserver: ok ")
                && x.ends_with(&format!(":127.0.0.1:{} :127.0.0.6::{lport}", front.port()))),
            "{ctx}"
        );

        // Denied by the client's rule: nothing reaches it, the deny line names it.
        let mut c = connect_from(ip("127.0.0.5"), front);
        let lport = c.local_addr().unwrap().port();
        assert_eq!(read_all(&mut c), b"", "127.0.0.5 was served via {balancer}");
        let l = s.wait_log(|l| {
            l.iter().any(|x| {
                x.starts_with("tcpserver: deny ") && x.ends_with(&format!(":127.0.0.5::{lport}"))
            })
        });
        assert!(
            l.iter().any(|x| x.starts_with("tcpserver: proxy ")
                && x.contains(&format!(" 127.0.0.5:{lport} via {balancer}:"))),
            "{l:?}"
        );

        let mut c = connect_from(ip("127.0.0.7"), front);
        let v = env_map(&read_all(&mut c));
        assert_eq!(v.get("WHO").map(String::as_str), Some("other"), "{v:?}");
        assert_eq!(v.get("TCPREMOTEIP").map(String::as_str), Some("127.0.0.7"));
    }
    // The log up to now (a check that HAProxy's end cuts short may be dropped later):
    // no warning; every ended child was admitted or denied; the only denials are
    // 127.0.0.5's; every header from 127.0.0.2 names a client of the test or (a health
    // check) the balancer's own connection; 127.0.0.3's checks send LOCAL.
    let log = s.log();
    drop(hap);
    assert!(
        !log.iter()
            .any(|l| l.contains("warning") || l.contains("fatal")),
        "{log:#?}"
    );
    let pid_of = |l: &str| l.split(' ').nth(2).unwrap_or_default().to_string();
    for end in log.iter().filter(|l| l.starts_with("tcpserver: end ")) {
        let p = pid_of(end);
        assert!(
            log.iter().any(|l| (l.starts_with("tcpserver: ok ")
                || l.starts_with("tcpserver: deny "))
                && pid_of(l) == p),
            "child {p} neither admitted nor denied: {log:#?}"
        );
    }
    for deny in log.iter().filter(|l| l.starts_with("tcpserver: deny ")) {
        assert!(deny.contains(":127.0.0.5::"), "{deny}");
    }
    for p in log.iter().filter(|l| l.starts_with("tcpserver: proxy ")) {
        let w: Vec<&str> = p.split(' ').collect();
        let (client, via) = (w[3], w[5]);
        let from_test = ["127.0.0.5:", "127.0.0.6:", "127.0.0.7:"]
            .iter()
            .any(|c| client.starts_with(c));
        let check = via.starts_with("127.0.0.2:") && client == via;
        assert!(from_test || check, "unexpected header: {p}");
    }
    let v2_checks = log
        .iter()
        .filter(|l| l.starts_with("tcpserver: ok ") && l.contains(":127.0.0.3::"))
        .count();
    assert!(v2_checks >= 1, "{log:#?}");
}

/// What HAProxy's health checks send, sent by the test itself from the balancer's
/// addresses: a v2 LOCAL header and a v1 UNKNOWN header keep the balancer's addresses
/// (its rule applies: WHO=balancer) and set no PROXY* variable.
#[test]
fn local_and_unknown_headers_keep_the_balancer_address() {
    let d = TempDir::new("dep-local");
    let cdb = our_rules(&d, "rules.cdb", BALANCER_RULES);
    let s = Server::start(
        &ours(),
        &opts(&["-v", "-x", &cdb]),
        "127.0.0.1",
        &["sh", "-c", "env"],
        &env_with_stale_proxy(),
    );
    for (from, header) in [
        ("127.0.0.3", proxy_header::v2_local()),
        ("127.0.0.2", b"PROXY UNKNOWN\r\n".to_vec()),
        (
            "127.0.0.2",
            b"PROXY UNKNOWN 2001:db8::1 2001:db8::2 1 2\r\n".to_vec(),
        ),
    ] {
        let mut c = connect_from(ip(from), s.addr());
        let lport = c.local_addr().unwrap().port();
        c.write_all(&header).unwrap();
        let v = env_map(&read_all(&mut c));
        assert_eq!(
            v.get("TCPREMOTEIP").map(String::as_str),
            Some(from),
            "{v:?}"
        );
        assert_eq!(v.get("TCPREMOTEPORT"), Some(&lport.to_string()), "{v:?}");
        assert_eq!(v.get("WHO").map(String::as_str), Some("balancer"), "{v:?}");
        let proxy: Vec<&String> = v
            .keys()
            .filter(|k| k.starts_with("PROXYR") || k.starts_with("PROXYL"))
            .collect();
        assert!(proxy.is_empty(), "{v:?}");
    }
    let log = s.wait_log(|l| {
        l.iter()
            .filter(|x| x.starts_with("tcpserver: end "))
            .count()
            == 3
    });
    assert!(
        !log.iter()
            .any(|l| l.starts_with("tcpserver: proxy ") || l.contains("warning")),
        "{log:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// Headers straight to the server.

/// Bytes after the header that look like headers themselves, and every byte value.
fn payload() -> Vec<u8> {
    let mut p: Vec<u8> = (0..=255u8).cycle().take(256 * 3).collect();
    p.extend_from_slice(V2_SIG);
    p.extend_from_slice(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n");
    p.extend_from_slice(b"\r\nend\n");
    p
}

const ENV_THEN_CAT: &[&str] = &["sh", "-c", "env | sort; echo =END-ENV=; exec cat"];

/// The program's environment and what `cat` passed on after it.
fn env_and_data(out: &[u8]) -> (BTreeMap<String, String>, Vec<u8>) {
    let mark = b"=END-ENV=\n";
    let at = out
        .windows(mark.len())
        .position(|w| w == mark)
        .unwrap_or_else(|| panic!("no end of env in {:?}", String::from_utf8_lossy(out)));
    (env_map(&out[..at]), out[at + mark.len()..].to_vec())
}

/// Sends `chunks` (pausing 5 ms between them), half-closes, reads until the end.
fn send_chunks(addr: SocketAddr, chunks: &[&[u8]]) -> (u16, Vec<u8>) {
    let mut c = TcpStream::connect_timeout(&addr, SHORT).expect("connect");
    c.set_nodelay(true).unwrap();
    let lport = c.local_addr().unwrap().port();
    for (i, ch) in chunks.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        c.write_all(ch).unwrap();
    }
    let _ = c.shutdown(std::net::Shutdown::Write);
    (lport, read_all(&mut c))
}

/// Accepted headers under `-a`: v2 with TLVs (skipped; its addresses used), the same
/// header dribbled in byte by byte and the payload in pieces, v1 TCP4, v1 and v2 TCP6,
/// and v2 AF_UNIX (a local connection: the balancer's addresses stay). Whatever follows
/// the header reaches the program byte for byte, header-like bytes included.
#[test]
fn accepted_headers_set_the_client_and_the_payload_passes_intact() {
    let s = Server::start(
        &ours(),
        &opts(&["-v", "-a"]),
        "127.0.0.1",
        ENV_THEN_CAT,
        &env_with_stale_proxy(),
    );
    let data = payload();
    let mut tlvs = proxy_header::tlv(0x01, b"h2"); // ALPN
    tlvs.extend(proxy_header::tlv(0x02, b"mail.example.org")); // authority
    tlvs.extend(proxy_header::tlv(0xE0, &[1, 2, 3, 4, 5])); // custom
    tlvs.extend(proxy_header::tlv(0x04, &[0; 7])); // NOOP padding
    let v2_tlvs = proxy_header::v2_tcp(sa("192.0.2.7:4242"), sa("198.51.100.1:25"), &tlvs);
    let v1_4 = proxy_header::v1(sa("192.0.2.8:5555"), sa("198.51.100.2:110"));
    let v1_6 = proxy_header::v1(sa("[2001:db8::7]:6000"), sa("[2001:db8::1]:25"));
    let v2_6 = proxy_header::v2_tcp(sa("[2001:db8::8]:6001"), sa("[2001:db8::2]:465"), &[]);
    let mut unix = vec![0u8; 216];
    unix[..12].copy_from_slice(b"/run/client\0");
    unix[108..120].copy_from_slice(b"/run/server\0");
    let v2_unix = proxy_header::v2(1, 0x31, &unix);

    let whole = |h: &[u8]| {
        let mut v = h.to_vec();
        v.extend_from_slice(&data);
        v
    };
    let mut dribbled: Vec<&[u8]> = v2_tlvs[..20].chunks(1).collect();
    dribbled.push(&v2_tlvs[20..]);
    dribbled.extend(data.chunks(300));

    type Want = [(&'static str, &'static str); 5];
    let client = |ip, port, lip, lport, proto| -> Want {
        [
            ("TCPREMOTEIP", ip),
            ("TCPREMOTEPORT", port),
            ("TCPLOCALIP", lip),
            ("TCPLOCALPORT", lport),
            ("PROTO", proto),
        ]
    };
    let w_tlvs = client("192.0.2.7", "4242", "198.51.100.1", "25", "TCP");
    let w_v1_4 = client("192.0.2.8", "5555", "198.51.100.2", "110", "TCP");
    let w_v1_6 = client("2001:db8::7", "6000", "2001:db8::1", "25", "TCP6");
    let w_v2_6 = client("2001:db8::8", "6001", "2001:db8::2", "465", "TCP6");
    let one = |v: &[u8]| vec![v.to_vec()];
    /// (what, the writes, the client's addresses or None: the balancer's stay)
    type Case<'a> = (&'a str, Vec<Vec<u8>>, Option<Want>);
    let cases: Vec<Case> = vec![
        (
            "v2 with TLVs, one write",
            one(&whole(&v2_tlvs)),
            Some(w_tlvs),
        ),
        (
            "v2 with TLVs, dribbled",
            dribbled.iter().map(|c| c.to_vec()).collect(),
            Some(w_tlvs),
        ),
        ("v1 TCP4", one(&whole(&v1_4)), Some(w_v1_4)),
        ("v1 TCP6", one(&whole(&v1_6)), Some(w_v1_6)),
        ("v2 TCP6", one(&whole(&v2_6)), Some(w_v2_6)),
        ("v2 AF_UNIX", one(&whole(&v2_unix)), None),
    ];
    for (name, chunks, want) in cases {
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let (lport, out) = send_chunks(s.addr(), &refs);
        let (v, got) = env_and_data(&out);
        let ctx = format!("{name}: {v:?}");
        assert!(
            got == data,
            "{name}: payload changed: {:?}",
            String::from_utf8_lossy(&got)
        );
        match want {
            Some(want) => {
                for (k, val) in want {
                    assert_eq!(v.get(k).map(String::as_str), Some(val), "{k}: {ctx}");
                }
                assert_eq!(
                    v.get("PROXYREMOTEIP").map(String::as_str),
                    Some("127.0.0.1")
                );
                assert_eq!(v.get("PROXYREMOTEPORT"), Some(&lport.to_string()), "{ctx}");
                assert_eq!(v.get("PROXYLOCALIP").map(String::as_str), Some("127.0.0.1"));
                assert_eq!(v.get("PROXYLOCALPORT"), Some(&s.port.to_string()), "{ctx}");
                assert_eq!(v.get("TCPCONNNUM").map(String::as_str), Some("1"), "{ctx}");
                if want[4].1 == "TCP6" {
                    assert_eq!(v.get("TCP6REMOTEIP").map(String::as_str), Some(want[0].1));
                }
            }
            None => {
                assert_eq!(v.get("TCPREMOTEIP").map(String::as_str), Some("127.0.0.1"));
                assert_eq!(v.get("TCPREMOTEPORT"), Some(&lport.to_string()), "{ctx}");
                assert_eq!(v.get("TCPLOCALPORT"), Some(&s.port.to_string()), "{ctx}");
                assert!(!v.contains_key("PROXYREMOTEIP"), "{ctx}");
                assert!(!v.contains_key("PROXYLOCALPORT"), "{ctx}");
            }
        }
    }
    let log = s.wait_log(|l| {
        l.iter()
            .filter(|x| x.starts_with("tcpserver: end "))
            .count()
            == 6
    });
    let proxy: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("tcpserver: proxy "))
        .collect();
    assert_eq!(proxy.len(), 5, "{log:#?}");
    // Each proxy line comes after its child's pid line (the parent's status and end
    // lines may come between them).
    for (i, l) in log.iter().enumerate() {
        if let Some(rest) = l.strip_prefix("tcpserver: proxy ") {
            let pid = rest.split(' ').next().unwrap();
            let pid_line = format!("tcpserver: pid {pid} from 127.0.0.1");
            assert!(log[..i].contains(&pid_line), "{log:#?}");
        }
    }
    assert!(
        proxy[0].contains(" 192.0.2.7:4242 via 127.0.0.1:"),
        "{}",
        proxy[0]
    );
    assert!(
        proxy[3].contains(" 2001:db8::7:6000 via 127.0.0.1:"),
        "{}",
        proxy[3]
    );
    assert!(
        proxy[4].contains(" 2001:db8::8:6001 via 127.0.0.1:"),
        "{}",
        proxy[4]
    );
    assert!(
        log.iter().any(|l| l.starts_with("tcpserver: ok ")
            && l.ends_with(" 0:198.51.100.1:25 :192.0.2.7::4242")),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("warning")), "{log:#?}");
}

/// Malformed headers under `-a`, each on its own connection: the connection is dropped,
/// the program never runs, and one warning line names the peer and the reason.
#[test]
fn malformed_headers_drop_the_connection_with_a_warning() {
    let s = Server::quiet(&ours(), &["-v", "-a"], "/bin/echo");
    let tcp4 = proxy_header::v2_tcp(sa("192.0.2.7:4242"), sa("198.51.100.1:25"), &[]);
    let mut oversized = proxy_header::v2(1, 0x11, &[]);
    oversized[14..16].copy_from_slice(&5000u16.to_be_bytes());
    oversized.extend_from_slice(&[0u8; 200]);
    let mut bad_sig = tcp4.clone();
    bad_sig[8] = b'X';
    let mut bad_version = tcp4.clone();
    bad_version[12] = 0x31;
    let mut bad_command = tcp4.clone();
    bad_command[12] = 0x2F;
    let short_addrs = proxy_header::v2(1, 0x11, &[192, 0, 2, 7, 198, 51]);
    let mut bad_tlv_body = tcp4[16..].to_vec();
    bad_tlv_body.extend_from_slice(&[0x01, 0x00, 0x09, b'h']);
    let bad_tlv = proxy_header::v2(1, 0x11, &bad_tlv_body);
    let long_v1 = format!("PROXY TCP4 {} 198.51.100.1 1 2\r\n", "1".repeat(120)).into_bytes();
    // (what, bytes, half-close after, reason)
    let cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
        (
            "v1 cut short",
            b"PROXY TCP4 192.0.2.7 19".to_vec(),
            true,
            "connection closed",
        ),
        (
            "v2 cut short",
            tcp4[..20].to_vec(),
            true,
            "connection closed",
        ),
        (
            "v2 signature only",
            V2_SIG[..7].to_vec(),
            true,
            "connection closed",
        ),
        ("v2 length 5000", oversized, false, "too long"),
        ("wrong v2 signature", bad_sig, false, "bad signature"),
        (
            "plain text",
            b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            false,
            "bad signature",
        ),
        ("v2 version 3", bad_version, false, "bad v2 version"),
        ("v2 command 15", bad_command, false, "bad v2 command"),
        (
            "v2 addresses cut",
            short_addrs,
            false,
            "v2 addresses too short",
        ),
        ("v2 TLV overruns", bad_tlv, false, "malformed v2 tlv"),
        (
            "v1 port 99999",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 99999 25\r\n".to_vec(),
            false,
            "malformed v1 header",
        ),
        (
            "v1 without CR",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1 25\n".to_vec(),
            false,
            "malformed v1 header",
        ),
        (
            "v1 IPv6 in TCP4",
            b"PROXY TCP4 2001:db8::1 198.51.100.1 1 25\r\n".to_vec(),
            false,
            "malformed v1 header",
        ),
        (
            "v1 longer than 107 bytes",
            long_v1,
            false,
            "malformed v1 header",
        ),
    ];
    for (i, (what, bytes, half_close, reason)) in cases.iter().enumerate() {
        let mut c = s.connect();
        c.write_all(bytes).unwrap();
        if *half_close {
            c.shutdown(std::net::Shutdown::Write).unwrap();
        }
        let out = read_all(&mut c);
        assert_eq!(String::from_utf8_lossy(&out), "", "{what}: the program ran");
        let log = s.wait_log(|l| {
            l.iter()
                .filter(|x| x.starts_with("tcpserver: end "))
                .count()
                > i
        });
        let warnings: Vec<&String> = log.iter().filter(|l| l.contains("warning")).collect();
        assert_eq!(warnings.len(), i + 1, "{what}: {log:#?}");
        assert_eq!(
            warnings[i],
            &format!(
                "tcpserver: warning: dropping connection, PROXY header from 127.0.0.1: {reason}"
            ),
            "{what}"
        );
    }
    let log = s.log();
    assert!(
        !log.iter()
            .any(|l| l.starts_with("tcpserver: ok ") || l.starts_with("tcpserver: proxy ")),
        "{log:#?}"
    );
}

/// Trust by rule, looked up for the peer's address alone: a peer without a
/// PROXY_PROTOCOL rule that sends a header is dropped, and served as itself when it
/// sends none (stale PROXY* removed); `v1` refuses a v2 header and `v2` a v1 one; a bad
/// value (`yes`) drops every connection from that peer; the rules are looked up again
/// for the client named in the header (its deny applies).
#[test]
fn rules_decide_which_peers_may_send_which_header() {
    let d = TempDir::new("dep-trust");
    let cdb = our_rules(
        &d,
        "rules.cdb",
        "127.0.0.2:allow,PROXY_PROTOCOL=\"v1\"\n\
         127.0.0.3:allow,PROXY_PROTOCOL=\"v2\"\n\
         127.0.0.4:allow,PROXY_PROTOCOL=\"yes\"\n\
         10.0.0.9:allow,PROXY_PROTOCOL=\"any\"\n\
         192.0.2.66:deny\n\
         :allow,WHO=\"default\"\n",
    );
    let s = Server::start(
        &ours(),
        &opts(&["-v", "-x", &cdb]),
        "127.0.0.1",
        ENV_THEN_CAT,
        &env_with_stale_proxy(),
    );
    let v1 = proxy_header::v1(sa("192.0.2.9:1000"), sa("198.51.100.1:25"));
    let v2 = proxy_header::v2_tcp(sa("192.0.2.9:1000"), sa("198.51.100.1:25"), &[]);
    let denied = proxy_header::v1(sa("192.0.2.66:1000"), sa("198.51.100.1:25"));
    let send = |from: &str, bytes: &[u8]| {
        let mut c = connect_from(ip(from), s.addr());
        // The server may have dropped the connection already.
        let _ = c.write_all(bytes);
        let _ = c.shutdown(std::net::Shutdown::Write);
        read_all(&mut c)
    };
    let drop_line = |from: &str, why: &str| {
        format!("tcpserver: warning: dropping connection, PROXY header from {from}: {why}")
    };
    let mut ended = 0;
    let mut expect_drop = |what: &str, out: Vec<u8>, line: String| {
        ended += 1;
        assert_eq!(String::from_utf8_lossy(&out), "", "{what}: the program ran");
        let log = s.wait_log(|l| {
            l.iter()
                .filter(|x| x.starts_with("tcpserver: end "))
                .count()
                >= ended
        });
        assert!(log.contains(&line), "{what}: no {line:?} in {log:#?}");
    };
    expect_drop(
        "untrusted peer",
        send("127.0.0.1", &v1),
        drop_line("127.0.0.1", "sent by a peer not trusted to send one"),
    );
    expect_drop(
        "v2 to a v1 rule",
        send("127.0.0.2", &v2),
        drop_line("127.0.0.2", "v2 not accepted"),
    );
    expect_drop(
        "v1 to a v2 rule",
        send("127.0.0.3", &v1),
        drop_line("127.0.0.3", "v1 not accepted"),
    );
    expect_drop(
        "bad rule value, header",
        send("127.0.0.4", &v1),
        drop_line("127.0.0.4", "trusted by a rule with a bad PROXY_PROTOCOL"),
    );
    expect_drop(
        "bad rule value, no header",
        send("127.0.0.4", b"hello\n"),
        drop_line("127.0.0.4", "trusted by a rule with a bad PROXY_PROTOCOL"),
    );

    // An untrusted peer that sends no header is served as itself.
    let (v, data) = env_and_data(&send("127.0.0.1", b"hello\n"));
    assert_eq!(data, b"hello\n");
    assert_eq!(v.get("TCPREMOTEIP").map(String::as_str), Some("127.0.0.1"));
    assert_eq!(v.get("WHO").map(String::as_str), Some("default"));
    assert!(
        !v.contains_key("PROXYREMOTEIP") && !v.contains_key("PROXYLOCALPORT"),
        "stale PROXY* variables leaked: {v:?}"
    );
    // Trusted peers with the right version: the client's rule.
    for (from, h) in [("127.0.0.2", &v1), ("127.0.0.3", &v2)] {
        let mut bytes = h.clone();
        bytes.extend_from_slice(b"data\n");
        let (v, data) = env_and_data(&send(from, &bytes));
        assert_eq!(data, b"data\n");
        assert_eq!(v.get("TCPREMOTEIP").map(String::as_str), Some("192.0.2.9"));
        assert_eq!(v.get("WHO").map(String::as_str), Some("default"), "{v:?}");
        assert_eq!(v.get("PROXYREMOTEIP").map(String::as_str), Some(from));
        assert!(!v.contains_key("PROXY_PROTOCOL"), "{v:?}");
    }
    // A client the rules deny, behind a trusted balancer.
    let out = send("127.0.0.2", &denied);
    assert_eq!(String::from_utf8_lossy(&out), "");
    let log = s.wait_log(|l| l.iter().any(|x| x.starts_with("tcpserver: deny ")));
    assert!(
        log.iter().any(|l| l.starts_with("tcpserver: deny ")
            && l.ends_with(" 0:198.51.100.1:25 :192.0.2.66::1000")),
        "{log:#?}"
    );
}

fn ident_spy(req: &str) -> Option<String> {
    Some(format!("{req} : USERID : UNIX : spy\r\n"))
}

/// Behind a balancer the names are the client's: `-h` looks up the PTR of the client
/// the header names (not the balancer's), and no ident query is made, to the client or
/// the balancer. The same client connecting directly gets both (so the responders
/// work).
#[test]
fn names_are_looked_up_for_the_client_and_ident_is_skipped() {
    let dns = "127.0.77.53";
    let asked = dns_server(
        dns,
        vec![
            (
                "9.77.0.127.in-addr.arpa",
                12,
                Rr::Ptr("client.example".into()),
            ),
            (
                "2.77.0.127.in-addr.arpa",
                12,
                Rr::Ptr("balancer.example".into()),
            ),
        ],
    );
    identd("127.0.77.9", ident_spy);
    identd("127.0.77.2", ident_spy);
    let d = TempDir::new("dep-names");
    let cdb = our_rules(
        &d,
        "rules.cdb",
        "127.0.77.2:allow,PROXY_PROTOCOL=\"v1\"\n:allow\n",
    );
    let mut env = base_env();
    env.push(("DNSCACHEIP".into(), dns.into()));
    let s = Server::start(
        &ours(),
        &["-v", "-h", "-r", "-t", "3", "-l0", "-x", &cdb],
        "127.0.0.1",
        ENV_THEN_CAT,
        &env,
    );
    let mut c = connect_from(ip("127.0.77.2"), s.addr());
    c.write_all(&proxy_header::v1(sa("127.0.77.9:4000"), s.addr()))
        .unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let (v, _) = env_and_data(&read_all(&mut c));
    assert_eq!(
        v.get("TCPREMOTEHOST").map(String::as_str),
        Some("client.example"),
        "{v:?}"
    );
    assert!(!v.contains_key("TCPREMOTEINFO"), "ident was asked: {v:?}");
    let ok = s.wait_log(|l| l.iter().any(|x| x.starts_with("tcpserver: ok ")));
    assert!(
        ok.iter()
            .any(|l| l.starts_with("tcpserver: ok ")
                && l.ends_with(" client.example:127.0.77.9::4000")),
        "{ok:#?}"
    );
    let q = asked.lock().unwrap().clone();
    assert!(
        q.contains(&"9.77.0.127.in-addr.arpa/12".to_string()),
        "{q:?}"
    );
    assert!(
        !q.contains(&"2.77.0.127.in-addr.arpa/12".to_string()),
        "{q:?}"
    );

    // Directly, without a header: the same responders answer.
    let mut c = connect_from(ip("127.0.77.9"), s.addr());
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let (v, _) = env_and_data(&read_all(&mut c));
    assert_eq!(
        v.get("TCPREMOTEHOST").map(String::as_str),
        Some("client.example"),
        "{v:?}"
    );
    assert_eq!(
        v.get("TCPREMOTEINFO").map(String::as_str),
        Some("spy"),
        "{v:?}"
    );
}

/// A peer that is not trusted to send a PROXY header, whose first bytes at accept are
/// only a *prefix* of a signature (`\r\n`, an empty line, or `P`), sent no header: it
/// is served as usual (found by this test: it was dropped as if it had sent one).
#[test]
fn untrusted_peer_sending_a_header_prefix_is_served() {
    let d = TempDir::new("dep-prefix");
    let cdb = our_rules(
        &d,
        "rules.cdb",
        "10.0.0.9:allow,PROXY_PROTOCOL=\"any\"\n:allow\n",
    );
    let s = Server::start(
        &ours(),
        &opts(&["-v", "-x", &cdb]),
        "127.0.0.1",
        &["sh", "-c", "echo ran; exec cat"],
        &base_env(),
    );
    for first in [&b"\r\n"[..], b"P"] {
        let mut c = s.connect();
        c.write_all(first).unwrap();
        // The bytes are there when the server's child looks.
        std::thread::sleep(Duration::from_millis(200));
        let _ = c.write_all(b"rest\n");
        let _ = c.shutdown(std::net::Shutdown::Write);
        let out = read_all(&mut c);
        let mut want = b"ran\n".to_vec();
        want.extend_from_slice(first);
        want.extend_from_slice(b"rest\n");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want),
            "first bytes {first:?}; log {:#?}",
            s.log()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Counting clients: -C, TCPCONNNUM, SIGUSR1, -c.

/// A connection to `s` (from `from`), sending `header` first; returns it and the first
/// line the program wrote.
fn open(s: &Server, from: Option<&str>, header: &[u8]) -> (TcpStream, String) {
    let mut c = match from {
        Some(f) => connect_from(ip(f), s.addr()),
        None => s.connect(),
    };
    c.write_all(header).unwrap();
    let line = read_line(&mut c);
    (c, line)
}

const SHOW_COUNT: &[&str] = &[
    "sh",
    "-c",
    "echo \"n=$TCPCONNNUM c=${TCPCONCURRENCY-none} ip=$TCPREMOTEIP\"; exec cat",
];

fn hdr(client: &str) -> Vec<u8> {
    proxy_header::v1(sa(client), sa("198.51.100.1:25"))
}

/// `-a -C 1:message` behind one balancer: the second connection of client 192.0.2.7
/// (named by its header) is refused with the message and a `limit from 192.0.2.7` line
/// while the first is open; 192.0.2.8, through the same balancer, is served at the same
/// time; SIGUSR1 lists the two clients, not the balancer.
#[test]
fn per_ip_limit_counts_the_clients_behind_a_balancer() {
    let s = Server::start(
        &ours(),
        &opts(&["-v", "-a", "-C", "1:421 busy"]),
        "127.0.0.1",
        SHOW_COUNT,
        &base_env(),
    );
    let (a, line) = open(&s, None, &hdr("192.0.2.7:1001"));
    assert_eq!(line, "n=1 c=1 ip=192.0.2.7");
    let mut b = s.connect();
    b.write_all(&hdr("192.0.2.7:1002")).unwrap();
    assert_eq!(String::from_utf8_lossy(&read_all(&mut b)), "421 busy\r\n");
    let (c, line) = open(&s, None, &hdr("192.0.2.8:1003"));
    assert_eq!(line, "n=1 c=1 ip=192.0.2.8");
    let log = s.wait_log(|l| l.iter().any(|x| x.starts_with("tcpserver: end ")));
    assert!(
        log.iter()
            .any(|l| l == "tcpserver: limit from 192.0.2.7 1/1"),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("tcpserver: proxy ")
                && l.contains(" 192.0.2.7:1002 via 127.0.0.1:")),
        "{log:#?}"
    );
    let before = s.log().len();
    signal(&s, libc::SIGUSR1);
    let log = s.wait_log(|l| {
        l[before..]
            .iter()
            .any(|x| x.starts_with("tcpserver: clients:"))
    });
    let listed: Vec<&String> = log[before..]
        .iter()
        .filter(|l| l.starts_with("tcpserver: client"))
        .collect();
    assert_eq!(
        listed,
        [
            "tcpserver: client 192.0.2.7 1",
            "tcpserver: client 192.0.2.8 1",
            "tcpserver: clients: 2 addresses, 2/40 connections",
        ],
        "{log:#?}"
    );
    drop((a, c));
}

/// TCPCONNNUM behind a balancer trusted by a rule (`-C 5`): two concurrent connections
/// of client 192.0.2.7 see 1 then 2 (also in TCPCONCURRENCY), 192.0.2.8 sees 1 while
/// they are open, and after they end 192.0.2.7 counts 1 again.
#[test]
fn tcpconnnum_counts_each_client_behind_a_rule_trusted_balancer() {
    let d = TempDir::new("dep-connnum");
    let cdb = our_rules(
        &d,
        "rules.cdb",
        "127.0.0.1:allow,PROXY_PROTOCOL=\"any\"\n:allow\n",
    );
    let s = Server::start(
        &ours(),
        &opts(&["-x", &cdb, "-C", "5"]),
        "127.0.0.1",
        SHOW_COUNT,
        &base_env(),
    );
    let v2 = proxy_header::v2_tcp(sa("192.0.2.7:2002"), sa("198.51.100.1:25"), &[]);
    let (a, l1) = open(&s, None, &hdr("192.0.2.7:2001"));
    let (b, l2) = open(&s, None, &v2);
    let (c, l3) = open(&s, None, &hdr("192.0.2.8:2003"));
    assert_eq!(
        [l1.as_str(), l2.as_str(), l3.as_str()],
        [
            "n=1 c=1 ip=192.0.2.7",
            "n=2 c=2 ip=192.0.2.7",
            "n=1 c=1 ip=192.0.2.8"
        ]
    );
    drop((a, b, c));
    let ended = blackbox::poll(SHORT, || (children_of(s.pid()).is_empty()).then_some(()));
    assert!(ended.is_some(), "children still running");
    // Reaping is the parent's: retry until it has seen the three ends.
    let again = blackbox::poll(SHORT, || {
        let (_c, l) = open(&s, None, &hdr("192.0.2.7:2004"));
        (l == "n=1 c=1 ip=192.0.2.7").then_some(())
    });
    assert!(
        again.is_some(),
        "192.0.2.7's ended connections still counted"
    );
    // Without a header from a trusted peer it is the peer itself that counts.
    let d2 = TempDir::new("dep-connnum2");
    let cdb2 = our_rules(&d2, "rules.cdb", ":allow\n");
    let s2 = Server::start(
        &ours(),
        &opts(&["-x", &cdb2]),
        "127.0.0.1",
        SHOW_COUNT,
        &base_env(),
    );
    let (_a, l1) = open(&s2, Some("127.0.0.5"), b"");
    let (_b, l2) = open(&s2, Some("127.0.0.5"), b"");
    assert_eq!(
        [l1.as_str(), l2.as_str()],
        ["n=1 c=none ip=127.0.0.5", "n=2 c=none ip=127.0.0.5"],
        "TCPCONNNUM with -x, TCPCONCURRENCY only with -C"
    );
    // Nothing counted: no TCPCONNNUM.
    let s3 = Server::start(&ours(), &opts(&[]), "127.0.0.1", SHOW_COUNT, &base_env());
    let (_c, l) = open(&s3, None, b"");
    assert_eq!(l, "n= c=none ip=127.0.0.1");
}

fn signal(s: &Server, sig: libc::c_int) {
    // SAFETY: a signal to the server this test started.
    assert_eq!(unsafe { libc::kill(s.pid(), sig) }, 0);
}

const HOLD: &[&str] = &["sh", "-c", "echo up; exec cat"];

/// SIGUSR1 with `-x` (addresses counted): one line per client address, busiest first,
/// then the summary, logged even without -v; the server keeps serving. Without -x, -C
/// or -a (and under -q): the summary says addresses are not counted.
#[test]
fn sigusr1_lists_clients_and_the_server_goes_on() {
    let d = TempDir::new("dep-usr1");
    let cdb = our_rules(&d, "rules.cdb", ":allow\n");
    let s = Server::start(
        &ours(),
        &opts(&["-x", &cdb]),
        "127.0.0.1",
        HOLD,
        &base_env(),
    );
    let held: Vec<TcpStream> = ["127.0.0.6", "127.0.0.5", "127.0.0.5"]
        .iter()
        .map(|f| {
            let (c, l) = open(&s, Some(f), b"");
            assert_eq!(l, "up");
            c
        })
        .collect();
    signal(&s, libc::SIGUSR1);
    let log = s.wait_log(|l| l.iter().any(|x| x.starts_with("tcpserver: clients:")));
    assert_eq!(
        log,
        [
            "tcpserver: client 127.0.0.5 2",
            "tcpserver: client 127.0.0.6 1",
            "tcpserver: clients: 2 addresses, 3/40 connections",
        ]
    );
    let (_c, l) = open(&s, Some("127.0.0.7"), b"");
    assert_eq!(l, "up", "not served after SIGUSR1");
    assert!(s_alive(&s));
    drop(held);

    let s = Server::start(&ours(), &opts(&["-q"]), "127.0.0.1", HOLD, &base_env());
    let held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let (c, l) = open(&s, None, b"");
            assert_eq!(l, "up");
            c
        })
        .collect();
    signal(&s, libc::SIGUSR1);
    let log = s.wait_log(|l| l.iter().any(|x| x.starts_with("tcpserver: clients:")));
    assert_eq!(
        log,
        ["tcpserver: clients: addresses not counted, 3/40 connections"]
    );
    let (_c, l) = open(&s, None, b"");
    assert_eq!(l, "up", "not served after SIGUSR1");
    drop(held);
}

fn s_alive(s: &Server) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(s.pid(), 0) == 0 }
}

/// `-v -c 2` with addresses counted (-x): the connection that takes the last slot logs
/// `limit 2/2 reached by IP, busiest IP COUNT`; the next client waits in the backlog and
/// is served once a slot frees. Without counting there is no `busiest` part.
#[test]
fn verbose_names_who_took_the_last_slot() {
    let d = TempDir::new("dep-full");
    let cdb = our_rules(&d, "rules.cdb", ":allow\n");
    let s = Server::start(
        &ours(),
        &opts(&["-v", "-c", "2", "-x", &cdb]),
        "127.0.0.1",
        HOLD,
        &base_env(),
    );
    let (a, _) = open(&s, Some("127.0.0.5"), b"");
    let (_b, _) = open(&s, Some("127.0.0.5"), b"");
    let log = s.wait_log(|l| l.iter().any(|x| x.starts_with("tcpserver: limit ")));
    let limits: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("tcpserver: limit "))
        .collect();
    assert_eq!(
        limits,
        ["tcpserver: limit 2/2 reached by 127.0.0.5, busiest 127.0.0.5 2"],
        "{log:#?}"
    );
    // The third client waits until a slot frees.
    let mut c = connect_from(ip("127.0.0.6"), s.addr());
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 3];
    assert!(c.read(&mut b).is_err(), "served beyond -c 2");
    drop(a);
    assert_eq!(read_line(&mut c), "up");
    let log = s.wait_log(|l| {
        l.iter()
            .filter(|x| x.starts_with("tcpserver: limit "))
            .count()
            == 2
    });
    let limits: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("tcpserver: limit "))
        .collect();
    assert_eq!(
        limits[1], "tcpserver: limit 2/2 reached by 127.0.0.6, busiest 127.0.0.5 1",
        "{log:#?}"
    );

    let s = Server::start(
        &ours(),
        &opts(&["-v", "-c", "1"]),
        "127.0.0.1",
        HOLD,
        &base_env(),
    );
    let (_a, _) = open(&s, None, b"");
    let log = s.wait_log(|l| l.iter().any(|x| x.starts_with("tcpserver: limit ")));
    assert!(
        log.iter()
            .any(|l| l == "tcpserver: limit 1/1 reached by 127.0.0.1"),
        "{log:#?}"
    );
}
