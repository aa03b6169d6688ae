//! The commands: vpopmail's account tools (vadddomain, vadduser, vpasswd, vmoduser,
//! vsetuserquota, vuserinfo, ...) over checkpassword's own storage: the same
//! configuration, connection setup, schema and all three back ends.

use std::path::{Path, PathBuf};

use nix::unistd::{getegid, geteuid, getgid, getuid, Group, User};
use zeroize::Zeroizing;

use crate::cli::Command;
use crate::out::{self, Out};
use crate::{db, maildir, password, server_config};
use vpopdb::assign_file::{AssignFile, Domain};
use vpopdb::config::{Settings, Tables};
use vpopdb::flags_quota::{self, flag_names};
use vpopdb::store::{self, Conn, DbError, Row, Val};
use vpopdb::target::Target;
use vpopdb::{hash, loginname};

/// A failure: permanent (100: bad input, no such thing, already there) or temporary (111).
pub enum Fail {
    Usage(String),
    Temp(String),
}

impl From<DbError> for Fail {
    fn from(e: DbError) -> Fail {
        Fail::Temp(format!("database unavailable: {e}"))
    }
}

pub type R<T> = Result<T, Fail>;

pub fn usage<T>(m: impl Into<String>) -> R<T> {
    Err(Fail::Usage(m.into()))
}

pub(crate) fn names_or_none(bits: i64) -> String {
    let n = flag_names(bits);
    if n.is_empty() {
        "none".into()
    } else {
        n.join(" ")
    }
}

/// `user@domain`, lowercased and checked as vchkpw checks logins.
pub fn parse_login(s: &str) -> R<(String, String)> {
    let s = s.to_ascii_lowercase();
    let Some((u, d)) = s.split_once('@') else {
        return usage(format!("{s:?}: want user@domain"));
    };
    if !loginname::new_user_ok(u) {
        return usage(format!("bad user name {u:?}"));
    }
    if !loginname::new_domain_ok(d) {
        return usage(format!("bad domain name {d:?}"));
    }
    Ok((u.to_string(), d.to_string()))
}

pub(crate) fn parse_domain(s: &str) -> R<String> {
    let d = s.to_ascii_lowercase();
    if !loginname::new_domain_ok(&d) {
        return usage(format!("bad domain name {s:?}"));
    }
    Ok(d)
}

/// Who is making the change: the real user, and the administrator behind sudo.
fn actor() -> String {
    let uid = getuid();
    let name = match User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    };
    match std::env::var("SUDO_USER") {
        Ok(s) if !s.is_empty() && s != name => format!("{name} (sudo by {s})"),
        _ => name,
    }
}

/// A uid or gid given as a number or a name.
fn id_of(s: &str, group: bool) -> R<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    if s.contains('\0') {
        return usage(format!("bad name {s:?}"));
    }
    let id = if group {
        Group::from_name(s).ok().flatten().map(|g| g.gid.as_raw())
    } else {
        User::from_name(s).ok().flatten().map(|u| u.uid.as_raw())
    };
    id.ok_or_else(|| {
        Fail::Usage(format!(
            "no such {} {s:?}",
            if group { "group" } else { "user" }
        ))
    })
}

pub(crate) struct Ctx {
    pub(crate) settings: Settings,
    pub(crate) db: Box<dyn Conn>,
    pub(crate) out: Out,
}

impl Ctx {
    fn table(&self, domain: &str) -> db::Table {
        db::table(self.settings.tables, domain)
    }
    pub(crate) fn log(&mut self, user: &str, domain: &str, action: &str, detail: &str) -> R<()> {
        db::log_change(
            self.db.as_mut(),
            &db::Change {
                now: vpopdb::now(),
                actor: &actor(),
                user,
                domain,
                action,
                detail,
            },
        )?;
        Ok(())
    }
    pub(crate) fn domain(&self, d: &str) -> R<Domain> {
        let a = AssignFile::open(&self.settings.qmail_dir).map_err(Fail::Temp)?;
        a.find(d)
            .ok_or_else(|| Fail::Usage(format!("no such domain {d} (not in {})", a.path.display())))
    }
    pub(crate) fn row(&mut self, u: &str, d: &str) -> R<Row> {
        let t = self.table(d);
        db::get(self.db.as_mut(), &t, u, d)?
            .ok_or_else(|| Fail::Usage(format!("no such account {u}@{d}")))
    }
}

fn text(r: &Row, c: &str) -> String {
    String::from_utf8_lossy(r.get(c).map(Val::as_bytes).unwrap_or_default()).into_owned()
}

/// Runs one command; its output is printed only when it succeeded.
pub fn run(cmd: Command, json: bool) -> R<()> {
    if getuid() != geteuid() || getgid() != getegid() {
        // The environment chooses the database and QMAIL: a setuid copy would let any
        // local user rewrite another's accounts.
        return usage("refusing to run setuid or setgid: run it as the administrator");
    }
    let settings = Settings::load(&|k| std::env::var(k).ok(), true)
        .map_err(|e| Fail::Temp(format!("bad configuration: {e}")))?;
    if let Command::Config { server } = cmd {
        // Text from the settings and users/assign: no database connection.
        return server_config::command(&settings, server, json);
    }
    let db = connect(&settings, matches!(cmd, Command::Init))?;
    let mut c = Ctx {
        settings,
        db,
        out: Out::new(json),
    };
    let r = dispatch(&mut c, cmd);
    let Ctx { db, out, .. } = c;
    db.close();
    r?;
    out.flush();
    Ok(())
}

fn connect(settings: &Settings, create: bool) -> R<Box<dyn Conn>> {
    let t = settings
        .targets()
        .map_err(|e| Fail::Temp(format!("bad configuration: {e}")))?;
    // Changes go where vpopmail.mysql's update line points, when it has one.
    let target = t.write.unwrap_or(t.read);
    if let (true, Target::Sqlite(p)) = (create, &target) {
        create_sqlite(p)?;
    }
    store::connect(&target).map_err(Fail::from)
}

/// `init` on the embedded back end creates the file (mode 0600: it holds hashes).
fn create_sqlite(p: &Path) -> R<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Fail::Temp(format!("unable to create {}: {e}", dir.display())))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(p)
        .map(drop)
        .map_err(|e| Fail::Temp(format!("unable to create {}: {e}", p.display())))
}

fn dispatch(c: &mut Ctx, cmd: Command) -> R<()> {
    match cmd {
        Command::Init => {
            db::init(c.db.as_mut(), c.settings.tables)?;
            c.log("", "", "init", "tables created where missing")?;
            c.out.message("tables ready");
        }
        Command::AddDomain {
            domain,
            uid,
            gid,
            dir,
        } => add_domain(c, &domain, &uid, &gid, &dir)?,
        Command::DelDomain { domain, remove_dir } => del_domain(c, &domain, remove_dir)?,
        Command::Limits { command } => crate::limits::run(c, command)?,
        Command::Domains => {
            let asg = AssignFile::open(&c.settings.qmail_dir).map_err(Fail::Temp)?;
            let mut ds = asg.domains();
            ds.sort_by(|x, y| x.name.cmp(&y.name));
            let rows = ds
                .iter()
                .map(|d| {
                    vec![
                        out::Cell::s(&d.name),
                        out::Cell::n(d.uid.into()),
                        out::Cell::n(d.gid.into()),
                        out::Cell::s(&d.dir.display().to_string()),
                    ]
                })
                .collect();
            c.out.table(&["domain", "uid", "gid", "dir"], rows);
        }
        Command::Add {
            login,
            hash,
            quota,
            gecos,
            flags,
        } => add(
            c,
            &login,
            hash.as_deref(),
            quota.as_deref(),
            gecos.as_deref(),
            flags.as_deref(),
        )?,
        Command::Del { login, remove_dir } => del(c, &login, remove_dir)?,
        Command::Passwd { login, hash } => {
            let (u, d) = parse_login(&login)?;
            let method = method(hash.as_deref())?;
            c.row(&u, &d)?;
            let pw = password::read()?;
            let (h, clear) = hashes(c, &pw, &method)?;
            let t = c.table(&d);
            db::update(
                c.db.as_mut(),
                &t,
                &u,
                &d,
                &[
                    ("pw_passwd", Val::text(&h)),
                    ("pw_clear_passwd", Val::text(&clear)),
                ],
            )?;
            c.log(&u, &d, "passwd", &format!("password changed ({method})"))?;
            c.out.message(&format!("password changed for {u}@{d}"));
        }
        Command::Quota { login, quota } => {
            let (u, d) = parse_login(&login)?;
            let q = flags_quota::quota_string(&quota).map_err(Fail::Usage)?;
            let row = c.row(&u, &d)?;
            let old = text(&row, "pw_shell");
            let t = c.table(&d);
            db::update(c.db.as_mut(), &t, &u, &d, &[("pw_shell", Val::text(&q))])?;
            // As vsetuserquota: the delivery agent recomputes maildirsize from the new quota.
            let dir = text(&row, "pw_dir");
            if !dir.is_empty() {
                let _ = std::fs::remove_file(Path::new(&dir).join("Maildir/maildirsize"));
            }
            c.log(&u, &d, "quota", &format!("{old} -> {q}"))?;
            c.out.message(&format!("quota for {u}@{d}: {q}"));
        }
        Command::Flags { login, changes } => {
            let (u, d) = parse_login(&login)?;
            let row = c.row(&u, &d)?;
            let old = row.get("pw_gid").map_or(0, Val::as_int);
            let new = flags_quota::apply_flags(old, &changes).map_err(Fail::Usage)?;
            if new != old {
                let t = c.table(&d);
                db::update(c.db.as_mut(), &t, &u, &d, &[("pw_gid", Val::Int(new))])?;
                c.log(
                    &u,
                    &d,
                    "flags",
                    &format!("{} -> {}", names_or_none(old), names_or_none(new)),
                )?;
            }
            c.out.flags(&format!("{u}@{d}"), &flag_names(new));
        }
        Command::Show { login } => {
            let (u, d) = parse_login(&login)?;
            let row = c.row(&u, &d)?;
            let la = db::lastauth(c.db.as_mut(), Some(&d), Some(&u))?;
            let la = la.first();
            let flags = row.get("pw_gid").map_or(0, Val::as_int);
            let pass = row.get("pw_passwd").map(Val::as_bytes).unwrap_or_default();
            let clear = !row
                .get("pw_clear_passwd")
                .map(Val::as_bytes)
                .unwrap_or_default()
                .is_empty();
            c.out.record(&[
                ("login", out::Cell::s(&format!("{u}@{d}"))),
                ("gecos", out::Cell::s(&text(&row, "pw_gecos"))),
                ("dir", out::Cell::s(&text(&row, "pw_dir"))),
                ("quota", out::Cell::s(&text(&row, "pw_shell"))),
                ("flags", out::Cell::list(&flag_names(flags))),
                ("hash", out::Cell::s(hash::method_of(pass))),
                ("clear_password", out::Cell::b(clear)),
                (
                    "last_login",
                    la.map_or(out::Cell::Null, |r| {
                        out::Cell::time(r.get("timestamp").map_or(0, Val::as_int))
                    }),
                ),
                (
                    "last_ip",
                    la.map_or(out::Cell::Null, |r| out::Cell::s(&text(r, "remote_ip"))),
                ),
            ]);
        }
        Command::List { domain } => {
            let d = domain.as_deref().map(parse_domain).transpose()?;
            let rows = match (&d, c.settings.tables) {
                (Some(d), _) => {
                    let t = c.table(d);
                    db::list(c.db.as_mut(), &t, Some(d))?
                        .into_iter()
                        .map(|r| (d.clone(), r))
                        .collect()
                }
                (None, Tables::Single) => {
                    let t = c.table("");
                    db::list(c.db.as_mut(), &t, None)?
                        .into_iter()
                        .map(|r| (text(&r, "pw_domain"), r))
                        .collect()
                }
                (None, Tables::PerDomain) => {
                    let asg = AssignFile::open(&c.settings.qmail_dir).map_err(Fail::Temp)?;
                    let mut all: Vec<(String, Row)> = Vec::new();
                    let mut ds = asg.domains();
                    ds.sort_by(|x, y| x.name.cmp(&y.name));
                    for dom in ds {
                        let t = c.table(&dom.name);
                        for r in db::list(c.db.as_mut(), &t, None)? {
                            all.push((dom.name.clone(), r));
                        }
                    }
                    all
                }
            };
            let cells = rows
                .iter()
                .map(|(d, r)| {
                    vec![
                        out::Cell::s(&format!("{}@{d}", text(r, "pw_name"))),
                        out::Cell::s(&text(r, "pw_shell")),
                        out::Cell::list(&flag_names(r.get("pw_gid").map_or(0, Val::as_int))),
                        out::Cell::s(&text(r, "pw_dir")),
                    ]
                })
                .collect();
            c.out.table(&["login", "quota", "flags", "dir"], cells);
        }
        Command::Unlock { login, ip } => {
            let (u, d) = parse_login(&login)?;
            let ip = ip.as_deref();
            if let Some(ip) = ip {
                if ip.parse::<std::net::IpAddr>().is_err() {
                    return usage(format!("bad address {ip:?}"));
                }
            }
            let n = db::unlock(c.db.as_mut(), &format!("{u}@{d}"), ip)?;
            c.log(
                &u,
                &d,
                "unlock",
                &format!(
                    "{n} lock entries lifted{}",
                    ip.map(|i| format!(" for {i}")).unwrap_or_default()
                ),
            )?;
            c.out
                .message(&format!("{n} lock entries lifted for {u}@{d}"));
        }
        Command::Lastauth { scope: s } => {
            let (u, d) = scope(s.as_deref())?;
            let rows = db::lastauth(c.db.as_mut(), d.as_deref(), u.as_deref())?;
            let cells = rows
                .iter()
                .map(|r| {
                    vec![
                        out::Cell::s(&format!("{}@{}", text(r, "user"), text(r, "domain"))),
                        out::Cell::time(r.get("timestamp").map_or(0, Val::as_int)),
                        out::Cell::s(&text(r, "remote_ip")),
                    ]
                })
                .collect();
            c.out.table(&["login", "time", "ip"], cells);
        }
        Command::AppPassword(a) => crate::app_password::run(c, a)?,
        // Handled in `run` before any connection is made.
        Command::Config { .. } => {}
        Command::Log { scope: s, limit } => {
            let limit: u64 = match limit.as_deref() {
                Some(l) => l
                    .parse()
                    .ok()
                    .filter(|&n| n > 0 && n <= 1_000_000)
                    .ok_or_else(|| Fail::Usage(format!("bad --limit {l:?}")))?,
                None => 100,
            };
            let (u, d) = scope(s.as_deref())?;
            let rows = db::changes(c.db.as_mut(), d.as_deref(), u.as_deref(), limit)?;
            let cells = rows
                .iter()
                .map(|r| {
                    let (n, dm) = (text(r, "pw_name"), text(r, "pw_domain"));
                    let who = match (n.is_empty(), dm.is_empty()) {
                        (true, true) => String::new(),
                        (true, false) => dm,
                        _ => format!("{n}@{dm}"),
                    };
                    vec![
                        out::Cell::time(r.get("timestamp").map_or(0, Val::as_int)),
                        out::Cell::s(&text(r, "actor")),
                        out::Cell::s(&who),
                        out::Cell::s(&text(r, "action")),
                        out::Cell::s(&text(r, "detail")),
                    ]
                })
                .collect();
            c.out
                .table(&["time", "by", "account", "action", "detail"], cells);
        }
        Command::Relay { command } => {
            crate::relay::run(command, &c.settings, c.db.as_mut(), &mut c.out)?
        }
    }
    Ok(())
}

/// An optional `DOMAIN` or `USER@DOMAIN` operand: (user, domain).
fn scope(arg: Option<&str>) -> R<(Option<String>, Option<String>)> {
    Ok(match arg {
        Some(s) if s.contains('@') => {
            let (u, d) = parse_login(s)?;
            (Some(u), Some(d))
        }
        Some(s) => (None, Some(parse_domain(s)?)),
        None => (None, None),
    })
}

fn method(m: Option<&str>) -> R<String> {
    match m {
        Some(m) if hash::METHODS.iter().any(|(n, _)| *n == m) => Ok(m.to_string()),
        Some(m) => usage(format!(
            "unknown hash method {m:?}; known: {}",
            hash::METHODS
                .iter()
                .map(|m| m.0)
                .collect::<Vec<_>>()
                .join(" ")
        )),
        None => Ok(hash::default_method().to_string()),
    }
}

/// The pw_passwd hash and the pw_clear_passwd value (empty unless the site keeps them).
fn hashes(c: &Ctx, pw: &[u8], method: &str) -> R<(String, Zeroizing<String>)> {
    let h = hash::hash(pw, method).map_err(Fail::Usage)?;
    let clear = if c.settings.clear_passwords {
        Zeroizing::new(String::from_utf8_lossy(pw).into_owned())
    } else {
        Zeroizing::new(String::new())
    };
    Ok((h, clear))
}

fn add_domain(c: &mut Ctx, domain: &str, uid: &str, gid: &str, dir: &str) -> R<()> {
    let d = parse_domain(domain)?;
    let uid = id_of(uid, false)?;
    let gid = id_of(gid, true)?;
    if uid == 0 || gid == 0 {
        return usage("refusing uid or gid 0: checkpassword never runs a mailbox as root");
    }
    let dir = PathBuf::from(dir);
    if !dir.is_absolute() || dir.to_str().is_none_or(|s| s.contains([':', '\n'])) {
        return usage(format!(
            "bad --dir {}: want an absolute path without ':'",
            dir.display()
        ));
    }
    let mut asg = AssignFile::open(&c.settings.qmail_dir).map_err(Fail::Temp)?;
    let dom = Domain {
        name: d.clone(),
        uid,
        gid,
        dir: dir.clone(),
    };
    if let Some(old) = asg.find(&d) {
        if old != dom {
            return usage(format!(
                "domain {d} exists (uid {} gid {} dir {})",
                old.uid,
                old.gid,
                old.dir.display()
            ));
        }
    }
    // Directory, then table, then the assign entry that makes the domain exist: a
    // failure leaves nothing a re-run would trip over.
    maildir::make_domain_dir(&dir, uid, gid).map_err(Fail::Temp)?;
    if c.settings.tables == Tables::PerDomain {
        db::create_domain_table(c.db.as_mut(), &d)?;
    }
    asg.add(&dom);
    asg.save().map_err(Fail::Temp)?;
    drop(asg);
    c.log(
        "",
        &d,
        "add-domain",
        &format!("uid {uid} gid {gid} dir {}", dir.display()),
    )?;
    c.out.message(&format!("domain {d} added"));
    Ok(())
}

fn del_domain(c: &mut Ctx, domain: &str, remove_dir: bool) -> R<()> {
    let d = parse_domain(domain)?;
    let mut asg = AssignFile::open(&c.settings.qmail_dir).map_err(Fail::Temp)?;
    let Some(dom) = asg.find(&d) else {
        return usage(format!("no such domain {d}"));
    };
    // Directory and rows first, the assign entry last: until it is gone a re-run finds
    // the domain and finishes the job.
    if remove_dir {
        maildir::remove_tree(&dom.dir).map_err(Fail::Temp)?;
    }
    let t = c.table(&d);
    let n = db::delete(c.db.as_mut(), &t, None, &d)?;
    crate::limits::delete_row(c.db.as_mut(), &d)?;
    asg.remove(&d);
    asg.save().map_err(Fail::Temp)?;
    drop(asg);
    c.log(
        "",
        &d,
        "del-domain",
        &format!(
            "{n} accounts deleted{}",
            if remove_dir {
                ", directory removed"
            } else {
                ""
            }
        ),
    )?;
    c.out.message(&format!("domain {d} deleted ({n} accounts)"));
    Ok(())
}

fn add(
    c: &mut Ctx,
    login: &str,
    hash: Option<&str>,
    quota: Option<&str>,
    gecos: Option<&str>,
    flags: Option<&str>,
) -> R<()> {
    let (u, d) = parse_login(login)?;
    let method = method(hash)?;
    let quota = flags_quota::quota_string(quota.unwrap_or("NOQUOTA")).map_err(Fail::Usage)?;
    let gecos = gecos.unwrap_or(&u).to_string();
    if gecos.len() > 64 || gecos.contains(['\n', '\0']) {
        return usage("bad --gecos: at most 64 characters on one line");
    }
    let flag_changes: Vec<String> = flags
        .map(|f| {
            f.split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let flags = flags_quota::apply_flags(0, &flag_changes).map_err(Fail::Usage)?;
    let dom = c.domain(&d)?;
    let t = c.table(&d);
    if db::get(c.db.as_mut(), &t, &u, &d)?.is_some() {
        return usage(format!("account {u}@{d} exists"));
    }
    let pw = password::read()?;
    let (h, clear) = hashes(c, &pw, &method)?;
    let n = match c.settings.tables {
        Tables::Single => db::list(c.db.as_mut(), &t, Some(&d))?.len(),
        Tables::PerDomain => db::list(c.db.as_mut(), &t, None)?.len(),
    } as u64;
    // A user directory left by an earlier, failed run is reused where it is.
    let hashed = ["".to_string(), maildir::bucket(n)]
        .into_iter()
        .find(|h| {
            let mut p = dom.dir.clone();
            if !h.is_empty() {
                p.push(h);
            }
            p.join(&u).join("Maildir").is_dir()
        })
        .unwrap_or_else(|| maildir::bucket(n));
    let (udir, created) =
        maildir::make_user(&dom.dir, &hashed, &u, dom.uid, dom.gid).map_err(Fail::Temp)?;
    let dir_s = udir.display().to_string();
    if dir_s.len() > 160 {
        if created {
            let _ = std::fs::remove_dir_all(&udir);
        }
        return usage(format!(
            "directory {dir_s} does not fit pw_dir (160 characters)"
        ));
    }
    let ins = db::insert(
        c.db.as_mut(),
        &t,
        &db::NewUser {
            user: &u,
            domain: &d,
            passwd: &h,
            clear: &clear,
            gecos: &gecos,
            dir: &dir_s,
            quota: &quota,
            flags,
        },
    );
    if let Err(e) = ins {
        // Another run added the account meanwhile: its directory is this one; keep it.
        if let Ok(Some(_)) = db::get(c.db.as_mut(), &t, &u, &d) {
            return usage(format!("account {u}@{d} exists"));
        }
        // No directory without its row: take back what this run made.
        if created {
            let _ = std::fs::remove_dir_all(&udir);
        }
        return Err(e.into());
    }
    c.log(
        &u,
        &d,
        "add",
        &format!(
            "dir {dir_s} quota {quota} hash {method}{}{}",
            if flags != 0 {
                format!(" flags {}", flag_names(flags).join(" "))
            } else {
                String::new()
            },
            if c.settings.clear_passwords {
                " clear password kept"
            } else {
                ""
            }
        ),
    )?;
    c.out.message(&format!("account {u}@{d} added, {dir_s}"));
    Ok(())
}

fn del(c: &mut Ctx, login: &str, remove_dir: bool) -> R<()> {
    let (u, d) = parse_login(login)?;
    let row = c.row(&u, &d)?;
    let dir = text(&row, "pw_dir");
    // The directory before the row: while the row exists, a re-run can still find it.
    let removed = remove_dir && !dir.is_empty();
    if removed {
        maildir::remove_tree(Path::new(&dir)).map_err(Fail::Temp)?;
    }
    let t = c.table(&d);
    db::delete(c.db.as_mut(), &t, Some(&u), &d)?;
    c.log(
        &u,
        &d,
        "del",
        if removed {
            "account and directory removed"
        } else {
            "account removed, directory kept"
        },
    )?;
    c.out.message(&format!("account {u}@{d} deleted"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names() {
        assert!(parse_login("Alice@Example.COM").is_ok());
        assert!(parse_login("a/b@x.com").is_err());
        assert!(parse_login("../x@x.com").is_err());
        assert!(parse_login("a@x/y").is_err());
        assert!(parse_login("a").is_err());
    }
}
