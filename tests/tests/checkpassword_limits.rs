//! Black-box tests of vpopmail's per-domain limits (vlimits) as checkpassword applies
//! them and mailaccounts sets them, on SQLite and the private MariaDB and PostgreSQL
//! (scripts/test.d/10-databases.sh); and of a setuid checkpassword, which must not let
//! an unprivileged caller's made-up client address pick the lockout counters or open
//! relaying. The domains and users are made with mailaccounts, the logins are
//! checkpassword called as qmail-popup, qmail-smtpd or an IMAP server calls it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use blackbox::{ours, run_with_input, show, TempDir};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Sqlite,
    Mysql,
    Pg,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);
/// `mailaccounts init` of the shared servers, one at a time (concurrent CREATE TABLE IF
/// NOT EXISTS may collide in PostgreSQL's catalogue).
static INIT: Mutex<()> = Mutex::new(());
/// The setuid tests write /etc/checkpassword.conf, the only settings a setuid run reads.
static ETC_CONF: Mutex<()> = Mutex::new(());

const LIMIT: Duration = Duration::from_secs(60);

fn server_var(kind: Kind, what: &str) -> String {
    let var = match kind {
        Kind::Mysql => format!("CHECKPASSWORD_TEST_MYSQL_{what}"),
        Kind::Pg => format!("CHECKPASSWORD_TEST_PG_{what}"),
        Kind::Sqlite => unreachable!("no server"),
    };
    std::env::var(&var).unwrap_or_else(|_| {
        panic!("{var} is not set: run through scripts/with-test-env.sh with 10-databases")
    })
}

/// One test's domain, in a database of its own (SQLite) or on the shared server.
struct Site {
    kind: Kind,
    dir: TempDir,
    url: String,
    domain: String,
    conf: PathBuf,
}

impl Site {
    /// A domain whose mail belongs to `owner` (uid and gid).
    fn new(kind: Kind, owner: u32) -> Site {
        blackbox::need_root("the domain's mail belongs to another user");
        let dir = TempDir::new("limits");
        // uid 65534 and the domain's owner must reach the files below.
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
        // Unique across runs too: the servers keep what earlier runs wrote.
        let unique = std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos() % 1_000_000_000_000;
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let url = match kind {
            Kind::Sqlite => format!("sqlite:{}", dir.join("vpopmail.sqlite").display()),
            _ => server_var(kind, "URL"),
        };
        let s = Site {
            kind,
            url,
            domain: format!("lim{n}-{}-{unique}.example", std::process::id()),
            conf: dir.join("checkpassword.conf"),
            dir,
        };
        s.configure("");
        {
            let _g = INIT.lock().unwrap_or_else(|e| e.into_inner());
            s.ok(&["init"]);
        }
        let id = owner.to_string();
        let ddir = s.domain_dir().display().to_string();
        s.ok(&[
            "add-domain",
            &s.domain,
            "--uid",
            &id,
            "--gid",
            &id,
            "--dir",
            &ddir,
        ]);
        s
    }

    /// The settings file: the database and directories, then `extra` lines.
    fn configure(&self, extra: &str) {
        let text = format!(
            "db = {}\nqmail = {}\nvpopmail_dir = {}\n{extra}",
            self.url,
            self.dir.join("qmail").display(),
            self.vpopmail().display()
        );
        std::fs::write(&self.conf, text).unwrap();
    }

    fn vpopmail(&self) -> PathBuf {
        self.dir.join("vpopmail")
    }

    fn domain_dir(&self) -> PathBuf {
        self.dir.join("domains").join(&self.domain)
    }

    fn login(&self, user: &str) -> String {
        format!("{user}@{}", self.domain)
    }

    fn ma(&self, args: &[&str], stdin: &str) -> Output {
        let mut c = Command::new(ours("mailaccounts"));
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("CHECKPASSWORD_CONFIG", &self.conf);
        run_with_input(&mut c, stdin.as_bytes(), LIMIT)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.ma(args, "");
        expect(&o, 0, "", &format!("mailaccounts {args:?}"));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn add_user(&self, user: &str, pw: &str) {
        let o = self.ma(&["add", &self.login(user)], &format!("{pw}\n"));
        expect(&o, 0, "", &format!("add {user}"));
    }

    /// Rows of a query, through the back end's own client.
    fn sql(&self, query: &str) -> Vec<String> {
        let mut c = match self.kind {
            Kind::Sqlite => {
                let mut c = Command::new("sqlite3");
                c.args(["-batch", "-separator", "\t"])
                    .arg(self.url.strip_prefix("sqlite:").unwrap());
                c
            }
            _ => {
                let mut c = Command::new(server_var(self.kind, "CTL"));
                c.arg("sql");
                c
            }
        };
        let o = run_with_input(&mut c, query.as_bytes(), LIMIT);
        assert!(o.status.success(), "{query}\n{}", show(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn relay_rows(&self, ip: &str) -> Vec<String> {
        self.sql(&format!(
            "SELECT ip_addr FROM relay WHERE ip_addr = '{ip}' OR ip_addr = '';"
        ))
    }
}

/// A login through checkpassword `bin` at `port` from `ip`: fd 3 from a file, prog
/// /bin/true; `caller` runs it as uid and gid 65534 (through setpriv), otherwise it runs
/// as root with the site's settings file.
fn attempt(
    s: &Site,
    bin: &Path,
    login: &str,
    pw: &str,
    port: &str,
    ip: &str,
    caller: bool,
) -> Output {
    let cred = s
        .dir
        .join(&format!("cred-{}", SEQ.fetch_add(1, Ordering::SeqCst)));
    std::fs::write(&cred, format!("{login}\0{pw}\0\0")).unwrap();
    std::fs::set_permissions(&cred, PermissionsExt::from_mode(0o644)).unwrap();
    let shell = r#"exec "$0" /bin/true 3<"$1""#;
    let mut c = if caller {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/bin/sh",
        ]);
        c
    } else {
        Command::new("/bin/sh")
    };
    c.arg("-c").arg(shell).arg(bin).arg(&cred);
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CHECKPASSWORD_CONFIG", &s.conf)
        .env("TCPREMOTEIP", ip)
        .env("TCPLOCALPORT", port);
    let o = run_with_input(&mut c, b"", LIMIT);
    let _ = std::fs::remove_file(&cred);
    o
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The exit code of a login, and that its log says `text` when given.
fn expect(o: &Output, code: i32, text: &str, what: &str) {
    assert_eq!(o.status.code(), Some(code), "{what}\n{}", show(o));
    assert!(err(o).contains(text), "{what}: want {text:?}\n{}", show(o));
}

const POP: &str = "110";
const IMAP: &str = "143";
const SUBMISSION: &str = "587";
const OWNER: u32 = 4713;

blackbox::backend_matrix!(
    domain_switches,
    domain_relay,
    limits_files,
    setuid_caller_address
);

/// The table's switches refuse a service to every user of the domain, with the exit code
/// and log line of the user's own flag; V_OVERRIDE exempts a user; mailaccounts shows,
/// sets and deletes them.
fn domain_switches(kind: Kind) {
    let s = Site::new(kind, OWNER);
    s.add_user("alice", "a pw");
    s.add_user("boss", "b pw");
    let (alice, boss) = (s.login("alice"), s.login("boss"));
    let bin = ours("checkpassword");
    let go =
        |login: &str, pw: &str, port: &str, ip: &str| attempt(&s, &bin, login, pw, port, ip, false);
    let ip = "192.0.2.10";
    assert!(s.ok(&["limits", "show", &s.domain]).contains("none"));
    // Each change, then what alice's right password gets from each service.
    type Step<'a> = (&'a [&'a str], &'a [(&'a str, &'a str, i32, &'a str)]);
    let steps: &[Step] = &[
        (
            &[],
            &[
                (POP, ip, 0, "success"),
                (IMAP, ip, 0, "success"),
                (SUBMISSION, ip, 0, "success"),
            ],
        ),
        (
            &["+disable_pop"],
            &[
                (POP, ip, 1, "pop access denied"),
                (IMAP, ip, 0, "success"),
                (SUBMISSION, ip, 0, "success"),
            ],
        ),
        // The flags' names work as the columns' do.
        (
            &["-NO_POP", "+disable_smtp"],
            &[
                (POP, ip, 0, "success"),
                (SUBMISSION, ip, 1, "smtp access denied"),
            ],
        ),
        // Webmail: POP from 127.0.0.1.
        (
            &["-disable_smtp", "+disable_imap", "+disable_webmail"],
            &[
                (IMAP, ip, 1, "imap access denied"),
                (POP, "127.0.0.1", 1, "webmail access denied"),
            ],
        ),
    ];
    for (changes, logins) in steps {
        if !changes.is_empty() {
            let mut args = vec!["limits", "set", &s.domain];
            args.extend_from_slice(changes);
            s.ok(&args);
        }
        for (port, from, code, text) in *logins {
            let what = format!("after {changes:?}: port {port} from {from}");
            expect(&go(&alice, "a pw", port, from), *code, text, &what);
        }
    }
    // A wrong password is still just that.
    expect(
        &go(&alice, "nope", IMAP, "192.0.2.11"),
        1,
        "password fail",
        "wrong pw",
    );
    // A user with V_OVERRIDE is not bound by the domain's limits.
    s.ok(&["flags", &boss, "+V_OVERRIDE"]);
    expect(
        &go(&boss, "b pw", IMAP, ip),
        0,
        "login success",
        "V_OVERRIDE",
    );

    // The round trip through mailaccounts, in JSON.
    s.ok(&[
        "limits",
        "set",
        &s.domain,
        "maxpopaccounts=25",
        "quota=1000000",
    ]);
    let j = s.ok(&["--json", "limits", "show", &s.domain]);
    for want in [
        "\"source\":\"table\"",
        "\"flags\":[\"NO_WEBMAIL\",\"NO_IMAP\"]",
        "\"disable_imap\":true",
        "\"disable_pop\":false",
        "\"maxpopaccounts\":25",
        "\"diskquota\":1000000",
        "\"maxaliases\":-1",
    ] {
        assert!(j.contains(want), "{want} in {j}");
    }
    // Another engineer's Dovecot and Postfix queries read these columns by name.
    let row = s.sql(&format!(
        "SELECT disable_pop, disable_imap, disable_smtp, disable_webmail, disable_relay \
         FROM limits WHERE domain = '{}';",
        s.domain
    ));
    assert_eq!(row, ["0\t1\t0\t1\t0"]);
    let log = s.ok(&["log", &s.domain]);
    assert!(
        log.contains("limits") && log.contains("maxpopaccounts -1 -> 25"),
        "{log}"
    );

    let bad = s.ma(&["limits", "set", &s.domain, "+disable_everything"], "");
    assert_eq!(bad.status.code(), Some(100), "{}", show(&bad));
    assert!(err(&bad).contains("unknown limit"), "{}", show(&bad));
    let bad = s.ma(&["limits", "set", "no-such.example", "+disable_pop"], "");
    assert_eq!(bad.status.code(), Some(100), "{}", show(&bad));

    s.ok(&["limits", "del", &s.domain]);
    expect(
        &go(&alice, "a pw", IMAP, ip),
        0,
        "login success",
        "row deleted",
    );
    assert!(s.ok(&["limits", "show", &s.domain]).contains("none"));
    // A deleted domain takes its row along: added again, it starts with no limits.
    s.ok(&["limits", "set", &s.domain, "+disable_imap"]);
    s.ok(&["del-domain", &s.domain]);
    let rows = s.sql(&format!(
        "SELECT domain FROM limits WHERE domain = '{}';",
        s.domain
    ));
    assert!(rows.is_empty(), "limits row left behind: {rows:?}");
}

/// disable_relay: a POP login opens no POP-before-SMTP relaying for its address.
fn domain_relay(kind: Kind) {
    let s = Site::new(kind, OWNER);
    s.configure("relay = on\n");
    s.add_user("roamer", "r pw");
    let roamer = s.login("roamer");
    let bin = ours("checkpassword");
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let (ip1, ip2) = (
        format!("198.51.{}.{}", 100 + n / 200, 1 + n % 200),
        format!("203.0.{}.{}", 113 - n / 200 % 10, 1 + n % 200),
    );
    s.ok(&["limits", "set", &s.domain, "+disable_relay"]);
    expect(
        &attempt(&s, &bin, &roamer, "r pw", POP, &ip1, false),
        0,
        "login success",
        "POP with disable_relay",
    );
    assert!(
        s.relay_rows(&ip1).is_empty(),
        "disable_relay opened relaying"
    );
    s.ok(&["limits", "set", &s.domain, "-disable_relay"]);
    expect(
        &attempt(&s, &bin, &roamer, "r pw", POP, &ip2, false),
        0,
        "login success",
        "POP without",
    );
    assert_eq!(s.relay_rows(&ip2), [ip2], "relay row");
}

/// Without a row in the table: the domain's .qmailadmin-limits, else vlimits.default; a
/// row wins over both; a file that cannot be read is a temporary failure.
fn limits_files(kind: Kind) {
    let s = Site::new(kind, OWNER);
    s.add_user("fred", "f pw");
    let fred = s.login("fred");
    let bin = ours("checkpassword");
    let go = |port: &str| attempt(&s, &bin, &fred, "f pw", port, "192.0.2.20", false);
    let file = s.domain_dir().join(".qmailadmin-limits");
    // As vpopmail's vlimits writes it.
    std::fs::write(
        &file,
        "maxpopaccounts: 10\nmaxaliases: -1\nquota: 0\ndisable_pop\ndisable_external_relay\n",
    )
    .unwrap();
    expect(&go(POP), 1, "pop access denied", "file: POP off");
    expect(&go(IMAP), 0, "login success", "file: IMAP on");
    let shown = s.ok(&["--json", "limits", "show", &s.domain]);
    assert!(
        shown.contains(&format!("\"source\":\"{}\"", file.display()))
            && shown.contains("\"maxpopaccounts\":10")
            && shown.contains("\"disable_relay\":true"),
        "{shown}"
    );
    // A row starts from what is in force and then wins over the file.
    s.ok(&["limits", "set", &s.domain, "-disable_pop"]);
    expect(&go(POP), 0, "login success", "row over file");
    let shown = s.ok(&["--json", "limits", "show", &s.domain]);
    assert!(
        shown.contains("\"maxpopaccounts\":10") && shown.contains("\"flags\":[\"NO_RELAY\"]"),
        "{shown}"
    );
    s.ok(&["limits", "del", &s.domain]);
    expect(&go(POP), 1, "pop access denied", "file again");

    // No domain file: vpopmail's default for every domain.
    std::fs::remove_file(&file).unwrap();
    let default = s.vpopmail().join("etc/vlimits.default");
    std::fs::create_dir_all(default.parent().unwrap()).unwrap();
    std::fs::write(&default, "# every domain\ndisable_imap\n").unwrap();
    expect(&go(POP), 0, "login success", "default: POP on");
    expect(&go(IMAP), 1, "imap access denied", "default: IMAP off");

    // Unreadable or oversized: 111, not an open door.
    std::fs::create_dir(&file).unwrap();
    expect(&go(IMAP), 111, "not a plain file", "a directory");
    std::fs::remove_dir(&file).unwrap();
    std::fs::write(&file, vec![b'#'; 70 * 1024]).unwrap();
    expect(&go(POP), 111, "longer than", "oversized");
}

/// A broken limits table (no domain column) is the database misbehaving: 111.
#[test]
fn broken_limits_table() {
    let s = Site::new(Kind::Sqlite, OWNER);
    s.add_user("gus", "g pw");
    s.sql("DROP TABLE limits; CREATE TABLE limits (x INT);");
    let bin = ours("checkpassword");
    let login = || attempt(&s, &bin, &s.login("gus"), "g pw", POP, "192.0.2.30", false);
    expect(&login(), 111, "database unavailable", "broken limits table");
    // No table at all is no limits.
    s.sql("DROP TABLE limits;");
    expect(&login(), 0, "login success", "no limits table");
}

/// A setuid-root copy called by uid 65534: the caller's TCPREMOTEIP is its own choice,
/// so failures count per account alone and lock it whatever addresses they claim; the
/// log names the caller instead of the address; no relay row for the claimed address.
/// Root calling directly is believed: the same failures count per address and lock
/// nothing. `trusted_uids` makes the caller believed too.
fn setuid_caller_address(kind: Kind) {
    let _g = ETC_CONF.lock().unwrap_or_else(|e| e.into_inner());
    // The domain belongs to the caller, who may then enter its POP user's directory.
    let s = Site::new(kind, 65534);
    for u in ["sam", "tom", "ulla", "vic"] {
        s.add_user(u, "right");
    }
    // Copied by install(1), in a child: a write descriptor of this process, inherited by
    // a child another test thread forks meanwhile, would make exec fail with ETXTBSY.
    let bin = s.dir.join("checkpassword-setuid");
    let installed = Command::new("install")
        .args(["-o", "root", "-m", "4755"])
        .arg(ours("checkpassword"))
        .arg(&bin)
        .status();
    assert!(installed.unwrap().success(), "install {}", bin.display());
    if let Some(p) = s.url.strip_prefix("sqlite:") {
        // Only the setuid program can read it.
        std::fs::set_permissions(p, PermissionsExt::from_mode(0o600)).unwrap();
    }
    let settings = "lockout_failures = 3\nlockout_ip_failures = 20\nrelay = on\n";
    s.configure(settings);
    let etc = Path::new("/etc/checkpassword.conf");
    let saved = std::fs::read(etc).ok();
    let conf = |extra: &str| {
        std::fs::write(etc, std::fs::read_to_string(&s.conf).unwrap() + extra).unwrap();
    };
    conf("");
    // Addresses of this run alone: the servers' per-address counters outlive a run.
    let (pid, n) = (
        std::process::id() % 250,
        SEQ.fetch_add(1, Ordering::SeqCst) % 250,
    );
    let claimed = |i: usize| format!("10.{pid}.{n}.{}", 10 + i);
    let mut report = Vec::new();

    // Untrusted: three wrong passwords "from" three addresses lock the account.
    let sam = s.login("sam");
    for i in 0..3 {
        let o = attempt(&s, &bin, &sam, "wrong", POP, &claimed(i), true);
        report.push(("untrusted wrong", o, 1, "password fail"));
    }
    let o = attempt(&s, &bin, &sam, "right", POP, &claimed(3), true);
    report.push(("untrusted after 3", o, 1, "account locked out"));
    // The right password from a client the caller names opens no relaying for it, and
    // lastauth records no address.
    let ulla = s.login("ulla");
    let o = attempt(&s, &bin, &ulla, "right", POP, &claimed(4), true);
    report.push(("untrusted success", o, 0, "untrusted(uid=65534)"));
    let relay_untrusted = s.relay_rows(&claimed(4));
    let lastauth = s.ok(&["--json", "lastauth", &ulla]);

    // Root, directly: believed, so each address has one failure and nothing locks.
    let tom = s.login("tom");
    let plain = ours("checkpassword");
    for i in 0..3 {
        let o = attempt(&s, &plain, &tom, "wrong", POP, &claimed(10 + i), false);
        report.push(("root wrong", o, 1, "password fail"));
    }
    let o = attempt(&s, &plain, &tom, "right", POP, &claimed(13), false);
    report.push(("root after 3", o, 0, "login success"));

    // The caller listed in trusted_uids: believed as root is.
    conf("trusted_uids = 65534\n");
    let vic = s.login("vic");
    for i in 0..3 {
        let o = attempt(&s, &bin, &vic, "wrong", POP, &claimed(20 + i), true);
        report.push(("trusted wrong", o, 1, "password fail"));
    }
    let o = attempt(&s, &bin, &vic, "right", POP, &claimed(23), true);
    report.push(("trusted after 3", o, 0, "login success"));
    let relay_trusted = s.relay_rows(&claimed(23));

    match saved {
        Some(t) => std::fs::write(etc, t).unwrap(),
        None => std::fs::remove_file(etc).unwrap(),
    }
    for (what, o, code, text) in &report {
        expect(o, *code, text, what);
        let log = err(o);
        if what.starts_with("untrusted") {
            assert!(log.contains(":untrusted(uid=65534)"), "{what}\n{log}");
            assert!(!log.contains(":10."), "claimed address logged: {log}");
        } else {
            assert!(
                log.contains(&format!(":10.{pid}.{n}.")),
                "{what}: address\n{log}"
            );
        }
    }
    assert!(
        relay_untrusted.is_empty(),
        "relay for a claimed address: {relay_untrusted:?}"
    );
    assert!(lastauth.contains("\"ip\":\"\""), "{lastauth}");
    assert_eq!(relay_trusted, [claimed(23)], "a trusted caller's relay row");
}
