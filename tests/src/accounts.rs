//! What the account tests share (tests/tests/mailaccounts.rs, checkpassword_apppw.rs): a
//! domain of their own in SQLite or the private MariaDB or PostgreSQL server
//! (scripts/test.d/10-databases.sh), made and changed by our mailaccounts, and logins
//! through our checkpassword.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::{ours, run_with_input, show, TempDir};

pub const UID: u32 = 4711;
pub const GID: u32 = 4712;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Sqlite,
    Mysql,
    Pg,
}

static N: AtomicUsize = AtomicUsize::new(0);

pub struct World {
    pub kind: Kind,
    pub dir: TempDir,
    pub url: String,
    pub domain: String,
    /// The client's address: in 127.0.0.0/8 but never 127.0.0.1 (which is webmail).
    pub ip: String,
    pub config: PathBuf,
}

pub fn env_or_fail(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/test.sh, which starts the private database servers")
    })
}

impl World {
    pub fn new(kind: Kind) -> World {
        let dir = TempDir::new("ma");
        // The domain's uid must be able to reach its directories.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let n = N.fetch_add(1, Ordering::SeqCst);
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 1_000_000;
        let url = match kind {
            Kind::Sqlite => format!("sqlite:{}", dir.join("db/users.sqlite").display()),
            Kind::Mysql => env_or_fail("CHECKPASSWORD_TEST_MYSQL_URL"),
            Kind::Pg => env_or_fail("CHECKPASSWORD_TEST_PG_URL"),
        };
        let config = dir.join("checkpassword.conf");
        std::fs::write(&config, "").unwrap();
        World {
            kind,
            domain: format!("m{}-{run}-{n}.example", std::process::id()),
            ip: format!(
                "127.{}.{}.{}",
                1 + std::process::id() % 200,
                200 + n / 250,
                1 + n % 250
            ),
            url,
            config,
            dir,
        }
    }

    pub fn env(&self, c: &mut Command) {
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("CHECKPASSWORD_CONFIG", &self.config)
            .env("CHECKPASSWORD_DB", &self.url)
            .env("CHECKPASSWORD_VPOPMAIL_DIR", self.dir.join("vpopmail"))
            .env("QMAIL", self.dir.join("qmail"));
    }

    /// Runs mailaccounts with `input` on stdin (not a terminal).
    pub fn ma(&self, args: &[&str], input: &str) -> Output {
        let mut c = Command::new(ours("mailaccounts"));
        c.args(args);
        self.env(&mut c);
        run_with_input(&mut c, input.as_bytes(), Duration::from_secs(60))
    }

    pub fn ok(&self, args: &[&str], input: &str) -> String {
        let o = self.ma(args, input);
        assert_eq!(
            o.status.code(),
            Some(0),
            "mailaccounts {args:?}\n{}",
            show(&o)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn fails(&self, args: &[&str], input: &str, code: i32, msg: &str) {
        let o = self.ma(args, input);
        assert_eq!(
            o.status.code(),
            Some(code),
            "mailaccounts {args:?}\n{}",
            show(&o)
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(msg),
            "want {msg:?}\n{}",
            show(&o)
        );
    }

    pub fn login(&self, user: &str) -> String {
        format!("{user}@{}", self.domain)
    }

    pub fn domain_dir(&self) -> PathBuf {
        self.dir.join("domains").join(&self.domain)
    }

    pub fn setup(&self) {
        self.ok(&["init"], "");
        std::fs::create_dir_all(self.dir.join("domains")).unwrap();
        let d = self.domain_dir().display().to_string();
        self.ok(
            &[
                "add-domain",
                &self.domain,
                "--uid",
                &UID.to_string(),
                "--gid",
                &GID.to_string(),
                "--dir",
                &d,
            ],
            "",
        );
    }

    /// checkpassword as qmail-popup (port 110), qmail-smtpd (25) or an IMAP server (143)
    /// calls it; returns its exit code.
    pub fn check(&self, login: &str, pw: &str, port: &str) -> i32 {
        self.check_from(login, pw, port, &self.ip).0
    }

    /// [`World::check`] for a client at `ip`; also returns the log. For POP and IMAP the
    /// program it runs checks that it got the account's ids and home; as vchkpw, an SMTP
    /// login changes neither, and its program checks nothing.
    pub fn check_from(&self, login: &str, pw: &str, port: &str, ip: &str) -> (i32, String) {
        let cred = self
            .dir
            .join(&format!("cred-{}", N.fetch_add(1, Ordering::SeqCst)));
        // qmail-popup's timestamp comes with every login, APOP or not.
        std::fs::write(&cred, format!("{login}\0{pw}\0<1.2@test>\0")).unwrap();
        let prog = if port == "25" {
            r#"exec "$0" /bin/true 3<"$1""#
        } else {
            r#"exec "$0" /bin/sh -c 'test "$(id -u)" = 4711 && test "$PWD" = "$HOME"' 3<"$1""#
        };
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(prog).arg(ours("checkpassword")).arg(&cred);
        self.env(&mut c);
        c.env("TCPREMOTEIP", ip).env("TCPLOCALPORT", port);
        let o = run_with_input(&mut c, b"", Duration::from_secs(60));
        let _ = std::fs::remove_file(&cred);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// SQL through the database's own client, as its administrator; rows as tab-separated
    /// lines.
    pub fn sql(&self, sql: &str) -> String {
        let mut c = match self.kind {
            Kind::Sqlite => {
                let mut c = Command::new("sqlite3");
                c.arg("-batch")
                    .arg("-separator")
                    .arg("\t")
                    .arg(self.dir.join("db/users.sqlite"));
                c
            }
            Kind::Mysql | Kind::Pg => {
                let var = if self.kind == Kind::Mysql {
                    "CHECKPASSWORD_TEST_MYSQL_CTL"
                } else {
                    "CHECKPASSWORD_TEST_PG_CTL"
                };
                let mut c = Command::new(env_or_fail(var));
                c.arg("sql");
                c
            }
        };
        let o = run_with_input(&mut c, sql.as_bytes(), Duration::from_secs(60));
        assert!(o.status.success(), "{sql}\n{}", show(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}
