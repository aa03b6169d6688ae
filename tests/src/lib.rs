//! Helpers for the black-box tests: where our binaries and Debian's are, temporary
//! directories, running a program with input and a bounded wait.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Our binaries: `$UCSPI_BIN_DIR`, else the cargo target directory the tests run from.
pub fn ours(name: &str) -> PathBuf {
    if let Some(d) = std::env::var_os("UCSPI_BIN_DIR") {
        return Path::new(&d).join(name);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace` first (scripts/test.sh does)",
        p.display()
    );
    p
}

fn ext_dir(var: &str, sub: &str) -> PathBuf {
    if let Some(d) = std::env::var_os(var) {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(".ext")
        .join(sub)
        .join("usr/bin")
}

/// Debian's `ucspi-tcp` (djb's 0.88), unpacked by scripts/test.sh.
pub fn djb(name: &str) -> PathBuf {
    let p = ext_dir("UCSPI_DJB_BIN", "ucspi-tcp").join(name);
    assert!(
        p.exists(),
        "{} missing: run scripts/test.sh, which unpacks Debian's ucspi-tcp",
        p.display()
    );
    p
}

/// Debian's `ucspi-tcp-ipv6` (fefe's patch), unpacked by scripts/test.sh.
pub fn fefe(name: &str) -> PathBuf {
    let p = ext_dir("UCSPI_FEFE_BIN", "ucspi-tcp-ipv6").join(name);
    assert!(
        p.exists(),
        "{} missing: run scripts/test.sh, which unpacks Debian's ucspi-tcp-ipv6",
        p.display()
    );
    p
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "ucspi-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd` with `input` on stdin, killing it after `limit`. Panics on a time-out.
pub fn run_with_input(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let reader_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{:?} did not finish within {:?}", cmd, limit);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = feeder.join();
    Output {
        status,
        stdout: reader_out.join().unwrap(),
        stderr: reader_err.join().unwrap(),
    }
}

/// Runs `prog args` with `input`, environment cleared but for `env`, within 60 s.
pub fn run(prog: &Path, args: &[&OsStr], env: &[(&str, &OsStr)], input: &[u8]) -> Output {
    let mut c = Command::new(prog);
    c.args(args).env_clear();
    for (k, v) in env {
        c.env(k, v);
    }
    run_with_input(&mut c, input, Duration::from_secs(60))
}

/// Output as text for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
