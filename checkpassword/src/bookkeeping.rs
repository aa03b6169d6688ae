//! What a decided attempt leaves in the database: a failure counted towards a lockout;
//! a success clears the account's counter and writes lastauth and, for POP-before-SMTP,
//! relay. Only a write connection that cannot be had stops a login; a write that fails
//! is a warning.

use vpopdb::config::Settings;
use vpopdb::flags_quota::NO_RELAY;
use vpopdb::lockout;
use vpopdb::store::DbError;
use vpopdb::users;

use crate::db::Db;
use crate::decide::{Decision, Outcome};
use crate::log;
use crate::request::{Request, Who};
use crate::service::Service;

pub fn record(
    req: &Request,
    settings: &Settings,
    who: &Who,
    db: &mut Db,
    d: &Decision,
    now: i64,
) -> Result<(), DbError> {
    match &d.outcome {
        Outcome::Failed(_) => {
            failure(req, settings, who, db, &d.counters, now);
            Ok(())
        }
        Outcome::Accepted { user, method } => {
            let relay = settings.relay
                && req.service.service != Service::Smtp
                && user.flags & NO_RELAY == 0
                && !req.ip.is_empty();
            success(req, who, db, &d.counters, relay, now)?;
            let text = format!("({method}) login success");
            req.attempt(&text, who.user().as_bytes(), who.domain());
            Ok(())
        }
        Outcome::Found(_) | Outcome::NotFound | Outcome::Denied(_) => Ok(()),
    }
}

fn failure(
    req: &Request,
    settings: &Settings,
    who: &Who,
    db: &mut Db,
    counters: &lockout::State,
    now: i64,
) {
    match db
        .writer()
        .and_then(|w| lockout::failure(w, settings, counters, now))
    {
        Ok(true) => {
            let text = "locking out after repeated failures";
            req.attempt(text, who.user().as_bytes(), who.domain());
        }
        Ok(false) => {}
        Err(e) => log::warn(&format!("unable to record failure: {e}")),
    }
}

fn success(
    req: &Request,
    who: &Who,
    db: &mut Db,
    counters: &lockout::State,
    relay: bool,
    now: i64,
) -> Result<(), DbError> {
    let w = db.writer()?;
    if let Err(e) = lockout::success(w, counters) {
        log::warn(&format!("unable to clear failures: {e}"));
    }
    if let Err(e) = users::lastauth(w, who.user(), who.domain(), &req.ip, now) {
        log::warn(&format!("unable to update lastauth: {e}"));
    }
    if relay {
        if let Err(e) = users::relay(w, &req.ip, now) {
            log::warn(&format!("unable to update relay: {e}"));
        }
    }
    Ok(())
}
