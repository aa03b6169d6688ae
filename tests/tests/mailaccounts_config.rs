//! `mailaccounts config` against real servers: a private Dovecot 2.3 logs users in over
//! IMAP and POP3 with the SQL passdb and userdb `config dovecot` prints, and Debian's
//! postmap (unpacked by scripts/test.d/50-sqlservers.sh) answers the lookups of the maps
//! `config postfix` prints; each on SQLite and the private MariaDB and PostgreSQL of
//! scripts/test.d/10-databases.sh, over the tables mailaccounts itself filled. Dovecot
//! 2.4 cannot run here (Debian 12 ships 2.3.19): its output is checked for its shape.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blackbox::{ours, run_with_input, show, TempDir};

mod dovecot_util;
use dovecot_util::{free_port, start, Conn};

/// The owner of the test domains' mail (users/assign), which Dovecot's userdb must give.
const UID: u32 = 43240;
const GID: u32 = 43241;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Sqlite,
    Mysql,
    Pg,
}

/// vpopmail's `limits` table (vmysql.h's LIMITS_TABLE_LAYOUT, --enable-mysql-limits);
/// PostgreSQL and SQLite get the same columns in their own types.
const LIMITS_MYSQL: &str = "CREATE TABLE IF NOT EXISTS limits (domain CHAR(96) PRIMARY KEY, \
    maxpopaccounts INT(10) NOT NULL DEFAULT -1, maxaliases INT(10) NOT NULL DEFAULT -1, \
    maxforwards INT(10) NOT NULL DEFAULT -1, maxautoresponders INT(10) NOT NULL DEFAULT -1, \
    maxmailinglists INT(10) NOT NULL DEFAULT -1, diskquota BIGINT UNSIGNED NOT NULL DEFAULT 0, \
    maxmsgcount BIGINT UNSIGNED NOT NULL DEFAULT 0, defaultquota BIGINT UNSIGNED NOT NULL DEFAULT 0, \
    defaultmaxmsgcount BIGINT UNSIGNED NOT NULL DEFAULT 0, \
    disable_pop TINYINT(1) NOT NULL DEFAULT 0, disable_imap TINYINT(1) NOT NULL DEFAULT 0, \
    disable_dialup TINYINT(1) NOT NULL DEFAULT 0, \
    disable_passwordchanging TINYINT(1) NOT NULL DEFAULT 0, \
    disable_webmail TINYINT(1) NOT NULL DEFAULT 0, disable_relay TINYINT(1) NOT NULL DEFAULT 0, \
    disable_smtp TINYINT(1) NOT NULL DEFAULT 0, disable_spamassassin TINYINT(1) NOT NULL DEFAULT 0, \
    delete_spam TINYINT(1) NOT NULL DEFAULT 0, disable_maildrop TINYINT(1) NOT NULL DEFAULT 0, \
    perm_account TINYINT(2) NOT NULL DEFAULT 0, perm_alias TINYINT(2) NOT NULL DEFAULT 0, \
    perm_forward TINYINT(2) NOT NULL DEFAULT 0, perm_autoresponder TINYINT(2) NOT NULL DEFAULT 0, \
    perm_maillist TINYINT(4) NOT NULL DEFAULT 0, perm_quota TINYINT(2) NOT NULL DEFAULT 0, \
    perm_defaultquota TINYINT(2) NOT NULL DEFAULT 0)";

fn limits_ddl(kind: Kind) -> String {
    if kind == Kind::Mysql {
        return LIMITS_MYSQL.into();
    }
    LIMITS_MYSQL
        .replace("BIGINT UNSIGNED", "BIGINT")
        .replace("INT(10)", "INT")
        .replace("TINYINT(1)", "SMALLINT")
        .replace("TINYINT(2)", "SMALLINT")
        .replace("TINYINT(4)", "SMALLINT")
}

fn need(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/test.sh (or scripts/with-test-env.sh), which sets it")
    })
}

/// One test's database, domains and accounts, all made by the built mailaccounts.
struct Site {
    kind: Kind,
    dir: TempDir,
    url: String,
    /// A fresh domain for the users, and one whose limits row disables IMAP.
    d1: String,
    d2: String,
    /// A tag unique to this run, for rows in the shared servers' tables.
    tag: u32,
}

impl Site {
    /// `per_domain`: vpopmail's one-table-per-domain layout (`tables = per-domain`).
    fn new(kind: Kind, name: &str, per_domain: bool) -> Site {
        let dir = TempDir::new(name);
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let tag = (std::process::id() ^ (secs as u32).wrapping_mul(2654435761)) % 100_000;
        let url = match kind {
            Kind::Sqlite => format!("sqlite:{}", dir.join("db/vpopmail.sqlite").display()),
            Kind::Mysql => need("CHECKPASSWORD_TEST_MYSQL_URL"),
            Kind::Pg => need("CHECKPASSWORD_TEST_PG_URL"),
        };
        let layout = if per_domain { "per-domain" } else { "single" };
        std::fs::write(
            dir.join("checkpassword.conf"),
            format!("tables = {layout}\nrelay = on\n"),
        )
        .unwrap();
        let s = Site {
            kind,
            d1: format!("{name}-{tag}.example"),
            d2: format!("{name}-{tag}-nolimap.example"),
            url,
            dir,
            tag,
        };
        s.ok(&["init"], "");
        std::fs::create_dir_all(s.dir.join("domains")).unwrap();
        for d in [&s.d1, &s.d2] {
            let dd = s.dir.join("domains").join(d).display().to_string();
            let (u, g) = (UID.to_string(), GID.to_string());
            s.ok(
                &["add-domain", d, "--uid", &u, "--gid", &g, "--dir", &dd],
                "",
            );
        }
        s
    }

    /// The environment that points mailaccounts and checkpassword at this site.
    fn vars(&self) -> [(&'static str, PathBuf); 5] {
        [
            ("PATH", PathBuf::from("/usr/bin:/bin")),
            ("CHECKPASSWORD_CONFIG", self.dir.join("checkpassword.conf")),
            ("CHECKPASSWORD_DB", PathBuf::from(&self.url)),
            ("CHECKPASSWORD_VPOPMAIL_DIR", self.dir.join("vpopmail")),
            ("QMAIL", self.dir.join("qmail")),
        ]
    }

    /// Runs the built mailaccounts on this site's database and QMAIL, `input` on its
    /// stdin; it must succeed.
    fn ok(&self, args: &[&str], input: &str) -> String {
        let mut c = Command::new(ours("mailaccounts"));
        c.args(args).env_clear().envs(self.vars());
        let o = run_with_input(&mut c, input.as_bytes(), Duration::from_secs(60));
        if o.status.code() != Some(0) {
            panic!("mailaccounts {args:?}\n{}", show(&o));
        }
        String::from_utf8(o.stdout).unwrap()
    }

    /// Our checkpassword's exit code for a POP3 login from `ip` (it runs /bin/true).
    fn checkpassword(&self, login: &str, pw: &str, ip: &str) -> Option<i32> {
        let cred = self.dir.join("cred");
        std::fs::write(&cred, format!("{login}\0{pw}\0\0")).unwrap();
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(r#"exec "$0" /bin/true 3<"$1""#)
            .arg(ours("checkpassword"))
            .arg(&cred)
            .env_clear()
            .envs(self.vars())
            .env("TCPREMOTEIP", ip)
            .env("TCPLOCALPORT", "110");
        let o = run_with_input(&mut c, b"", Duration::from_secs(60));
        if o.status.code() != Some(0) {
            eprintln!("checkpassword {login}\n{}", show(&o));
        }
        o.status.code()
    }

    /// SQL run by the database's own client (rows as tab-separated lines).
    fn sql(&self, sql: &str) -> String {
        let mut c = match self.kind {
            Kind::Sqlite => {
                let mut c = Command::new("sqlite3");
                c.arg("-batch")
                    .arg("-separator")
                    .arg("\t")
                    .arg(self.dir.join("db/vpopmail.sqlite"));
                c
            }
            Kind::Mysql => {
                let mut c = Command::new(need("CHECKPASSWORD_TEST_MYSQL_CTL"));
                c.arg("sql");
                c
            }
            Kind::Pg => {
                let mut c = Command::new(need("CHECKPASSWORD_TEST_PG_CTL"));
                c.arg("sql");
                c
            }
        };
        let o = run_with_input(&mut c, sql.as_bytes(), Duration::from_secs(60));
        assert!(o.status.success(), "{sql}\n{}", show(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    /// The shared servers' `cptest` tables belong to the test user; the control
    /// scripts run as the servers' superuser.
    fn limits(&self, domain: &str, column: &str) {
        self.sql(&format!("{};", limits_ddl(self.kind)));
        if self.kind == Kind::Pg {
            self.sql("GRANT ALL ON limits TO cptest;");
        }
        self.sql(&format!(
            "INSERT INTO limits (domain, {column}) VALUES ('{domain}', 1);"
        ));
    }

    fn add(&self, login: &str, pw: &str, extra: &[&str]) {
        let mut args = vec!["add", login];
        args.extend(extra);
        self.ok(&args, &format!("{pw}\n"));
    }

    /// `mailaccounts config ARGS --with-password --out DIR`: the directory.
    fn config(&self, args: &[&str]) -> PathBuf {
        let out = self.dir.join(&format!("config-{}", args.join("-")));
        let mut a = vec!["config"];
        a.extend(args);
        let o = out.display().to_string();
        a.extend(["--with-password", "--out", &o]);
        self.ok(&a, "");
        out
    }
}

blackbox::backend_matrix!(
    dovecot_logs_in_through_sql,
    dovecot_per_domain_tables,
    postfix_maps_answer,
    postfix_per_domain_tables
);

fn dovecot_logs_in_through_sql(kind: Kind) {
    dovecot_logins(kind, false)
}

fn dovecot_per_domain_tables(kind: Kind) {
    dovecot_logins(kind, true)
}

fn postfix_maps_answer(kind: Kind) {
    postfix_lookups(kind, false)
}

fn postfix_per_domain_tables(kind: Kind) {
    postfix_lookups(kind, true)
}

fn imap_login(port: u16, from: [u8; 4], login: &str, pw: &str) -> String {
    let mut c = Conn::from(port, from);
    c.send(&format!("a1 LOGIN {login} {pw}"));
    let r = c.tagged("a1");
    c.send("a2 LOGOUT");
    r
}

fn pop_login(port: u16, from: [u8; 4], login: &str, pw: &str) -> String {
    let mut p = Conn::from(port, from);
    p.send(&format!("USER {login}"));
    let r = p.line();
    assert!(r.starts_with("+OK"), "USER: {r}");
    p.send(&format!("PASS {pw}"));
    let r = p.line();
    p.send("QUIT");
    r
}

fn dovecot_logins(kind: Kind, per_domain: bool) {
    // SAFETY: plain id query.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "Dovecot needs root (scripts/test.sh runs as root)"
    );
    let s = Site::new(
        kind,
        &format!("dsql{}{}", kind as u8, per_domain as u8),
        per_domain,
    );
    let (d1, d2) = (&s.d1, &s.d2);
    s.add(&format!("alice@{d1}"), "Alice-pw1", &["--quota", "5M"]);
    s.add(
        &format!("bob@{d1}"),
        "Bob-pw2",
        &[
            "--hash",
            "sha512",
            "--flags",
            "+NO_POP",
            "--quota",
            "1000000S,50C",
        ],
    );
    s.add(
        &format!("dave@{d1}"),
        "Dave-pw4",
        &["--hash", "bcrypt", "--flags", "+NO_WEBMAIL"],
    );
    s.add(&format!("carol@{d2}"), "Carol-pw3", &["--hash", "md5"]);
    s.limits(d2, "disable_imap");

    let conf = s.config(&["dovecot", "--version", "2.3"]);
    let auth = format!(
        "first_valid_uid = {UID}\n!include {}\n",
        conf.join("auth-vpopmail.conf.ext").display()
    );
    let sqlconf = std::fs::read_to_string(conf.join("dovecot-sql-vpopmail.conf.ext")).unwrap();
    assert!(sqlconf.contains("iterate_query = "), "{sqlconf}");
    let mode = std::fs::metadata(conf.join("dovecot-sql-vpopmail.conf.ext")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600,
        "the file with the database password is root's only"
    );
    let (imap, pop3) = (free_port(), free_port());
    let dv = start(&s.dir, imap, pop3, &auth);
    // Each login from an address of its own: Dovecot delays an address after a failure.
    let t = s.tag % 200 + 20;
    let from = |n: u8| [127, 1, t as u8, n];

    let r = imap_login(imap, from(1), &format!("alice@{d1}"), "Alice-pw1");
    assert!(r.starts_with("a1 OK"), "alice IMAP: {r}\n{}", dv.log());
    let r = imap_login(imap, from(2), &format!("alice@{d1}"), "Alice-pw9");
    assert!(r.starts_with("a1 NO"), "wrong password: {r}");
    let r = pop_login(pop3, from(3), &format!("alice@{d1}"), "Alice-pw1");
    assert!(r.starts_with("+OK"), "alice POP3: {r}\n{}", dv.log());
    let r = pop_login(pop3, from(4), &format!("alice@{d1}"), "wrong");
    assert!(r.starts_with("-ERR"), "wrong password: {r}");
    let r = imap_login(imap, from(5), &format!("ghost@{d1}"), "Alice-pw1");
    assert!(r.starts_with("a1 NO"), "unknown user: {r}");

    // NO_POP: POP refused, IMAP still fine.
    let r = pop_login(pop3, from(6), &format!("bob@{d1}"), "Bob-pw2");
    assert!(r.starts_with("-ERR"), "NO_POP: {r}\n{}", dv.log());
    let r = imap_login(imap, from(7), &format!("bob@{d1}"), "Bob-pw2");
    assert!(
        r.starts_with("a1 OK"),
        "NO_POP allows IMAP: {r}\n{}",
        dv.log()
    );

    // The domain's limits row disables IMAP: refused; POP3 unaffected.
    let r = imap_login(imap, from(8), &format!("carol@{d2}"), "Carol-pw3");
    assert!(
        r.starts_with("a1 NO"),
        "limits.disable_imap: {r}\n{}",
        dv.log()
    );
    let r = pop_login(pop3, from(9), &format!("carol@{d2}"), "Carol-pw3");
    assert!(
        r.starts_with("+OK"),
        "disable_imap allows POP3: {r}\n{}",
        dv.log()
    );

    // vchkpw's webmail rule: IMAP from 127.0.0.1 is webmail, NO_WEBMAIL refuses it.
    let r = imap_login(imap, [127, 0, 0, 1], &format!("dave@{d1}"), "Dave-pw4");
    assert!(r.starts_with("a1 NO"), "NO_WEBMAIL from 127.0.0.1: {r}");
    let r = imap_login(imap, from(10), &format!("dave@{d1}"), "Dave-pw4");
    assert!(
        r.starts_with("a1 OK"),
        "NO_WEBMAIL elsewhere: {r}\n{}",
        dv.log()
    );

    // The userdb: users/assign's ids, pw_dir, pw_shell's quota; the maildir Dovecot
    // opened is the one mailaccounts made.
    let home = |u: &str| s.dir.join("domains").join(d1).join(u).display().to_string();
    for (user, quota) in [
        ("alice", "*:storage=5242880B"),
        ("bob", "*:storage=1000000B:messages=50"),
    ] {
        let fields = doveadm_user(&dv.conf, &format!("{user}@{d1}"));
        for want in [
            ("uid", UID.to_string()),
            ("gid", GID.to_string()),
            ("home", home(user)),
            ("quota_rule", quota.to_string()),
        ] {
            assert!(
                fields.contains(&(want.0.to_string(), want.1.clone())),
                "doveadm user {user}: want {want:?} in {fields:?}"
            );
        }
    }
    let list = Command::new("doveadm")
        .arg("-c")
        .arg(&dv.conf)
        .args(["user", &format!("*@{d1}")])
        .output()
        .unwrap();
    let mut listed: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            format!("alice@{d1}"),
            format!("bob@{d1}"),
            format!("dave@{d1}")
        ],
        "iterate_query"
    );
    let log = dv.log();
    assert!(
        !log.contains("Alice-pw") && !log.contains("cp-pw"),
        "password logged:\n{log}"
    );
}

/// `doveadm user LOGIN`: the userdb's fields for the login, as (name, value).
fn doveadm_user(conf: &Path, login: &str) -> Vec<(String, String)> {
    let o = Command::new("doveadm")
        .arg("-c")
        .arg(conf)
        .args(["user", login])
        .output()
        .unwrap();
    assert!(o.status.success(), "doveadm user {login}\n{}", show(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(char::is_whitespace)?;
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Debian's postmap, unpacked, with a private main.cf: `postmap -q KEY MAP`.
struct Postmap {
    root: PathBuf,
    conf: PathBuf,
}

impl Postmap {
    fn new(dir: &Path) -> Postmap {
        let root = PathBuf::from(need("POSTFIX_TEST_ROOT"));
        let conf = dir.join("postfix-etc");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::copy(
            root.join("usr/share/postfix/dynamicmaps.cf"),
            conf.join("dynamicmaps.cf"),
        )
        .unwrap();
        // mail_owner and setgid_group only have to be distinct existing accounts.
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nshlib_directory = {lib}\nmeta_directory = {meta}\n\
                 daemon_directory = {lib}/sbin\nmail_owner = daemon\nsetgid_group = mail\n",
                lib = root.join("usr/lib/postfix").display(),
                meta = conf.display(),
            ),
        )
        .unwrap();
        Postmap { root, conf }
    }

    /// The lookup's answer, or None when the key is not found.
    fn q(&self, key: &str, map: &str) -> Option<String> {
        let o = Command::new(self.root.join("usr/sbin/postmap"))
            .env("LD_LIBRARY_PATH", self.root.join("usr/lib/postfix"))
            .arg("-c")
            .arg(&self.conf)
            .args(["-q", key, map])
            .output()
            .unwrap();
        match o.status.code() {
            Some(0) => Some(String::from_utf8(o.stdout).unwrap().trim_end().to_string()),
            Some(1) if o.stdout.is_empty() && o.stderr.is_empty() => None,
            _ => panic!("postmap -q {key} {map}\n{}", show(&o)),
        }
    }
}

fn postfix_lookups(kind: Kind, per_domain: bool) {
    let s = Site::new(
        kind,
        &format!("psql{}{}", kind as u8, per_domain as u8),
        per_domain,
    );
    let d1 = &s.d1;
    s.add(&format!("alice@{d1}"), "Alice-pw1", &[]);
    s.add(
        &format!("bounced@{d1}"),
        "B-pw",
        &["--flags", "+BOUNCE_MAIL"],
    );
    let out = s.config(&["postfix", "--minutes", "10"]);
    let ty = match kind {
        Kind::Sqlite => "sqlite",
        Kind::Mysql => "mysql",
        Kind::Pg => "pgsql",
    };
    let map = |f: &str| format!("{ty}:{}", out.join(f).display());
    let main = std::fs::read_to_string(out.join("main.cf-vpopmail")).unwrap();
    for f in [
        "vpopmail-domains.cf",
        "vpopmail-mailboxes.cf",
        "vpopmail-relay.cf",
    ] {
        assert!(main.contains(&map(f)), "main.cf settings name {f}:\n{main}");
    }
    let pm = Postmap::new(s.dir.path());

    assert_eq!(
        pm.q(d1, &map("vpopmail-domains.cf")).as_deref(),
        Some(d1.as_str())
    );
    assert_eq!(pm.q("nowhere.example", &map("vpopmail-domains.cf")), None);
    let maildir = format!(
        "{}/",
        s.dir
            .join("domains")
            .join(d1)
            .join("alice/Maildir")
            .display()
    );
    assert_eq!(
        pm.q(&format!("alice@{d1}"), &map("vpopmail-mailboxes.cf")),
        Some(maildir.clone())
    );
    assert!(
        Path::new(&maildir).join("new").is_dir(),
        "the maildir mailaccounts made"
    );
    assert_eq!(
        pm.q(&format!("ghost@{d1}"), &map("vpopmail-mailboxes.cf")),
        None
    );
    assert_eq!(
        pm.q(&format!("bounced@{d1}"), &map("vpopmail-mailboxes.cf")),
        None,
        "BOUNCE_MAIL is not a mailbox"
    );

    // POP-before-SMTP: a relay row written by checkpassword's POP3 login (`relay =
    // on`), and one an hour old, against --minutes 10.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ip = |n: u8| {
        format!(
            "198.18.{}.{}",
            s.tag % 250,
            kind as u8 * 4 + per_domain as u8 * 2 + n
        )
    };
    let (young, old) = (ip(1), ip(2));
    s.sql(&format!(
        "DELETE FROM relay WHERE ip_addr IN ('{young}', '{old}'); \
         INSERT INTO relay (ip_addr, timestamp) VALUES ('{old}', {});",
        now - 3600
    ));
    assert_eq!(
        s.checkpassword(&format!("alice@{d1}"), "Alice-pw1", &young),
        Some(0)
    );
    assert_eq!(
        pm.q(&young, &map("vpopmail-relay.cf")).as_deref(),
        Some("OK")
    );
    assert_eq!(
        pm.q(&old, &map("vpopmail-relay.cf")),
        None,
        "older than 10 minutes"
    );
    assert_eq!(pm.q("198.51.100.7", &map("vpopmail-relay.cf")), None);
}

/// Dovecot 2.4 cannot run here: its file is checked for 2.4's forms (named passdb and
/// userdb sections, the SQL driver settings, %{...} variables standing for whole values,
/// no 2.3 one-letter variables) on each back end, without a database.
#[test]
fn dovecot_24_output_shape() {
    let dir = TempDir::new("dv24");
    let qmail = dir.join("qmail");
    std::fs::create_dir_all(qmail.join("users")).unwrap();
    std::fs::write(
        qmail.join("users/assign"),
        "+a.example-:a.example:89:90:/home/vpopmail/domains/a.example:-::\n.\n",
    )
    .unwrap();
    let cases = [
        (
            "sqlite:/var/lib/checkpassword/vpopmail.sqlite",
            "sqlite_path = \"/var/lib/checkpassword/vpopmail.sqlite\"",
        ),
        (
            "mysql://vp:s3cret@db.example:3307/vpopmail",
            "mysql db.example {\n  port = 3307\n  user = \"vp\"\n",
        ),
        (
            "postgres://vp:s3cret@/vpopmail?host=/run/postgresql&port=5433",
            "pgsql /run/postgresql {\n  parameters {\n    port = 5433\n",
        ),
    ];
    for (url, driver) in cases {
        let mut c = Command::new(ours("mailaccounts"));
        c.args(["config", "dovecot", "--version", "2.4"])
            .env_clear()
            .env("CHECKPASSWORD_CONFIG", "/dev/null")
            .env("CHECKPASSWORD_DB", url)
            .env("CHECKPASSWORD_DEFAULT_DOMAIN", "a.example")
            .env("QMAIL", &qmail);
        let o = run_with_input(&mut c, b"", Duration::from_secs(30));
        assert_eq!(o.status.code(), Some(0), "{url}\n{}", show(&o));
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(text.contains(driver), "{url}: want {driver:?}\n{text}");
        assert!(
            !text.contains("s3cret"),
            "password printed without --with-password"
        );
        if !url.starts_with("sqlite") {
            assert!(String::from_utf8_lossy(&o.stderr).contains("--with-password"));
        }
        for want in [
            "passdb sql {\n  query = SELECT ",
            "userdb sql {\n  query = SELECT ",
            "  iterate_query = SELECT ",
            "u.pw_name = '%{user | username}' AND u.pw_domain = '%{user | domain}'",
            "'%{protocol}' IN ('imap', 'sieve', 'managesieve')",
            "'%{remote_ip}' = '127.0.0.1'",
            "CASE u.pw_domain WHEN 'a.example' THEN 89 ",
            "AS quota_storage_size",
            "auth_default_domain = a.example",
            "mail_driver = maildir",
            "LEFT JOIN limits l ON l.domain = u.pw_domain",
        ] {
            assert!(text.contains(want), "{url}: want {want:?}\n{text}");
        }
        for gone in [
            "'%n'",
            "'%d'",
            "'%s'",
            "  driver = sql\n",
            "args = ",
            "quota_rule",
            "mail_location",
        ] {
            assert!(
                !text.contains(gone),
                "{url}: 2.3 form {gone:?} in 2.4 output\n{text}"
            );
        }
        assert!(
            !qmail.join("users/assign.lock").exists(),
            "printing takes no lock and creates nothing"
        );
        // No line may open a section by accident (2.4 reads a trailing `{` as one).
        for l in text.lines() {
            let t = l.trim_end();
            if t.ends_with('{') {
                assert!(
                    ["passdb sql {", "userdb sql {", "  parameters {"].contains(&t)
                        || t.starts_with("mysql ")
                        || t.starts_with("pgsql "),
                    "{url}: unexpected section line {t:?}"
                );
            }
        }
    }
}

#[test]
fn config_usage_errors() {
    for args in [
        &["config", "dovecot", "--version", "2.5"][..],
        &["config", "postfix", "--minutes", "0"],
        &["config", "postfix", "--minutes", "soon"],
        &["config", "exim"],
    ] {
        let mut c = Command::new(ours("mailaccounts"));
        c.args(args)
            .env_clear()
            .env("CHECKPASSWORD_CONFIG", "/dev/null")
            .env("CHECKPASSWORD_DB", "sqlite:/nonexistent/x.sqlite")
            .env("QMAIL", "/nonexistent");
        let o = run_with_input(&mut c, b"", Duration::from_secs(30));
        assert_eq!(o.status.code(), Some(100), "{args:?}\n{}", show(&o));
        assert!(
            o.stdout.is_empty(),
            "{args:?}: nothing printed\n{}",
            show(&o)
        );
    }
}
