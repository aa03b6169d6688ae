//! Black-box tests of checkpassword's TLS to MariaDB and PostgreSQL: real logins through
//! the built binary against the private servers of scripts/test.d/10-databases.sh, which
//! speak TLS with a certificate of the test's own CA (127.0.0.1 and localhost). Beside
//! the shared servers (an account `REQUIRE SSL`, a role pg_hba.conf admits by `hostssl`
//! only) there are a MariaDB with `require_secure_transport=ON`, and a MariaDB and a
//! PostgreSQL without TLS.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use blackbox::{ours, show, TempDir};

const PASSWORD: &str = "Tls-pw-1";

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/test.sh, which starts the private database servers")
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mysql,
    Pg,
}

/// Runs SQL through a server's control script (as its superuser, over its socket).
fn sql(ctl: &str, text: &str) -> String {
    let mut c = Command::new(ctl)
        .arg("sql")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server's control script");
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{text}\n{}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// vpopmail's table, once per server (concurrent CREATE TABLE IF NOT EXISTS can collide
/// in PostgreSQL's catalogue).
fn schema(kind: Kind, ctl: &str) {
    static DONE: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if !done
        .get_or_insert_with(HashSet::new)
        .insert(ctl.to_string())
    {
        return;
    }
    let owner = if kind == Kind::Pg {
        "ALTER TABLE vpopmail OWNER TO cptest;"
    } else {
        ""
    };
    sql(
        ctl,
        &format!(
            "CREATE TABLE IF NOT EXISTS vpopmail (pw_name VARCHAR(64) NOT NULL, \
             pw_domain VARCHAR(96) NOT NULL, pw_passwd VARCHAR(128), pw_uid INT, pw_gid INT, \
             pw_gecos VARCHAR(64), pw_dir VARCHAR(160), pw_shell VARCHAR(20), \
             pw_clear_passwd VARCHAR(128), PRIMARY KEY (pw_name, pw_domain));{owner}"
        ),
    );
}

/// One test's user on one server: `tls@DOMAIN` with [`PASSWORD`] and a home of its own.
struct World {
    dir: TempDir,
    domain: String,
}

impl World {
    fn new(kind: Kind, ctl: &str) -> World {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = TempDir::new("cptls");
        // The program runs as the configured uid, in this directory.
        let mut perm = std::fs::metadata(dir.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(dir.path(), perm).unwrap();
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 1_000_000;
        let n = N.fetch_add(1, Ordering::SeqCst);
        let domain = format!("tls{}-{run}-{n}.example", std::process::id());
        let hash = Command::new("mkpasswd")
            .args(["-m", "sha-512", PASSWORD])
            .output()
            .expect("mkpasswd (package whois)");
        let hash = String::from_utf8(hash.stdout).unwrap().trim().to_string();
        schema(kind, ctl);
        sql(
            ctl,
            &format!(
                "INSERT INTO vpopmail VALUES ('tls', '{domain}', '{hash}', 0, 0, 'T', '{}', \
                 'NOQUOTA', '');",
                dir.path().display()
            ),
        );
        World { dir, domain }
    }

    /// A POP3 login through checkpassword with `db` and the settings file `config`.
    fn login_with(&self, db: &str, config: &str) -> Output {
        let conf = self.dir.join("checkpassword.conf");
        std::fs::write(&conf, config).unwrap();
        let input = self.dir.join("fd3");
        std::fs::write(&input, format!("tls@{}\0{PASSWORD}\0\0", self.domain)).unwrap();
        let mut c = Command::new("/bin/sh");
        // fd 3 from the file, as the interface wants it.
        c.args(["-c", "exec \"$0\" /bin/true 3<\"$1\""])
            .arg(ours("checkpassword"))
            .arg(&input)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("CHECKPASSWORD_CONFIG", &conf)
            .env("CHECKPASSWORD_DB", db)
            .env("CHECKPASSWORD_UID", "43250")
            .env("CHECKPASSWORD_GID", "43251")
            .env("CHECKPASSWORD_VPOPMAIL_DIR", self.dir.path())
            .env("QMAIL", self.dir.path())
            .env("TCPREMOTEIP", "127.0.0.1")
            .env("TCPLOCALPORT", "110");
        blackbox::run_with_input(&mut c, b"", Duration::from_secs(60))
    }

    fn login(&self, db: &str) -> Output {
        self.login_with(db, "")
    }
}

fn assert_code(o: &Output, want: i32, what: &str) {
    assert_eq!(o.status.code(), Some(want), "{what}\n{}", show(o));
}

/// 111, and stderr says why: `why` among its words.
fn assert_refused(o: &Output, why: &str, what: &str) {
    assert_code(o, 111, what);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("database unavailable"), "{what}: {err}");
    assert!(err.contains(why), "{what}: want {why:?} in {err}");
}

/// `url` with a query parameter added.
fn with(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

fn ca() -> String {
    env("CHECKPASSWORD_TEST_CA")
}

fn wrong_ca() -> String {
    env("CHECKPASSWORD_TEST_WRONG_CA")
}

// ---------------------------------------------------------------------------------------
// MariaDB

#[test]
fn mysql_account_require_ssl() {
    let w = World::new(Kind::Mysql, &env("CHECKPASSWORD_TEST_MYSQL_CTL"));
    let url = env("CHECKPASSWORD_TEST_MYSQL_TLS_URL");
    let verified = with(&url, &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", ca()));
    assert_code(&w.login(&verified), 0, "VERIFY_IDENTITY with the right CA");
    assert_code(
        &w.login(&with(
            &url,
            &format!("sslmode=verify-ca&sslrootcert={}", ca()),
        )),
        0,
        "verify-ca with the right CA",
    );
    // The default over TCP (prefer) uses the TLS the server offers.
    assert_code(&w.login(&url), 0, "the default");
    assert_code(&w.login(&with(&url, "ssl-mode=REQUIRED")), 0, "REQUIRED");
    // Without TLS the server refuses the account: so the logins above were over TLS.
    assert_refused(
        &w.login(&with(&url, "ssl-mode=DISABLED")),
        "Access denied",
        "DISABLED",
    );
    // libpq's allow: plain first, refused, then TLS.
    assert_code(&w.login(&with(&url, "sslmode=allow")), 0, "allow");
}

#[test]
fn mysql_wrong_ca_is_never_plain_text() {
    let w = World::new(Kind::Mysql, &env("CHECKPASSWORD_TEST_MYSQL_CTL"));
    // An account that may log in without TLS: a fallback to plain text would succeed.
    let url = env("CHECKPASSWORD_TEST_MYSQL_URL");
    assert_code(&w.login(&with(&url, "ssl-mode=DISABLED")), 0, "plain works");
    for mode in ["VERIFY_CA", "VERIFY_IDENTITY", "verify-full", "REQUIRED"] {
        let o = w.login(&with(
            &url,
            &format!("ssl-mode={mode}&ssl-ca={}", wrong_ca()),
        ));
        assert_refused(&o, "invalid peer certificate", mode);
        assert!(String::from_utf8_lossy(&o.stderr).contains("UnknownIssuer"));
    }
}

#[test]
fn mysql_config_keys() {
    let w = World::new(Kind::Mysql, &env("CHECKPASSWORD_TEST_MYSQL_CTL"));
    let url = env("CHECKPASSWORD_TEST_MYSQL_TLS_URL");
    let keys = |mode: &str, ca: &str| format!("db_sslmode = {mode}\ndb_sslrootcert = {ca}\n");
    assert_code(
        &w.login_with(&url, &keys("VERIFY_IDENTITY", &ca())),
        0,
        "the keys, the right CA",
    );
    assert_refused(
        &w.login_with(&url, &keys("verify-full", &wrong_ca())),
        "invalid peer certificate",
        "the keys, the wrong CA",
    );
    // The URL's parameters come first.
    assert_code(
        &w.login_with(
            &with(&url, &format!("ssl-ca={}", ca())),
            &keys("verify-full", &wrong_ca()),
        ),
        0,
        "the URL's CA over the key's",
    );
    let o = w.login_with(&url, "db_sslmode = sometimes\n");
    assert_code(&o, 111, "a bad mode");
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad TLS mode"));
}

/// The server with `require_secure_transport`: one test at a time reads its counters.
static STRICT: Mutex<()> = Mutex::new(());

/// The server's count of TLS handshakes, less the one of the query's own session (the
/// mariadb client uses TLS on the socket too), so that two readings differ by what
/// happened between them.
fn ssl_accepts(ctl: &str) -> u64 {
    static READINGS: AtomicUsize = AtomicUsize::new(0);
    let out = sql(ctl, "SHOW GLOBAL STATUS LIKE 'Ssl_accepts';");
    let n: u64 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    n - 1 - READINGS.fetch_add(1, Ordering::SeqCst) as u64
}

#[test]
fn mysql_require_secure_transport() {
    let _g = STRICT.lock().unwrap_or_else(|e| e.into_inner());
    let ctl = env("CHECKPASSWORD_TEST_MYSQL_STRICT_CTL");
    let w = World::new(Kind::Mysql, &ctl);
    let url = env("CHECKPASSWORD_TEST_MYSQL_STRICT_URL");
    let before = ssl_accepts(&ctl);
    assert_code(&w.login(&url), 0, "the default (prefer)");
    assert_code(
        &w.login(&with(
            &url,
            &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", ca()),
        )),
        0,
        "VERIFY_IDENTITY",
    );
    assert_eq!(ssl_accepts(&ctl), before + 2);
    // The account has no REQUIRE SSL: the server setting refuses it (MariaDB says no
    // more than "Access denied").
    assert_refused(
        &w.login(&with(&url, "ssl-mode=DISABLED")),
        "Access denied",
        "DISABLED",
    );
}

#[test]
fn mysql_unix_socket_is_never_tls() {
    let _g = STRICT.lock().unwrap_or_else(|e| e.into_inner());
    let ctl = env("CHECKPASSWORD_TEST_MYSQL_STRICT_CTL");
    let w = World::new(Kind::Mysql, &ctl);
    let dir = std::path::Path::new(&ctl)
        .parent()
        .unwrap()
        .join("mysql-strict");
    // root by the unix_socket plugin: checkpassword runs as root here.
    let url = format!(
        "mysql://root@localhost/cptest?socket={}/mysql.sock",
        dir.display()
    );
    let before = ssl_accepts(&ctl);
    assert_code(&w.login(&url), 0, "the socket, the default");
    // A mode does not apply to the socket (as with libpq and MySQL's client).
    assert_code(
        &w.login(&with(&url, "ssl-mode=VERIFY_IDENTITY")),
        0,
        "the socket, VERIFY_IDENTITY",
    );
    assert_eq!(ssl_accepts(&ctl), before, "no TLS on the socket");
}

/// A server without TLS (`PREFIX_CTL`, `PREFIX_URL`): the modes that may go on in plain
/// text do, the others are refused before a word of the login is sent.
fn server_without_tls(kind: Kind, prefix: &str, plain: &[&str], refused: &[&str]) {
    let w = World::new(kind, &env(&format!("{prefix}_CTL")));
    let url = env(&format!("{prefix}_URL"));
    assert_code(&w.login(&url), 0, "prefer: plain text");
    for mode in plain {
        assert_code(&w.login(&with(&url, &format!("ssl-mode={mode}"))), 0, mode);
    }
    for mode in refused {
        assert_refused(
            &w.login(&with(&url, &format!("sslmode={mode}"))),
            "the server does not offer TLS",
            mode,
        );
    }
}

#[test]
fn mysql_server_without_tls() {
    server_without_tls(
        Kind::Mysql,
        "CHECKPASSWORD_TEST_MYSQL_PLAIN",
        &["PREFERRED", "allow"],
        &["REQUIRED", "VERIFY_CA", "verify-full"],
    );
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

#[test]
fn pg_hostssl_role() {
    let w = World::new(Kind::Pg, &env("CHECKPASSWORD_TEST_PG_CTL"));
    let url = env("CHECKPASSWORD_TEST_PG_TLS_URL");
    for q in [
        format!("sslmode=verify-full&sslrootcert={}", ca()),
        format!("ssl-mode=VERIFY_CA&ssl-ca={}", ca()),
        // A CA file alone means verify-ca.
        format!("sslrootcert={}", ca()),
        "sslmode=require".to_string(),
        "sslmode=prefer".to_string(),
        // Plain first, refused by pg_hba.conf, then TLS.
        "sslmode=allow".to_string(),
    ] {
        assert_code(&w.login(&with(&url, &q)), 0, &q);
    }
    assert_code(&w.login(&url), 0, "the default");
    // pg_hba.conf refuses the role without TLS: so the logins above were over TLS.
    assert_refused(
        &w.login(&with(&url, "sslmode=disable")),
        "pg_hba.conf",
        "disable",
    );
}

#[test]
fn pg_wrong_ca_is_never_plain_text() {
    let w = World::new(Kind::Pg, &env("CHECKPASSWORD_TEST_PG_CTL"));
    // A role that may log in without TLS: a fallback to plain text would succeed.
    let url = env("CHECKPASSWORD_TEST_PG_URL");
    assert_code(&w.login(&with(&url, "sslmode=disable")), 0, "plain works");
    for mode in ["verify-ca", "verify-full", "require"] {
        let o = w.login(&with(
            &url,
            &format!("sslmode={mode}&sslrootcert={}", wrong_ca()),
        ));
        assert_refused(&o, "invalid peer certificate", mode);
    }
    let o = w.login_with(
        &url,
        &format!(
            "db_sslmode = verify-full\ndb_sslrootcert = {}\n",
            wrong_ca()
        ),
    );
    assert_refused(&o, "invalid peer certificate", "the config keys");
}

#[test]
fn pg_server_without_tls() {
    server_without_tls(
        Kind::Pg,
        "CHECKPASSWORD_TEST_PG_PLAIN",
        &["prefer", "allow"],
        &["require", "verify-ca", "VERIFY_IDENTITY"],
    );
}

#[test]
fn pg_unix_socket_is_never_tls() {
    let w = World::new(Kind::Pg, &env("CHECKPASSWORD_TEST_PG_CTL"));
    let url = env("CHECKPASSWORD_TEST_PG_SOCKET_URL");
    assert_code(&w.login(&url), 0, "the socket, the default");
    // The server answers 'N' to an SSLRequest on its socket: require would fail there
    // if it were asked.
    assert_code(
        &w.login(&with(&url, "sslmode=require")),
        0,
        "the socket, require",
    );
}
