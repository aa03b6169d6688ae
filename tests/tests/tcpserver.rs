//! tcpserver: differential tests against Debian's (djb's 0.88) on loopback.
//! Run with `cargo test -p blackbox --test tcpserver` after building the binary.

mod tcpserver_util;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use blackbox::{run_with_input, show, TempDir};
use tcpserver_util::*;

/// Lines of the service's output, with port numbers (which differ per run) removed.
fn without_ports(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.starts_with("TCPLOCALPORT=") && !l.starts_with("TCPREMOTEPORT="))
        .map(str::to_string)
        .collect()
}

const STATE: &str = "env | sort\necho ---\ngrep -E '^(SigBlk|SigIgn|SigCgt|Uid|Gid|Groups)' /proc/self/status\necho ---\nls /proc/self/fd | tr '\\n' ' '\necho ---\numask\n";

#[test]
fn child_environment_signals_fds_match_djb() {
    let d = TempDir::new("ts-env");
    let svc = script(&d, "svc", STATE);
    both(|bin| {
        let s = Server::quiet(bin, &[], &svc);
        let out = s.talk(b"");
        without_ports(&out)
    });
    // And the absolute facts the differential run rests on.
    let s = Server::quiet(&ours(), &[], &svc);
    let out = String::from_utf8(s.talk(b"")).unwrap();
    assert!(out.contains("SigBlk:\t0000000000000000"), "{out}");
    // SIGPIPE (13) must not be ignored: bit 12 of SigIgn.
    let ign = out
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:\t"))
        .unwrap();
    assert_eq!(
        u64::from_str_radix(ign, 16).unwrap() & (1 << 12),
        0,
        "{out}"
    );
    assert!(
        out.contains("PROTO=TCP\n") && out.contains("TCPLOCALHOST=0\n"),
        "{out}"
    );
    assert!(
        !out.contains("TCPREMOTEHOST") && !out.contains("TCPREMOTEINFO"),
        "{out}"
    );
    assert!(out.contains("KEEP=me\n"), "{out}");
}

#[test]
fn inherited_fd_passes_through_listener_does_not() {
    // fd 5 opened by the shell that starts the server is passed to the service as is.
    let d = TempDir::new("ts-fd");
    let svc = script(&d, "svc", "ls /proc/self/fd | tr '\\n' ' '\n");
    both(|bin| {
        let wrapper = script(
            &d,
            "wrap",
            &format!("exec 5</dev/null\nexec {} \"$@\"\n", bin.display()),
        );
        let s = Server::quiet(Path::new(&wrapper), &[], &svc);
        vec![String::from_utf8_lossy(&s.talk(b"")).into_owned()]
    });
}

#[test]
fn verbose_log_lines_match_djb() {
    let d = TempDir::new("ts-log");
    let svc = script(&d, "svc", "echo hi\nexit 3\n");
    let long = "x".repeat(100);
    let odd = "a:b%c d";
    for l in ["0", &long, odd, &"y".repeat(99), &"z".repeat(150)] {
        both(|bin| {
            let s = Server::start(
                bin,
                &["-v", "-H", "-R", "-l", l],
                "127.0.0.1",
                &[&svc],
                &base_env(),
            );
            assert_eq!(s.talk(b""), b"hi\n");
            normalise(&s.wait_log(|l| l.iter().filter(|x| x.contains("status: 0/")).count() >= 2))
        });
    }
}

#[test]
fn deny_and_rules_settings_match_djb() {
    let d = TempDir::new("ts-rules");
    let svc = script(
        &d,
        "svc",
        "env | grep -E '^(PROTO|TCPREMOTEIP|X|Y|EMPTY)=' | sort\n",
    );
    let cases = [
        "127.0.0.1:deny\n",
        "127.0.0.1:allow,X=\"1\",Y='a b',EMPTY=\"\"\n",
        "127.0.0.:allow,PROTO=\"SPOOF\",TCPREMOTEIP=\"9.9.9.9\"\n",
        "=:deny\n:allow,X=\"default\"\n",
        "127.:deny,X=\"after deny\"\n",
    ];
    for (i, text) in cases.iter().enumerate() {
        let cdb = rules(&d, &format!("r{i}.cdb"), text);
        both(|bin| {
            let s = Server::quiet(bin, &["-v", "-B", "banner\n", "-x", &cdb], &svc);
            let mut out = without_ports(&s.talk(b""));
            out.extend(normalise(&s.wait_idle()));
            out
        });
    }
}

#[test]
fn missing_and_corrupt_rules_match_djb() {
    let d = TempDir::new("ts-norules");
    let svc = script(&d, "svc", "echo served\n");
    let missing = d.join("missing.cdb");
    let missing = missing.to_str().unwrap();
    let corrupt = d.join("corrupt.cdb");
    std::fs::write(&corrupt, b"short").unwrap();
    let corrupt = corrupt.to_str().unwrap();
    for args in [
        vec!["-x", missing],
        vec!["-X", "-x", missing],
        vec!["-X", "-x", corrupt],
    ] {
        both(|bin| {
            let s = Server::start(bin, &opts(&args), "127.0.0.1", &[&svc], &base_env());
            let mut out = vec![String::from_utf8_lossy(&s.talk(b"")).into_owned()];
            if !out[0].contains("served") {
                out.extend(s.wait_log(|l| !l.is_empty()));
            }
            out
        });
    }
}

#[test]
fn unreadable_rules_drop_the_connection_with_a_warning() {
    // djb's child dies of SIGSEGV on a directory; ours drops the connection and says why.
    let s = Server::start(
        &ours(),
        &opts(&["-x", "/"]),
        "127.0.0.1",
        &["echo", "served"],
        &base_env(),
    );
    assert_eq!(s.talk(b""), b"");
    let log = s.wait_log(|l| !l.is_empty());
    assert_eq!(
        log,
        ["tcpserver: warning: dropping connection, unable to read /: is a directory"]
    );
}

#[test]
fn banner_goes_out_before_the_program() {
    let d = TempDir::new("ts-banner");
    let svc = script(&d, "svc", "echo prog\n");
    both(|bin| {
        let s = Server::quiet(bin, &["-B", "220 hello\r\n"], &svc);
        vec![String::from_utf8_lossy(&s.talk(b"")).into_owned()]
    });
}

#[test]
fn exec_failure_and_path_search_match_djb() {
    let d = TempDir::new("ts-exec");
    let noshebang = d.join("noshebang");
    std::fs::write(&noshebang, "echo x\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&noshebang, std::fs::Permissions::from_mode(0o755)).unwrap();
    for prog in [
        "no-such-program-xyz",
        "/nonexistent/prog",
        noshebang.to_str().unwrap(),
        "echo",
    ] {
        both(|bin| {
            let s = Server::start(bin, &opts(&[]), "127.0.0.1", &[prog, "found"], &base_env());
            let mut v = vec![String::from_utf8_lossy(&s.talk(b"")).into_owned()];
            if v[0].is_empty() {
                v.extend(s.wait_log(|l| !l.is_empty()));
            }
            v
        });
    }
}

#[test]
fn usage_and_startup_errors_match_djb() {
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["-z", "0", "0", "true"],
        vec!["-c"],
        vec!["-H", "0"],
        vec!["-H", "0", "0"],
        vec!["-q", "-z"],
        vec!["-HR", "0", "no-such-service-xyz", "true"],
        vec!["-HR", "0", "smtp-no", "true"],
        vec!["-HR", "1.2.3.4", "0", "true"],
    ];
    for args in cases {
        let run = |bin: &Path| {
            let mut c = Command::new(bin);
            c.args(&args).env_clear().env("PATH", "/usr/bin:/bin");
            let o = run_with_input(&mut c, b"", Duration::from_secs(10));
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        };
        let (a, b) = (run(&djb()), run(&ours()));
        assert_eq!(a, b, "args {args:?}");
    }
}

#[test]
fn host_names_too_long_for_dns_are_protocol_errors_as_djb() {
    // djbdns's dns_domain_fromdot refuses a label over 63 bytes or a name over 255 with
    // error_proto before anything is sent; DNSCACHEIP keeps any stray query on loopback.
    let label = "a".repeat(64);
    let dotted = format!("{label}.example");
    let long = "abcdefg.".repeat(32);
    for host in [dotted.as_str(), label.as_str(), long.as_str()] {
        let run = |bin: &Path| {
            let mut c = Command::new(bin);
            c.args(["-HR", host, "0", "true"])
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("DNSCACHEIP", "127.0.0.1");
            let o = run_with_input(&mut c, b"", Duration::from_secs(10));
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        };
        let (a, b) = (run(&djb()), run(&ours()));
        assert_eq!(a, b, "host {host}");
        assert_eq!(
            b.1,
            format!("tcpserver: fatal: temporarily unable to figure out IP address for {host}: protocol error\n")
        );
    }
}

#[test]
fn bind_conflict_matches_djb() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let run = |bin: &Path, flags: &str| {
        let mut c = Command::new(bin);
        c.args([flags, "127.0.0.1", &port, "true"]).env_clear();
        let o = run_with_input(&mut c, b"", Duration::from_secs(10));
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (a, b) = (run(&djb(), "-HR"), run(&ours(), "-HR"));
    assert_eq!(a, b);
    assert_eq!(
        b.1,
        "tcpserver: fatal: unable to bind: address already used\n"
    );
    // -q silences even fatal messages; the exit code stays.
    assert_eq!(run(&djb(), "-qHR"), (Some(111), String::new()));
    assert_eq!(run(&ours(), "-qHR"), (Some(111), String::new()));
}

#[test]
fn port_forms_and_print_port() {
    // A service name from /etc/services works for both.
    for bin in [djb(), ours()] {
        let mut c = Command::new(&bin);
        c.args(["-1", "-HR", "-l0", "127.0.0.1", "smtp", "true"])
            .env_clear();
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut ch = c.spawn().unwrap();
        let mut out = String::new();
        let start = Instant::now();
        let mut so = ch.stdout.take().unwrap();
        let t = std::thread::spawn(move || {
            let mut b = [0u8; 16];
            let n = so.read(&mut b).unwrap_or(0);
            String::from_utf8_lossy(&b[..n]).into_owned()
        });
        while start.elapsed() < Duration::from_secs(5) && !t.is_finished() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = ch.kill();
        let _ = ch.wait();
        if let Ok(s) = t.join() {
            out = s;
        }
        // Port 25 may be taken on a CI machine; then both fail to bind.
        assert!(
            out == "25\n" || out.is_empty(),
            "{}: {out:?}",
            bin.display()
        );
    }
}

#[test]
fn concurrency_limit_defers_and_never_refuses() {
    let d = TempDir::new("ts-limit");
    let svc = script(&d, "svc", "read x\necho done\n");
    both(|bin| {
        let s = Server::quiet(bin, &["-v", "-c", "2"], &svc);
        let mut conns: Vec<_> = (0..4).map(|_| s.connect()).collect();
        // Two are served, two wait in the backlog.
        s.wait_log(|l| l.iter().filter(|x| x.starts_with("tcpserver: ok")).count() >= 2);
        std::thread::sleep(Duration::from_millis(300));
        let before = s
            .log()
            .iter()
            .filter(|x| x.starts_with("tcpserver: ok"))
            .count();
        assert_eq!(tcpserver_util::children_of(s.pid()).len(), 2);
        let mut outs = Vec::new();
        for c in conns.iter_mut() {
            c.write_all(b"x\n").unwrap();
            outs.push(String::from_utf8_lossy(&read_all(c)).into_owned());
        }
        let log = s.wait_log(|l| {
            l.iter().filter(|x| x.starts_with("tcpserver: end")).count() >= 4
                && l.last().is_some_and(|x| x.ends_with(" 0/2"))
        });
        let mut v = vec![before.to_string()];
        v.extend(outs);
        // The order of status lines depends on when children exit; their bounds do not.
        let st: Vec<u64> = log
            .iter()
            .filter_map(|x| x.strip_prefix("tcpserver: status: "))
            .map(|x| x.trim_end_matches("/2").parse().unwrap())
            .collect();
        v.push(format!(
            "max {} last {:?} n {}",
            st.iter().max().unwrap(),
            st.last(),
            st.len()
        ));
        v
    });
}

#[test]
fn limit_zero_never_accepts() {
    both(|bin| {
        let s = Server::start(
            bin,
            &opts(&["-v", "-c", "junk"]),
            "127.0.0.1",
            &["echo", "x"],
            &base_env(),
        );
        let mut c = s.connect();
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut b = [0u8; 4];
        let r = c.read(&mut b);
        vec![format!("{:?}", r.map_err(|e| e.kind())), s.log().join("|")]
    });
}

#[test]
fn sigterm_exits_zero_and_children_keep_running() {
    let d = TempDir::new("ts-term");
    let svc = script(&d, "svc", "read x\necho still-here\n");
    both(|bin| {
        let mut s = Server::quiet(bin, &[], &svc);
        let mut c = s.connect();
        let start = Instant::now();
        while tcpserver_util::children_of(s.pid()).is_empty() && start.elapsed() < LIMIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(s.pid(), libc::SIGTERM) };
        let st = s.child.wait().unwrap();
        c.write_all(b"x\n").unwrap();
        vec![
            format!("{:?}", st.code()),
            String::from_utf8_lossy(&read_all(&mut c)).into_owned(),
        ]
    });
}

#[test]
fn privileges_dropped_as_djb() {
    let d = TempDir::new("ts-uid");
    let svc = script(&d, "svc", "grep -E '^(Uid|Gid|Groups)' /proc/self/status\n");
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    both(|bin| {
        let mut v = Vec::new();
        for extra in [vec!["-u", "65534", "-g", "65534"], vec!["-U"]] {
            let mut env = base_env();
            env.push(("UID".into(), "1".into()));
            env.push(("GID".into(), "2x".into()));
            let s = Server::start(bin, &opts(&extra), "127.0.0.1", &[&svc], &env);
            v.push(String::from_utf8_lossy(&s.talk(b"")).into_owned());
        }
        v
    });
}

#[test]
fn crashed_child_is_reaped_with_raw_status() {
    let d = TempDir::new("ts-crash");
    let svc = script(&d, "svc", "kill -9 $$\n");
    both(|bin| {
        let s = Server::quiet(bin, &["-v"], &svc);
        s.talk(b"");
        let log = s.wait_idle();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(tcpserver_util::zombies_of(s.pid()), 0);
        normalise(&log)
    });
}

#[test]
fn exit_status_of_child_is_logged_raw() {
    let out = {
        let d = TempDir::new("ts-raw");
        let svc = script(&d, "svc", "exit 3\n");
        let s = Server::quiet(&ours(), &["-v"], &svc);
        s.talk(b"");
        s.wait_log(|l| l.iter().any(|x| x.starts_with("tcpserver: end")))
    };
    assert!(out.iter().any(|l| l.ends_with(" status 768")), "{out:?}");
}

#[test]
fn stdin_closed_at_start_still_serves() {
    // The listener must not land on fd 0 and be closed with it.
    let d = TempDir::new("ts-fd0");
    let svc = script(&d, "svc", "echo ok\n");
    let wrapper = script(
        &d,
        "wrap",
        &format!("exec 0<&-\nexec {} \"$@\"\n", ours().display()),
    );
    let s = Server::quiet(Path::new(&wrapper), &[], &svc);
    assert_eq!(s.talk(b""), b"ok\n");
}

#[test]
fn options_cluster_and_override_like_djb() {
    let d = TempDir::new("ts-getopt");
    let svc = script(
        &d,
        "svc",
        "env | grep -E '^TCP(LOCAL|REMOTE)(HOST|INFO)=' | sort\n",
    );
    both(|bin| {
        // -q then -v: verbose wins; -l given twice: the last one.
        let s = Server::start(
            bin,
            &["-qvHRlfirst", "-l", "second", "--"],
            "127.0.0.1",
            &[&svc],
            &base_env(),
        );
        let mut v = without_ports(&s.talk(b""));
        v.extend(normalise(&s.wait_idle()));
        v
    });
}

#[test]
fn unresolvable_host_is_no_ip_address() {
    // Only a DNS answer can turn a partial quad into an address: both say so.
    let dns = "127.0.0.153";
    let _q = dns_server(dns, vec![]);
    for bin in [djb(), ours()] {
        let mut c = Command::new(&bin);
        c.args(["-HR", "-l0", "127.1", "0", "true"])
            .env_clear()
            .env("DNSCACHEIP", dns);
        let o = run_with_input(&mut c, b"", Duration::from_secs(15));
        assert_eq!(o.status.code(), Some(111), "{}", show(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stderr),
            "tcpserver: fatal: no IP address for 127.1\n"
        );
    }
}

const NAMES: &str = "env | grep -E '^TCP(LOCAL|REMOTE)(HOST|INFO)=' | sort\n";

fn dns_env(ip: &str) -> Vec<(String, String)> {
    let mut e = base_env();
    e.push(("DNSCACHEIP".into(), ip.into()));
    e
}

#[test]
fn ptr_names_match_djb() {
    let dns = "127.0.0.154";
    let _q = dns_server(
        dns,
        vec![
            ("1.0.0.127.in-addr.arpa", 12, Rr::Ptr("Host.Example".into())),
            ("host.example", 1, Rr::A([127, 0, 0, 1])),
            (
                "2.0.0.127.in-addr.arpa",
                12,
                Rr::Ptr("odd name.example".into()),
            ),
            ("3.0.0.127.in-addr.arpa", 12, Rr::Ptr("liar.example".into())),
            ("liar.example", 1, Rr::A([10, 0, 0, 3])),
        ],
    );
    let d = TempDir::new("ts-ptr");
    let svc = script(&d, "svc", NAMES);
    for (server, paranoid) in [
        ("127.0.0.1", "-P"),
        ("127.0.0.1", "-p"),
        ("127.0.0.2", "-P"),
        ("127.0.0.3", "-p"),
        ("127.0.0.3", "-P"),
    ] {
        both(|bin| {
            let s = Server::start(bin, &["-v", "-R", paranoid], server, &[&svc], &dns_env(dns));
            let from = server.parse().unwrap();
            let mut v = without_ports(&s.talk_from(Some(from), b""));
            v.extend(normalise(&s.wait_idle()));
            v
        });
    }
}

#[test]
fn rules_match_on_names() {
    let dns = "127.0.0.155";
    let _q = dns_server(
        dns,
        vec![(
            "1.0.0.127.in-addr.arpa",
            12,
            Rr::Ptr("mail.example.org".into()),
        )],
    );
    let d = TempDir::new("ts-namerules");
    let svc = script(&d, "svc", "echo \"$WHO\"\n");
    let cdb = rules(&d, "r.cdb", "=.example.org:allow,WHO=\"org\"\n:deny\n");
    both(|bin| {
        let s = Server::start(
            bin,
            &["-R", "-l0", "-x", &cdb],
            "127.0.0.1",
            &[&svc],
            &dns_env(dns),
        );
        vec![String::from_utf8_lossy(&s.talk(b"")).into_owned()]
    });
}

#[test]
fn dns_failures_leave_names_unset() {
    // SERVFAIL for the reverse zone: names unset, connection served, as djb.
    let dns = "127.0.0.156";
    let _q = dns_server(dns, vec![("1.0.0.127.in-addr.arpa", 12, Rr::ServFail)]);
    let d = TempDir::new("ts-servfail");
    let svc = script(&d, "svc", NAMES);
    both(|bin| {
        let s = Server::start(bin, &["-R"], "127.0.0.1", &[&svc], &dns_env(dns));
        without_ports(&s.talk(b""))
    });
}

#[test]
fn dead_dns_server_has_a_deadline() {
    // A server that never answers: djb stalls 11 s and more per lookup; ours gives up
    // after its deadline and serves the client without names.
    let dns = "127.0.0.157";
    let q = dns_server(dns, vec![("1.0.0.127.in-addr.arpa", 12, Rr::Silent)]);
    let d = TempDir::new("ts-deaddns");
    let svc = script(&d, "svc", "echo served\nenv | grep -c REMOTEHOST=\n");
    let s = Server::start(&ours(), &["-R", "-l0"], "127.0.0.1", &[&svc], &dns_env(dns));
    assert_eq!(s.talk(b""), b"served\n0\n");
    assert!(!q.lock().unwrap().is_empty());
}

#[test]
fn host_argument_from_etc_hosts_and_dns() {
    // djb needs DNS even for localhost; ours reads /etc/hosts first.
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    if hosts
        .lines()
        .any(|l| l.starts_with("127.0.0.1") && l.split_whitespace().any(|w| w == "localhost"))
    {
        let s = Server::start(&ours(), QUIET, "localhost", &["echo", "hi"], &base_env());
        assert_eq!(s.talk(b""), b"hi\n");
    }
    // A name only DNS knows, for both.
    let dns = "127.0.0.158";
    let _q = dns_server(dns, vec![("svc.test.example", 1, Rr::A([127, 0, 0, 9]))]);
    both(|bin| {
        let s = Server::start(
            bin,
            QUIET,
            "svc.test.example",
            &["sh", "-c", "echo $TCPLOCALIP"],
            &dns_env(dns),
        );
        let out = String::from_utf8_lossy(&connect_and_read(s.port, [127, 0, 0, 9])).into_owned();
        vec![out]
    });
}

fn connect_and_read(port: u16, ip: [u8; 4]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect_timeout(&(ip, port).into(), LIMIT).unwrap();
    read_all(&mut s)
}

fn ident_joe(req: &str) -> Option<String> {
    Some(format!("{req} : USERID : UNIX : joe smith\r\n"))
}
fn ident_error(req: &str) -> Option<String> {
    Some(format!("{req} : ERROR : NO-USER\r\n"))
}
fn ident_silent(_: &str) -> Option<String> {
    None
}
fn ident_odd(req: &str) -> Option<String> {
    Some(format!(
        "{req}:USERID:UNIX:a:b%c\x01{}\r\n",
        "z".repeat(120)
    ))
}

#[test]
fn ident_matches_djb() {
    let d = TempDir::new("ts-ident");
    let svc = script(&d, "svc", NAMES);
    for (ip, f, t) in [
        ("127.0.0.161", ident_joe as fn(&str) -> Option<String>, "5"),
        ("127.0.0.162", ident_error, "5"),
        ("127.0.0.163", ident_silent, "1"),
        ("127.0.0.164", ident_odd, "5"),
        // The largest -t djb's takes: no deadline arithmetic may overflow on it.
        ("127.0.0.169", ident_joe, "18446744073709551615"),
    ] {
        identd(ip, f);
        both(|bin| {
            let s = Server::start(
                bin,
                &["-v", "-H", "-l0", "-t", t],
                "127.0.0.1",
                &[&svc],
                &base_env(),
            );
            let mut v = without_ports(&s.talk_from(Some(ip.parse().unwrap()), b""));
            v.extend(normalise(&s.wait_idle()));
            v
        });
    }
    // No identd at all: connection refused, info unset.
    both(|bin| {
        let s = Server::start(bin, &["-H", "-l0"], "127.0.0.1", &[&svc], &base_env());
        without_ports(&s.talk_from(Some("127.0.0.165".parse().unwrap()), b""))
    });
}

#[test]
fn ident_rules_match_djb() {
    let ip = "127.0.0.166";
    identd(ip, ident_joe);
    let d = TempDir::new("ts-identrules");
    let svc = script(&d, "svc", "echo \"$WHO\"\n");
    let cdb = rules(
        &d,
        "r.cdb",
        "joesmith@127.0.0.166:allow,WHO=\"joe\"\n:deny\n",
    );
    both(|bin| {
        let s = Server::start(
            bin,
            &["-H", "-l0", "-x", &cdb],
            "127.0.0.1",
            &[&svc],
            &base_env(),
        );
        let a = s.talk_from(Some(ip.parse().unwrap()), b"");
        let b = s.talk_from(Some("127.0.0.167".parse().unwrap()), b"");
        vec![
            String::from_utf8_lossy(&a).into_owned(),
            String::from_utf8_lossy(&b).into_owned(),
        ]
    });
}

#[test]
fn new_rules_apply_to_the_next_connection() {
    let d = TempDir::new("ts-reload");
    let svc = script(&d, "svc", "echo \"$WHO\"\n");
    both(|bin| {
        let cdb = rules(&d, "r.cdb", ":allow,WHO=\"first\"\n");
        let s = Server::quiet(bin, &["-x", &cdb], &svc);
        let mut v = vec![String::from_utf8_lossy(&s.talk(b"")).into_owned()];
        rules(&d, "r.cdb", ":allow,WHO=\"second\"\n");
        v.push(String::from_utf8_lossy(&s.talk(b"")).into_owned());
        rules(&d, "r.cdb", "127.0.0.1:deny\n");
        v.push(String::from_utf8_lossy(&s.talk(b"")).into_owned());
        std::fs::remove_file(&cdb).unwrap();
        v.push(String::from_utf8_lossy(&s.talk(b"")).into_owned());
        v.extend(s.wait_log(|l| !l.is_empty()));
        v
    });
}

/// Where ours differs from djb's on purpose, side by side: with a rules file ours counts
/// each client's connections and says so in `TCPCONNNUM` (djb's sets nothing of the
/// kind), and SIGUSR1 makes ours list its clients and go on serving where djb's dies of
/// the signal's default action.
#[test]
fn deliberate_differences_tcpconnnum_and_sigusr1() {
    let d = TempDir::new("ts-differ");
    let svc = script(&d, "svc", "env | grep -E '^TCPCONN' | sort\necho done\n");
    let cdb = rules(&d, "r.cdb", ":allow\n");
    let run = |bin: &Path| {
        let mut s = Server::quiet(bin, &["-x", &cdb], &svc);
        let env = String::from_utf8_lossy(&s.talk(b"")).into_owned();
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(s.pid(), libc::SIGUSR1) };
        // Either the list or the server's end, whichever comes (bounded).
        let start = Instant::now();
        let mut exited = None;
        while start.elapsed() < LIMIT {
            if let Some(st) = s.child.try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                exited = Some(st.signal());
                break;
            }
            if s.log().iter().any(|x| x.contains("clients: ")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let after = match exited {
            None => String::from_utf8_lossy(&s.talk(b"")).into_owned(),
            Some(_) => String::new(),
        };
        (env, s.log(), after, exited)
    };
    let (env, log, after, exited) = run(&djb());
    assert_eq!(env, "done\n", "djb's sets no TCPCONN* variable");
    assert!(!log.iter().any(|l| l.contains("clients: ")), "{log:?}");
    assert_eq!(after, "", "djb's server is gone");
    assert_eq!(exited, Some(Some(libc::SIGUSR1)), "djb's dies of SIGUSR1");
    let (env, log, after, exited) = run(&ours());
    assert_eq!(env, "TCPCONNNUM=1\ndone\n");
    // The first connection's child may not be reaped yet when the signal comes: then it
    // is still listed.
    assert!(
        log.iter().any(|l| {
            l == "tcpserver: clients: 0 addresses, 0/40 connections"
                || l == "tcpserver: clients: 1 addresses, 1/40 connections"
        }),
        "{log:?}"
    );
    assert_eq!(after, "TCPCONNNUM=1\ndone\n", "ours goes on serving");
    assert_eq!(exited, None, "ours keeps running");
}

/// Ours sends the ident request before it looks names up, where djb's asks the identd
/// last, after DNS; the answers are the same. Here the DNS server answers only once the
/// identd has been asked, so both names arrive only if the request went first. (djb's
/// would be waiting for the name then, and its resolver retries for a minute, so it is
/// not run.)
#[test]
fn deliberate_difference_ident_asked_before_names() {
    use std::io::BufRead;
    use std::net::{TcpListener, UdpSocket};
    let (asked, was_asked) = std::sync::mpsc::channel::<()>();
    let identd = TcpListener::bind("127.0.0.172:113").expect("bind identd (needs root)");
    std::thread::spawn(move || {
        let Ok((mut s, _)) = identd.accept() else {
            return;
        };
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut line = String::new();
        let _ = std::io::BufReader::new(s.try_clone().unwrap()).read_line(&mut line);
        let _ = asked.send(());
        let ports = line.trim_end();
        let _ = s.write_all(format!("{ports} : USERID : UNIX : early\r\n").as_bytes());
    });
    let dns = UdpSocket::bind("127.0.0.171:53").expect("bind DNS (needs root)");
    std::thread::spawn(move || {
        dns.set_read_timeout(Some(LIMIT)).unwrap();
        let mut q = [0u8; 512];
        let Ok((n, peer)) = dns.recv_from(&mut q) else {
            return;
        };
        if was_asked.recv_timeout(LIMIT).is_err() || n < 12 {
            return;
        }
        // The query's id and question, then one PTR answer pointing at the question.
        let mut r = q[..2].to_vec();
        r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        r.extend_from_slice(&q[12..n]);
        let name = b"\x05early\x07example\x00";
        r.extend_from_slice(&[0xc0, 12, 0, 12, 0, 1, 0, 0, 1, 44, 0, name.len() as u8]);
        r.extend_from_slice(name);
        let _ = dns.send_to(&r, peer);
    });
    let d = TempDir::new("ts-early-ident");
    let svc = script(&d, "svc", "echo \"$TCPREMOTEHOST $TCPREMOTEINFO\"\n");
    let s = Server::start(
        &ours(),
        &["-h", "-l0", "-t", "10"],
        "127.0.0.1",
        &[&svc],
        &dns_env("127.0.0.171"),
    );
    let out = s.talk_from(Some("127.0.0.172".parse().unwrap()), b"");
    assert_eq!(String::from_utf8_lossy(&out), "early.example early\n");
}

/// The letters ours adds for deployment, `-a` (PROXY headers) and `-L` (an inherited
/// socket), are usage errors for djb's; ours takes them (here `-L` names a descriptor
/// that is not open, which is its own startup error).
#[test]
fn added_letters_a_and_l_are_djb_usage_errors() {
    let run = |bin: &Path, args: &[&str]| {
        let mut c = Command::new(bin);
        c.args(args).env_clear().env("PATH", "/usr/bin:/bin");
        let o = run_with_input(&mut c, b"", Duration::from_secs(10));
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    for (letter, args) in [
        ("a", &["-a", "-HR", "127.0.0.1", "0", "true"][..]),
        ("L", &["-L", "900", "-HR", "127.0.0.1", "0", "true"][..]),
    ] {
        let (code, err) = run(&djb(), args);
        assert_eq!(code, Some(100), "{err}");
        assert!(
            err.starts_with(&format!("tcpserver: illegal option -- {letter}\n")),
            "{err}"
        );
    }
    let (code, err) = run(&ours(), &["-L", "900", "-HR", "127.0.0.1", "0", "true"]);
    assert_eq!(
        (code, err.as_str()),
        (
            Some(111),
            "tcpserver: fatal: no inherited socket on descriptor 900\n"
        )
    );
}
