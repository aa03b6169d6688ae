//! A real Dovecot 2.3 (Debian's dovecot-core, started privately on loopback) logs users
//! in over IMAP and POP3 through our checkpassword as its passdb.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use blackbox::{ours, TempDir};

const UID: u32 = 43220;
const GID: u32 = 43221;

struct Dovecot {
    child: Child,
    log: std::path::PathBuf,
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
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sql(db: &Path, sql: &str) -> String {
    let mut c = Command::new("sqlite3")
        .arg("-batch")
        .arg("-separator")
        .arg("\t")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sqlite3 (scripts/test.sh installs it)");
    c.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{sql}");
    String::from_utf8(o.stdout).unwrap()
}

fn mkpasswd(pw: &str) -> String {
    let o = Command::new("mkpasswd")
        .args(["-m", "sha-512", pw])
        .output()
        .expect("mkpasswd (package whois; scripts/test.sh installs it)");
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn start(dir: &TempDir, imap: u16, pop3: u16, conf_file: &Path) -> Dovecot {
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
passdb {{
  driver = checkpassword
  args = /usr/bin/env CHECKPASSWORD_CONFIG={conf_file} {cp}
}}
userdb {{
  driver = prefetch
}}
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
            conf_file = conf_file.display(),
            cp = ours("checkpassword").display(),
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
    let d = Dovecot { child, log };
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

struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    fn new(port: u16) -> Conn {
        Conn::from(port, [127, 0, 0, 1])
    }

    /// A connection from the loopback address `src` (Dovecot's per-address auth penalty
    /// and vchkpw's webmail rule both go by the client's address).
    fn from(port: u16, src: [u8; 4]) -> Conn {
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
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).expect("read from dovecot");
        l
    }
    fn send(&mut self, s: &str) {
        self.w.write_all(s.as_bytes()).unwrap();
        self.w.write_all(b"\r\n").unwrap();
    }
    /// IMAP: the tagged reply to `tag`, skipping untagged lines.
    fn tagged(&mut self, tag: &str) -> String {
        for _ in 0..100 {
            let l = self.line();
            if l.starts_with(&format!("{tag} ")) || l.is_empty() {
                return l;
            }
        }
        panic!("no tagged reply");
    }
}

fn connect_from(src: [u8; 4], port: u16) -> TcpStream {
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

#[test]
fn dovecot_logs_users_in_through_checkpassword() {
    // SAFETY: plain id query.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "runs as root (scripts/test.sh does): Dovecot needs it"
    );
    let dir = TempDir::new("cp-dovecot");
    chmod(dir.path(), 0o755);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    chmod(&data, 0o777);
    let db = data.join("users.sqlite");
    let domain = "dovecot-test.example";
    let home = dir.join("home-quinn");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(UID), Some(GID)).unwrap();
    sql(
        &db,
        &format!(
            "CREATE TABLE vpopmail (pw_name VARCHAR(64) NOT NULL, pw_domain VARCHAR(96) NOT NULL, \
             pw_passwd VARCHAR(128), pw_uid INT, pw_gid INT, pw_gecos VARCHAR(64), \
             pw_dir VARCHAR(160), pw_shell VARCHAR(20), pw_clear_passwd VARCHAR(128), \
             PRIMARY KEY (pw_name, pw_domain));
             INSERT INTO vpopmail VALUES ('quinn', '{domain}', '{}', 0, 0, 'Q', '{}', 'NOQUOTA', '');
             INSERT INTO vpopmail VALUES ('noimap', '{domain}', '{}', 0, 8, 'N', '{}', 'NOQUOTA', '');
             INSERT INTO vpopmail VALUES ('noweb', '{domain}', '{}', 0, 4, 'W', '{}', 'NOQUOTA', '');",
            mkpasswd("Dove-pw1"),
            home.display(),
            mkpasswd("Dove-pw2"),
            home.display(),
            mkpasswd("Dove-pw3"),
            home.display(),
        ),
    );
    chmod(&db, 0o666);
    let conf = dir.join("checkpassword.conf");
    std::fs::write(
        &conf,
        format!(
            "db = sqlite:{}\nuid = {UID}\ngid = {GID}\nqmail = {}\nvpopmail_dir = {}\n",
            db.display(),
            dir.join("no-qmail").display(),
            dir.join("no-vpopmail").display()
        ),
    )
    .unwrap();
    chmod(&conf, 0o644);
    let (imap, pop3) = (free_port(), free_port());
    let d = start(&dir, imap, pop3, &conf);

    // IMAP: login, open the mailbox (as the uid we exported), wrong password, flags.
    let mut c = Conn::new(imap);
    c.send(&format!("a1 LOGIN quinn@{domain} Dove-pw1"));
    let r = c.tagged("a1");
    assert!(r.starts_with("a1 OK"), "{r}\n{}", d.log());
    c.send("a2 SELECT INBOX");
    let r = c.tagged("a2");
    assert!(r.starts_with("a2 OK"), "{r}\n{}", d.log());
    c.send("a3 LOGOUT");
    let meta = std::fs::metadata(home.join("Maildir")).expect("Maildir created by imap");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        UID,
        "mail runs as the uid checkpassword exported"
    );
    // Each failure from an address of its own: Dovecot delays an address's later
    // attempts after a failure.
    let mut c = Conn::from(imap, [127, 0, 0, 2]);
    c.send(&format!("b1 LOGIN quinn@{domain} wrong-pw"));
    let r = c.tagged("b1");
    assert!(r.starts_with("b1 NO"), "{r}");
    // IMAP from 127.0.0.1 is webmail to vchkpw (its compiled-in webmail address).
    let mut c = Conn::from(imap, [127, 0, 0, 1]);
    c.send(&format!("b2 LOGIN noweb@{domain} Dove-pw3"));
    let r = c.tagged("b2");
    assert!(r.starts_with("b2 NO"), "NO_WEBMAIL: {r}");
    let mut c = Conn::from(imap, [127, 0, 0, 3]);
    c.send(&format!("b3 LOGIN ghost@{domain} Dove-pw1"));
    let r = c.tagged("b3");
    assert!(r.starts_with("b3 NO"), "unknown user: {r}");
    let mut c = Conn::from(imap, [127, 0, 0, 4]);
    c.send(&format!("b4 LOGIN noimap@{domain} Dove-pw2"));
    let r = c.tagged("b4");
    assert!(r.starts_with("b4 NO"), "NO_IMAP: {r}");

    // POP3 with the same passdb; NO_IMAP does not stop POP.
    let mut p = Conn::from(pop3, [127, 0, 0, 5]);
    p.send(&format!("USER noimap@{domain}"));
    assert!(p.line().starts_with("+OK"));
    p.send("PASS Dove-pw2");
    let r = p.line();
    assert!(r.starts_with("+OK"), "{r}\n{}", d.log());
    p.send("QUIT");

    // Ours did the work: lastauth rows written by checkpassword.
    let rows = sql(
        &db,
        "SELECT user, domain, remote_ip FROM lastauth ORDER BY user;",
    );
    assert_eq!(
        rows,
        format!("noimap\t{domain}\t127.0.0.5\nquinn\t{domain}\t127.0.0.1\n"),
        "{}",
        d.log()
    );

    // An app password (our extension) for IMAP only: Dovecot's SERVICE says which.
    // Its hash: echo -n abcdefghijklmnop | argon2 appsalt-16bytes! -id -t 1 -k 1024 -p 1 -e
    sql(
        &db,
        &format!(
            "CREATE TABLE vpopmail_app_passwords (id INTEGER PRIMARY KEY AUTOINCREMENT, \
             pw_name VARCHAR(64) NOT NULL, pw_domain VARCHAR(96) NOT NULL, \
             label VARCHAR(32) NOT NULL, hash VARCHAR(255) NOT NULL, \
             services VARCHAR(32) NOT NULL, network VARCHAR(64), expires BIGINT, \
             created BIGINT NOT NULL, UNIQUE (pw_name, pw_domain, label));
             INSERT INTO vpopmail_app_passwords (pw_name, pw_domain, label, hash, services, \
             created) VALUES ('quinn', '{domain}', 'tablet', '{APP_HASH}', 'imap', 0);"
        ),
    );
    let mut c = Conn::from(imap, [127, 0, 0, 6]);
    c.send(&format!("c1 LOGIN quinn@{domain} abcd-efgh-ijkl-mnop"));
    let r = c.tagged("c1");
    assert!(
        r.starts_with("c1 OK"),
        "app password over IMAP: {r}\n{}",
        d.log()
    );
    c.send("c2 LOGOUT");
    let mut p = Conn::from(pop3, [127, 0, 0, 7]);
    p.send(&format!("USER quinn@{domain}"));
    assert!(p.line().starts_with("+OK"));
    p.send("PASS abcd-efgh-ijkl-mnop");
    let r = p.line();
    assert!(r.starts_with("-ERR"), "an IMAP app password over POP3: {r}");
    let rows = sql(
        &db,
        &format!("SELECT remote_ip FROM lastauth WHERE user = 'quinn' AND domain = '{domain}';"),
    );
    assert_eq!(rows, "127.0.0.6\n", "{}", d.log());

    let log = d.log();
    assert!(
        !log.contains("Dove-pw1") && !log.contains("wrong-pw") && !log.contains("abcd-efgh"),
        "password logged:\n{log}"
    );
}

const APP_HASH: &str =
    "$argon2id$v=19$m=1024,t=1,p=1$YXBwc2FsdC0xNmJ5dGVzIQ$+VMTONggIHCCKm9IK8KXhgz0HstGB7NqKhhAXK9Zh5c";
