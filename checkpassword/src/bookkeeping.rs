//! What a decided attempt leaves in the database: a failure counted towards a lockout;
//! a success clears the account's counter and writes lastauth and, for POP-before-SMTP,
//! relay (and, with relay_rebuild, the rules cdb that opens relaying). A failure that cannot be counted is a temporary failure, not a wrong
//! password: whoever could keep the database from recording failures (a busy SQLite
//! file, a MariaDB write timeout) would otherwise get guesses the lockout never counts,
//! so every 1 answered was counted. A success stops only when its write connection
//! cannot be had; a write of its that fails is a warning.

use vpopdb::config::Settings;
use vpopdb::flags_quota::NO_RELAY;
use vpopdb::lockout;
use vpopdb::store::{Conn, DbError};
use vpopdb::{relay, users};

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
        Outcome::Failed(_) => failure(req, settings, who, db, &d.counters, now),
        Outcome::Accepted { user, method, app } => {
            let relay = settings.relay
                && req.service.service != Service::Smtp
                && user.flags & NO_RELAY == 0
                && !req.client_ip().is_empty();
            success(req, settings, who, db, &d.counters, relay, now)?;
            let mut text = format!("({method}) login success");
            if let Some(label) = app {
                text += &format!(" app password \"{}\"", log::clean(label.as_bytes()));
            }
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
) -> Result<(), DbError> {
    // With lockout off there is nothing to count, and no write connection to need.
    let counted = settings.lockout_failures > 0
        || (settings.lockout_ip_failures > 0 && counters.ip_key.is_some());
    if !counted {
        return Ok(());
    }
    match db
        .writer()
        .and_then(|w| lockout::failure(w, settings, counters, now))
    {
        Ok(true) => {
            let text = "locking out after repeated failures";
            req.attempt(text, who.user().as_bytes(), who.domain());
            Ok(())
        }
        Ok(false) => Ok(()),
        // Logged as the database being unavailable, and answered 111.
        Err(e) => Err(DbError::Other(format!("unable to record failure: {e}"))),
    }
}

fn success(
    req: &Request,
    settings: &Settings,
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
    if let Err(e) = users::lastauth(w, who.user(), who.domain(), req.client_ip(), now) {
        log::warn(&format!("unable to update lastauth: {e}"));
    }
    if relay {
        match relay::touch(w, req.client_ip(), now) {
            Ok(()) if settings.relay_rebuild => rebuild_rules(w, settings, req.client_ip(), now),
            Ok(()) => {}
            Err(e) => log::warn(&format!("unable to update relay: {e}")),
        }
    }
    Ok(())
}

/// vpopmail rebuilds tcp.smtp.cdb when a login opens relaying for a new address; so does
/// this, when the cdb does not hold the address yet (new, expired, or written on another
/// host). A failed rebuild is a warning: the login goes on, and cron's rebuild catches up.
fn rebuild_rules(w: &mut dyn Conn, settings: &Settings, ip: &str, now: i64) {
    let files = relay::Files::of(settings);
    if relay::covers(&files.cdb, ip) {
        return;
    }
    match relay::rebuild(w, &files, settings.relay_minutes, now) {
        Ok(r) if !r.skipped.is_empty() => log::warn(&format!(
            "{} relay rows hold no address, left out of {}",
            r.skipped.len(),
            files.cdb.display()
        )),
        Ok(_) => {}
        Err(e) => log::warn(&format!("unable to rebuild {}: {e}", files.cdb.display())),
    }
}
