//! Harness for the tcpserver black-box tests: start a server (ours or djb's) on loopback
//! with `-1`, talk to it, collect its stderr, and tiny DNS and ident responders.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const LIMIT: Duration = Duration::from_secs(20);

pub fn ours() -> PathBuf {
    blackbox::ours("tcpserver")
}

pub fn djb() -> PathBuf {
    blackbox::djb("tcpserver")
}

/// A running server; killed (SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub host: String,
    log: Arc<Mutex<Vec<String>>>,
}

/// Environment every server gets: a PATH and stale TCP variables that must not leak.
pub fn base_env() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("TCPREMOTEHOST".into(), "stale.example".into()),
        ("TCPREMOTEINFO".into(), "stale".into()),
        ("TCPLOCALHOST".into(), "stale.example".into()),
        ("KEEP".into(), "me".into()),
    ]
}

impl Server {
    /// Starts `bin args... host 0 prog...` with `-1` (added first) and `env` only.
    pub fn start(
        bin: &Path,
        opts: &[&str],
        host: &str,
        prog: &[&str],
        env: &[(String, String)],
    ) -> Server {
        Self::try_start(bin, opts, host, prog, env).expect("server did not print its port")
    }

    pub fn try_start(
        bin: &Path,
        opts: &[&str],
        host: &str,
        prog: &[&str],
        env: &[(String, String)],
    ) -> Option<Server> {
        let mut c = Command::new(bin);
        c.arg("-1").args(opts).arg(host).arg("0").args(prog);
        c.env_clear();
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn server");
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                match line {
                    Ok(l) => l2.lock().unwrap().push(l),
                    Err(_) => break,
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let port: u16 = match line.trim().parse() {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        };
        Some(Server {
            child,
            port,
            host: if host == "0" || host.is_empty() {
                "127.0.0.1".into()
            } else {
                host.into()
            },
            log,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        let ip: IpAddr = self
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        SocketAddr::new(ip, self.port)
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect_timeout(&self.addr(), LIMIT).expect("connect");
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s
    }

    /// Connects (from `from` if given), sends `input`, half-closes, reads to EOF.
    pub fn talk_from(&self, from: Option<IpAddr>, input: &[u8]) -> Vec<u8> {
        let mut s = match from {
            Some(ip) => connect_from(ip, self.addr()),
            None => self.connect(),
        };
        let _ = s.write_all(input);
        let _ = s.shutdown(std::net::Shutdown::Write);
        read_all(&mut s)
    }

    pub fn talk(&self, input: &[u8]) -> Vec<u8> {
        self.talk_from(None, input)
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log has a line for which `f` holds (bounded).
    pub fn wait_log(&self, f: impl Fn(&[String]) -> bool) -> Vec<String> {
        let start = Instant::now();
        loop {
            let l = self.log();
            if f(&l) || start.elapsed() > LIMIT {
                return l;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until a child has ended and the last line is a `status: 0/` line.
    pub fn wait_idle(&self) -> Vec<String> {
        self.wait_log(|l| {
            l.iter().any(|x| x.starts_with("tcpserver: end "))
                && l.last()
                    .is_some_and(|x| x.starts_with("tcpserver: status: 0/"))
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn read_all(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v);
    v
}

/// A TCP connection from a chosen loopback source address.
pub fn connect_from(src: IpAddr, dst: SocketAddr) -> TcpStream {
    let dom = if dst.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket calls on a fresh fd that TcpStream then owns.
    unsafe {
        let fd = libc::socket(dom, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let (sa, len) = ucspi::sock::to_sockaddr(&SocketAddr::new(src, 0));
        assert_eq!(
            libc::bind(fd, (&sa as *const libc::sockaddr_storage).cast(), len),
            0,
            "bind {src}"
        );
        let (da, dlen) = ucspi::sock::to_sockaddr(&dst);
        assert_eq!(
            libc::connect(fd, (&da as *const libc::sockaddr_storage).cast(), dlen),
            0,
            "connect"
        );
        let s = TcpStream::from_raw_fd(fd);
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s
    }
}

/// Writes an executable shell script and returns its path.
pub fn script(dir: &blackbox::TempDir, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_str().unwrap().to_string()
}

/// Compiles rules text with djb's tcprules into `dir/name`.
pub fn rules(dir: &blackbox::TempDir, name: &str, text: &str) -> String {
    let cdb = dir.join(name);
    let tmp = dir.join(&format!("{name}.tmp"));
    let o = blackbox::run_with_input(
        Command::new(blackbox::djb("tcprules")).arg(&cdb).arg(&tmp),
        text.as_bytes(),
        Duration::from_secs(10),
    );
    assert!(o.status.success(), "{}", blackbox::show(&o));
    cdb.to_str().unwrap().to_string()
}

/// Replaces pids and port numbers in log lines so two servers' logs compare.
pub fn normalise(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let w: Vec<String> = l
                .split(' ')
                .enumerate()
                .map(|(i, w)| {
                    let conn = l.starts_with("tcpserver: ok ") || l.starts_with("tcpserver: deny ");
                    let child =
                        l.starts_with("tcpserver: pid ") || l.starts_with("tcpserver: end ");
                    if (conn || child) && i == 2 {
                        "PID".into()
                    } else if conn && i >= 3 {
                        // The last field of each address part is a port.
                        let mut parts: Vec<&str> = w.split(':').collect();
                        let n = parts.len();
                        parts[n - 1] = "PORT";
                        parts.join(":")
                    } else {
                        w.to_string()
                    }
                })
                .collect();
            w.join(" ")
        })
        .collect()
}

/// Runs a closure against djb's server and ours with the same arguments.
pub fn both(f: impl Fn(&Path) -> Vec<String>) {
    let a = f(&djb());
    let b = f(&ours());
    assert_eq!(a, b, "djb (left) and ours (right) differ");
}

/// How DNS should answer one name.
#[derive(Clone)]
pub enum Answer {
    Ptr(&'static str),
    A([u8; 4]),
    Aaaa([u8; 16]),
    ServFail,
    Silent,
    /// Over UDP: an empty reply with TC set; over TCP: the table's other answers.
    Truncated,
}

fn wire_to_dot(p: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    loop {
        let n = *p.get(pos)? as usize;
        pos += 1;
        if n == 0 {
            return Some((out.to_ascii_lowercase(), pos));
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&String::from_utf8_lossy(p.get(pos..pos + n)?));
        pos += n;
    }
}

fn dot_to_wire(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in s.split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// The reply to query `q` from `table` (`None`: stay silent). `udp`: whether a
/// `Truncated` answer sets TC (over TCP the real records are sent).
fn dns_reply(q: &[u8], table: &[(&'static str, u16, Answer)], udp: bool) -> Option<Vec<u8>> {
    let (name, end) = wire_to_dot(q, 12)?;
    let qtype = u16::from_be_bytes([*q.get(end)?, *q.get(end + 1)?]);
    let question = q.get(12..end + 4)?;
    let answers: Vec<&Answer> = table
        .iter()
        .filter(|(nm, t, _)| *nm == name && *t == qtype)
        .map(|(_, _, a)| a)
        .collect();
    if answers.iter().any(|a| matches!(a, Answer::Silent)) {
        return None;
    }
    let mut r = vec![q[0], q[1], 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
    r.extend_from_slice(question);
    let mut count = 0u16;
    let mut rcode = if answers.is_empty() { 3 } else { 0 };
    let truncated = udp && answers.iter().any(|a| matches!(a, Answer::Truncated));
    for a in &answers {
        let (t, data) = match a {
            Answer::Ptr(s) => (12u16, dot_to_wire(s)),
            Answer::A(b) => (1, b.to_vec()),
            Answer::Aaaa(b) => (28, b.to_vec()),
            Answer::ServFail => {
                rcode = 2;
                continue;
            }
            Answer::Silent | Answer::Truncated => continue,
        };
        r.extend_from_slice(&[0xc0, 12]);
        r.extend_from_slice(&t.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(&data);
        count += 1;
    }
    if rcode == 2 || truncated {
        r.truncate(12 + question.len());
        count = 0;
    }
    if truncated {
        r[2] |= 0x02;
    }
    r[3] = 0x80 | rcode;
    r[6..8].copy_from_slice(&count.to_be_bytes());
    Some(r)
}

/// A DNS responder on `ip`:53 (UDP, and TCP for truncated answers) answering from
/// `table` (name, qtype) → answers; other questions get NXDOMAIN. Runs for at most two
/// minutes. Returns a counter of UDP queries.
pub fn dns_server(ip: &str, table: Vec<(&'static str, u16, Answer)>) -> Arc<Mutex<u32>> {
    let sock = UdpSocket::bind((ip, 53)).expect("bind DNS responder (needs root)");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let count = Arc::new(Mutex::new(0));
    let c2 = count.clone();
    let table = Arc::new(table);
    if table.iter().any(|(_, _, a)| matches!(a, Answer::Truncated)) {
        let l = TcpListener::bind((ip, 53)).expect("bind DNS TCP responder");
        let t2 = table.clone();
        std::thread::spawn(move || {
            for s in l.incoming().take(20) {
                let Ok(mut s) = s else { continue };
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if s.read_exact(&mut q).is_err() {
                    continue;
                }
                if let Some(r) = dns_reply(&q, &t2, false) {
                    let _ = s.write_all(&(r.len() as u16).to_be_bytes());
                    let _ = s.write_all(&r);
                }
            }
        });
    }
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut buf = [0u8; 512];
        while start.elapsed() < Duration::from_secs(120) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            *c2.lock().unwrap() += 1;
            if let Some(r) = dns_reply(&buf[..n], &table, true) {
                let _ = sock.send_to(&r, from);
            }
        }
    });
    count
}

/// An identd on `ip`:113 that answers `reply(request_line)` or, with `None`, never answers.
pub fn identd(ip: &str, reply: fn(&str) -> Option<String>) {
    let l = TcpListener::bind((ip, 113)).expect("bind identd (needs root)");
    std::thread::spawn(move || {
        let start = Instant::now();
        for s in l.incoming() {
            if start.elapsed() > Duration::from_secs(120) {
                break;
            }
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut line = String::new();
                let _ = BufReader::new(s.try_clone().unwrap()).read_line(&mut line);
                match reply(line.trim_end()) {
                    Some(r) => {
                        let _ = s.write_all(r.as_bytes());
                    }
                    None => std::thread::sleep(Duration::from_secs(5)),
                }
            });
        }
    });
}

/// Child-process numbers of `pid` (from /proc).
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut v = Vec::new();
    if let Ok(d) = std::fs::read_dir("/proc") {
        for e in d.flatten() {
            let Ok(n) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Ok(st) = std::fs::read_to_string(format!("/proc/{n}/stat")) {
                let rest = &st[st.rfind(')').map_or(0, |i| i + 2)..];
                let f: Vec<&str> = rest.split(' ').collect();
                if f.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(pid) {
                    v.push(n);
                }
            }
        }
    }
    v
}

pub fn zombies_of(pid: i32) -> usize {
    children_of(pid)
        .iter()
        .filter(|c| {
            std::fs::read_to_string(format!("/proc/{c}/stat"))
                .map(|s| s[s.rfind(')').unwrap_or(0)..].starts_with(") Z"))
                .unwrap_or(false)
        })
        .count()
}
