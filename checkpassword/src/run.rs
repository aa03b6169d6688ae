//! One login from start to exec: fd 3, settings, lookup, verification, lockout and
//! bookkeeping, process set-up.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::fd3::{self, Fd3Error};
use crate::service::{self, Service};
use crate::{log, setup};
use crate::{EXIT_FAIL, EXIT_MISUSE, EXIT_NOUSER, EXIT_TEMP};
use vpopdb::config::{account, Settings};
use vpopdb::flags_quota::{self, NO_RELAY};
use vpopdb::lockout::{self, Locked};
use vpopdb::loginname::{self as login, LoginError};
use vpopdb::store::{self, Conn, DbError};
use vpopdb::target::Target;
use vpopdb::{assign, users, verify};

/// How long a caller may take to write fd 3.
const FD3_TIMEOUT: Duration = Duration::from_secs(60);

/// Environment variables a setuid caller must not choose.
fn caller_chosen(name: &str) -> bool {
    name.starts_with("CHECKPASSWORD_") || name == "QMAIL" || name == "AUTHORIZED"
}

/// The process environment, minus what an untrusted caller chose.
struct Env {
    trusted: bool,
}

impl Env {
    fn get(&self, name: &str) -> Option<String> {
        if !self.trusted && caller_chosen(name) {
            return None;
        }
        std::env::var(name).ok()
    }
}

/// `TCPREMOTEIP` as vchkpw's `get_remote_ip` treats it: a v4-mapped prefix removed and
/// anything but address characters replaced.
fn remote_ip(env: &Env) -> String {
    let raw = env
        .get("TCPREMOTEIP")
        .or_else(|| env.get("REMOTE_IP"))
        .unwrap_or_default();
    let raw = raw.strip_prefix("::ffff:").unwrap_or(&raw);
    raw.chars()
        .take(39)
        .map(|c| {
            if c.is_ascii_hexdigit() || c == '.' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The default domain: `VPOPMAIL_DOMAIN`, the `default_domain` setting, then the first
/// line of `~vpopmail/etc/defaultdomain`.
fn default_domain(env: &Env, s: &Settings) -> String {
    if let Some(d) = env.get("VPOPMAIL_DOMAIN").filter(|d| !d.is_empty()) {
        return login::sanitize_domain(&d);
    }
    if let Some(d) = &s.default_domain {
        return d.clone();
    }
    let f = s.vpopmail_home().join("etc/defaultdomain");
    std::fs::read_to_string(f)
        .ok()
        .and_then(|t| t.lines().next().map(|l| l.trim().to_ascii_lowercase()))
        .filter(|d| login::domain_ok(d))
        .unwrap_or_default()
}

/// The database connections of one login: reads on the first, writes on the second when
/// vpopmail.mysql names an update account, opened only if a write happens.
struct Db {
    read: Box<dyn Conn>,
    write_target: Option<Target>,
    write: Option<Box<dyn Conn>>,
}

impl Db {
    fn writer(&mut self) -> Result<&mut dyn Conn, DbError> {
        if let Some(t) = &self.write_target {
            if self.write.is_none() {
                self.write = Some(store::connect(t)?);
            }
            return Ok(self.write.as_deref_mut().expect("opened above"));
        }
        Ok(self.read.as_mut())
    }

    fn close(self) {
        self.read.close();
        if let Some(w) = self.write {
            w.close();
        }
    }
}

/// Runs one login; returns an exit code, or does not return (prog was exec'd).
pub fn run(args: &[OsString]) -> i32 {
    if args.len() < 2 {
        log::fatal("usage: checkpassword prog [args...]");
        return EXIT_MISUSE;
    }
    // fd 3 before anything is opened.
    let raw = match fd3::read_all(3, FD3_TIMEOUT) {
        Ok(r) => r,
        Err(e) => {
            let (code, what) = match e {
                Fd3Error::NotOpen => (
                    EXIT_MISUSE,
                    "fd 3 is not open: not called by a checkpassword caller".to_string(),
                ),
                Fd3Error::TooLong => (
                    EXIT_MISUSE,
                    format!("more than {} bytes on fd 3", fd3::MAX_INPUT),
                ),
                Fd3Error::Malformed => (EXIT_MISUSE, "malformed input on fd 3".into()),
                Fd3Error::Timeout => (EXIT_TEMP, "timed out reading fd 3".into()),
                Fd3Error::Read(n) => (
                    EXIT_TEMP,
                    format!("unable to read fd 3: {}", ucspi::errstr::errno_str(n)),
                ),
            };
            log::fatal(&what);
            return code;
        }
    };
    let creds = match fd3::parse(&raw) {
        Ok(c) => c,
        Err(_) => {
            log::fatal("malformed input on fd 3");
            return EXIT_MISUSE;
        }
    };
    drop(raw);
    Login::new(args, creds).run()
}

struct Login {
    prog: Vec<OsString>,
    creds: fd3::Credentials,
    env: Env,
    setuid: bool,
}

impl Login {
    fn new(args: &[OsString], creds: fd3::Credentials) -> Self {
        // SAFETY: plain id queries.
        let setuid =
            unsafe { libc::getuid() != libc::geteuid() || libc::getgid() != libc::getegid() };
        Login {
            prog: args[1..].to_vec(),
            creds,
            env: Env { trusted: !setuid },
            setuid,
        }
    }

    fn run(self) -> i32 {
        let env = &self.env;
        let ip = remote_ip(env);
        let dovecot = env.get("ORIG_UID").is_some() || env.get("AUTHORIZED").is_some();
        let authorized = env.get("AUTHORIZED");
        let lookup_only = authorized.as_deref() == Some("1") && self.creds.password.is_empty();
        let det = service::detect(
            env.get("SERVICE").as_deref().filter(|_| dovecot),
            env.get("TCPLOCALPORT").as_deref(),
            self.prog[0].as_encoded_bytes(),
            &ip,
        );
        let ln = det.logname.as_str();
        let attempt =
            |text: &str, user: &[u8], domain: &str| log::attempt(ln, text, user, domain, &ip);

        let settings = match Settings::load(&|k| env.get(k), env.trusted) {
            Ok(s) => s,
            Err(e) => {
                log::fatal(&format!("bad configuration: {e}"));
                return EXIT_TEMP;
            }
        };
        let mut l = match login::parse(&self.creds.login) {
            Ok(l) => l,
            Err(LoginError::Empty) => {
                attempt("null user name given", b"", "");
                return EXIT_FAIL;
            }
            Err(_) => {
                attempt("invalid user/domain characters", &self.creds.login, "");
                return EXIT_FAIL;
            }
        };
        if self.creds.password.is_empty() && !lookup_only {
            attempt("null password given", l.user.as_bytes(), &l.domain);
            return EXIT_FAIL;
        }
        if l.domain.is_empty() {
            l.domain = default_domain(env, &settings);
        }
        let assigned = match assign::lookup(&settings.qmail_dir, &l.domain) {
            Ok(a) => a,
            Err(e) => {
                log::fatal(&e);
                return EXIT_TEMP;
            }
        };
        if let Some(a) = &assigned {
            // An alias domain's users live under the real domain.
            l.domain = a.name.clone();
        }
        let (user, domain) = (l.user.as_str(), l.domain.as_str());
        let who = format!("{user}@{domain}");

        let targets = match settings.targets() {
            Ok(t) => t,
            Err(e) => {
                log::fatal(&format!("bad configuration: {e}"));
                return EXIT_TEMP;
            }
        };
        let read = match store::connect(&targets.read) {
            Ok(c) => c,
            Err(e) => {
                log::fatal(&format!("database unavailable: {e}"));
                return EXIT_TEMP;
            }
        };
        let mut db = Db {
            read,
            write_target: targets.write,
            write: None,
        };
        let t = vpopdb::now();
        let temp = |db: Db, e: DbError| {
            log::fatal(&format!("database unavailable: {e}"));
            db.close();
            EXIT_TEMP
        };

        // The lockout counters and the user's row in one go (one round trip to MariaDB).
        let kind = db.read.kind();
        let (find_sql, find_params) = users::query(kind, settings.tables, user, domain);
        let find = (find_sql.as_str(), find_params.as_slice());
        let (lock, row) = match lockout::query(kind, &settings, &who, &ip) {
            (st, Some((sql, params))) if !lookup_only => {
                let [a, b] = db.read.query_pair((&sql, &params), find);
                (lockout::read(st, a), b)
            }
            _ => (Ok(lockout::State::default()), db.read.query(find.0, find.1)),
        };
        let lock = match lock {
            Ok(s) => s,
            Err(e) => return temp(db, e),
        };
        let row = match users::read(settings.tables, row) {
            Ok(r) => r,
            Err(DbError::NoTable) => {
                return temp(
                    db,
                    DbError::Other("the vpopmail user table does not exist".into()),
                );
            }
            Err(e) => return temp(db, e),
        };

        let mut method = "PLAIN";
        let (ok, reason) = if lookup_only {
            (row.is_some(), "vpopmail user not found")
        } else {
            let locked = lock.locked(&settings, t);
            match (&row, locked) {
                (_, Locked::Account) | (_, Locked::Address) => {
                    verify::dummy(&self.creds.password);
                    (
                        false,
                        if locked == Locked::Account {
                            "password fail (account locked out)"
                        } else {
                            "password fail (address locked out)"
                        },
                    )
                }
                (None, _) => {
                    verify::dummy(&self.creds.password);
                    (false, "vpopmail user not found")
                }
                (Some(u), _) => {
                    let pw = &self.creds.password;
                    let ch = &self.creds.challenge;
                    let mut ok = false;
                    if !u.clear.is_empty() && !ch.is_empty() {
                        match det.service {
                            Service::Pop | Service::Webmail
                                if verify::apop_ok(ch, &u.clear, pw) =>
                            {
                                ok = true;
                                method = "APOP";
                            }
                            Service::Smtp if verify::cram_ok(ch, &u.clear, pw) => {
                                ok = true;
                                method = "CRAM-MD5";
                            }
                            _ => {}
                        }
                    }
                    if !ok {
                        ok = verify::check_crypt(pw, &u.passwd);
                    }
                    (
                        ok,
                        if u.passwd.is_empty() && !ok {
                            "user has no password"
                        } else {
                            "password fail"
                        },
                    )
                }
            }
        };
        if !ok {
            if lookup_only {
                attempt(reason, user.as_bytes(), domain);
                db.close();
                return EXIT_NOUSER;
            }
            match db
                .writer()
                .and_then(|w| lockout::failure(w, &settings, &lock, t))
            {
                Ok(true) => attempt(
                    "locking out after repeated failures",
                    user.as_bytes(),
                    domain,
                ),
                Ok(false) => {}
                Err(e) => log::warn(&format!("unable to record failure: {e}")),
            }
            attempt(reason, user.as_bytes(), domain);
            db.close();
            return EXIT_FAIL;
        }
        let u = row.expect("ok implies a row");
        // A lookup is Dovecot asking about a user it already authenticated (or delivering
        // to one): the service flags govern logins, not deliveries.
        if let Some(text) = service::denied(det.service, u.flags).filter(|_| !lookup_only) {
            attempt(text, user.as_bytes(), domain);
            db.close();
            return EXIT_FAIL;
        }
        if !lookup_only {
            let w = match db.writer() {
                Ok(w) => w,
                Err(e) => return temp(db, e),
            };
            if let Err(e) = lockout::success(w, &lock) {
                log::warn(&format!("unable to clear failures: {e}"));
            }
            if let Err(e) = users::lastauth(w, user, domain, &ip, t) {
                log::warn(&format!("unable to update lastauth: {e}"));
            }
            if settings.relay
                && det.service != Service::Smtp
                && u.flags & NO_RELAY == 0
                && !ip.is_empty()
            {
                if let Err(e) = users::relay(w, &ip, t) {
                    log::warn(&format!("unable to update relay: {e}"));
                }
            }
            attempt(
                &format!("({method}) login success"),
                user.as_bytes(),
                domain,
            );
        }
        db.close();

        let ids = assigned
            .as_ref()
            .map(|a| (a.uid, a.gid))
            .or(settings.uid.zip(settings.gid))
            .or_else(|| account("vpopmail").map(|a| (a.uid, a.gid)));
        let home = PathBuf::from(OsString::from_vec(u.dir.clone()));
        let smtp = det.service == Service::Smtp;
        // SAFETY: plain id query.
        let root = unsafe { libc::getuid() } == 0;
        let setup = if self.setuid {
            // The caller chose prog: it runs as the caller, never as us or the domain.
            setup::drop_to_caller().and_then(|_| {
                if smtp || dovecot {
                    Ok(())
                } else {
                    setup::chdir(&home)
                }
            })
        } else if dovecot {
            // Dovecot's checkpassword-reply must keep ORIG_UID's uid; ids go in EXTRA,
            // where 0 would make Dovecot run the mail processes as root.
            match ids {
                Some((uid, gid)) if uid == 0 || gid == 0 => Err(format!(
                    "refusing to give Dovecot uid {uid} gid {gid} for {domain}"
                )),
                _ => Ok(()),
            }
        } else if root {
            match ids {
                Some((uid, gid)) => setup::drop_to(uid, gid)
                    .and_then(|_| if smtp { Ok(()) } else { setup::chdir(&home) }),
                None => Err(format!("no uid/gid for {domain}: no users/cdb entry, uid/gid settings or vpopmail account")),
            }
        } else if smtp {
            Ok(())
        } else {
            Err(format!(
                "not running as root: refusing to run {} for {} as the caller",
                self.prog[0].to_string_lossy(),
                det.logname
            ))
        };
        if let Err(e) = setup {
            log::fatal(&e);
            return EXIT_TEMP;
        }

        let mut env_out: Vec<(String, OsString)> = vec![
            (
                "USER".into(),
                if dovecot {
                    who.clone()
                } else {
                    user.to_string()
                }
                .into(),
            ),
            ("HOME".into(), home.into_os_string()),
            ("SHELL".into(), "NOLOGIN".into()),
            ("VPOPUSER".into(), l.full.clone().into()),
        ];
        if dovecot {
            let mut extra = Vec::new();
            if let Some((uid, gid)) = ids {
                env_out.push(("userdb_uid".into(), uid.to_string().into()));
                env_out.push(("userdb_gid".into(), gid.to_string().into()));
                extra.extend(["userdb_uid", "userdb_gid"]);
            }
            if let Some(q) = flags_quota::dovecot_rule(&u.quota) {
                env_out.push(("userdb_quota_rule".into(), q.into()));
                extra.push("userdb_quota_rule");
            }
            if !extra.is_empty() {
                env_out.push(("EXTRA".into(), extra.join(" ").into()));
            }
            if authorized.as_deref() == Some("1") {
                env_out.push(("AUTHORIZED".into(), "2".into()));
            }
        }
        let e = setup::exec(&self.prog, &env_out);
        log::fatal(&e);
        EXIT_TEMP
    }
}
