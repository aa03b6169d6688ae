//! tcpserver benchmark: Debian's (djb's) tcpserver and ours, alternated round by round in
//! one run, each serving `/bin/echo ok`, K = 1, 10, 100 clients in flight, with and
//! without a 10,000-rule `-x` cdb. Prints per-configuration medians (connections/s,
//! p50/p99 connect-to-first-byte latency) and the paired ratio ours/djb, the rate of a
//! bare fork+exec accept loop as the floor, idle server RSS, and the private memory of a
//! child before exec (held in its ident lookup by a silent identd).
//!
//! Usage: tcpserver-bench --ours PATH --djb PATH --tcprules PATH [--seconds S] [--rounds R]
//! [--set SET] [--only CONF] [--k 1,10,100] [--floor no] (loopback only; needs root for the identds on port 113 and the DNS
//! responder on 127.0.0.212:53).
//!
//! Sets of configurations (`--set`): `classic` (the default; `-HRl0 -c 200`, backlogs
//! left at their defaults, 20 for djb and 4096 for ours; without and with the rules)
//! and `issue16` (`-c1000 -b1024` for both; `-RHl0`, `-RHl0` with the rules, `-Rl0 -h`
//! and no other flags, i.e. `-h`, ident and the local name, with `DNSCACHEIP` pointing
//! at a responder of the bench's own on 127.0.0.212 that answers 127.0.0.1's PTR with
//! `localhost` and `localhost`'s A, and an identd on 127.0.0.1:113 that answers every
//! query with a user name).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    ours: String,
    djb: String,
    tcprules: String,
    seconds: f64,
    rounds: usize,
    set: String,
    only: Option<String>,
    ks: Vec<usize>,
    floor: bool,
}

fn args() -> Args {
    let mut a = Args {
        ours: String::new(),
        djb: "/work/main/.ext/ucspi-tcp/usr/bin/tcpserver".into(),
        tcprules: "/work/main/.ext/ucspi-tcp/usr/bin/tcprules".into(),
        seconds: 2.0,
        rounds: 3,
        set: "classic".into(),
        only: None,
        ks: vec![1, 10, 100],
        floor: true,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < v.len() {
        match v[i].as_str() {
            "--ours" => a.ours = v[i + 1].clone(),
            "--djb" => a.djb = v[i + 1].clone(),
            "--tcprules" => a.tcprules = v[i + 1].clone(),
            "--seconds" => a.seconds = v[i + 1].parse().expect("--seconds"),
            "--rounds" => a.rounds = v[i + 1].parse().expect("--rounds"),
            "--set" => a.set = v[i + 1].clone(),
            "--floor" => a.floor = v[i + 1] != "no",
            "--only" => a.only = Some(v[i + 1].clone()),
            "--k" => {
                a.ks = v[i + 1]
                    .split(',')
                    .map(|k| k.parse().expect("--k"))
                    .collect()
            }
            _ => panic!("unknown argument {}", v[i]),
        }
        i += 2;
    }
    assert!(!a.ours.is_empty(), "--ours PATH is required");
    a
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(cmd: &mut Command) -> Server {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("port from -1");
    Server { child, port }
}

/// One configuration: its name in the table, the flags, and whether it uses the rules.
struct Conf {
    name: &'static str,
    flags: &'static [&'static str],
    rules: bool,
}

const fn conf(name: &'static str, flags: &'static [&'static str], rules: bool) -> Conf {
    Conf { name, flags, rules }
}

const CLASSIC: &[Conf] = &[
    conf("none", &["-HRl0", "-c", "200"], false),
    conf("10k-rules", &["-HRl0", "-c", "200"], true),
];

const ISSUE16: &[Conf] = &[
    conf("none", &["-c1000", "-b1024", "-RHl0"], false),
    conf("10k-rules", &["-c1000", "-b1024", "-RHl0"], true),
    conf("-h", &["-c1000", "-b1024", "-Rl0", "-h"], false),
    conf("default", &["-c1000", "-b1024"], false),
];

/// Where the bench's DNS responder listens (`DNSCACHEIP` of every server it starts).
const DNS_IP: [u8; 4] = [127, 0, 0, 212];

fn tcpserver(bin: &str, rules: Option<&str>, flags: &[&str]) -> Server {
    let mut c = Command::new(bin);
    c.arg("-1").args(flags);
    if let Some(r) = rules {
        c.args(["-x", r]);
    }
    c.args(["127.0.0.1", "0", "/bin/echo", "ok"]);
    c.env_clear()
        .env("PATH", "/bin:/usr/bin")
        .env("DNSCACHEIP", "127.0.0.212");
    start(&mut c)
}

/// The DNS name in `q` from `pos`, lower-cased with dots, and the position after it
/// (no compression: queries carry none).
fn qname(q: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    loop {
        let n = *q.get(pos)? as usize;
        pos += 1;
        if n == 0 {
            return Some((labels.join("."), pos));
        }
        if n > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(pos..pos + n)?).to_ascii_lowercase());
        pos += n;
    }
}

/// The answer to a query: 127.0.0.1's PTR is `localhost`, `localhost`'s A is 127.0.0.1,
/// all else NXDOMAIN.
fn dns_answer(q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 || q[4..6] != [0, 1] {
        return None;
    }
    let (name, end) = qname(q, 12)?;
    let qtype = u16::from_be_bytes(q.get(end..end + 2)?.try_into().ok()?);
    let question = q.get(12..end + 4)?;
    let data: Option<Vec<u8>> = match (name.as_str(), qtype) {
        ("1.0.0.127.in-addr.arpa", 12) => Some(b"\x09localhost\x00".to_vec()),
        ("localhost", 1) => Some(vec![127, 0, 0, 1]),
        _ => None,
    };
    let known = name == "1.0.0.127.in-addr.arpa" || name == "localhost";
    let mut r = Vec::with_capacity(64);
    r.extend_from_slice(&q[0..2]);
    let rcode = if known { 0 } else { 3 };
    r.extend_from_slice(&(0x8180u16 | (u16::from(q[2] & 1) << 8) | rcode).to_be_bytes());
    r.extend_from_slice(&[0, 1, 0, u8::from(data.is_some()), 0, 0, 0, 0]);
    r.extend_from_slice(question);
    if let Some(d) = data {
        r.extend_from_slice(&[0xc0, 0x0c]);
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 1, 0x2c]);
        r.extend_from_slice(&(d.len() as u16).to_be_bytes());
        r.extend_from_slice(&d);
    }
    Some(r)
}

/// The DNS responder on [`DNS_IP`]:53 (UDP; the answers fit).
fn dns_responder() {
    let u = std::net::UdpSocket::bind(SocketAddr::from((DNS_IP, 53)))
        .expect("DNS responder on 127.0.0.212:53 (root?)");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, peer)) = u.recv_from(&mut buf) else {
                continue;
            };
            if let Some(a) = dns_answer(&buf[..n]) {
                let _ = u.send_to(&a, peer);
            }
        }
    });
}

/// An identd on 127.0.0.1:113 that names a user for every query, on four threads.
fn identd() {
    let l = TcpListener::bind("127.0.0.1:113").expect("identd on 127.0.0.1:113 (root?)");
    for _ in 0..4 {
        let l = l.try_clone().unwrap();
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut q = Vec::new();
                let mut buf = [0u8; 128];
                while !q.contains(&b'\n') && q.len() < 512 {
                    match s.read(&mut buf) {
                        Ok(n) if n > 0 => q.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                }
                let ports = String::from_utf8_lossy(&q);
                let ports = ports.trim_end();
                let _ = std::io::Write::write_all(
                    &mut s,
                    format!("{ports} : USERID : UNIX : bench\r\n").as_bytes(),
                );
            }
        });
    }
}

/// The floor: accept, fork, dup2, execve, nothing else.
fn floor_server() -> ! {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", l.local_addr().unwrap().port());
    // SAFETY: plain libc calls in a single-threaded process; children are reaped by the
    // kernel (SIGCHLD ignored).
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
        let prog = c"/bin/echo";
        let argv = [prog.as_ptr(), c"ok".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        loop {
            let t = libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut());
            if t < 0 {
                continue;
            }
            if libc::fork() == 0 {
                libc::close(fd);
                libc::dup2(t, 0);
                libc::dup2(t, 1);
                libc::close(t);
                libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(111);
            }
            libc::close(t);
        }
    }
}

struct Sample {
    rate: f64,
    p50: f64,
    p99: f64,
}

/// K clients, each connecting, reading to EOF, again, for `secs` seconds.
fn load(port: u16, k: usize, secs: f64) -> Sample {
    let stop = Arc::new(AtomicBool::new(false));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let hs: Vec<_> = (0..k)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                    else {
                        continue;
                    };
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    match s.read(&mut buf) {
                        Ok(n) if n > 0 => lat.push(t0.elapsed().as_secs_f64()),
                        _ => continue,
                    }
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                    }
                }
                lat
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<f64> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if all.is_empty() {
            f64::NAN
        } else {
            all[((all.len() - 1) as f64 * p) as usize] * 1000.0
        }
    };
    Sample {
        rate: all.len() as f64 / elapsed,
        p50: pct(0.5),
        p99: pct(0.99),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn private_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        // Dirty only: a text page that the child alone maps counts as Private_Clean, and
        // the fewer text windows the parent maps, the more of those there are, though
        // they are page cache shared with every other process mapping the file.
        .filter(|l| l.starts_with("Private_Dirty"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

fn children(pid: u32) -> Vec<i32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(n) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(st) = std::fs::read_to_string(format!("/proc/{n}/stat")) {
            let rest = &st[st.rfind(')').map_or(0, |i| i + 2)..];
            if rest.split(' ').nth(1).and_then(|p| p.parse().ok()) == Some(pid) {
                v.push(n);
            }
        }
    }
    v
}

/// Private dirty memory of a child held before exec (in its ident lookup).
fn pre_exec_private_kb(bin: &str) -> u64 {
    let s = tcpserver(bin, None, &["-HRl0", "-c", "200", "-r", "-t", "5"]);
    let src: SocketAddr = ([127, 0, 0, 201], 0).into();
    // SAFETY: plain socket calls; the fd is wrapped at once.
    let _conn = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let sin = sockaddr_in(src);
        libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), 16);
        let dst = sockaddr_in(([127, 0, 0, 1], s.port).into());
        libc::connect(fd, (&dst as *const libc::sockaddr_in).cast(), 16);
        <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd)
    };
    std::thread::sleep(Duration::from_millis(500));
    let kids = children(s.child.id());
    kids.first().map_or(0, |&c| private_kb(c))
}

fn sockaddr_in(a: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(v4) = a else {
        unreachable!()
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--floor") {
        floor_server();
    }
    let a = args();
    let dir = std::env::temp_dir().join(format!("tcpserver-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 10,000 rules that do not match the client, then a default allow.
    let mut text = String::new();
    for i in 0..10_000u32 {
        text.push_str(&format!(
            "10.{}.{}.{}:allow,N=\"{i}\"\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    text.push_str(":allow\n");
    let cdb = dir.join("rules.cdb");
    let mut tr = Command::new(&a.tcprules)
        .arg(&cdb)
        .arg(dir.join("rules.tmp"))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(tr.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    drop(tr.stdin.take());
    assert!(tr.wait().unwrap().success());
    let cdb = cdb.to_str().unwrap().to_string();

    // A silent identd for the pre-exec memory probe.
    if let Ok(l) = TcpListener::bind("127.0.0.201:113") {
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in l.incoming().flatten().take(100) {
                held.push(s);
            }
        });
    }

    println!(
        "tcpserver benchmark: {} s per run, {} rounds, alternating djb/ours",
        a.seconds, a.rounds
    );
    println!(
        "{:<10} {:>4} {:>10} {:>10} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "rules",
        "K",
        "djb c/s",
        "ours c/s",
        "ratio",
        "djb p50",
        "ours p50",
        "djb p99",
        "ours p99",
        "floor"
    );
    let me = std::env::current_exe().unwrap();
    let confs = match a.set.as_str() {
        "classic" => CLASSIC,
        "issue16" => {
            dns_responder();
            identd();
            ISSUE16
        }
        s => panic!("unknown --set {s}: classic or issue16"),
    };
    for conf in confs {
        if a.only.as_deref().is_some_and(|o| o != conf.name) {
            continue;
        }
        let rules = conf.rules.then_some(cdb.as_str());
        println!(
            "flags: {}{}",
            conf.flags.join(" "),
            if conf.rules { " -x rules.cdb" } else { "" }
        );
        for &k in &a.ks {
            let (mut dr, mut or, mut ratio, mut fl) = (vec![], vec![], vec![], vec![]);
            let (mut d50, mut o50, mut d99, mut o99) = (vec![], vec![], vec![], vec![]);
            for round in 0..a.rounds {
                let order: [&str; 2] = if round % 2 == 0 {
                    [&a.djb, &a.ours]
                } else {
                    [&a.ours, &a.djb]
                };
                let mut got = [0.0f64; 2];
                for bin in order {
                    let s = tcpserver(bin, rules, conf.flags);
                    let r = load(s.port, k, a.seconds);
                    if bin == a.djb {
                        got[0] = r.rate;
                        dr.push(r.rate);
                        d50.push(r.p50);
                        d99.push(r.p99);
                    } else {
                        got[1] = r.rate;
                        or.push(r.rate);
                        o50.push(r.p50);
                        o99.push(r.p99);
                    }
                }
                ratio.push(got[1] / got[0]);
                if a.floor && conf.name == "none" {
                    let f = start(Command::new(&me).arg("--floor"));
                    fl.push(load(f.port, k, a.seconds).rate);
                }
            }
            println!(
                "{:<10} {:>4} {:>10.0} {:>10.0} {:>7.3} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8}",
                conf.name,
                k,
                median(dr),
                median(or),
                median(ratio),
                median(d50),
                median(o50),
                median(d99),
                median(o99),
                if fl.is_empty() {
                    "-".to_string()
                } else {
                    format!("{:.0}", median(fl))
                }
            );
        }
    }
    let idle = |bin: &str| {
        let s = tcpserver(bin, None, confs[0].flags);
        std::thread::sleep(Duration::from_millis(200));
        rss_kb(s.child.id())
    };
    let (di, oi) = (idle(&a.djb), idle(&a.ours));
    println!(
        "idle RSS: djb {di} kB, ours {oi} kB, ratio {:.2}",
        oi as f64 / di as f64
    );
    let (dp, op) = (pre_exec_private_kb(&a.djb), pre_exec_private_kb(&a.ours));
    println!(
        "pre-exec child private dirty memory: djb {dp} kB, ours {op} kB, ratio {:.2}",
        op as f64 / dp.max(1) as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
