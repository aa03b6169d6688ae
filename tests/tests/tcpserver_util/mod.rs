//! Harness for the tcpserver black-box tests: start a server (ours or djb's) on loopback
//! with `-1`, talk to it, collect its stderr, and tiny DNS and ident responders.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
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

/// Options that keep a server from looking names up: `-H -R -l0`.
pub const QUIET: &[&str] = &["-H", "-R", "-l0"];

/// [`QUIET`] followed by `extra`.
pub fn opts<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = QUIET.to_vec();
    v.extend_from_slice(extra);
    v
}

impl Server {
    /// `bin` with [`opts`]`(extra)` on 127.0.0.1 running `svc`, with [`base_env`].
    pub fn quiet(bin: &Path, extra: &[&str], svc: &str) -> Server {
        Self::start(bin, &opts(extra), "127.0.0.1", &[svc], &base_env())
    }

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
        c.stdin(Stdio::null());
        Self::spawn(c, host)
    }

    /// Runs `c`, which must be a tcpserver with `-1` (its first line on standard output
    /// is the port); `host` is where clients connect. `None` if no port is printed.
    pub fn spawn(mut c: Command, host: &str) -> Option<Server> {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
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
    let s = socket2::Socket::new(
        socket2::Domain::for_address(dst),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    s.bind(&SocketAddr::new(src, 0).into())
        .unwrap_or_else(|e| panic!("bind {src}: {e}"));
    s.connect(&dst.into()).expect("connect");
    let s = TcpStream::from(s);
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s
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
    blackbox::compile_rules(&blackbox::djb("tcprules"), dir, name, text)
}

/// Compiles rules text with our tcprules into `dir/name` (for what djb's cannot say).
pub fn our_rules(dir: &blackbox::TempDir, name: &str, text: &str) -> String {
    blackbox::compile_rules(&blackbox::ours("tcprules"), dir, name, text)
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

pub use blackbox::Rr;

/// A DNS responder on `ip`:53 for two minutes (see [`blackbox::dns_responder`]; TCP too
/// when an answer is `Truncated`). Returns the questions asked over UDP.
pub fn dns_server(ip: &str, table: Vec<(&str, u16, Rr)>) -> Arc<Mutex<Vec<String>>> {
    let tcp = table.iter().any(|(_, _, r)| matches!(r, Rr::Truncated));
    let table = table
        .into_iter()
        .map(|(n, t, r)| (n.to_string(), t, r))
        .collect();
    blackbox::dns_responder(ip, table, Duration::from_secs(120), tcp)
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
