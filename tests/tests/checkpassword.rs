//! Black-box tests of checkpassword: called as qmail-popup, the SMTP AUTH patch and
//! Dovecot call it (a pipe on fd 3), against SQLite and the private MariaDB and
//! PostgreSQL servers that scripts/test.sh starts (scripts/test.d/10-databases.sh).
//! The program it runs reports its ids, directory, descriptors and environment from /proc.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use blackbox::{ours, show, TempDir};

// ---------------------------------------------------------------------------------------
// Databases

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Sqlite,
    Mysql,
    Pg,
}

/// MySQL and PostgreSQL tests share a server; the test that stops one takes this lock
/// for writing so that no other test of that server runs meanwhile.
static MYSQL_LOCK: RwLock<()> = RwLock::new(());
static PG_LOCK: RwLock<()> = RwLock::new(());
static MYSQL_SCHEMA: Once = Once::new();
static PG_SCHEMA: Once = Once::new();
static N: AtomicUsize = AtomicUsize::new(0);

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS vpopmail (pw_name VARCHAR(64) NOT NULL, \
    pw_domain VARCHAR(96) NOT NULL, pw_passwd VARCHAR(128), pw_uid INT, pw_gid INT, \
    pw_gecos VARCHAR(64), pw_dir VARCHAR(160), pw_shell VARCHAR(20), \
    pw_clear_passwd VARCHAR(128), PRIMARY KEY (pw_name, pw_domain));";

fn env_or_fail(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/test.sh, which starts the private database servers")
    })
}

fn ctl(kind: Kind) -> String {
    match kind {
        Kind::Mysql => env_or_fail("CHECKPASSWORD_TEST_MYSQL_CTL"),
        Kind::Pg => env_or_fail("CHECKPASSWORD_TEST_PG_CTL"),
        Kind::Sqlite => unreachable!("sqlite has no server"),
    }
}

/// One test's database: a fresh SQLite file, or the shared server with a domain of its own.
struct Db {
    kind: Kind,
    url: String,
    sqlite: Option<PathBuf>,
    _guard: Option<RwLockReadGuard<'static, ()>>,
}

fn run_sql(kind: Kind, sqlite: Option<&Path>, sql: &str) -> Result<String, String> {
    let mut c = match kind {
        Kind::Sqlite => {
            let mut c = Command::new("sqlite3");
            c.arg("-batch")
                .arg("-separator")
                .arg("\t")
                .arg(sqlite.unwrap());
            c
        }
        _ => Command::new(ctl(kind)),
    };
    if kind != Kind::Sqlite {
        c.arg("sql");
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("sql client: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    if !o.status.success() {
        return Err(format!("{sql}\n{}", String::from_utf8_lossy(&o.stderr)));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

impl Db {
    fn new(kind: Kind, dir: &TempDir) -> Db {
        match kind {
            Kind::Sqlite => {
                let p = dir.join("users.sqlite");
                run_sql(kind, Some(&p), SCHEMA).unwrap();
                Db {
                    kind,
                    url: format!("sqlite:{}", p.display()),
                    sqlite: Some(p),
                    _guard: None,
                }
            }
            Kind::Mysql | Kind::Pg => {
                let (lock, once, var) = if kind == Kind::Mysql {
                    (&MYSQL_LOCK, &MYSQL_SCHEMA, "CHECKPASSWORD_TEST_MYSQL_URL")
                } else {
                    (&PG_LOCK, &PG_SCHEMA, "CHECKPASSWORD_TEST_PG_URL")
                };
                let url = env_or_fail(var);
                let guard = lock.read().unwrap_or_else(|e| e.into_inner());
                once.call_once(|| {
                    let grant = if kind == Kind::Pg {
                        "ALTER TABLE vpopmail OWNER TO cptest;"
                    } else {
                        ""
                    };
                    run_sql(kind, None, &format!("{SCHEMA}{grant}")).unwrap();
                });
                Db {
                    kind,
                    url,
                    sqlite: None,
                    _guard: Some(guard),
                }
            }
        }
    }

    fn sql(&self, sql: &str) -> String {
        run_sql(self.kind, self.sqlite.as_deref(), sql).unwrap_or_else(|e| panic!("{e}"))
    }

    fn add(&self, u: &User) {
        self.sql(&format!(
            "INSERT INTO vpopmail (pw_name, pw_domain, pw_passwd, pw_uid, pw_gid, pw_gecos, \
             pw_dir, pw_shell, pw_clear_passwd) VALUES ({}, {}, {}, 0, {}, 'Test', {}, {}, {});",
            q(&u.name),
            q(&u.domain),
            q(&u.passwd),
            u.flags,
            q(&u.dir),
            q(&u.quota),
            q(&u.clear)
        ));
    }

    /// Rows of `sql` as tab-separated lines.
    fn rows(&self, sql: &str) -> Vec<String> {
        self.sql(sql)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// A SQL string literal (the tests' own setup statements, not the program's).
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn mkpasswd(method: &str, pw: &str) -> String {
    let o = Command::new("mkpasswd")
        .args(["-m", method, pw])
        .output()
        .expect("mkpasswd (package whois; scripts/test.sh installs it)");
    assert!(
        o.status.success(),
        "mkpasswd -m {method}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

// ---------------------------------------------------------------------------------------
// qmail's users/cdb

fn cdb_hash(k: &[u8]) -> u32 {
    k.iter().fold(5381u32, |h, &c| {
        (h.wrapping_shl(5).wrapping_add(h)) ^ u32::from(c)
    })
}

/// A cdb in djb's format, written here so the test does not trust the code it tests.
fn write_cdb(path: &Path, records: &[(Vec<u8>, Vec<u8>)]) {
    let mut body = Vec::new();
    let mut entries: Vec<(u32, u32)> = Vec::new();
    for (k, v) in records {
        entries.push((cdb_hash(k), 2048 + body.len() as u32));
        body.extend_from_slice(&(k.len() as u32).to_le_bytes());
        body.extend_from_slice(&(v.len() as u32).to_le_bytes());
        body.extend_from_slice(k);
        body.extend_from_slice(v);
    }
    let mut header = vec![0u8; 2048];
    let mut tables = Vec::new();
    for t in 0..256u32 {
        let mine: Vec<&(u32, u32)> = entries.iter().filter(|(h, _)| h & 255 == t).collect();
        let slots = mine.len() * 2;
        let pos = 2048 + body.len() as u32 + tables.len() as u32;
        header[(t * 8) as usize..(t * 8 + 4) as usize].copy_from_slice(&pos.to_le_bytes());
        header[(t * 8 + 4) as usize..(t * 8 + 8) as usize]
            .copy_from_slice(&(slots as u32).to_le_bytes());
        let mut table = vec![(0u32, 0u32); slots];
        for (h, p) in mine {
            let mut i = ((h >> 8) as usize) % slots;
            while table[i].1 != 0 {
                i = (i + 1) % slots;
            }
            table[i] = (*h, *p);
        }
        for (h, p) in table {
            tables.extend_from_slice(&h.to_le_bytes());
            tables.extend_from_slice(&p.to_le_bytes());
        }
    }
    let mut all = header;
    all.extend_from_slice(&body);
    all.extend_from_slice(&tables);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, all).unwrap();
}

// ---------------------------------------------------------------------------------------
// One test's world

const UID: u32 = 43210;
const GID: u32 = 43211;

struct User {
    name: String,
    domain: String,
    passwd: String,
    clear: String,
    flags: i64,
    dir: String,
    quota: String,
}

struct World {
    dir: TempDir,
    db: Db,
    domain: String,
    ip: String,
    qmail: PathBuf,
    vpopmail: PathBuf,
}

/// What the exec'd program saw.
#[derive(Debug, Default)]
struct Report {
    uid: String,
    gid: String,
    groups: String,
    sigign: u64,
    cwd: String,
    fds: Vec<u32>,
    env: BTreeMap<String, String>,
}

const REPORT: &str = r#"p=$$
grep -E '^(Uid|Gid|Groups|SigIgn):' /proc/$p/status
echo "cwd:$(readlink /proc/$p/cwd)"
echo fds:
ls -1 /proc/$p/fd
echo env:
env
"#;

fn parse_report(out: &[u8]) -> Report {
    let text = String::from_utf8_lossy(out);
    let mut r = Report::default();
    let mut section = "";
    for line in text.lines() {
        if line == "fds:" || line == "env:" {
            section = line;
            continue;
        }
        match section {
            "fds:" => r.fds.push(line.trim().parse().unwrap()),
            "env:" => {
                if let Some((k, v)) = line.split_once('=') {
                    r.env.insert(k.into(), v.into());
                }
            }
            _ => {
                let (k, v) = line.split_once(':').unwrap_or((line, ""));
                let v = v.trim().to_string();
                match k {
                    "Uid" => r.uid = v,
                    "Gid" => r.gid = v,
                    "Groups" => r.groups = v,
                    "SigIgn" => r.sigign = u64::from_str_radix(&v, 16).unwrap(),
                    "cwd" => r.cwd = v,
                    _ => {}
                }
            }
        }
    }
    r.fds.sort();
    r
}

fn tag() -> usize {
    N.fetch_add(1, Ordering::SeqCst)
}

impl World {
    fn new(kind: Kind) -> World {
        let dir = TempDir::new("cp");
        // Everyone may enter: the program runs as the domain's uid.
        let mut perm = std::fs::metadata(dir.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(dir.path(), perm).unwrap();
        let db = Db::new(kind, &dir);
        let n = tag();
        // Unique across runs too: the database servers may outlive one test run.
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 1_000_000;
        let domain = format!("t{}-{run}-{n}.example", std::process::id());
        let ip = format!(
            "127.{}.{}.{}",
            1 + (std::process::id() % 200),
            n / 250,
            1 + n % 250
        );
        let qmail = dir.join("qmail");
        let vpopmail = dir.join("vpopmail");
        std::fs::create_dir_all(vpopmail.join("etc")).unwrap();
        let w = World {
            dir,
            db,
            domain,
            ip,
            qmail,
            vpopmail,
        };
        w.assign(&[(&w.domain.clone(), &w.domain.clone(), UID, GID)]);
        w
    }

    /// qmail's users/cdb with `+alias-:real:uid:gid:dir:-::` entries.
    fn assign(&self, entries: &[(&str, &str, u32, u32)]) {
        let recs: Vec<(Vec<u8>, Vec<u8>)> = entries
            .iter()
            .map(|(alias, real, uid, gid)| {
                (
                    format!("!{alias}-").into_bytes(),
                    format!("{real}\0{uid}\0{gid}\0/home/vpopmail/domains/{real}\0-\0\0")
                        .into_bytes(),
                )
            })
            .collect();
        write_cdb(&self.qmail.join("users/cdb"), &recs);
    }

    fn user(&self, name: &str, pw: &str) -> User {
        let home = self
            .dir
            .join(&format!("home-{}", name.replace(['/', '\''], "_")));
        std::fs::create_dir_all(&home).unwrap();
        User {
            name: name.into(),
            domain: self.domain.clone(),
            passwd: mkpasswd("sha-512", pw),
            clear: String::new(),
            flags: 0,
            dir: home.display().to_string(),
            quota: "NOQUOTA".into(),
        }
    }

    fn add(&self, name: &str, pw: &str) -> User {
        let u = self.user(name, pw);
        self.db.add(&u);
        u
    }

    fn login(&self, name: &str) -> String {
        format!("{name}@{}", self.domain)
    }

    /// Calls checkpassword as qmail-popup would, with extra env `env`.
    fn call(&self, input: Option<&[u8]>, env: &[(&str, &str)], prog: &[&str]) -> Output {
        let mut base: Vec<(String, String)> = vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("CHECKPASSWORD_CONFIG".into(), "/dev/null".into()),
            ("CHECKPASSWORD_DB".into(), self.db.url.clone()),
            (
                "CHECKPASSWORD_VPOPMAIL_DIR".into(),
                self.vpopmail.display().to_string(),
            ),
            ("QMAIL".into(), self.qmail.display().to_string()),
            ("TCPREMOTEIP".into(), self.ip.clone()),
            ("TCPLOCALPORT".into(), "110".into()),
            ("KEEPME".into(), "kept".into()),
        ];
        for (k, v) in env {
            base.retain(|(bk, _)| bk != k);
            if !v.is_empty() || !k.starts_with('-') {
                base.push((k.to_string(), v.to_string()));
            }
        }
        // A key named "-X" removes X.
        let removes: Vec<String> = env
            .iter()
            .filter_map(|(k, _)| k.strip_prefix('-').map(str::to_string))
            .collect();
        base.retain(|(k, _)| !removes.contains(k) && !k.starts_with('-'));
        call_with(&ours("checkpassword"), input, &base, prog, None)
    }

    fn pop(&self, login: &str, pw: &str) -> Output {
        let input = format!("{login}\0{pw}\0<1234.5678@test>\0");
        self.call(Some(input.as_bytes()), &[], &["/bin/true"])
    }

    fn report(&self, login: &str, pw: &str, env: &[(&str, &str)]) -> (Output, Report) {
        let input = format!("{login}\0{pw}\0<1234.5678@test>\0");
        let o = self.call(Some(input.as_bytes()), env, &["/bin/sh", "-c", REPORT]);
        let r = parse_report(&o.stdout);
        (o, r)
    }
}

/// Runs `prog args` with `input` on fd 3 (None: fd 3 closed), env cleared but for `env`,
/// optionally as `as_user` (uid, gid), within 60 s.
fn call_with(
    bin: &Path,
    input: Option<&[u8]>,
    env: &[(String, String)],
    args: &[&str],
    as_user: Option<(u32, u32)>,
) -> Output {
    let mut c = Command::new(bin);
    c.args(args).env_clear().stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    if let Some((uid, gid)) = as_user {
        // std drops supplementary groups too when it changes the uid as root.
        c.uid(uid).gid(gid);
    }
    let mut fds = [-1i32; 2];
    if let Some(data) = input {
        assert!(data.len() < 60000, "fits a pipe buffer");
        // SAFETY: a fresh pipe, both ends close-on-exec in this process.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let mut w = unsafe { std::fs::File::from_raw_fd_checked(fds[1]) };
        w.write_all(data).unwrap();
        drop(w);
    }
    let rfd = fds[0];
    // SAFETY: only dup2/fcntl/close between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if rfd >= 0 {
                if rfd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0);
                } else if libc::dup2(rfd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else {
                libc::close(3);
            }
            Ok(())
        });
    }
    let out = blackbox::run_with_input(&mut c, b"", Duration::from_secs(60));
    if rfd >= 0 {
        // SAFETY: our copy of the read end.
        unsafe { libc::close(rfd) };
    }
    out
}

trait FromRawFdChecked {
    unsafe fn from_raw_fd_checked(fd: i32) -> std::fs::File;
}
impl FromRawFdChecked for std::fs::File {
    unsafe fn from_raw_fd_checked(fd: i32) -> std::fs::File {
        assert!(fd >= 0);
        std::os::unix::io::FromRawFd::from_raw_fd(fd)
    }
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_code(o: &Output, want: i32, what: &str) {
    assert_eq!(code(o), Some(want), "{what}\n{}", show(o));
}

blackbox::backend_matrix!(
    pop_login_sets_up_process,
    failures_exit_1,
    hash_formats,
    apop,
    cram_md5_and_smtp_forms,
    service_flags,
    relay_rows,
    default_domain_and_forms,
    sql_metacharacters,
    lockout_and_expiry,
    address_lockout,
    concurrent_failures_all_count,
    per_domain_tables,
    alias_domain,
    dovecot_mode,
    dovecot_reply_program,
    logs_hold_no_secrets,
    database_unreachable,
);

// ---------------------------------------------------------------------------------------
// The tests

fn pop_login_sets_up_process(kind: Kind) {
    blackbox::need_root("they check the uid and gid drop");
    let w = World::new(kind);
    let u = w.add("alice", "Secret123");
    let (o, r) = w.report(&w.login("Alice"), "Secret123", &[]);
    assert_code(&o, 0, "login");
    assert_eq!(r.uid, format!("{UID}\t{UID}\t{UID}\t{UID}"), "{}", show(&o));
    assert_eq!(r.gid, format!("{GID}\t{GID}\t{GID}\t{GID}"));
    assert_eq!(r.groups, GID.to_string(), "only the domain's gid");
    assert_eq!(r.cwd, u.dir);
    // The caller's own descriptors (say a jobserver pipe of cargo's) pass through, as
    // they would to any child; fd 3 and the database's must not.
    let base = call_with(Path::new("/bin/sh"), None, &[], &["-c", REPORT], None);
    let mut want = parse_report(&base.stdout).fds;
    want.retain(|&fd| fd != 3);
    assert!(want.starts_with(&[0, 1, 2]), "{want:?}");
    assert_eq!(r.fds, want, "no descriptor of ours leaks into prog");
    assert_eq!(
        r.sigign & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE not ignored"
    );
    assert_eq!(r.env.get("USER").map(String::as_str), Some("alice"));
    assert_eq!(r.env.get("HOME"), Some(&u.dir));
    assert_eq!(r.env.get("SHELL").map(String::as_str), Some("NOLOGIN"));
    let full = w.login("alice");
    assert_eq!(r.env.get("VPOPUSER"), Some(&full));
    assert_eq!(r.env.get("KEEPME").map(String::as_str), Some("kept"));
    assert!(
        stderr(&o).contains(&format!(
            "vchkpw-pop3: (PLAIN) login success {full}:{}",
            w.ip
        )),
        "{}",
        show(&o)
    );
    // lastauth as vpopmail writes it.
    let rows = w.db.rows(&format!(
        "SELECT remote_ip, timestamp FROM lastauth WHERE {} = 'alice' AND domain = {};",
        if kind == Kind::Mysql {
            "`user`"
        } else {
            "\"user\""
        },
        q(&w.domain)
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (ip, ts) = rows[0].split_once('\t').unwrap();
    assert_eq!(ip, w.ip);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (ts.parse::<i64>().unwrap() - now).abs() < 60,
        "timestamp {ts}"
    );
}

fn failures_exit_1(kind: Kind) {
    let w = World::new(kind);
    w.add("bob", "right");
    let o = w.pop(&w.login("bob"), "wrong");
    assert_code(&o, 1, "wrong password");
    assert!(stderr(&o).contains("password fail"), "{}", show(&o));
    let o = w.pop(&w.login("nobody-here"), "right");
    assert_code(&o, 1, "unknown user");
    assert!(stderr(&o).contains("vpopmail user not found"));
    let o = w.pop("", "right");
    assert_code(&o, 1, "empty login");
    let o = w.pop(&w.login("bob"), "");
    assert_code(&o, 1, "empty password");
    let o = w.pop(&format!("bob;x@{}", w.domain), "right");
    assert_code(&o, 1, "bad characters");
    assert!(stderr(&o).contains("invalid user/domain characters"));
    let o = w.pop(&format!("{}@{}", "b".repeat(70), w.domain), "right");
    assert_code(&o, 1, "over-long login");
    // A user with no stored password cannot log in with any password.
    let mut u = w.user("nopw", "x");
    u.passwd = String::new();
    w.db.add(&u);
    assert_code(&w.pop(&w.login("nopw"), "x"), 1, "empty pw_passwd");
    // Locked hashes.
    let mut u = w.user("locked", "x");
    u.passwd = format!("!{}", mkpasswd("sha-512", "x"));
    w.db.add(&u);
    assert_code(&w.pop(&w.login("locked"), "x"), 1, "! hash");
}

fn hash_formats(kind: Kind) {
    blackbox::need_root("they check the uid and gid drop");
    let w = World::new(kind);
    for (i, m) in ["des", "md5", "sha-256", "sha-512", "bcrypt", "yescrypt"]
        .iter()
        .enumerate()
    {
        let mut u = w.user(&format!("h{i}"), "x");
        u.passwd = mkpasswd(m, "Secret123");
        w.db.add(&u);
        assert_code(&w.pop(&w.login(&u.name), "Secret123"), 0, m);
        assert_code(&w.pop(&w.login(&u.name), "Wrong-999"), 1, m);
    }
    // DES counts 8 characters, exactly as the system's crypt does.
    assert_code(&w.pop(&w.login("h0"), "Secret12X"), 0, "DES 8 characters");
    // Options the system's crypt knows: rounds, and bcrypt's $2a$/$2y$ spellings.
    let mut u = w.user("rounds", "x");
    u.passwd = {
        let o = Command::new("mkpasswd")
            .args(["-m", "sha-512", "-R", "6000", "Secret123"])
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    assert!(u.passwd.starts_with("$6$rounds=6000$"), "{}", u.passwd);
    w.db.add(&u);
    assert_code(&w.pop(&w.login("rounds"), "Secret123"), 0, "rounds=");
    let b = mkpasswd("bcrypt", "Secret123");
    for (n, p) in [("b2a", "$2a$"), ("b2y", "$2y$")] {
        let mut u = w.user(n, "x");
        u.passwd = b.replacen("$2b$", p, 1);
        w.db.add(&u);
        assert_code(&w.pop(&w.login(n), "Secret123"), 0, p);
    }
    // Dovecot-style {SCHEME} prefix.
    let mut u = w.user("scheme", "x");
    u.passwd = format!("{{SHA512-CRYPT}}{}", mkpasswd("sha-512", "Secret123"));
    w.db.add(&u);
    assert_code(&w.pop(&w.login("scheme"), "Secret123"), 0, "{SCHEME}");
}

fn md5_hex(data: &[u8]) -> String {
    // The tests compute digests with coreutils rather than the program's own code.
    let mut c = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    let o = c.wait_with_output().unwrap();
    String::from_utf8(o.stdout).unwrap()[..32].to_string()
}

fn hmac_md5_hex(key: &[u8], msg: &[u8]) -> String {
    let mut k = key.to_vec();
    if k.len() > 64 {
        k = hex_bytes(&md5_hex(&k));
    }
    k.resize(64, 0);
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(msg);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&hex_bytes(&md5_hex(&inner)));
    md5_hex(&outer)
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

fn apop(kind: Kind) {
    blackbox::need_root("they check the uid and gid drop");
    let w = World::new(kind);
    let mut u = w.user("apop", "crypted-differs");
    u.clear = "tanstaaf".into();
    w.db.add(&u);
    let ts = "<1896.697170952@dbc.mtview.ca.us>";
    let digest = md5_hex(format!("{ts}tanstaaf").as_bytes());
    let call = |resp: &str, port: &str| {
        let input = format!("{}\0{resp}\0{ts}\0", w.login("apop"));
        w.call(
            Some(input.as_bytes()),
            &[("TCPLOCALPORT", port)],
            &["/bin/true"],
        )
    };
    let o = call(&digest, "110");
    assert_code(&o, 0, "APOP digest");
    assert!(stderr(&o).contains("(APOP) login success"), "{}", show(&o));
    assert_code(
        &call(&digest.to_uppercase(), "110"),
        1,
        "digest is lowercase hex",
    );
    assert_code(
        &call(&md5_hex(b"<other>tanstaaf"), "110"),
        1,
        "other timestamp",
    );
    // USER/PASS through qmail-popup still sends the timestamp: crypt is tried next.
    assert_code(
        &call("crypted-differs", "110"),
        0,
        "plain password with timestamp",
    );
    // The clear column is not a password for plaintext logins.
    assert_code(&call("tanstaaf", "110"), 1, "clear column is only for APOP");
    // APOP is a POP mechanism.
    assert_code(&call(&digest, "25"), 1, "APOP over SMTP");
}

fn cram_md5_and_smtp_forms(kind: Kind) {
    blackbox::need_root("they check the uid and gid drop");
    let w = World::new(kind);
    let mut u = w.user("cram", "plainpw");
    u.clear = "tanstaaftanstaaf".into();
    w.db.add(&u);
    let ch = "<1896.697170952@postoffice.reston.mci.net>";
    let resp = hmac_md5_hex(b"tanstaaftanstaaf", ch.as_bytes());
    assert_eq!(resp, "b913a602c7eda7a495b4e6e7334d3890", "RFC 2195 vector");
    let smtp = |input: String| {
        w.call(
            Some(input.as_bytes()),
            &[("TCPLOCALPORT", "25")],
            &["/bin/true"],
        )
    };
    let o = smtp(format!("{}\0{resp}\0{ch}\0", w.login("cram")));
    assert_code(&o, 0, "CRAM-MD5");
    assert!(
        stderr(&o).contains("vchkpw-smtp: (CRAM-MD5) login success"),
        "{}",
        show(&o)
    );
    assert_code(
        &smtp(format!("{}\0{resp}\0<other@x>\0", w.login("cram"))),
        1,
        "wrong challenge",
    );
    // LOGIN/PLAIN from the AUTH patch: empty third field, or none at all.
    assert_code(
        &smtp(format!("{}\0plainpw\0\0", w.login("cram"))),
        0,
        "empty challenge",
    );
    assert_code(
        &smtp(format!("{}\0plainpw\0", w.login("cram"))),
        0,
        "no third field",
    );
    assert_code(
        &smtp(format!("{}\0wrong\0", w.login("cram"))),
        1,
        "wrong plain",
    );
    // Service from argv[1] when the port says nothing.
    let input = format!("{}\0{resp}\0{ch}\0", w.login("cram"));
    let o = w.call(
        Some(input.as_bytes()),
        &[("-TCPLOCALPORT", "")],
        &["/bin/true"],
    );
    assert_code(&o, 0, "prog containing `true` is SMTP");
}

fn service_flags(kind: Kind) {
    blackbox::need_root("they check the uid and gid drop");
    let w = World::new(kind);
    let cases = [
        ("nopop", 0x02, "110", "pop access denied"),
        ("noimap", 0x08, "143", "imap access denied"),
        ("nosmtp", 0x800, "587", "smtp access denied"),
    ];
    for (name, flag, port, text) in cases {
        let mut u = w.user(name, "pw");
        u.flags = flag;
        w.db.add(&u);
        let input = format!("{}\0pw\0\0", w.login(name));
        let o = w.call(
            Some(input.as_bytes()),
            &[("TCPLOCALPORT", port)],
            &["/bin/true"],
        );
        assert_code(&o, 1, text);
        assert!(stderr(&o).contains(text), "{}", show(&o));
        // Other services stay open.
        for other in ["110", "143", "587"].iter().filter(|p| **p != port) {
            let o = w.call(
                Some(input.as_bytes()),
                &[("TCPLOCALPORT", other)],
                &["/bin/true"],
            );
            assert_code(&o, 0, &format!("{name} on port {other}"));
        }
    }
    // Webmail: POP or IMAP from 127.0.0.1.
    let mut u = w.user("noweb", "pw");
    u.flags = 0x04;
    w.db.add(&u);
    let input = format!("{}\0pw\0\0", w.login("noweb"));
    let o = w.call(
        Some(input.as_bytes()),
        &[("TCPREMOTEIP", "127.0.0.1")],
        &["/bin/true"],
    );
    assert_code(&o, 1, "webmail denied");
    assert!(
        stderr(&o).contains("vchkpw-webmail: webmail access denied"),
        "{}",
        show(&o)
    );
    assert_code(
        &w.call(Some(input.as_bytes()), &[], &["/bin/true"]),
        0,
        "pop from elsewhere",
    );
    // Dovecot's SERVICE wins over the port.
    let mut u = w.user("dovimap", "pw");
    u.flags = 0x08;
    w.db.add(&u);
    let input = format!("{}\0pw\0\0", w.login("dovimap"));
    let o = w.call(
        Some(input.as_bytes()),
        &[
            ("ORIG_UID", "0"),
            ("SERVICE", "imap"),
            ("TCPLOCALPORT", "110"),
        ],
        &["/bin/true"],
    );
    assert_code(&o, 1, "SERVICE=imap");
}

fn relay_rows(kind: Kind) {
    blackbox::need_root("they check the uid and gid drop");
    let w = World::new(kind);
    w.add("roam", "pw");
    let mut u = w.user("norelay", "pw");
    u.flags = 0x20;
    w.db.add(&u);
    // Before the first relay row the table need not exist (checkpassword creates it).
    let relay = |ip: &str| -> Vec<String> {
        match run_sql(
            kind,
            w.db.sqlite.as_deref(),
            &format!("SELECT ip_addr FROM relay WHERE ip_addr = {};", q(ip)),
        ) {
            Ok(t) => t
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            Err(e) if e.contains("relay") && (e.contains("exist") || e.contains("no such")) => {
                Vec::new()
            }
            Err(e) => panic!("{e}"),
        }
    };
    // Off by default.
    assert_code(&w.pop(&w.login("roam"), "pw"), 0, "login");
    assert!(relay(&w.ip).is_empty(), "relay is off by default");
    let ip2 = format!("{}9", &w.ip[..w.ip.len() - 1]);
    let ip3 = format!("{}8", &w.ip[..w.ip.len() - 1]);
    let go = |name: &str, ip: &str, port: &str| {
        let input = format!("{}\0pw\0\0", w.login(name));
        w.call(
            Some(input.as_bytes()),
            &[
                ("CHECKPASSWORD_RELAY", "on"),
                ("TCPREMOTEIP", ip),
                ("TCPLOCALPORT", port),
            ],
            &["/bin/true"],
        )
    };
    assert_code(&go("roam", &ip2, "110"), 0, "pop login");
    assert_eq!(relay(&ip2), vec![ip2.clone()]);
    assert_code(&go("norelay", &ip3, "110"), 0, "NO_RELAY login");
    assert!(relay(&ip3).is_empty(), "NO_RELAY opens no relay");
    assert_code(&go("roam", &ip3, "25"), 0, "smtp login");
    assert!(relay(&ip3).is_empty(), "SMTP logins open no relay");
}

fn default_domain_and_forms(kind: Kind) {
    blackbox::need_root("they check the uid and gid drop");
    let w = World::new(kind);
    w.add("carol", "pw");
    let d = w.domain.clone();
    let call = |login: &str, env: &[(&str, &str)]| {
        let input = format!("{login}\0pw\0\0");
        w.call(Some(input.as_bytes()), env, &["/bin/true"])
    };
    assert_code(&call(&format!("carol%{d}"), &[]), 0, "user%domain");
    assert_code(&call(&format!("carol/{d}"), &[]), 0, "user/domain");
    assert_code(
        &call(&format!("CAROL@{}", d.to_uppercase()), &[]),
        0,
        "uppercase",
    );
    assert_code(&call("carol", &[]), 1, "no default domain");
    assert_code(
        &call("carol", &[("VPOPMAIL_DOMAIN", &d)]),
        0,
        "VPOPMAIL_DOMAIN",
    );
    assert_code(
        &call("carol", &[("CHECKPASSWORD_DEFAULT_DOMAIN", &d)]),
        0,
        "setting",
    );
    assert_code(
        &call(
            "carol",
            &[
                ("VPOPMAIL_DOMAIN", "other.example"),
                ("CHECKPASSWORD_DEFAULT_DOMAIN", &d),
            ],
        ),
        1,
        "VPOPMAIL_DOMAIN first",
    );
    std::fs::write(w.vpopmail.join("etc/defaultdomain"), format!("{d}\n")).unwrap();
    let (o, r) = w.report("carol", "pw", &[]);
    assert_code(&o, 0, "~vpopmail/etc/defaultdomain");
    // VPOPUSER is the login as typed; USER the local part.
    assert_eq!(r.env.get("VPOPUSER").map(String::as_str), Some("carol"));
    assert_eq!(r.env.get("USER").map(String::as_str), Some("carol"));
}

fn sql_metacharacters(kind: Kind) {
    blackbox::need_root("they check the uid and gid drop");
    let w = World::new(kind);
    // Quotes and backquotes are legal in vpopmail local parts: they must reach the
    // database as data.
    w.add("o'brien", "pw1");
    w.add("a`b", "pw2");
    assert_code(&w.pop(&w.login("o'brien"), "pw1"), 0, "quote in name");
    assert_code(&w.pop(&w.login("a`b"), "pw2"), 0, "backquote in name");
    for evil in ["x'or'1'='1", "'or''='", "a'||'", "\"or\"1\"=\"1", "x`or`1"] {
        assert_code(&w.pop(&w.login(evil), "pw1"), 1, evil);
        assert_code(&w.pop(&w.login(evil), "' OR '1'='1"), 1, evil);
    }
    for evil in ["a';drop table vpopmail;--", "x' or 1=1 --", "a\\'b"] {
        let o = w.pop(&w.login(evil), "pw1");
        assert_code(&o, 1, evil);
        assert!(
            stderr(&o).contains("invalid user/domain characters"),
            "{}",
            show(&o)
        );
    }
    let n = w.db.rows(&format!(
        "SELECT COUNT(*) FROM vpopmail WHERE pw_domain = {};",
        q(&w.domain)
    ));
    assert_eq!(n, vec!["2".to_string()], "table intact");
}

fn lockout_and_expiry(kind: Kind) {
    let w = World::new(kind);
    w.add("dave", "right");
    let env = [
        ("CHECKPASSWORD_LOCKOUT_TIME", "3"),
        ("CHECKPASSWORD_LOCKOUT_WINDOW", "60"),
    ];
    let call = |pw: &str| {
        let input = format!("{}\0{pw}\0\0", w.login("dave"));
        w.call(Some(input.as_bytes()), &env, &["/bin/true"])
    };
    // Two failures, then a success, clears the count.
    assert_code(&call("bad"), 1, "1st failure");
    assert_code(&call("bad"), 1, "2nd failure");
    assert_code(&call("right"), 0, "success resets");
    for i in 0..3 {
        assert_code(&call("bad"), 1, &format!("failure {i}"));
    }
    let o = call("right");
    assert_code(
        &o,
        1,
        "locked out: the right password answers like a wrong one",
    );
    assert!(stderr(&o).contains("account locked out"), "{}", show(&o));
    // Another address is not locked out.
    let input = format!("{}\0right\0\0", w.login("dave"));
    // (Its last digit differs from the test's own address, whatever that is.)
    let last = if w.ip.ends_with('7') { '8' } else { '7' };
    let other = format!("{}{last}", &w.ip[..w.ip.len() - 1]);
    let o = w.call(
        Some(input.as_bytes()),
        &[("TCPREMOTEIP", &other)],
        &["/bin/true"],
    );
    assert_code(&o, 0, "the lock is per account and address");
    // Expiry.
    std::thread::sleep(Duration::from_millis(3500));
    assert_code(&call("right"), 0, "lock expired");
    // 0 turns it off.
    let input = format!("{}\0bad\0\0", w.login("dave"));
    let off = [
        ("CHECKPASSWORD_LOCKOUT_FAILURES", "0"),
        ("CHECKPASSWORD_LOCKOUT_IP_FAILURES", "0"),
    ];
    for _ in 0..5 {
        assert_code(
            &w.call(Some(input.as_bytes()), &off, &["/bin/true"]),
            1,
            "failure",
        );
    }
    let input = format!("{}\0right\0\0", w.login("dave"));
    assert_code(
        &w.call(Some(input.as_bytes()), &off, &["/bin/true"]),
        0,
        "lockout off",
    );
    // Unknown users are counted too, so a lock does not reveal that an account exists.
    let input = format!("{}\0x\0\0", w.login("ghost"));
    for _ in 0..3 {
        assert_code(
            &w.call(Some(input.as_bytes()), &[], &["/bin/true"]),
            1,
            "ghost",
        );
    }
    let o = w.call(Some(input.as_bytes()), &[], &["/bin/true"]);
    assert!(stderr(&o).contains("account locked out"), "{}", show(&o));
}

fn address_lockout(kind: Kind) {
    let w = World::new(kind);
    for n in ["e1", "e2", "e3", "e4"] {
        w.add(n, "right");
    }
    let env = [
        ("CHECKPASSWORD_LOCKOUT_IP_FAILURES", "3"),
        ("CHECKPASSWORD_LOCKOUT_FAILURES", "10"),
    ];
    for n in ["e1", "e2", "e3"] {
        let input = format!("{}\0bad\0\0", w.login(n));
        assert_code(&w.call(Some(input.as_bytes()), &env, &["/bin/true"]), 1, n);
    }
    let input = format!("{}\0right\0\0", w.login("e4"));
    let o = w.call(Some(input.as_bytes()), &env, &["/bin/true"]);
    assert_code(&o, 1, "address locked out across accounts");
    assert!(stderr(&o).contains("address locked out"), "{}", show(&o));
}

fn concurrent_failures_all_count(kind: Kind) {
    // Wrong passwords for one account from one address, from several connections at
    // once: every failure answered 1 is in both counters (a count read at decision time
    // and written back whole kept about one in three, and so multiplied the limit by the
    // number of connections).
    const PROCS: usize = 4;
    const EACH: usize = 8;
    let w = World::new(kind);
    w.add("frank", "right");
    let env = [
        ("CHECKPASSWORD_LOCKOUT_FAILURES", "1000"),
        ("CHECKPASSWORD_LOCKOUT_IP_FAILURES", "1000"),
    ];
    let input = format!("{}\0bad\0\0", w.login("frank"));
    std::thread::scope(|sc| {
        for _ in 0..PROCS {
            sc.spawn(|| {
                for i in 0..EACH {
                    let o = w.call(Some(input.as_bytes()), &env, &["/bin/true"]);
                    assert_code(&o, 1, &format!("failure {i}"));
                }
            });
        }
    });
    let count = |key: String| {
        w.db.rows(&format!(
            "SELECT failures FROM lockout WHERE lockkey = {};",
            q(&key)
        ))
    };
    let want = vec![(PROCS * EACH).to_string()];
    assert_eq!(
        count(format!("acct:{}:{}", w.login("frank"), w.ip)),
        want,
        "account counter"
    );
    assert_eq!(count(format!("ip:{}", w.ip)), want, "address counter");
}

fn per_domain_tables(kind: Kind) {
    blackbox::need_root("they check the uid and gid drop");
    let w = World::new(kind);
    let table = w.domain.replace(['.', '-'], "_");
    w.db.sql(&format!(
        "CREATE TABLE {table} (pw_name VARCHAR(64) NOT NULL PRIMARY KEY, pw_passwd VARCHAR(128), \
         pw_uid INT, pw_gid INT, pw_gecos VARCHAR(64), pw_dir VARCHAR(160), pw_shell VARCHAR(20));"
    ));
    let home = w.dir.join("pdhome");
    std::fs::create_dir_all(&home).unwrap();
    w.db.sql(&format!(
        "INSERT INTO {table} VALUES ('frank', {}, 0, 0, 'F', {}, 'NOQUOTA');{}",
        q(&mkpasswd("sha-512", "pw")),
        q(&home.display().to_string()),
        if kind == Kind::Pg {
            format!("ALTER TABLE {table} OWNER TO cptest;")
        } else {
            String::new()
        }
    ));
    let env = [("CHECKPASSWORD_TABLES", "per-domain")];
    let call = |login: &str, pw: &str| {
        let input = format!("{login}\0{pw}\0\0");
        w.call(Some(input.as_bytes()), &env, &["/bin/true"])
    };
    assert_code(&call(&w.login("frank"), "pw"), 0, "per-domain table");
    assert_code(&call(&w.login("frank"), "bad"), 1, "wrong password");
    assert_code(
        &call("frank@no-such-domain.example", "pw"),
        1,
        "domain without a table",
    );
    assert_code(&call(&w.login("frank"), "pw"), 0, "again");
    let o = w.call(
        Some(format!("{}\0pw\0\0", w.login("frank")).as_bytes()),
        &[("CHECKPASSWORD_TABLES", "sideways")],
        &["/bin/true"],
    );
    assert_code(&o, 111, "bad setting");
}

fn alias_domain(kind: Kind) {
    blackbox::need_root("they check the uid and gid drop");
    let w = World::new(kind);
    w.add("gina", "pw");
    let alias = format!("alias-{}", w.domain);
    w.assign(&[
        (&w.domain, &w.domain, UID, GID),
        (&alias, &w.domain, UID, GID),
    ]);
    assert_code(
        &w.pop(&format!("gina@{alias}"), "pw"),
        0,
        "alias domain via users/cdb",
    );
    // uid 0 from users/cdb is refused.
    w.assign(&[(&w.domain, &w.domain, 0, GID)]);
    let o = w.pop(&w.login("gina"), "pw");
    assert_code(&o, 111, "uid 0 from users/cdb");
    assert!(stderr(&o).contains("refusing"), "{}", show(&o));
    // Without users/cdb the uid and gid settings are used.
    std::fs::remove_file(w.qmail.join("users/cdb")).unwrap();
    let (o, r) = w.report(
        &w.login("gina"),
        "pw",
        &[
            ("CHECKPASSWORD_UID", "43300"),
            ("CHECKPASSWORD_GID", "43301"),
        ],
    );
    assert_code(&o, 0, "uid/gid settings");
    assert!(r.uid.starts_with("43300\t43300"), "{}", r.uid);
    assert!(r.gid.starts_with("43301\t43301"), "{}", r.gid);
    let o = w.pop(&w.login("gina"), "pw");
    let vpopmail_exists = Command::new("id")
        .arg("vpopmail")
        .output()
        .unwrap()
        .status
        .success();
    if !vpopmail_exists {
        assert_code(&o, 111, "no source of ids");
    }
    let o = w.call(
        Some(format!("{}\0pw\0\0", w.login("gina")).as_bytes()),
        &[("CHECKPASSWORD_UID", "0"), ("CHECKPASSWORD_GID", "5")],
        &["/bin/true"],
    );
    assert_code(&o, 111, "uid 0 setting");
}

fn dovecot_mode(kind: Kind) {
    blackbox::need_root("they check the uid and gid drop");
    let w = World::new(kind);
    let mut u = w.user("henry", "pw");
    u.quota = "1000000S,500C".into();
    w.db.add(&u);
    let dov = [
        ("ORIG_UID", "0"),
        ("SERVICE", "imap"),
        ("TCPLOCALPORT", "143"),
    ];
    let input = format!("{}\0pw\0\0", w.login("henry"));
    let o = w.call(Some(input.as_bytes()), &dov, &["/bin/sh", "-c", REPORT]);
    assert_code(&o, 0, "dovecot auth");
    let r = parse_report(&o.stdout);
    assert!(
        r.uid.starts_with("0\t0"),
        "no setuid under Dovecot: {}",
        r.uid
    );
    let full = w.login("henry");
    assert_eq!(r.env.get("USER"), Some(&full), "full address");
    assert_eq!(r.env.get("HOME"), Some(&u.dir));
    assert_eq!(r.env.get("userdb_uid"), Some(&UID.to_string()));
    assert_eq!(r.env.get("userdb_gid"), Some(&GID.to_string()));
    assert_eq!(
        r.env.get("userdb_quota_rule").map(String::as_str),
        Some("*:storage=1000000B:messages=500")
    );
    assert_eq!(
        r.env.get("EXTRA").map(String::as_str),
        Some("userdb_uid userdb_gid userdb_quota_rule")
    );
    assert_eq!(r.env.get("ORIG_UID").map(String::as_str), Some("0"));
    // Lookup mode: no password, AUTHORIZED=1 → 2 for a known user, exit 3 for an unknown.
    let look = [("ORIG_UID", "0"), ("AUTHORIZED", "1")];
    let input = format!("{}\0\0\0", w.login("henry"));
    let o = w.call(Some(input.as_bytes()), &look, &["/bin/sh", "-c", REPORT]);
    assert_code(&o, 0, "lookup");
    let r = parse_report(&o.stdout);
    assert_eq!(r.env.get("AUTHORIZED").map(String::as_str), Some("2"));
    // Lookups (LMTP delivery, say) are not logins: service flags do not apply.
    let mut u = w.user("nosmtp", "pw");
    u.flags = 0x800;
    w.db.add(&u);
    let input = format!("{}\0\0\0", w.login("nosmtp"));
    let o = w.call(
        Some(input.as_bytes()),
        &[("ORIG_UID", "0"), ("AUTHORIZED", "1"), ("SERVICE", "lmtp")],
        &["/bin/true"],
    );
    assert_code(&o, 0, "lookup of a NO_SMTP user for lmtp");
    let input = format!("{}\0\0\0", w.login("nobody-at-all"));
    let o = w.call(Some(input.as_bytes()), &look, &["/bin/true"]);
    assert_code(&o, 3, "lookup of unknown user");
    // Without AUTHORIZED an empty password is a failure.
    let o = w.call(Some(input.as_bytes()), &dov, &["/bin/true"]);
    assert_code(&o, 1, "empty password");
    let input = format!("{}\0\0\0", w.login("henry"));
    let o = w.call(Some(input.as_bytes()), &dov, &["/bin/true"]);
    assert_code(&o, 1, "empty password for a real user");
    // uid 0 is never handed to Dovecot either.
    w.assign(&[(&w.domain, &w.domain, 0, GID)]);
    let input = format!("{}\0pw\0\0", w.login("henry"));
    let o = w.call(Some(input.as_bytes()), &dov, &["/bin/true"]);
    assert_code(&o, 111, "uid 0 for Dovecot");
    assert!(stderr(&o).contains("refusing"), "{}", show(&o));
    w.assign(&[(&w.domain, &w.domain, UID, GID)]);
    // Wrong password under Dovecot: 1 (Dovecot's "auth failed").
    let input = format!("{}\0nope\0\0", w.login("henry"));
    assert_code(
        &w.call(Some(input.as_bytes()), &dov, &["/bin/true"]),
        1,
        "wrong password",
    );
}

/// Dovecot's own checkpassword-reply, with fd 4 as its reply pipe.
fn dovecot_reply_program(kind: Kind) {
    blackbox::need_root("they check the uid and gid drop");
    let reply = Path::new("/usr/lib/dovecot/checkpassword-reply");
    assert!(
        reply.exists(),
        "dovecot-core is missing: run scripts/test.sh, which installs it"
    );
    let w = World::new(kind);
    w.add("ivy", "pw");
    let out = w.dir.join("fd4");
    // fd 4 is a file here; Dovecot uses a pipe. Either is inherited across exec.
    let script = format!("exec 4>{} && exec {}", out.display(), reply.display());
    let input = format!("{}\0pw\0\0", w.login("ivy"));
    let o = w.call(
        Some(input.as_bytes()),
        &[("ORIG_UID", "0"), ("SERVICE", "imap")],
        &["/bin/sh", "-c", &script],
    );
    assert_code(&o, 0, "checkpassword-reply accepted our environment");
    let got = std::fs::read_to_string(&out).unwrap();
    assert!(
        got.starts_with(&format!("user={}\t", w.login("ivy"))),
        "{got:?}"
    );
    assert!(got.contains(&format!("userdb_uid={UID}\t")), "{got:?}");
    assert!(got.contains(&format!("userdb_gid={GID}\t")), "{got:?}");
    assert!(got.contains("userdb_home="), "{got:?}");
    // Lookup mode ends in exit 2 (success for Dovecot's lookup).
    let input = format!("{}\0\0\0", w.login("ivy"));
    let o = w.call(
        Some(input.as_bytes()),
        &[("ORIG_UID", "0"), ("AUTHORIZED", "1")],
        &["/bin/sh", "-c", &script],
    );
    assert_code(&o, 2, "lookup through checkpassword-reply");
}

fn logs_hold_no_secrets(kind: Kind) {
    blackbox::need_root("they check the uid and gid drop");
    let w = World::new(kind);
    let mut u = w.user("jack", "Hunter2secret");
    u.clear = "ClearSecret9".into();
    w.db.add(&u);
    let ts = "<777.888@challenge-host>";
    let mut all = String::new();
    for pw in [
        "Hunter2secret",
        "WrongSecret77",
        &md5_hex(format!("{ts}ClearSecret9").as_bytes()),
    ] {
        let input = format!("{}\0{pw}\0{ts}\0", w.login("jack"));
        let o = w.call(Some(input.as_bytes()), &[], &["/bin/true"]);
        all.push_str(&stderr(&o));
    }
    for secret in [
        "Hunter2secret",
        "WrongSecret77",
        "ClearSecret9",
        "challenge-host",
        "777.888",
    ] {
        assert!(!all.contains(secret), "{secret} logged:\n{all}");
    }
    assert!(all.contains("(APOP) login success"), "{all}");
    assert_eq!(all.lines().count(), 3, "one line per attempt:\n{all}");
    // A login cannot forge log lines or format strings.
    let input = format!("{}\0x\0\0", "evil%n\nfake line@x.example");
    let o = w.call(Some(input.as_bytes()), &[], &["/bin/true"]);
    assert_code(&o, 1, "bad login");
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("evil#n?fake?line@x.example"), "{e}");
}

fn database_unreachable(kind: Kind) {
    let w = World::new(kind);
    w.add("kim", "pw");
    // Nothing listens on this loopback port (or at this path).
    let bad = match kind {
        Kind::Sqlite => format!("sqlite:{}", w.dir.join("missing.sqlite").display()),
        Kind::Mysql => "mysql://cptest:cp-pw@127.0.0.1:1/cptest".into(),
        Kind::Pg => "postgres://cptest:cp-pw@127.0.0.1:1/cptest".into(),
    };
    let input = format!("{}\0pw\0\0", w.login("kim"));
    let o = w.call(
        Some(input.as_bytes()),
        &[("CHECKPASSWORD_DB", &bad)],
        &["/bin/true"],
    );
    assert_code(
        &o,
        111,
        "database unreachable is temporary, not a bad password",
    );
    assert!(stderr(&o).contains("database unavailable"), "{}", show(&o));
    if kind == Kind::Mysql {
        let bad = w.db.url.replace("cp-pw", "wrong-pw");
        let o = w.call(
            Some(input.as_bytes()),
            &[("CHECKPASSWORD_DB", &bad)],
            &["/bin/true"],
        );
        assert_code(&o, 111, "refused database login");
        assert!(!stderr(&o).contains("wrong-pw"), "{}", show(&o));
    }
    // A database without the user table.
    let empty = w.dir.join("empty.sqlite");
    run_sql(Kind::Sqlite, Some(&empty), "CREATE TABLE x (y INT);").unwrap();
    let o = w.call(
        Some(input.as_bytes()),
        &[("CHECKPASSWORD_DB", &format!("sqlite:{}", empty.display()))],
        &["/bin/true"],
    );
    assert_code(&o, 111, "no vpopmail table");
}

// ---------------------------------------------------------------------------------------
// Database stopped while the suite runs (MySQL and PostgreSQL).

fn stopped_server(kind: Kind) {
    let lock = if kind == Kind::Mysql {
        &MYSQL_LOCK
    } else {
        &PG_LOCK
    };
    let mut w = World::new(kind);
    w.add("lee", "pw");
    let input = format!("{}\0pw\0\0", w.login("lee"));
    assert_code(
        &w.call(Some(input.as_bytes()), &[], &["/bin/true"]),
        0,
        "server up",
    );
    let ctl = ctl(kind);
    let url = w.db.url.clone();
    drop(w.db._guard.take());
    let _excl = lock.write().unwrap_or_else(|e| e.into_inner());
    let st = Command::new(&ctl).arg("stop").status().unwrap();
    assert!(st.success(), "stop");
    let o = w.call(
        Some(input.as_bytes()),
        &[("CHECKPASSWORD_DB", &url)],
        &["/bin/true"],
    );
    let st = Command::new(&ctl).arg("start").status().unwrap();
    assert!(st.success(), "start");
    assert_code(&o, 111, "server stopped: temporary failure");
    let start = Instant::now();
    loop {
        let o = w.call(
            Some(input.as_bytes()),
            &[("CHECKPASSWORD_DB", &url)],
            &["/bin/true"],
        );
        if code(&o) == Some(0) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server back: {}",
            show(&o)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A wrong password whose failure cannot be recorded (another process holds SQLite's
/// write lock past the busy timeout, `vpopdb::store::TIMEOUT`: this test waits that long
/// once) is a temporary failure, not a 1 the lockout never counted.
#[test]
fn uncounted_failure_is_temporary() {
    let w = World::new(Kind::Sqlite);
    w.add("gina", "right");
    let path = w.db.sqlite.clone().unwrap();
    let input = format!("{}\0Guess-42\0\0", w.login("gina"));
    // One counted failure first: the file is in WAL mode and the table exists.
    assert_code(
        &w.call(Some(input.as_bytes()), &[], &["/bin/true"]),
        1,
        "counted",
    );
    // A writer that holds the write lock until its stdin closes, and says when it has it
    // (Python's sqlite3 module: the sqlite3 shell reading a pipe was seen not to run its
    // BEGIN before the end of its input).
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             print('held', flush=True)\n\
             sys.stdin.read()\n",
        ])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let hold = holder.stdin.take().unwrap();
    let mut said = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut said,
    )
    .unwrap();
    assert_eq!(said, "held\n", "the lock holder did not start");
    let o = w.call(Some(input.as_bytes()), &[], &["/bin/true"]);
    drop(hold);
    holder.wait().unwrap();
    assert_code(&o, 111, "a failure that could not be counted");
    let err = stderr(&o);
    assert!(err.contains("unable to record failure"), "{}", show(&o));
    assert!(
        !err.contains("Guess-42"),
        "the password is never logged: {err}"
    );
    let n = w.db.rows(&format!(
        "SELECT failures FROM lockout WHERE lockkey = {};",
        q(&format!("acct:{}:{}", w.login("gina"), w.ip))
    ));
    assert_eq!(
        n,
        vec!["1".to_string()],
        "the uncounted attempt left no count"
    );
    // With the lock gone, failures count and answer 1 again.
    assert_code(
        &w.call(Some(input.as_bytes()), &[], &["/bin/true"]),
        1,
        "counted again",
    );
}

/// `login_timeout` bounds the whole login: a database that accepts and then says nothing
/// (each read would wait its own 10 s) ends the login with 111 and the deadline's line;
/// a login that succeeds leaves no alarm behind for the program it runs.
#[test]
fn login_deadline() {
    let w = World::new(Kind::Sqlite);
    w.add("dora", "pw");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    silent.set_nonblocking(true).unwrap();
    let held = std::thread::spawn(move || {
        // Takes the one connection within 10 s and keeps it open, silent, for 3 s more.
        for _ in 0..200 {
            if let Ok((c, _)) = silent.accept() {
                std::thread::sleep(Duration::from_secs(3));
                return Some(c);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    });
    let input = format!("{}\0pw\0\0", w.login("dora"));
    let o = w.call(
        Some(input.as_bytes()),
        &[
            (
                "CHECKPASSWORD_DB",
                &format!("mysql://u:p@127.0.0.1:{port}/db"),
            ),
            ("CHECKPASSWORD_LOGIN_TIMEOUT", "1"),
        ],
        &["/bin/true"],
    );
    assert_code(&o, 111, "a silent database past the deadline");
    assert!(
        stderr(&o).contains("the login took longer than login_timeout"),
        "{}",
        show(&o)
    );
    assert!(
        held.join().unwrap().is_some(),
        "checkpassword never connected"
    );
    // A good login under a deadline shorter than its program's run: the program lives on.
    let o = w.call(
        Some(input.as_bytes()),
        &[("CHECKPASSWORD_LOGIN_TIMEOUT", "1")],
        &["/bin/sh", "-c", "sleep 2; echo alive"],
    );
    assert_code(&o, 0, "login under a deadline");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "alive\n",
        "{}",
        show(&o)
    );
    // A bad value is a configuration error, 111.
    let o = w.call(
        Some(input.as_bytes()),
        &[("CHECKPASSWORD_LOGIN_TIMEOUT", "soon")],
        &["/bin/true"],
    );
    assert_code(&o, 111, "bad login_timeout");
    assert!(stderr(&o).contains("login_timeout"), "{}", show(&o));
}

#[test]
fn mysql_stopped_mid_run() {
    stopped_server(Kind::Mysql);
}

#[test]
fn postgres_stopped_mid_run() {
    stopped_server(Kind::Pg);
}

// ---------------------------------------------------------------------------------------
// MySQL specifics: vpopmail's own connection file, the unix socket.

#[test]
fn mysql_vpopmail_file_and_socket() {
    let w = World::new(Kind::Mysql);
    w.add("mia", "pw");
    let sock = env_or_fail("CHECKPASSWORD_TEST_MYSQL_SOCKET_URL");
    let sock_path = sock.split("socket=").nth(1).unwrap().to_string();
    let input = format!("{}\0pw\0\0", w.login("mia"));
    let o = w.call(
        Some(input.as_bytes()),
        &[("CHECKPASSWORD_DB", &sock)],
        &["/bin/true"],
    );
    assert_code(&o, 0, "unix socket URL");
    // No CHECKPASSWORD_DB: ~vpopmail/etc/vpopmail.mysql, read line then update line.
    std::fs::write(
        w.vpopmail.join("etc/vpopmail.mysql"),
        format!("# vpopmail\nlocalhost|{sock_path}|cptest|cp-pw|cptest\nlocalhost|{sock_path}|cptest|cp-pw|cptest\n"),
    )
    .unwrap();
    let o = w.call(
        Some(input.as_bytes()),
        &[("-CHECKPASSWORD_DB", "")],
        &["/bin/true"],
    );
    assert_code(&o, 0, "vpopmail.mysql");
    // Reads through a read-only account, bookkeeping through the update account.
    let lastauth = |ip: &str| {
        w.db.rows(&format!(
            "SELECT remote_ip FROM lastauth WHERE `user` = 'mia' AND domain = {} AND remote_ip = {};",
            q(&w.domain),
            q(ip)
        ))
    };
    let ip_a = format!("{}1", &w.ip[..w.ip.len() - 1]);
    let ip_b = format!("{}2", &w.ip[..w.ip.len() - 1]);
    std::fs::write(
        w.vpopmail.join("etc/vpopmail.mysql"),
        format!("localhost|{sock_path}|cpread|cp-read|cptest\nlocalhost|{sock_path}|cptest|cp-pw|cptest\n"),
    )
    .unwrap();
    let o = w.call(
        Some(input.as_bytes()),
        &[("-CHECKPASSWORD_DB", ""), ("TCPREMOTEIP", &ip_a)],
        &["/bin/true"],
    );
    assert_code(&o, 0, "read-only account plus update account");
    assert_eq!(lastauth(&ip_a), vec![ip_a.clone()], "{}", show(&o));
    // Only the read-only account: the login still works, lastauth is skipped (and logged).
    std::fs::write(
        w.vpopmail.join("etc/vpopmail.mysql"),
        format!("localhost|{sock_path}|cpread|cp-read|cptest\n"),
    )
    .unwrap();
    let o = w.call(
        Some(input.as_bytes()),
        &[("-CHECKPASSWORD_DB", ""), ("TCPREMOTEIP", &ip_b)],
        &["/bin/true"],
    );
    assert_code(&o, 0, "read-only account alone");
    assert!(lastauth(&ip_b).is_empty());
    assert!(
        stderr(&o).contains("unable to update lastauth"),
        "{}",
        show(&o)
    );
    assert!(
        !stderr(&o).contains("cp-read"),
        "no password in the log: {}",
        show(&o)
    );
    // A config file's db wins over vpopmail.mysql; a broken one is a temporary failure.
    let conf = w.dir.join("cp.conf");
    std::fs::write(&conf, "db = mysql://cptest:cp-pw@127.0.0.1:1/cptest\n").unwrap();
    let c = conf.display().to_string();
    let o = w.call(
        Some(input.as_bytes()),
        &[("-CHECKPASSWORD_DB", ""), ("CHECKPASSWORD_CONFIG", &c)],
        &["/bin/true"],
    );
    assert_code(&o, 111, "config file db");
    std::fs::write(
        &conf,
        "db = mysql://cptest:cp-pw@127.0.0.1:1/cptest\nbogus = 1\n",
    )
    .unwrap();
    let o = w.call(
        Some(input.as_bytes()),
        &[("-CHECKPASSWORD_DB", ""), ("CHECKPASSWORD_CONFIG", &c)],
        &["/bin/true"],
    );
    assert_code(&o, 111, "unknown setting");
    assert!(stderr(&o).contains("unknown setting bogus"), "{}", show(&o));
}

/// Our MariaDB client's authentication paths against the real server: the server's
/// switch to `unix_socket` (root over the socket, no password), an account without a
/// password, and a wrong password (a temporary failure, never a failed login).
#[test]
fn mysql_authentication_forms() {
    blackbox::need_root("MariaDB's root account authenticates by the unix socket's peer uid");
    let w = World::new(Kind::Mysql);
    w.add("ola", "pw");
    let sock = env_or_fail("CHECKPASSWORD_TEST_MYSQL_SOCKET_URL");
    let path = sock.split("socket=").nth(1).unwrap().to_string();
    run_sql(
        Kind::Mysql,
        None,
        "CREATE USER IF NOT EXISTS 'cpnopw'@'localhost' IDENTIFIED BY ''; \
         GRANT ALL ON cptest.* TO 'cpnopw'@'localhost';",
    )
    .unwrap();
    let input = format!("{}\0pw\0\0", w.login("ola"));
    for (url, want, what) in [
        (
            format!("mysql://root@localhost/cptest?socket={path}"),
            0,
            "root by unix_socket",
        ),
        (
            format!("mysql://cpnopw@localhost/cptest?socket={path}"),
            0,
            "empty password",
        ),
        (
            format!("mysql://cpnopw:x@localhost/cptest?socket={path}"),
            111,
            "password where none is set",
        ),
        (
            format!("mysql://cptest:nope@localhost/cptest?socket={path}"),
            111,
            "wrong password",
        ),
    ] {
        let o = w.call(
            Some(input.as_bytes()),
            &[("CHECKPASSWORD_DB", &url)],
            &["/bin/true"],
        );
        assert_code(&o, want, what);
        if want == 111 {
            assert!(stderr(&o).contains("Access denied"), "{what}: {}", show(&o));
        }
    }
}

/// The password methods older servers and pg_hba.conf files still use: md5 (a salted
/// challenge) and password (cleartext), against the real server; a refusal is 111 with
/// the server's message, never a wrong user password.
#[test]
fn postgres_password_methods() {
    let w = World::new(Kind::Pg);
    w.add("pia", "pw");
    // scripts/test.d/10-databases.sh routes these two roles' TCP logins to md5 and
    // password; they act as cptest (its tables, its ownership of what they create).
    run_sql(
        Kind::Pg,
        None,
        "DROP ROLE IF EXISTS cpmd5; DROP ROLE IF EXISTS cpclear; \
         SET password_encryption = 'md5'; \
         CREATE ROLE cpmd5 LOGIN PASSWORD 'md5-pw' IN ROLE cptest; \
         RESET password_encryption; \
         CREATE ROLE cpclear LOGIN PASSWORD 'clear-pw' IN ROLE cptest; \
         ALTER ROLE cpmd5 SET role = 'cptest'; ALTER ROLE cpclear SET role = 'cptest';",
    )
    .unwrap();
    let stored = run_sql(
        Kind::Pg,
        None,
        "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'cpmd5';",
    )
    .unwrap();
    assert_eq!(stored.trim(), "md5", "cpmd5's password is stored as md5");
    let url = env_or_fail("CHECKPASSWORD_TEST_PG_URL");
    let server = url.split_once('@').expect("user@host in the URL").1;
    let input = format!("{}\0pw\0\0", w.login("pia"));
    for (role, pw, want, what) in [
        ("cpmd5", "md5-pw", 0, "md5"),
        ("cpmd5", "nope", 111, "md5, wrong password"),
        ("cpclear", "clear-pw", 0, "cleartext"),
        ("cpclear", "nope", 111, "cleartext, wrong password"),
    ] {
        let o = w.call(
            Some(input.as_bytes()),
            &[(
                "CHECKPASSWORD_DB",
                &format!("postgres://{role}:{pw}@{server}"),
            )],
            &["/bin/true"],
        );
        assert_code(&o, want, what);
        if want == 111 {
            assert!(
                stderr(&o).contains("password authentication failed"),
                "{what}: {}",
                show(&o)
            );
        }
    }
}

#[test]
fn postgres_unix_socket() {
    let w = World::new(Kind::Pg);
    w.add("nina", "pw");
    let url = env_or_fail("CHECKPASSWORD_TEST_PG_SOCKET_URL");
    let input = format!("{}\0pw\0\0", w.login("nina"));
    let o = w.call(
        Some(input.as_bytes()),
        &[("CHECKPASSWORD_DB", &url)],
        &["/bin/true"],
    );
    assert_code(&o, 0, "unix socket URL");
    let o = w.call(
        Some(format!("{}\0bad\0\0", w.login("nina")).as_bytes()),
        &[("CHECKPASSWORD_DB", &url)],
        &["/bin/true"],
    );
    assert_code(&o, 1, "wrong password over the socket");
}

// ---------------------------------------------------------------------------------------
// The interface itself (SQLite).

#[test]
fn interface_misuse() {
    let w = World::new(Kind::Sqlite);
    w.add("ned", "pw");
    let ok = format!("{}\0pw\0\0", w.login("ned"));
    let o = w.call(Some(ok.as_bytes()), &[], &[]);
    assert_code(&o, 2, "no prog");
    let o = w.call(None, &[], &["/bin/true"]);
    assert_code(&o, 2, "fd 3 not open");
    assert!(stderr(&o).contains("fd 3 is not open"), "{}", show(&o));
    let mut long = ok.clone().into_bytes();
    long.resize(513, b'x');
    assert_code(&w.call(Some(&long), &[], &["/bin/true"]), 2, "513 bytes");
    let mut exact = format!("{}\0pw\0", w.login("ned")).into_bytes();
    exact.resize(512, b'x');
    assert_code(&w.call(Some(&exact), &[], &["/bin/true"]), 0, "512 bytes");
    for bad in [&b"ned"[..], b"ned\0pw", b"ned\0", b""] {
        assert_code(&w.call(Some(bad), &[], &["/bin/true"]), 2, "malformed");
    }
    let o = w.call(Some(ok.as_bytes()), &[], &["/nonexistent/prog"]);
    assert_code(&o, 111, "exec failure");
    // prog's exit status is the caller's.
    let o = w.call(Some(ok.as_bytes()), &[], &["/bin/sh", "-c", "exit 42"]);
    assert_code(&o, 42, "prog's status");
    // PATH search.
    let o = w.call(Some(ok.as_bytes()), &[], &["true"]);
    assert_code(&o, 0, "execvp semantics");
}

/// Not root and not setuid: POP/IMAP would run as the caller, which is refused; SMTP's
/// /bin/true is fine.
#[test]
fn unprivileged_caller() {
    blackbox::need_root("they check the uid and gid drop");
    let w = World::new(Kind::Sqlite);
    w.add("olga", "pw");
    // nobody must be able to read the database.
    let db = w.db.sqlite.clone().unwrap();
    std::fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let dir = w.dir.path().to_path_buf();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let input = format!("{}\0pw\0\0", w.login("olga"));
    let env = |port: &str| -> Vec<(String, String)> {
        vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("CHECKPASSWORD_CONFIG".into(), "/dev/null".into()),
            ("CHECKPASSWORD_DB".into(), w.db.url.clone()),
            (
                "CHECKPASSWORD_VPOPMAIL_DIR".into(),
                w.vpopmail.display().to_string(),
            ),
            ("QMAIL".into(), w.qmail.display().to_string()),
            ("TCPLOCALPORT".into(), port.into()),
            ("TCPREMOTEIP".into(), w.ip.clone()),
        ]
    };
    let bin = ours("checkpassword");
    let o = call_with(
        &bin,
        Some(input.as_bytes()),
        &env("110"),
        &["/bin/true"],
        Some((65534, 65534)),
    );
    assert_code(&o, 111, "POP as an unprivileged caller");
    assert!(stderr(&o).contains("not running as root"), "{}", show(&o));
    let o = call_with(
        &bin,
        Some(input.as_bytes()),
        &env("25"),
        &["/bin/sh", "-c", REPORT],
        Some((65534, 65534)),
    );
    assert_code(&o, 0, "SMTP as the caller");
    let r = parse_report(&o.stdout);
    assert!(r.uid.starts_with("65534\t65534"), "{}", r.uid);
}

static ETC_CONF: Mutex<()> = Mutex::new(());

/// Setuid root (an SMTP AUTH set-up): the caller's environment chooses nothing, and prog
/// runs as the caller, never as root or the domain.
#[test]
fn setuid_caller() {
    blackbox::need_root("they check the uid and gid drop");
    let _g = ETC_CONF.lock().unwrap_or_else(|e| e.into_inner());
    let w = World::new(Kind::Sqlite);
    w.add("pat", "pw");
    let db = w.db.sqlite.clone().unwrap();
    std::fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let dir = w.dir.path().to_path_buf();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let bin = w.dir.join("checkpassword-setuid");
    // Copied by cp(1): a write descriptor of this process, inherited by a child that
    // another test thread forks meanwhile, would make exec fail with ETXTBSY.
    let st = Command::new("cp")
        .arg(ours("checkpassword"))
        .arg(&bin)
        .status()
        .unwrap();
    assert!(st.success(), "cp");
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    // The config file is the only source of settings.
    let conf = Path::new("/etc/checkpassword.conf");
    let saved = std::fs::read(conf).ok();
    std::fs::write(
        conf,
        format!(
            "db = {}\nqmail = {}\nvpopmail_dir = {}\n",
            w.db.url,
            w.qmail.display(),
            w.vpopmail.display()
        ),
    )
    .unwrap();
    let other = w.dir.join("other.sqlite");
    run_sql(Kind::Sqlite, Some(&other), SCHEMA).unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let input = format!("{}\0pw\0\0", w.login("pat"));
    let env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("TCPLOCALPORT".into(), "25".into()),
        ("TCPREMOTEIP".into(), w.ip.clone()),
        // All ignored: the caller chose them.
        (
            "CHECKPASSWORD_DB".into(),
            format!("sqlite:{}", other.display()),
        ),
        ("CHECKPASSWORD_CONFIG".into(), "/dev/null".into()),
        ("AUTHORIZED".into(), "1".into()),
    ];
    let o = call_with(
        &bin,
        Some(input.as_bytes()),
        &env,
        &["/bin/sh", "-c", REPORT],
        Some((65534, 65534)),
    );
    let pw_lookup = {
        let empty = format!("{}\0\0\0", w.login("pat"));
        call_with(
            &bin,
            Some(empty.as_bytes()),
            &env,
            &["/bin/true"],
            Some((65534, 65534)),
        )
    };
    match saved {
        Some(s) => std::fs::write(conf, s).unwrap(),
        None => std::fs::remove_file(conf).unwrap(),
    }
    assert_code(&o, 0, "setuid login using the config file's database");
    let r = parse_report(&o.stdout);
    assert_eq!(
        r.uid, "65534\t65534\t65534\t65534",
        "prog runs as the caller"
    );
    assert_eq!(r.gid, "65534\t65534\t65534\t65534");
    assert_code(&pw_lookup, 1, "no passwordless lookup when setuid");
}
