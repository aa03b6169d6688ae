//! The decision on one login, made from the lockout counters, the user's row and the
//! domain's limits (read in one round trip) and the password check: one [`Outcome`].

use vpopdb::app_passwords;
use vpopdb::config::Settings;
use vpopdb::flags_quota::V_OVERRIDE;
use vpopdb::limits::{self, Limits};
use vpopdb::lockout::{self, Locked};
use vpopdb::store::DbError;
use vpopdb::users::{self, User};
use vpopdb::verify;

use crate::db::Db;
use crate::log;
use crate::request::{Request, Who};
use crate::run::Failure;
use crate::service::{self, Service};

pub enum Outcome {
    /// The right password or challenge response, by `method` (PLAIN, APOP, CRAM-MD5);
    /// `app`: the label of the app password that matched instead of the account's own.
    Accepted {
        user: User,
        method: &'static str,
        app: Option<String>,
    },
    /// Dovecot's lookup of a user who exists.
    Found(User),
    /// Dovecot's lookup of a user who does not.
    NotFound,
    /// The right password, but the user's flags deny the service; not a failed attempt.
    Denied(&'static str),
    /// A failed attempt (vchkpw's log text), counted towards a lockout.
    Failed(&'static str),
}

pub struct Decision {
    pub outcome: Outcome,
    /// The lockout counters the attempt was judged by, which bookkeeping updates.
    pub counters: lockout::State,
}

pub fn decide(
    req: &Request,
    settings: &Settings,
    who: &Who,
    db: &mut Db,
    now: i64,
) -> Result<Decision, Failure> {
    let (counters, row, domain_limits) = look_up(req, settings, who, db)?;
    let row = match row {
        Some(u) => Some(with_domain_limits(u, domain_limits, settings, who)?),
        None => None,
    };
    let outcome = if req.lookup_only {
        match row {
            Some(u) => Outcome::Found(u),
            None => Outcome::NotFound,
        }
    } else {
        check(req, settings, who, db, &counters, row, now)?
    };
    Ok(Decision { outcome, counters })
}

/// The lockout counters, the user's row and the domain's limits in one go (one round
/// trip to MariaDB or PostgreSQL). A lookup is not an attempt: it reads no counters.
fn look_up(
    req: &Request,
    settings: &Settings,
    who: &Who,
    db: &mut Db,
) -> Result<(lockout::State, Option<User>, Option<Limits>), DbError> {
    let conn = db.reader();
    let kind = conn.kind();
    let (find_sql, find_params) = users::query(kind, settings.tables, who.user(), who.domain());
    let (lim_sql, lim_params) = limits::query(kind, who.domain());
    let (st, lock) = lockout::query(kind, settings, &who.address(), req.client_ip());
    let lock = lock.filter(|_| !req.lookup_only);
    let mut batch = vec![
        (find_sql.as_str(), find_params.as_slice()),
        (lim_sql.as_str(), lim_params.as_slice()),
    ];
    if let Some((sql, params)) = &lock {
        batch.push((sql, params));
    }
    let mut answers = conn.query_batch(&batch).into_iter();
    let mut next = || {
        let lost = || DbError::Other("a query of the batch went unanswered".into());
        answers.next().unwrap_or_else(|| Err(lost()))
    };
    let (row, lim) = (next(), next());
    let counters = match lock {
        Some(_) => lockout::read(st, next())?,
        None => st,
    };
    let row = match users::read(settings.tables, row) {
        Err(DbError::NoTable) => {
            let e = "the vpopmail user table does not exist";
            return Err(DbError::Other(e.into()));
        }
        r => r?,
    };
    Ok((counters, row, limits::read(lim)?))
}

/// vchkpw's `pw_flags`: the user's flags with the domain's limits, from the table's row
/// or, without one, from the domain's `.qmailadmin-limits` or `vlimits.default` (read
/// only then, and not for a user with `V_OVERRIDE`, whom they do not bind).
fn with_domain_limits(
    mut u: User,
    row: Option<Limits>,
    settings: &Settings,
    who: &Who,
) -> Result<User, Failure> {
    if u.flags & V_OVERRIDE != 0 {
        return Ok(u);
    }
    let mask = match row {
        Some(l) => l.mask,
        None => {
            let home = settings.vpopmail_home();
            let dir = match &who.assigned {
                Some(a) => a.dir.clone(),
                None => home.join("domains").join(who.domain()),
            };
            let (from_files, _) =
                limits::resolve(None, &limits::files(&dir, &home)).map_err(Failure::Fatal)?;
            from_files.mask
        }
    };
    u.flags = limits::effective_flags(u.flags, mask);
    Ok(u)
}

/// A login attempt judged. A locked account or an unknown user costs a dummy hash, so
/// that it answers no sooner than a wrong password.
fn check(
    req: &Request,
    settings: &Settings,
    who: &Who,
    db: &mut Db,
    counters: &lockout::State,
    row: Option<User>,
    now: i64,
) -> Result<Outcome, DbError> {
    let pw = &req.creds.password;
    let user = match (row, counters.locked(settings, now)) {
        (_, Locked::Account) => {
            verify::dummy(pw);
            return Ok(Outcome::Failed("password fail (account locked out)"));
        }
        (_, Locked::Address) => {
            verify::dummy(pw);
            return Ok(Outcome::Failed("password fail (address locked out)"));
        }
        (None, Locked::No) => {
            verify::dummy(pw);
            return Ok(Outcome::Failed("vpopmail user not found"));
        }
        (Some(u), Locked::No) => u,
    };
    let (method, app) = match password_method(req, who, &user) {
        Some(m) => (m, None),
        None => match app_password(req, who, db, &user, now)? {
            Some(label) => ("PLAIN", Some(label)),
            None if user.passwd.is_empty() => return Ok(Outcome::Failed("user has no password")),
            None => return Ok(Outcome::Failed("password fail")),
        },
    };
    Ok(match service::denied(req.service.service, user.flags) {
        Some(text) => Outcome::Denied(text),
        None => Outcome::Accepted { user, method, app },
    })
}

/// How the credentials prove the password, if they do: a challenge response (APOP for
/// POP, CRAM-MD5 for SMTP) against the clear column when there is one, else crypt(3).
fn password_method(req: &Request, who: &Who, u: &User) -> Option<&'static str> {
    let (pw, ch) = (&req.creds.password, &req.creds.challenge);
    if !u.clear.is_empty() && !ch.is_empty() {
        match req.service.service {
            Service::Pop | Service::Webmail if verify::apop_ok(ch, &u.clear, pw) => {
                return Some("APOP")
            }
            Service::Smtp if verify::cram_ok(ch, &u.clear, pw) => return Some("CRAM-MD5"),
            _ => {}
        }
    }
    checked(pw, &u.passwd, who, None).then_some("PLAIN")
}

/// A hash check; a hash refused as such (an Argon2 string over our bounds) is a wrong
/// password, not a temporary failure: trying again would not help, and the log says why.
fn checked(pw: &[u8], hash: &[u8], who: &Who, label: Option<&str>) -> bool {
    match verify::check(pw, hash) {
        verify::Check::Match => true,
        verify::Check::Mismatch => false,
        verify::Check::BadHash(why) => {
            let whose = match label {
                Some(l) => format!(
                    "app password \"{}\" of {}",
                    log::clean(l.as_bytes()),
                    who.address()
                ),
                None => who.address(),
            };
            log::warn(&format!("unusable password hash for {whose}: {why}"));
            false
        }
    }
}

/// Our app passwords, tried when the account's own password did not match: only for a
/// typed password shaped like an app password's secret (an APOP or CRAM-MD5 response,
/// 32 hex digits, never is: those prove the clear column, which app passwords have none
/// of; qmail-popup's timestamp comes with plain logins too, so it decides nothing), and
/// only those whose scope takes this service, client address and time. Read with a
/// second query, so that a login with the right password costs what it did before.
fn app_password(
    req: &Request,
    who: &Who,
    db: &mut Db,
    user: &User,
    now: i64,
) -> Result<Option<String>, DbError> {
    if !app_passwords::account_usable(&user.passwd) {
        return Ok(None);
    }
    let Some(secret) = app_passwords::normalize(&req.creds.password) else {
        return Ok(None);
    };
    let conn = db.reader();
    let (sql, params) = app_passwords::query(conn.kind(), who.user(), who.domain(), now);
    let service = req.service.service.scope_name();
    for a in app_passwords::read(conn.query(&sql, &params))? {
        if a.in_scope(service, req.client_ip(), now)
            && checked(&secret, &a.hash, who, Some(&a.label))
        {
            return Ok(Some(a.label));
        }
    }
    Ok(None)
}
