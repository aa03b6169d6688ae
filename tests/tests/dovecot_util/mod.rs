//! A private Dovecot 2.3 (Debian's dovecot-core) on loopback ports in a temporary
//! directory, and an IMAP/POP3 line client that connects from a chosen loopback address,
//! for the tests that log users in through it.

// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use blackbox::TempDir;

pub struct Dovecot {
    child: Child,
    log: std::path::PathBuf,
    /// The configuration file it runs with (for doveadm -c).
    pub conf: std::path::PathBuf,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM: the master stops its children too (SIGKILL would orphan them).
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dovecot {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Dovecot on 127.0.0.1's `imap` and `pop3` ports, its files under `dir`, with
/// `auth` (the passdb and userdb blocks, or includes) in its configuration.
pub fn start(dir: &TempDir, imap: u16, pop3: u16, auth: &str) -> Dovecot {
    let dovecot = Path::new("/usr/sbin/dovecot");
    assert!(
        dovecot.exists(),
        "dovecot-core is missing: run scripts/test.sh, which installs it"
    );
    let base = dir.join("run");
    std::fs::create_dir_all(&base).unwrap();
    let log = dir.join("dovecot.log");
    let conf = dir.join("dovecot.conf");
    std::fs::write(
        &conf,
        format!(
            r#"base_dir = {base}
state_dir = {base}/state
log_path = {log}
ssl = no
disable_plaintext_auth = no
listen = 127.0.0.1
protocols = imap pop3
mail_location = maildir:~/Maildir
default_login_user = dovenull
default_internal_user = dovecot
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 1000
{auth}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"#,
            base = base.display(),
            log = log.display(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(base.join("state")).unwrap();
    let child = Command::new(dovecot)
        .arg("-F")
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = Dovecot { child, log, conf };
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", imap)).is_err()
        || TcpStream::connect(("127.0.0.1", pop3)).is_err()
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "dovecot did not listen:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    d
}

pub struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    pub fn new(port: u16) -> Conn {
        Conn::from(port, [127, 0, 0, 1])
    }

    /// A connection from the loopback address `src` (Dovecot's per-address auth penalty
    /// and vchkpw's webmail rule both go by the client's address).
    pub fn from(port: u16, src: [u8; 4]) -> Conn {
        let s = connect_from(src, port);
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut c = Conn {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let greeting = c.line();
        assert!(greeting.contains("OK"), "{greeting}");
        c
    }
    pub fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).expect("read from dovecot");
        l
    }
    pub fn send(&mut self, s: &str) {
        self.w.write_all(s.as_bytes()).unwrap();
        self.w.write_all(b"\r\n").unwrap();
    }
    /// IMAP: the tagged reply to `tag`, skipping untagged lines.
    pub fn tagged(&mut self, tag: &str) -> String {
        for _ in 0..100 {
            let l = self.line();
            if l.starts_with(&format!("{tag} ")) || l.is_empty() {
                return l;
            }
        }
        panic!("no tagged reply");
    }
}

pub fn connect_from(src: [u8; 4], port: u16) -> TcpStream {
    use std::os::unix::io::FromRawFd;
    let sin = |a: [u8; 4], p: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: p.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket, bound and connected with valid sockaddr_in values, then
    // owned by the TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let a = sin(src, 0);
        assert_eq!(
            libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), len),
            0,
            "bind"
        );
        let b = sin([127, 0, 0, 1], port);
        assert_eq!(
            libc::connect(fd, (&b as *const libc::sockaddr_in).cast(), len),
            0,
            "connect: {}",
            std::io::Error::last_os_error()
        );
        TcpStream::from_raw_fd(fd)
    }
}
