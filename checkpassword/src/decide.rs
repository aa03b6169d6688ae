//! The decision on one login, made from the lockout counters and the user's row (read in
//! one round trip) and the password check: one [`Outcome`].

use vpopdb::config::Settings;
use vpopdb::lockout::{self, Locked};
use vpopdb::store::DbError;
use vpopdb::users::{self, User};
use vpopdb::verify;

use crate::db::Db;
use crate::request::{Request, Who};
use crate::service::{self, Service};

pub enum Outcome {
    /// The right password or challenge response, by `method` (PLAIN, APOP, CRAM-MD5).
    Accepted { user: User, method: &'static str },
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
) -> Result<Decision, DbError> {
    let (counters, row) = look_up(req, settings, who, db)?;
    let outcome = if req.lookup_only {
        match row {
            Some(u) => Outcome::Found(u),
            None => Outcome::NotFound,
        }
    } else {
        check(req, settings, &counters, row, now)
    };
    Ok(Decision { outcome, counters })
}

/// The lockout counters and the user's row in one go (one round trip to MariaDB). A
/// lookup is not an attempt: it reads no counters.
fn look_up(
    req: &Request,
    settings: &Settings,
    who: &Who,
    db: &mut Db,
) -> Result<(lockout::State, Option<User>), DbError> {
    let conn = db.reader();
    let kind = conn.kind();
    let (find_sql, find_params) = users::query(kind, settings.tables, who.user(), who.domain());
    let find = (find_sql.as_str(), find_params.as_slice());
    let (counters, row) = match lockout::query(kind, settings, &who.address(), req.client_ip()) {
        (st, Some((sql, params))) if !req.lookup_only => {
            let [a, b] = conn.query_pair((&sql, &params), find);
            (lockout::read(st, a), b)
        }
        _ => (Ok(lockout::State::default()), conn.query(find.0, find.1)),
    };
    let counters = counters?;
    let row = match users::read(settings.tables, row) {
        Err(DbError::NoTable) => {
            let e = "the vpopmail user table does not exist";
            return Err(DbError::Other(e.into()));
        }
        r => r?,
    };
    Ok((counters, row))
}

/// A login attempt judged. A locked account or an unknown user costs a dummy hash, so
/// that it answers no sooner than a wrong password.
fn check(
    req: &Request,
    settings: &Settings,
    counters: &lockout::State,
    row: Option<User>,
    now: i64,
) -> Outcome {
    let pw = &req.creds.password;
    let user = match (row, counters.locked(settings, now)) {
        (_, Locked::Account) => {
            verify::dummy(pw);
            return Outcome::Failed("password fail (account locked out)");
        }
        (_, Locked::Address) => {
            verify::dummy(pw);
            return Outcome::Failed("password fail (address locked out)");
        }
        (None, Locked::No) => {
            verify::dummy(pw);
            return Outcome::Failed("vpopmail user not found");
        }
        (Some(u), Locked::No) => u,
    };
    let Some(method) = password_method(req, &user) else {
        return Outcome::Failed(if user.passwd.is_empty() {
            "user has no password"
        } else {
            "password fail"
        });
    };
    match service::denied(req.service.service, user.flags) {
        Some(text) => Outcome::Denied(text),
        None => Outcome::Accepted { user, method },
    }
}

/// How the credentials prove the password, if they do: a challenge response (APOP for
/// POP, CRAM-MD5 for SMTP) against the clear column when there is one, else crypt(3).
fn password_method(req: &Request, u: &User) -> Option<&'static str> {
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
    verify::check_crypt(pw, &u.passwd).then_some("PLAIN")
}
