//! Soak and overload (issue 15): figures, not assertions. Four scenarios against our
//! tcpserver and sslserver on loopback, each printing a summary:
//!
//! 1. `overload`: tcpserver `-c 40 -RHl0` under 10x overload (400 clients in flight, half
//!    of them slow senders), the server sampled from /proc every 100 ms.
//! 2. `fair`: `-c 40 -C 5`, 50 clients from 127.0.0.2 and one each from 50 other addresses:
//!    per-address served counts and latency.
//! 3. `row`: N connections in a row to a trivial program: the server's RSS and fds at
//!    10k, 100k and 1M (or N).
//! 4. `tls`: sslserver `-c 40 -T 2` under a full-handshake flood with clients stalled
//!    mid-ClientHello among them.
//!
//! Usage: soak --tcpserver PATH --sslserver PATH [--only overload,fair,row,tls]
//!             [--overload-seconds 60] [--fair-seconds 20] [--row 1000000]
//!             [--tls-seconds 60] [--stderr]
//! `soak --answer MS` is the program the servers run in scenarios 1 and 2: it reads a
//! line, waits MS milliseconds, writes `ok`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

struct Args {
    tcpserver: String,
    sslserver: String,
    only: Vec<String>,
    overload_seconds: f64,
    fair_seconds: f64,
    row: u64,
    tls_seconds: f64,
    stderr: bool,
}

fn args() -> Args {
    let mut a = Args {
        tcpserver: String::new(),
        sslserver: String::new(),
        only: ["overload", "fair", "row", "tls"]
            .map(String::from)
            .to_vec(),
        overload_seconds: 60.0,
        fair_seconds: 20.0,
        row: 1_000_000,
        tls_seconds: 60.0,
        stderr: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        if v[i] == "--stderr" {
            a.stderr = true;
            i += 1;
            continue;
        }
        let val = v
            .get(i + 1)
            .unwrap_or_else(|| panic!("{} needs a value", v[i]));
        match v[i].as_str() {
            "--tcpserver" => a.tcpserver = val.clone(),
            "--sslserver" => a.sslserver = val.clone(),
            "--only" => a.only = val.split(',').map(String::from).collect(),
            "--overload-seconds" => a.overload_seconds = val.parse().expect("seconds"),
            "--fair-seconds" => a.fair_seconds = val.parse().expect("seconds"),
            "--row" => a.row = val.parse().expect("count"),
            "--tls-seconds" => a.tls_seconds = val.parse().expect("seconds"),
            _ => panic!("unknown argument {}", v[i]),
        }
        i += 2;
    }
    a
}

// ---------------------------------------------------------------------------------------
// The program behind the server in scenarios 1 and 2.

/// Reads one line (or to EOF, at most 1 KiB) from stdin, waits `ms`, answers `ok`: a
/// compiled program rather than a shell so that what holds the slot is the wait, not the
/// fork and exec of `sleep`.
fn answer(ms: u64) -> ! {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 1];
    for _ in 0..1024 {
        match stdin.read(&mut buf) {
            Ok(1) if buf[0] != b'\n' => continue,
            _ => break,
        }
    }
    thread::sleep(Duration::from_millis(ms));
    let _ = std::io::stdout().write_all(b"ok\n");
    std::process::exit(0)
}

// ---------------------------------------------------------------------------------------
// The server, in a process group of its own so that one kill reaches its children and
// their programs too.

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port)
    }
}

impl Drop for Server {
    /// Runs on return and while unwinding from a panic: the whole group, then the wait.
    fn drop(&mut self) {
        let pg = self.child.id() as libc::pid_t;
        // SAFETY: signals to a process group we created (process_group(0) at spawn).
        unsafe {
            libc::kill(-pg, libc::SIGTERM);
        }
        thread::sleep(Duration::from_millis(200));
        // SAFETY: as above; whatever ignored SIGTERM.
        unsafe {
            libc::kill(-pg, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The port in a `-1` line: tcpserver's `PORT`, or sslserver's `IP : PORT [c/c]`.
fn port_of(line: &str) -> u16 {
    let t = match line.split_once(" : ") {
        Some((_, rest)) => rest.split_whitespace().next().unwrap_or(""),
        None => line.trim(),
    };
    t.parse()
        .unwrap_or_else(|_| panic!("no port in -1 line {line:?}"))
}

fn start(bin: &str, opts: &[&str], prog: &[&str], env: &[(&str, PathBuf)], stderr: bool) -> Server {
    let mut c = Command::new(bin);
    c.arg("-1")
        .args(opts)
        .args(["127.0.0.1", "0"])
        .args(prog)
        .env_clear()
        .env("PATH", "/bin:/usr/bin")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if stderr {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("start server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = port_of(&line);
    println!(
        "  {} -1 {} 127.0.0.1 0 {}",
        bin,
        opts.join(" "),
        prog.join(" ")
    );
    Server { child, port }
}

// ---------------------------------------------------------------------------------------
// /proc.

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn fd_count(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

/// Nanoseconds the process has spent on a run queue waiting for a CPU.
fn run_queue_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// The server's direct children (its connection processes) and their states.
fn children(pid: u32) -> Vec<(u32, char)> {
    let list =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    list.split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .filter_map(|c| {
            let stat = std::fs::read_to_string(format!("/proc/{c}/stat")).ok()?;
            // The state follows the command's closing parenthesis.
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some((c, state))
        })
        .collect()
}

#[derive(Clone, Copy, Default)]
struct Sample {
    t: f64,
    children: usize,
    /// Children in state Z that were already zombies in the previous sample: not reaped
    /// for at least one sampling interval.
    old_zombies: usize,
    /// The most consecutive samples (this one included) in which one child was a zombie.
    zombie_streak: usize,
    /// Milliseconds the server spent runnable but waiting for a CPU since the previous
    /// sample (/proc/PID/schedstat): tells a parent that did not reap from one that did
    /// not run.
    waited_ms: f64,
    fds: u64,
    rss: u64,
}

/// Samples the server every 100 ms until dropped.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<Vec<Sample>>>,
}

impl Sampler {
    fn new(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = thread::spawn(move || {
            let t0 = Instant::now();
            let mut out = Vec::new();
            let mut zombies: HashMap<u32, usize> = HashMap::new();
            let mut waited = run_queue_ns(pid);
            // Bounded: at most two hours of samples, whatever the caller does.
            while !s.load(Ordering::Relaxed) && out.len() < 72_000 {
                let kids = children(pid);
                let now_z: HashMap<u32, usize> = kids
                    .iter()
                    .filter(|k| k.1 == 'Z')
                    .map(|k| (k.0, zombies.get(&k.0).map_or(1, |n| n + 1)))
                    .collect();
                let old = now_z.values().filter(|n| **n > 1).count();
                let streak = now_z.values().copied().max().unwrap_or(0);
                zombies = now_z;
                let w = run_queue_ns(pid);
                let waited_ms = w.saturating_sub(waited) as f64 / 1e6;
                waited = w;
                out.push(Sample {
                    t: t0.elapsed().as_secs_f64(),
                    children: kids.len(),
                    old_zombies: old,
                    zombie_streak: streak,
                    waited_ms,
                    fds: fd_count(pid),
                    rss: rss_kb(pid),
                });
                thread::sleep(Duration::from_millis(100));
            }
            out
        });
        Sampler {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Min/max of fds and RSS over samples in [from, to) seconds.
fn window(s: &[Sample], from: f64, to: f64) -> String {
    let w: Vec<&Sample> = s.iter().filter(|x| x.t >= from && x.t < to).collect();
    if w.is_empty() {
        return "no samples".into();
    }
    let fmin = w.iter().map(|x| x.fds).min().unwrap();
    let fmax = w.iter().map(|x| x.fds).max().unwrap();
    let rmin = w.iter().map(|x| x.rss).min().unwrap();
    let rmax = w.iter().map(|x| x.rss).max().unwrap();
    format!(
        "fds {fmin}..{fmax}, RSS {rmin}..{rmax} kB ({} samples)",
        w.len()
    )
}

fn report_samples(s: &[Sample], load_secs: f64) {
    let maxc = s.iter().map(|x| x.children).max().unwrap_or(0);
    let maxz = s.iter().map(|x| x.old_zombies).max().unwrap_or(0);
    let streak = s.iter().map(|x| x.zombie_streak).max().unwrap_or(0);
    let with = s.iter().filter(|x| x.old_zombies > 0).count();
    let gaps = s.windows(2).map(|w| w[1].t - w[0].t).fold(0.0, f64::max);
    println!(
        "  samples {} (largest gap {:.0} ms); children max {maxc}; zombies older than one sample max {maxz} (in {with} samples; one zombie seen in at most {streak} consecutive samples)",
        s.len(),
        gaps * 1000.0
    );
    // Whether the parent was kept off the CPU when zombies stayed: its run-queue wait in
    // the interval before each such sample, against all samples.
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (pct(&v, 0.5), pct(&v, 1.0))
    };
    let (all50, allmax) = median(s.iter().map(|x| x.waited_ms).collect());
    println!("  server's run-queue wait per interval: median {all50:.1} ms, max {allmax:.1}");
    if with > 0 {
        let (z50, zmax) = median(
            s.iter()
                .filter(|x| x.old_zombies > 0)
                .map(|x| x.waited_ms)
                .collect(),
        );
        println!("    in the intervals before the samples with old zombies: median {z50:.1} ms, max {zmax:.1}");
    }
    let edge = 10f64.min(load_secs / 2.0);
    println!("  first {edge:.0} s: {}", window(s, 0.0, edge));
    println!(
        "  last {edge:.0} s:  {}",
        window(s, load_secs - edge, load_secs)
    );
}

// ---------------------------------------------------------------------------------------
// Client sockets.

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// A connection from `src` (any 127.0.0.0/8 address works on loopback) with a 30 s bound
/// on connect (SO_SNDTIMEO applies to connect on Linux), reads and writes.
fn connect_from(src: Ipv4Addr, dst: SocketAddrV4) -> std::io::Result<TcpStream> {
    let err = std::io::Error::last_os_error;
    // SAFETY: a fresh socket, owned by the TcpStream at once so that every return closes it.
    let s = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(err());
        }
        TcpStream::from_raw_fd(fd)
    };
    s.set_write_timeout(Some(TIMEOUT))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_nodelay(true)?;
    let fd = s.as_raw_fd();
    let one: libc::c_int = 1;
    let local = sockaddr(SocketAddrV4::new(src, 0));
    let remote = sockaddr(dst);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: valid fd and properly sized sockaddr_in/int arguments.
    unsafe {
        // The port is chosen at connect, for the full 4-tuple: without this a bind to port
        // 0 takes a port for the source address alone, and a long run runs out of them.
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        if libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(err());
        }
        if libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(err());
        }
    }
    Ok(s)
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Outcome {
    /// The program's `ok` arrived.
    Served,
    /// connect failed with ECONNREFUSED.
    Refused,
    /// connect failed otherwise (timeout included).
    ConnectFailed,
    /// ECONNRESET or EPIPE after connecting.
    Reset,
    /// End of stream without the answer (with `-C N:busy`: `busy`, the per-IP refusal).
    Closed,
    /// Nothing within 30 s.
    Timeout,
    /// Any other error (a TLS alert or a certificate the client rejects, say).
    Error,
}

fn io_outcome(e: &std::io::Error) -> Outcome {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => {
            Outcome::Reset
        }
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Outcome::Timeout,
        _ => Outcome::Error,
    }
}

/// One request: connect, send a line (a byte at a time with `pause` between bytes when
/// given), read to the end. The outcome, the seconds from connect to the answer, and
/// whether the server said `busy`.
fn request(src: Ipv4Addr, dst: SocketAddrV4, pause: Option<Duration>) -> (Outcome, f64, bool) {
    let t0 = Instant::now();
    let mut s = match connect_from(src, dst) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            return (Outcome::Refused, 0.0, false)
        }
        Err(_) => return (Outcome::ConnectFailed, 0.0, false),
    };
    let line = b"hello\n";
    let sent = match pause {
        None => s.write_all(line),
        Some(p) => line.iter().try_for_each(|b| {
            s.write_all(std::slice::from_ref(b))?;
            thread::sleep(p);
            Ok(())
        }),
    };
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let mut end = Outcome::Closed;
    // Bounded by the read timeout and by the size of what is kept.
    while got.len() < 4096 {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                end = io_outcome(&e);
                break;
            }
        }
    }
    let busy = got.starts_with(b"busy");
    if got.starts_with(b"ok") {
        return (Outcome::Served, t0.elapsed().as_secs_f64(), false);
    }
    // The server may have closed before the line was all sent (a per-IP refusal).
    if end == Outcome::Closed {
        if let Err(e) = sent {
            end = io_outcome(&e);
        }
    }
    (end, t0.elapsed().as_secs_f64(), busy)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn latencies(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!(
        "p50 {:.0} ms, p90 {:.0}, p99 {:.0}, max {:.0}",
        pct(&v, 0.5) * 1e3,
        pct(&v, 0.9) * 1e3,
        pct(&v, 0.99) * 1e3,
        pct(&v, 1.0) * 1e3
    )
}

fn count(v: &[(Outcome, f64, bool)], o: Outcome) -> usize {
    v.iter().filter(|r| r.0 == o).count()
}

// ---------------------------------------------------------------------------------------
// Scenario 1: 10x overload.

const HOLD_MS: &str = "300";

fn overload(a: &Args, me: &str) {
    let secs = a.overload_seconds;
    println!(
        "\n== 1. overload: tcpserver -c 40, 400 clients in flight (200 slow senders: one byte per 60 ms), {secs} s; program holds each connection {HOLD_MS} ms =="
    );
    let srv = start(
        &a.tcpserver,
        &["-RHl0", "-c", "40"],
        &[me, "--answer", HOLD_MS],
        &[],
        a.stderr,
    );
    let dst = srv.addr();
    let sampler = Sampler::new(srv.pid());
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(secs);
    let in_flight = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..400)
        .map(|i| {
            let in_flight = in_flight.clone();
            thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let slow = (i % 2 == 1).then(|| Duration::from_millis(60));
                    let mut out = Vec::new();
                    // Bounded by the deadline; each request by its 30 s timeouts.
                    while Instant::now() < deadline {
                        in_flight.fetch_add(1, Ordering::Relaxed);
                        let r = request(Ipv4Addr::LOCALHOST, dst, slow);
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        out.push((r, slow.is_some()));
                    }
                    out
                })
                .expect("spawn client")
        })
        .collect();
    // The clients stop starting new connections at the deadline; what is queued then is
    // still served (drained) within the timeouts. Note how many were in flight.
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    let at_deadline = in_flight.load(Ordering::Relaxed);
    let results: Vec<((Outcome, f64, bool), bool)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let drained = t0.elapsed().as_secs_f64() - secs;
    let samples = sampler.finish();
    drop(srv);

    let all: Vec<(Outcome, f64, bool)> = results.iter().map(|r| r.0).collect();
    println!(
        "  connects attempted {}; served {}; refused {}; connect failed {}; reset {}; closed without answer {}; timed out {}",
        all.len(),
        count(&all, Outcome::Served),
        count(&all, Outcome::Refused),
        count(&all, Outcome::ConnectFailed),
        count(&all, Outcome::Reset),
        count(&all, Outcome::Closed),
        count(&all, Outcome::Timeout)
    );
    println!(
        "  in flight at the deadline {at_deadline}, all finished {drained:.1} s after it; served/s {:.1}",
        count(&all, Outcome::Served) as f64 / (secs + drained)
    );
    for (slow, name) in [(false, "fast senders"), (true, "slow senders")] {
        let l: Vec<f64> = results
            .iter()
            .filter(|r| r.1 == slow && r.0 .0 == Outcome::Served)
            .map(|r| r.0 .1)
            .collect();
        println!(
            "  {name}: served {}, connect to answer {}",
            l.len(),
            latencies(l)
        );
    }
    report_samples(&samples, secs);
}

// ---------------------------------------------------------------------------------------
// Scenario 2: per-IP limit, one busy address among many.

fn fair(a: &Args, me: &str) {
    let secs = a.fair_seconds;
    println!(
        "\n== 2. fairness: tcpserver -c 40 -C 5:busy, 50 clients from 127.0.0.2 and one from each of 127.0.0.3..127.0.0.52, {secs} s; program holds {HOLD_MS} ms; a refused client retries after 50 ms =="
    );
    let srv = start(
        &a.tcpserver,
        &["-RHl0", "-c", "40", "-C", "5:busy"],
        &[me, "--answer", HOLD_MS],
        &[],
        a.stderr,
    );
    let dst = srv.addr();
    let sampler = Sampler::new(srv.pid());
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..100u8)
        .map(|i| {
            let src = if i < 50 {
                Ipv4Addr::new(127, 0, 0, 2)
            } else {
                Ipv4Addr::new(127, 0, 0, 3 + (i - 50))
            };
            thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut out = Vec::new();
                    while Instant::now() < deadline {
                        let r = request(src, dst, None);
                        if r.0 != Outcome::Served {
                            // Not a tight loop of refusals: a client that was turned away
                            // comes back a little later.
                            thread::sleep(Duration::from_millis(50));
                        }
                        out.push(r);
                    }
                    (src, out)
                })
                .expect("spawn client")
        })
        .collect();
    let mut per: HashMap<Ipv4Addr, Vec<(Outcome, f64, bool)>> = HashMap::new();
    for t in threads {
        let (src, out) = t.join().unwrap();
        per.entry(src).or_default().extend(out);
    }
    let samples = sampler.finish();
    drop(srv);

    let busy = Ipv4Addr::new(127, 0, 0, 2);
    let one = |v: &[(Outcome, f64, bool)]| {
        let served: Vec<f64> = v
            .iter()
            .filter(|r| r.0 == Outcome::Served)
            .map(|r| r.1)
            .collect();
        let refused = v.iter().filter(|r| r.2).count();
        (served, refused, v.len())
    };
    let (s, r, n) = one(&per[&busy]);
    println!(
        "  127.0.0.2 (50 clients): attempts {n}, served {} ({:.1}/s), refused busy {r}, other {}; {}",
        s.len(),
        s.len() as f64 / secs,
        n - s.len() - r,
        latencies(s.clone())
    );
    let mut others: Vec<(Ipv4Addr, usize)> = Vec::new();
    let mut lat = Vec::new();
    let (mut tot_n, mut tot_r) = (0, 0);
    for (ip, v) in &per {
        if *ip == busy {
            continue;
        }
        let (s, r, n) = one(v);
        others.push((*ip, s.len()));
        tot_n += n;
        tot_r += r;
        lat.extend(s);
    }
    others.sort_by_key(|o| o.1);
    let counts: Vec<usize> = others.iter().map(|o| o.1).collect();
    println!(
        "  127.0.0.3..52 (one client each): attempts {tot_n}, served {} ({:.1}/s), refused busy {tot_r}; {}",
        lat.len(),
        lat.len() as f64 / secs,
        latencies(lat)
    );
    println!(
        "  served per other address: min {} ({}), median {}, max {} ({})",
        counts[0],
        others[0].0,
        counts[counts.len() / 2],
        counts[counts.len() - 1],
        others[others.len() - 1].0
    );
    report_samples(&samples, secs);
}

// ---------------------------------------------------------------------------------------
// Scenario 3: a long run of connections.

fn row(a: &Args) {
    let total = a.row;
    let k = 8u64;
    println!(
        "\n== 3. in a row: tcpserver -c 40 -RHl0, program /bin/true, {total} connections, {k} clients in flight, source addresses 127.0.1.1..64 =="
    );
    let srv = start(
        &a.tcpserver,
        &["-RHl0", "-c", "40"],
        &["/bin/true"],
        &[],
        a.stderr,
    );
    let dst = srv.addr();
    let pid = srv.pid();
    let sampler = Sampler::new(pid);
    println!("  idle: RSS {} kB, fds {}", rss_kb(pid), fd_count(pid));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(Mutex::new(HashMap::<Outcome, u64>::new()));
    let t0 = Instant::now();
    // A hard bound on time as well as on count: 2,000 s.
    let limit = t0 + Duration::from_secs(2000);
    let threads: Vec<_> = (0..k)
        .map(|i| {
            let done = done.clone();
            let failed = failed.clone();
            thread::spawn(move || {
                let mut n = 0u64;
                while done.load(Ordering::Relaxed) < total && Instant::now() < limit {
                    // 64 source addresses: the 4-tuples of TIME_WAIT sockets spread over
                    // 64 x 28k ports instead of 28k.
                    let src = Ipv4Addr::new(127, 0, 1, 1 + ((n * k + i) % 64) as u8);
                    n += 1;
                    match connect_from(src, dst) {
                        Ok(mut s) => {
                            let mut buf = [0u8; 64];
                            let o = loop {
                                match s.read(&mut buf) {
                                    Ok(0) => break Outcome::Served,
                                    Ok(_) => continue,
                                    Err(e) => break io_outcome(&e),
                                }
                            };
                            if o != Outcome::Served {
                                *failed.lock().unwrap().entry(o).or_default() += 1;
                            }
                        }
                        Err(e) => {
                            let o = if e.kind() == ErrorKind::ConnectionRefused {
                                Outcome::Refused
                            } else {
                                Outcome::ConnectFailed
                            };
                            *failed.lock().unwrap().entry(o).or_default() += 1;
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let marks: Vec<u64> = [10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|m| *m < total)
        .chain([total])
        .collect();
    let mut last = (0u64, t0);
    for m in marks {
        while done.load(Ordering::Relaxed) < m && Instant::now() < limit {
            thread::sleep(Duration::from_millis(10));
        }
        let n = done.load(Ordering::Relaxed);
        let now = Instant::now();
        let rate = (n - last.0) as f64 / now.duration_since(last.1).as_secs_f64();
        last = (n, now);
        println!(
            "  at {n:>8}: RSS {} kB, fds {}, children {}, {:.0} s elapsed, {rate:.0} conn/s since the last mark",
            rss_kb(pid),
            fd_count(pid),
            children(pid).len(),
            t0.elapsed().as_secs_f64()
        );
    }
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let samples = sampler.finish();
    drop(srv);
    println!(
        "  {} connections in {elapsed:.0} s ({:.0}/s); not served: {:?}",
        done.load(Ordering::Relaxed),
        done.load(Ordering::Relaxed) as f64 / elapsed,
        failed.lock().unwrap()
    );
    report_samples(&samples, elapsed);
}

// ---------------------------------------------------------------------------------------
// Scenario 4: sslserver, handshake flood and stalled handshakes.

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed RSA-2048 certificate for localhost (cert.pem, key.pem, cert.der), the
/// client's only trust anchor. `CA:FALSE`: webpki refuses a CA certificate as the
/// server's own.
fn make_cert(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "2",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
    );
    openssl(
        dir,
        &[
            "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
        ],
    );
}

/// Removes the temporary directory, on panic too.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A full handshake (no resumption), then the program's output to the end.
fn tls_once(cfg: &Arc<ClientConfig>, dst: SocketAddrV4) -> (Outcome, f64) {
    let t0 = Instant::now();
    let mut sock = match connect_from(Ipv4Addr::LOCALHOST, dst) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => return (Outcome::Refused, 0.0),
        Err(_) => return (Outcome::ConnectFailed, 0.0),
    };
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(cfg.clone(), name).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let mut end = Outcome::Closed;
    {
        let mut s = rustls::Stream::new(&mut conn, &mut sock);
        while got.len() < 4096 {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => {
                    // The end of the stream without close_notify counts as the end.
                    if e.kind() != ErrorKind::UnexpectedEof {
                        end = io_outcome(&e);
                    }
                    break;
                }
            }
        }
    }
    if got.starts_with(b"ok") {
        conn.send_close_notify();
        let _ = conn.write_tls(&mut sock);
        return (Outcome::Served, t0.elapsed().as_secs_f64());
    }
    (end, t0.elapsed().as_secs_f64())
}

/// A TLS record header announcing a 512-byte handshake record, and the first bytes of a
/// ClientHello: the server waits for the rest, which never comes. Returns how the
/// connection ended and the seconds from the partial hello to the server's close.
fn stall_once(dst: SocketAddrV4) -> (Outcome, f64) {
    let mut s = match connect_from(Ipv4Addr::LOCALHOST, dst) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => return (Outcome::Refused, 0.0),
        Err(_) => return (Outcome::ConnectFailed, 0.0),
    };
    let partial = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let t0 = Instant::now();
    if let Err(e) = s.write_all(&partial) {
        return (io_outcome(&e), t0.elapsed().as_secs_f64());
    }
    let mut buf = [0u8; 512];
    // Bounded by the 30 s read timeout; the server may send an alert before closing.
    for _ in 0..64 {
        match s.read(&mut buf) {
            Ok(0) => return (Outcome::Closed, t0.elapsed().as_secs_f64()),
            Ok(_) => continue,
            Err(e) => return (io_outcome(&e), t0.elapsed().as_secs_f64()),
        }
    }
    (Outcome::Closed, t0.elapsed().as_secs_f64())
}

fn tls(a: &Args) {
    let secs = a.tls_seconds;
    let (flood, stall) = (40usize, 20usize);
    println!(
        "\n== 4. TLS: sslserver -c 40 -T 2 -RHl0, program /bin/echo ok; {flood} clients doing full TLS 1.3 handshakes (rustls, no resumption) and {stall} clients sending 11 bytes of a ClientHello and then nothing, {secs} s =="
    );
    let dir = std::env::temp_dir().join(format!("soak-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = TempDir(dir);
    make_cert(&dir.0);
    let srv = start(
        &a.sslserver,
        &["-RHl0", "-c", "40", "-T", "2"],
        &["/bin/echo", "ok"],
        &[
            ("CERTFILE", dir.0.join("cert.pem")),
            ("KEYFILE", dir.0.join("key.pem")),
        ],
        a.stderr,
    );
    let dst = srv.addr();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(
            std::fs::read(dir.0.join("cert.der")).unwrap(),
        ))
        .unwrap();
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::disabled();
    let cfg = Arc::new(cfg);

    let sampler = Sampler::new(srv.pid());
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut threads = Vec::new();
    for i in 0..flood + stall {
        let cfg = cfg.clone();
        threads.push(
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut out = Vec::new();
                    while Instant::now() < deadline {
                        out.push(if i < flood {
                            tls_once(&cfg, dst)
                        } else {
                            stall_once(dst)
                        });
                    }
                    (i < flood, out)
                })
                .expect("spawn client"),
        );
    }
    let mut full = Vec::new();
    let mut stalled = Vec::new();
    for t in threads {
        let (is_flood, out) = t.join().unwrap();
        let into = if is_flood { &mut full } else { &mut stalled };
        into.extend(out);
    }
    let elapsed = secs;
    let samples = sampler.finish();
    drop(srv);

    let tally = |v: &[(Outcome, f64)]| {
        let mut m: HashMap<Outcome, usize> = HashMap::new();
        for r in v {
            *m.entry(r.0).or_default() += 1;
        }
        let mut m: Vec<_> = m.into_iter().collect();
        m.sort_by_key(|e| format!("{:?}", e.0));
        m
    };
    let served: Vec<f64> = full
        .iter()
        .filter(|r| r.0 == Outcome::Served)
        .map(|r| r.1)
        .collect();
    println!(
        "  full handshakes: {} attempts {:?}; served {:.1}/s; connect to answer {}",
        full.len(),
        tally(&full),
        served.len() as f64 / elapsed,
        latencies(served.clone())
    );
    let dropped: Vec<f64> = stalled
        .iter()
        .filter(|r| r.0 == Outcome::Closed || r.0 == Outcome::Reset)
        .map(|r| r.1)
        .collect();
    println!(
        "  stalled: {} attempts {:?}; partial hello to the server's close {}",
        stalled.len(),
        tally(&stalled),
        latencies(dropped)
    );
    report_samples(&samples, secs);
}

fn main() {
    let v: Vec<String> = std::env::args().collect();
    if v.len() == 3 && v[1] == "--answer" {
        answer(v[2].parse().expect("--answer MS"));
    }
    let a = args();
    let me = std::env::current_exe().unwrap();
    let me = me.to_str().unwrap().to_string();
    println!("soak: {}", std::env::args().collect::<Vec<_>>().join(" "));
    for s in &a.only {
        let t = Instant::now();
        match s.as_str() {
            "overload" => overload(&a, &me),
            "fair" => fair(&a, &me),
            "row" => row(&a),
            "tls" => tls(&a),
            _ => panic!("unknown scenario {s}"),
        }
        println!("  ({:.0} s)", t.elapsed().as_secs_f64());
    }
}
