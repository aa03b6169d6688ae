//! The small ucspi-tcp tools against Debian's: addcr, delcr, fixcrio, recordio, argv0,
//! mconnect-io and the scripts (mconnect, tcpcat, who@, date@, finger@, http@): same
//! bytes out, same log lines, same exit codes.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use blackbox::{
    djb, djb_script, our_path_dir, ours, run, run_with_input, show, tcp_service, TempDir,
};

const LIMIT: Duration = Duration::from_secs(20);

fn env() -> Vec<(&'static str, &'static OsStr)> {
    vec![("PATH", OsStr::new("/usr/bin:/bin"))]
}

fn both(name: &str, args: &[&str], input: &[u8]) -> (Output, Output) {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let a = run(&djb(name), &args, &env(), input);
    let b = run(&ours(name), &args, &env(), input);
    (a, b)
}

fn same(name: &str, args: &[&str], input: &[u8]) -> Output {
    let (a, b) = both(name, args, input);
    assert_eq!(
        a.stdout,
        b.stdout,
        "{name} {args:?} stdout\ndjb: {}\nours: {}",
        show(&a),
        show(&b)
    );
    assert_eq!(
        a.stderr,
        b.stderr,
        "{name} {args:?} stderr\ndjb: {}\nours: {}",
        show(&a),
        show(&b)
    );
    assert_eq!(a.status.code(), b.status.code(), "{name} {args:?} exit");
    b
}

/// Inputs that exercise every CR/LF combination, ends included.
fn samples() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        &b""[..],
        b"\n",
        b"\r",
        b"\r\n",
        b"\r\r\n",
        b"x\r\r\ny\r",
        b"a\nb\r\nc",
        b"\n\r\n\r\r\r\n\n",
        b"no newline at all",
        b"\0\r\0\n\xff\r",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    // Pseudo-random mixes of CR, LF and text, larger than any one buffer.
    let mut x: u32 = 12345;
    for len in [1000usize, 20000] {
        let mut s = Vec::with_capacity(len);
        for _ in 0..len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            s.push([b'\r', b'\n', b'a', b'\r'][(x >> 16) as usize % 4]);
        }
        v.push(s);
    }
    v
}

#[test]
fn addcr_and_delcr_match_djb() {
    for s in samples() {
        let o = same("addcr", &[], &s);
        assert_eq!(o.status.code(), Some(0));
        same("delcr", &[], &s);
    }
    // The documented cases, spelled out.
    let (_, b) = both("addcr", &[], b"x\r\ny\n");
    assert_eq!(b.stdout, b"x\r\r\ny\r\n");
    let (_, b) = both("delcr", &[], b"x\r\r\ny\r");
    assert_eq!(b.stdout, b"x\r\ny\r");
}

#[test]
fn fixcrio_matches_djb_both_ways() {
    let d = TempDir::new("fixcrio");
    for (i, s) in samples().into_iter().enumerate() {
        // Output direction: cat echoes, so both filters apply (idempotent together).
        same("fixcrio", &["cat"], &s);
        // Input direction alone: the program stores what it was given.
        let fa = d.join(&format!("djb{i}"));
        let fb = d.join(&format!("ours{i}"));
        let script = |f: &Path| format!("cat > {}", f.display());
        let a = run(
            &djb("fixcrio"),
            &[OsStr::new("sh"), OsStr::new("-c"), OsStr::new(&script(&fa))],
            &env(),
            &s,
        );
        let b = run(
            &ours("fixcrio"),
            &[OsStr::new("sh"), OsStr::new("-c"), OsStr::new(&script(&fb))],
            &env(),
            &s,
        );
        assert_eq!(a.status.code(), b.status.code());
        assert_eq!(
            std::fs::read(&fa).unwrap(),
            std::fs::read(&fb).unwrap(),
            "sample {i}"
        );
    }
    let o = same("fixcrio", &[], b"");
    assert_eq!(o.status.code(), Some(100));
    let o = same("fixcrio", &["/nonexistent/prog"], b"");
    assert_eq!(o.status.code(), Some(111));
}

/// recordio's log with the pid replaced, split by direction (the two directions are
/// copied concurrently, so only their order within a direction is fixed).
fn record_log(o: &Output) -> (Vec<String>, Vec<String>, String) {
    let text = String::from_utf8_lossy(&o.stderr).into_owned();
    let mut inn = Vec::new();
    let mut out = Vec::new();
    let mut pid = String::new();
    for l in text.split_inclusive('\n') {
        let Some((p, rest)) = l.split_once(' ') else {
            inn.push(l.to_string());
            continue;
        };
        if p.chars().all(|c| c.is_ascii_digit()) {
            pid = p.to_string();
            if rest.starts_with('<') {
                inn.push(format!("PID {rest}"));
            } else {
                out.push(format!("PID {rest}"));
            }
        } else {
            inn.push(l.to_string());
        }
    }
    (inn, out, pid)
}

#[test]
fn recordio_logs_as_djb() {
    let mut long = vec![b'x'; 700];
    long.extend_from_slice(b"\nend");
    for input in [&b"a\nbb\r\nccc"[..], b"", b"\n\n", &long, b"one line\n"] {
        let (a, b) = both("recordio", &["cat"], input);
        assert_eq!(a.stdout, b.stdout, "stdout for {input:?}");
        assert_eq!(b.stdout, input);
        let (ai, ao, _) = record_log(&a);
        let (bi, bo, _) = record_log(&b);
        assert_eq!(ai, bi, "input log\ndjb: {}\nours: {}", show(&a), show(&b));
        assert_eq!(ao, bo, "output log\ndjb: {}\nours: {}", show(&a), show(&b));
        assert_eq!(a.status.code(), b.status.code());
    }
    let (_, b) = both("recordio", &["cat"], b"a\nbb\r\nccc");
    let (i, o, _) = record_log(&b);
    assert_eq!(
        i,
        [
            "PID < a \n",
            "PID < bb\r \n",
            "PID < ccc+\n",
            "PID < [EOF]\n"
        ]
    );
    assert_eq!(
        o,
        [
            "PID > a \n",
            "PID > bb\r \n",
            "PID > ccc+\n",
            "PID > [EOF]\n"
        ]
    );

    // The pid logged is the program's own: recordio execs it in the original process.
    let o = run(
        &ours("recordio"),
        &[OsStr::new("sh"), OsStr::new("-c"), OsStr::new("echo $$")],
        &env(),
        b"",
    );
    let (_, _, pid) = record_log(&o);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        pid,
        "{}",
        show(&o)
    );

    // A program that stops reading early still has its output passed on and logged
    // (djb's copier dies of SIGPIPE there and loses it).
    let big: Vec<u8> = (1..20000)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let o = run(
        &ours("recordio"),
        &[OsStr::new("head"), OsStr::new("-2")],
        &env(),
        &big,
    );
    assert_eq!(o.stdout, b"1\n2\n", "{}", show(&o));
    let (_, out, _) = record_log(&o);
    assert_eq!(out, ["PID > 1 \n", "PID > 2 \n", "PID > [EOF]\n"]);
    assert_eq!(o.status.code(), Some(0));

    // Exit status is the program's.
    let (a, b) = both("recordio", &["sh", "-c", "exit 7"], b"");
    assert_eq!((a.status.code(), b.status.code()), (Some(7), Some(7)));
    same("recordio", &[], b"");
    let (a, b) = both("recordio", &["/nonexistent/prog"], b"");
    assert_eq!((a.status.code(), b.status.code()), (Some(111), Some(111)));
    let want = "recordio: fatal: unable to run /nonexistent/prog: file does not exist\n";
    assert!(
        String::from_utf8_lossy(&b.stderr).contains(want),
        "{}",
        show(&b)
    );
    assert!(
        String::from_utf8_lossy(&a.stderr).contains(want),
        "{}",
        show(&a)
    );
}

/// Whether a `SigIgn:` line from /proc/PID/status has SIGPIPE's bit.
fn sigpipe_ignored(line: &[u8]) -> bool {
    let t = String::from_utf8_lossy(line);
    let mask = u64::from_str_radix(t.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    mask & (1 << (libc::SIGPIPE - 1)) != 0
}

#[test]
fn argv0_matches_djb() {
    let o = same("argv0", &["/bin/cat", "pretend", "/proc/self/cmdline"], b"");
    assert_eq!(o.stdout, b"pretend\0/proc/self/cmdline\0");
    same(
        "argv0",
        &["/bin/sh", "pretend", "-c", "echo \"$0\" \"$@\"", "a", "b"],
        b"",
    );
    // A bare name is searched in $PATH.
    same("argv0", &["sh", "xx", "-c", "echo $0; exit 3"], b"");
    let o = same("argv0", &["/bin/sh"], b"");
    assert_eq!(o.status.code(), Some(100));
    same("argv0", &[], b"");
    let o = same("argv0", &["/nonexistent/prog", "x"], b"");
    assert_eq!(o.status.code(), Some(111));
    same("argv0", &["no-such-program-anywhere", "x"], b"");
    // Signal dispositions pass through: Rust ignores SIGPIPE at start and the program
    // must not inherit that. (Only SIGPIPE is compared: glibc's thread set-up in our
    // binaries resets two real-time signals a caller may have ignored, which djb's
    // static binaries keep.)
    for prog in ["argv0", "recordio"] {
        let args: &[&str] = if prog == "argv0" {
            &["/bin/grep", "grep", "^SigIgn", "/proc/self/status"]
        } else {
            &["grep", "^SigIgn", "/proc/self/status"]
        };
        let (a, b) = both(prog, args, b"");
        assert!(!sigpipe_ignored(&a.stdout), "{}", show(&a));
        assert!(!sigpipe_ignored(&b.stdout), "{}", show(&b));
    }
}

/// A line server: greets, answers each line with `250 got LINE`, `221` and close on QUIT.
fn smtp_like(s: TcpStream) {
    let mut w = s.try_clone().unwrap();
    let _ = w.write_all(b"220 test ESMTP\r\n");
    let mut r = BufReader::new(s);
    let mut line = Vec::new();
    for _ in 0..100 {
        line.clear();
        if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
            return;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        if text.trim_end().eq_ignore_ascii_case("quit") {
            let _ = w.write_all(b"221 bye\r\n");
            return;
        }
        let _ = w.write_all(format!("250 got {}\n", text.escape_debug()).as_bytes());
    }
}

/// Answers with fixed bytes (CRs, a control byte) and closes.
fn fixed(mut s: TcpStream) {
    let _ = s.write_all(b"line one\r\nctl \x01 and cr\r\r\nlast\r");
}

/// finger: echoes the request line, with its line end visible.
fn finger(s: TcpStream) {
    let mut w = s.try_clone().unwrap();
    let mut line = Vec::new();
    let _ = BufReader::new(s).read_until(b'\n', &mut line);
    let _ = w
        .write_all(format!("you asked {:?}\r\nbye\r\n", String::from_utf8_lossy(&line)).as_bytes());
}

/// HTTP/1.0: headers, then a body quoting the request.
fn http(s: TcpStream) {
    let mut w = s.try_clone().unwrap();
    let mut req = Vec::new();
    let mut r = BufReader::new(s);
    let mut line = Vec::new();
    for _ in 0..50 {
        line.clear();
        if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 || line == b"\r\n" {
            break;
        }
        req.extend_from_slice(&line);
    }
    let body = format!("{:?}\r\nsecond line\r\n", String::from_utf8_lossy(&req));
    let _ = w
        .write_all(format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{body}").as_bytes());
}

fn run_script(script: &Path, path_first: Option<&Path>, args: &[&str], input: &[u8]) -> Output {
    // Through sh rather than exec'd: a script written a moment ago may still be open for
    // writing in a process another test thread is forking (ETXTBSY).
    let mut c = Command::new("/bin/sh");
    c.arg(script).args(args).env_clear();
    let path = match path_first {
        Some(d) => format!("{}:/usr/bin:/bin", d.display()),
        None => "/usr/bin:/bin".to_string(),
    };
    c.env("PATH", path).env("DNSCACHEIP", "127.0.0.1");
    run_with_input(&mut c, input, LIMIT)
}

#[test]
fn scripts_and_mconnect_io_match_djb() {
    let ip = "127.0.0.71";
    tcp_service(ip, 25, Duration::from_secs(60), smtp_like);
    tcp_service(ip, 17, Duration::from_secs(60), fixed);
    tcp_service(ip, 11, Duration::from_secs(60), fixed);
    tcp_service(ip, 13, Duration::from_secs(60), fixed);
    tcp_service(ip, 79, Duration::from_secs(60), finger);
    tcp_service(ip, 80, Duration::from_secs(60), http);
    let port2 = tcp_service(ip, 0, Duration::from_secs(60), http)
        .port()
        .to_string();
    let ourdir = our_path_dir(
        &["tcpclient", "mconnect-io", "addcr", "delcr"],
        &["mconnect", "tcpcat", "who@", "date@", "finger@", "http@"],
    );
    let djbdir = TempDir::new("djbscripts");
    let cases: Vec<(&str, Vec<&str>, &[u8])> = vec![
        ("mconnect", vec![ip], b"HELO x\nMAIL FROM:<a@b>\r\nQUIT\n"),
        ("mconnect", vec![ip, "25"], b"noop\nquit\n"),
        ("tcpcat", vec![ip], b""),
        ("tcpcat", vec![ip, "11"], b""),
        ("who@", vec![ip], b""),
        ("date@", vec![ip], b""),
        ("finger@", vec![ip], b""),
        ("finger@", vec![ip, "someone"], b""),
        ("http@", vec![ip], b""),
        ("http@", vec![ip, "some/path"], b""),
        ("http@", vec![ip, "x", &port2], b""),
    ];
    for (name, args, input) in cases {
        let a = run_script(&djb_script(&djbdir, name), None, &args, input);
        let b = run_script(&ourdir.join(name), Some(ourdir.path()), &args, input);
        assert_eq!(
            a.stdout,
            b.stdout,
            "{name} {args:?}\ndjb: {}\nours: {}",
            show(&a),
            show(&b)
        );
        assert_eq!(a.status.code(), b.status.code(), "{name} {args:?}");
        assert!(!b.stdout.is_empty(), "{name}: {}", show(&b));
    }
    // The scripts pass the server's bytes through delcr and cat -v.
    let b = run_script(&ourdir.join("who@"), Some(ourdir.path()), &[ip], b"");
    assert_eq!(b.stdout, b"line one\nctl ^A and cr^M\nlast^M");
    // Nothing listening: both fail the same way.
    let a = run_script(&djb_script(&djbdir, "tcpcat"), None, &[ip, "1"], b"");
    let b = run_script(&ourdir.join("tcpcat"), Some(ourdir.path()), &[ip, "1"], b"");
    assert_eq!((a.status.code(), b.status.code()), (Some(111), Some(111)));
    assert_eq!(a.stderr, b.stderr);
}

#[test]
fn mconnect_io_adds_crs_and_stops_when_the_server_closes() {
    let addr = tcp_service("127.0.0.72", 0, Duration::from_secs(60), smtp_like);
    let port = addr.port().to_string();
    for bin in [djb("tcpclient"), ours("tcpclient")] {
        let io = if bin.starts_with(djb("tcpclient").parent().unwrap()) {
            djb("mconnect-io")
        } else {
            ours("mconnect-io")
        };
        let mut c = Command::new(&bin);
        c.args(["-RHl0", "127.0.0.72", &port])
            .arg(&io)
            .env_clear()
            .env("PATH", "/usr/bin:/bin");
        let o = run_with_input(&mut c, b"HELO a\nQUIT\n", LIMIT);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "220 test ESMTP\r\n250 got HELO a\\r\\n\n221 bye\r\n",
            "{}",
            show(&o)
        );
        assert_eq!(o.status.code(), Some(0));
    }
}
