//! Roaming users (POP-before-SMTP) end to end, on SQLite and the private MariaDB and
//! PostgreSQL servers of scripts/test.d/10-databases.sh: a POP login through our
//! checkpassword writes the client's relay row and rebuilds tcp.smtp.cdb; our tcpserver
//! `-x tcp.smtp.cdb` then gives that client RELAYCLIENT, and after the row expires
//! (`mailaccounts relay rebuild --expire`, vpopmail's clearopensmtp) it does not. Two
//! hosts building from one database write the same bytes, which are the bytes Debian's
//! (djb's) tcprules writes for the same text.

mod tcpserver_util;

use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use blackbox::{djb, ours, run_with_input, show, TempDir};
use tcpserver_util::{base_env, connect_from, read_all, Server};

const UID: u32 = 4711;
const GID: u32 = 4712;

/// The relay line vpopmail's update_rules writes for an address.
const RULE: &str = ":allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"\n";

/// The static rules: 127.0.0.7 refused, everyone else served without relaying.
const BASE: &str = "# the static part of tcp.smtp\n127.0.0.7:deny\n:allow\n";

/// What the SMTP service behind tcpserver reports: whether RELAYCLIENT is set.
const PROBE: &str = r#"if [ "${RELAYCLIENT+x}" = x ]; then echo relay; else echo norelay; fi"#;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Sqlite,
    Mysql,
    Pg,
}

/// The private servers' URLs: MariaDB's, PostgreSQL's.
const SERVER_URL: [&str; 2] = ["CHECKPASSWORD_TEST_MYSQL_URL", "CHECKPASSWORD_TEST_PG_URL"];

static N: AtomicUsize = AtomicUsize::new(0);

fn env_or_fail(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/test.sh, which starts the private database servers")
    })
}

struct World {
    kind: Kind,
    dir: TempDir,
    url: String,
    domain: String,
    config: PathBuf,
}

impl World {
    fn new(kind: Kind) -> World {
        blackbox::need_root("mailaccounts makes maildirs owned by the domain's uid");
        let dir = TempDir::new("roam");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let sqlite = format!("sqlite:{}", dir.join("db/users.sqlite").display());
        let url = match kind {
            Kind::Sqlite => sqlite,
            Kind::Mysql | Kind::Pg => env_or_fail(SERVER_URL[usize::from(kind == Kind::Pg)]),
        };
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/tcp.smtp"), BASE).unwrap();
        let config = dir.join("checkpassword.conf");
        std::fs::write(
            &config,
            format!(
                "relay = on\nrelay_rebuild = on\nrelay_rules = {}\n",
                dir.join("etc/tcp.smtp").display()
            ),
        )
        .unwrap();
        let w = World {
            kind,
            // Unique across runs too: the database servers outlive one.
            domain: format!(
                "r{:x}.example",
                std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()
            ),
            url,
            config,
            dir,
        };
        w.ok(&["init"], "");
        let dir = w.dir.join("domains").join(&w.domain);
        let add = format!(
            "add-domain {} --uid {UID} --gid {GID} --dir {}",
            w.domain,
            dir.display()
        );
        w.ok(&add.split(' ').collect::<Vec<_>>(), "");
        w.ok(&["add", &w.login("roamer")], "roam pw\n");
        // The database servers outlive one run: no row of an earlier one for these.
        w.sql("DELETE FROM relay WHERE ip_addr IN ('127.0.0.5', '127.0.0.6', '127.0.0.8')");
        w
    }

    fn cdb(&self) -> PathBuf {
        self.dir.join("etc/tcp.smtp.cdb")
    }

    /// A command with the environment both programs get: the settings, the database,
    /// vpopmail's and qmail's directories, and nothing else.
    fn command(&self, prog: &Path) -> Command {
        let mut c = Command::new(prog);
        c.env_clear().envs([
            ("PATH", PathBuf::from("/usr/bin:/bin")),
            ("CHECKPASSWORD_CONFIG", self.config.clone()),
            ("CHECKPASSWORD_DB", PathBuf::from(&self.url)),
            ("CHECKPASSWORD_VPOPMAIL_DIR", self.dir.join("vpopmail")),
            ("QMAIL", self.dir.join("qmail")),
        ]);
        c
    }

    fn ma(&self, args: &[&str], input: &str) -> Output {
        let mut c = self.command(&ours("mailaccounts"));
        run_with_input(c.args(args), input.as_bytes(), Duration::from_secs(60))
    }

    fn ok(&self, args: &[&str], input: &str) -> String {
        let o = self.ma(args, input);
        assert!(o.status.success(), "mailaccounts {args:?}\n{}", show(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    fn login(&self, user: &str) -> String {
        format!("{user}@{}", self.domain)
    }

    /// A login through checkpassword as qmail-popup calls it from `ip`.
    fn pop(&self, ip: &str) -> Output {
        let cred = self
            .dir
            .join(&format!("cred-{}", N.fetch_add(1, Ordering::SeqCst)));
        std::fs::write(&cred, format!("{}\0roam pw\0\0", self.login("roamer"))).unwrap();
        let mut c = self.command(Path::new("/bin/sh"));
        c.arg("-c")
            .arg(r#"exec "$0" /bin/true 3<"$1""#)
            .arg(ours("checkpassword"))
            .arg(&cred)
            .env("TCPREMOTEIP", ip)
            .env("TCPLOCALPORT", "110");
        let o = run_with_input(&mut c, b"", Duration::from_secs(60));
        assert_eq!(
            o.status.code(),
            Some(0),
            "POP login from {ip}\n{}",
            show(&o)
        );
        o
    }

    /// SQL through the back end's own client (the test's setup, not the programs').
    fn sql(&self, sql: &str) -> String {
        let mut c = match self.kind {
            Kind::Sqlite => {
                let mut c = Command::new("sqlite3");
                c.arg("-batch").arg(self.dir.join("db/users.sqlite"));
                c
            }
            Kind::Mysql => Command::new(env_or_fail("CHECKPASSWORD_TEST_MYSQL_CTL")),
            Kind::Pg => Command::new(env_or_fail("CHECKPASSWORD_TEST_PG_CTL")),
        };
        if self.kind != Kind::Sqlite {
            c.arg("sql");
        }
        c.stdin(Stdio::piped());
        let o = run_with_input(
            &mut c,
            format!("{sql};\n").as_bytes(),
            Duration::from_secs(60),
        );
        assert!(o.status.success(), "{sql}\n{}", show(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    /// Makes `ip`'s row older than vpopmail's 180 minutes.
    fn age(&self, ip: &str) {
        let ts = if self.kind == Kind::Mysql {
            "`timestamp`"
        } else {
            "\"timestamp\""
        };
        self.sql(&format!(
            "UPDATE relay SET {ts} = {ts} - 181 * 60 WHERE ip_addr = '{ip}'"
        ));
    }

    /// The relay rows as `relay list --json` shows them: (ip, open).
    fn rows(&self) -> Vec<(String, bool)> {
        let j = self.ok(&["--json", "relay", "list"], "");
        j.split("{\"ip\":\"")
            .skip(1)
            .map(|r| {
                let ip = r.split('"').next().unwrap().to_string();
                (ip, r.contains("\"open\":true"))
            })
            .collect()
    }
}

/// Whether our tcpserver lets a client from `from` in, and with RELAYCLIENT or not:
/// "relay", "norelay", or "" for a refused connection.
fn probe(s: &Server, from: &str) -> String {
    let ip: IpAddr = from.parse().unwrap();
    let mut c = connect_from(ip, s.addr());
    String::from_utf8(read_all(&mut c))
        .unwrap()
        .trim()
        .to_string()
}

/// tcprulescheck's report of the rule `cdb` has for a client at `ip`.
fn rule(cdb: &Path, ip: &str) -> String {
    let mut c = Command::new(ours("tcprulescheck"));
    c.arg(cdb).env_clear().env("TCPREMOTEIP", ip);
    let o = run_with_input(&mut c, b"", Duration::from_secs(10));
    assert!(o.status.success(), "{}", show(&o));
    String::from_utf8(o.stdout).unwrap()
}

fn server(cdb: &Path) -> Server {
    let cdb = cdb.to_str().unwrap();
    Server::start(
        &tcpserver_util::ours(),
        &["-HR", "-l0", "-x", cdb],
        "127.0.0.1",
        &["/bin/sh", "-c", PROBE],
        &base_env(),
    )
}

blackbox::backend_matrix!(pop_before_smtp);

fn pop_before_smtp(kind: Kind) {
    let w = World::new(kind);
    let cdb = w.cdb();

    // A cron run before any login: the base rules alone.
    let out = w.ok(&["relay", "rebuild"], "");
    assert!(out.contains(&cdb.display().to_string()), "{out}");
    let s = server(&cdb);
    assert_eq!(probe(&s, "127.0.0.5"), "norelay");
    assert_eq!(probe(&s, "127.0.0.7"), "", "the base file's deny");

    // The POP login opens relaying for its address only, at once (relay_rebuild).
    w.pop("127.0.0.5");
    assert!(w.rows().contains(&("127.0.0.5".into(), true)));
    assert_eq!(probe(&s, "127.0.0.5"), "relay");
    assert_eq!(probe(&s, "127.0.0.6"), "norelay");
    assert_eq!(probe(&s, "127.0.0.7"), "");

    // A second login from an address the cdb holds leaves the cdb alone.
    let ino = std::fs::metadata(&cdb).unwrap().ino();
    w.pop("127.0.0.5");
    assert_eq!(std::fs::metadata(&cdb).unwrap().ino(), ino, "no rebuild");

    // Two SMTP hosts, each with its own cdb, built from the one database agree.
    let (a, b) = (w.dir.join("host-a.cdb"), w.dir.join("host-b.cdb"));
    for p in [&a, &b] {
        w.ok(&["relay", "rebuild", "--cdb", p.to_str().unwrap()], "");
    }
    let (ab, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(ab == bb, "two hosts' cdbs differ");
    let sb = server(&b);
    assert_eq!(probe(&sb, "127.0.0.5"), "relay");
    assert_eq!(probe(&sb, "127.0.0.6"), "norelay");

    // After 180 minutes the row no longer opens relaying, expired or not yet deleted.
    w.age("127.0.0.5");
    w.ok(&["relay", "rebuild"], "");
    assert_eq!(probe(&s, "127.0.0.5"), "norelay");
    assert!(w.rows().contains(&("127.0.0.5".into(), false)));
    let out = w.ok(&["--json", "relay", "rebuild", "--expire"], "");
    assert!(!out.contains("\"expired\":0"), "{out}");
    assert!(!w.rows().iter().any(|(ip, _)| ip == "127.0.0.5"), "deleted");
    assert_eq!(probe(&s, "127.0.0.5"), "norelay");
    assert_eq!(probe(&s, "127.0.0.7"), "");

    // Logging in again opens it again.
    w.pop("127.0.0.5");
    assert_eq!(probe(&s, "127.0.0.5"), "relay");
}

/// The rebuild's cdb is byte for byte what djb's tcprules makes of the same text; a bad
/// base rules line is named by file and line and costs nothing.
#[test]
fn same_bytes_as_djb_and_bad_rules_lose_nothing() {
    let w = World::new(Kind::Sqlite);
    let cdb = w.cdb();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    w.pop("127.0.0.5");
    // Rows as vpopmail and others may have left them: v4-mapped, old, and not an
    // address at all (which must not reach the rules text).
    w.sql(&format!(
        "INSERT INTO relay VALUES ('::ffff:10.0.0.9', {now}), ('10.0.0.10', {now}), \
         ('192.0.2.1', {}), ('1.2.3.4:allow,X=\"y\"', {now})",
        now - 181 * 60
    ));
    let o = w.ma(&["relay", "rebuild"], "");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("holds no address"),
        "{}",
        show(&o)
    );
    let text = format!("{BASE}10.0.0.10{RULE}10.0.0.9{RULE}127.0.0.5{RULE}");
    let want = blackbox::compile_rules(&djb("tcprules"), &w.dir, "djb.cdb", &text);
    let ours_bytes = std::fs::read(&cdb).unwrap();
    assert!(
        std::fs::read(want).unwrap() == ours_bytes,
        "differs from djb's"
    );
    let m = std::fs::metadata(&cdb).unwrap();
    assert_eq!(m.mode() & 0o777, 0o644);

    // IPv6 rows get the rule line our tcprules reads (djb's cannot).
    w.sql(&format!("INSERT INTO relay VALUES ('2001:db8::5', {now})"));
    w.ok(&["relay", "rebuild"], "");
    let check = rule(&cdb, "2001:db8::5");
    assert!(check.contains("RELAYCLIENT="), "{check}");
    let good = std::fs::read(&cdb).unwrap();

    // A bad line in the base file: exit 100 as tcprules', file and line named, the old
    // cdb as it was, no temporary file left; a login still succeeds, with a warning.
    std::fs::write(
        w.dir.join("etc/tcp.smtp"),
        format!("{BASE}127.0.0.9:allowx\n"),
    )
    .unwrap();
    let o = w.ma(&["relay", "rebuild"], "");
    assert_eq!(o.status.code(), Some(100), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let named = format!(
        "{} line 4: unable to parse this line: 127.0.0.9:allowx",
        w.dir.join("etc/tcp.smtp").display()
    );
    assert!(err.contains(&named), "{err}");
    assert!(std::fs::read(&cdb).unwrap() == good, "the old cdb changed");
    let o = w.pop("127.0.0.8");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&named),
        "{}",
        show(&o)
    );
    assert!(std::fs::read(&cdb).unwrap() == good, "the old cdb changed");
    let left: Vec<_> = std::fs::read_dir(w.dir.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A missing base file is a temporary failure, like tcprules' unreadable input.
    std::fs::remove_file(w.dir.join("etc/tcp.smtp")).unwrap();
    let o = w.ma(&["relay", "rebuild"], "");
    assert_eq!(o.status.code(), Some(111), "{}", show(&o));
    assert!(std::fs::read(&cdb).unwrap() == good, "the old cdb changed");
}

/// Logins from many addresses at once, each rebuilding the one cdb: none fails, and
/// every address ends up in the cdb.
#[test]
fn concurrent_logins_all_open() {
    let w = World::new(Kind::Sqlite);
    let ips: Vec<String> = (1..=8).map(|i| format!("127.0.1.{i}")).collect();
    std::thread::scope(|s| {
        for ip in &ips {
            let w = &w;
            s.spawn(move || w.pop(ip));
        }
    });
    for ip in &ips {
        let check = rule(&w.cdb(), ip);
        assert!(check.contains(&format!("rule {ip}:")), "{ip}: {check}");
    }
}
