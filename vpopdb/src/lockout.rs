//! Failed-login lockout, kept in the database so every server of a farm sees it: per
//! account and client address, and per address across accounts (password spraying).

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use crate::config::Settings;
use crate::store::{Conn, DbError, Kind, Row, Val};
use crate::users::write_own;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry {
    pub failures: i64,
    pub first_ts: i64,
    pub locked_until: i64,
}

/// The two counters that apply to one attempt.
#[derive(Debug, Default)]
pub struct State {
    pub acct_key: String,
    pub ip_key: Option<String>,
    pub acct: Option<Entry>,
    pub ip: Option<Entry>,
}

/// Which lock is in force, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    No,
    Account,
    Address,
}

/// An IPv6 client is counted per /64, the smallest block one subscriber usually gets.
pub fn address_key(ip: &str) -> String {
    match ip.parse::<Ipv6Addr>().map(|a| Ipv6Net::new(a, 64)) {
        Ok(Ok(net)) => net.trunc().to_string(),
        _ => ip.to_string(),
    }
}

/// The counter of `login`'s failures from `ip`.
pub fn account_key(login: &str, ip: &str) -> String {
    format!("acct:{login}:{}", address_key(ip))
}

/// The counter of `ip`'s failures, whatever the account.
pub fn address_counter_key(ip: &str) -> String {
    format!("ip:{}", address_key(ip))
}

/// The keys of `login`'s counters from every address: those from the first to just
/// before the second (a range rather than LIKE: logins may hold `_` and `%`).
pub fn account_key_range(login: &str) -> (String, String) {
    (format!("acct:{login}:"), format!("acct:{login};"))
}

fn enabled(s: &Settings) -> bool {
    s.lockout_failures > 0 || s.lockout_ip_failures > 0
}

/// The counters' keys for `login` from `ip`, and the query that reads them (none when
/// lockout is off). Run before any hashing, so a locked login costs the database no more
/// than a lookup.
pub fn query(k: Kind, s: &Settings, login: &str, ip: &str) -> (State, Option<(String, Vec<Val>)>) {
    let st = State {
        acct_key: account_key(login, ip),
        ip_key: (!ip.is_empty()).then(|| address_counter_key(ip)),
        ..State::default()
    };
    if !enabled(s) {
        return (st, None);
    }
    let sql = format!(
        "SELECT {}, {}, {}, {} FROM {} WHERE {} IN (?, ?)",
        k.ident("lockkey"),
        k.ident("failures"),
        k.ident("first_ts"),
        k.ident("locked_until"),
        k.ident("lockout"),
        k.ident("lockkey")
    );
    let params = vec![
        Val::text(&st.acct_key),
        Val::text(st.ip_key.as_deref().unwrap_or_default()),
    ];
    (st, Some((sql, params)))
}

/// Fills in the counters from the answer to [`query`]; no table yet means no counters.
pub fn read(mut st: State, rows: Result<Vec<Row>, DbError>) -> Result<State, DbError> {
    let rows = match rows {
        Err(DbError::NoTable) => return Ok(st),
        r => r?,
    };
    let ip_key = st.ip_key.clone().unwrap_or_default();
    for r in rows {
        let key = r
            .get("lockkey")
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        let e = Entry {
            failures: r.get("failures").map_or(0, Val::as_int),
            first_ts: r.get("first_ts").map_or(0, Val::as_int),
            locked_until: r.get("locked_until").map_or(0, Val::as_int),
        };
        if key == st.acct_key.as_bytes() {
            st.acct = Some(e);
        } else if !ip_key.is_empty() && key == ip_key.as_bytes() {
            st.ip = Some(e);
        }
    }
    Ok(st)
}

impl State {
    pub fn locked(&self, s: &Settings, now: i64) -> Locked {
        let on = |e: &Option<Entry>| e.is_some_and(|e| e.locked_until > now);
        if s.lockout_failures > 0 && on(&self.acct) {
            Locked::Account
        } else if s.lockout_ip_failures > 0 && on(&self.ip) {
            Locked::Address
        } else {
            Locked::No
        }
    }
}

/// The counter after one more failure: a new window when the old one has passed, and a
/// lock once `threshold` failures fall in one window. A lock in force is not extended.
pub fn bump(old: Option<Entry>, threshold: u64, s: &Settings, now: i64) -> Entry {
    let window = s.lockout_window as i64;
    // The old counters come from the database: no arithmetic on them may overflow, and a
    // negative count counts as none.
    let mut e = match old {
        Some(e) if e.first_ts.saturating_add(window) > now => Entry {
            failures: e.failures.max(0).saturating_add(1),
            ..e
        },
        Some(e) => Entry {
            failures: 1,
            first_ts: now,
            locked_until: e.locked_until,
        },
        None => Entry {
            failures: 1,
            first_ts: now,
            locked_until: 0,
        },
    };
    if e.locked_until <= now && e.failures as u64 >= threshold {
        e.locked_until = now + s.lockout_time as i64;
        e.failures = 0;
        e.first_ts = now;
    }
    e
}

fn store(db: &mut dyn Conn, key: &str, e: Entry) -> Result<(), DbError> {
    let sql = db.kind().upsert(
        "lockout",
        &["lockkey", "failures", "first_ts", "locked_until"],
        &["lockkey"],
    );
    write_own(
        db,
        "lockout",
        &sql,
        &[
            Val::text(key),
            Val::Int(e.failures),
            Val::Int(e.first_ts),
            Val::Int(e.locked_until),
        ],
    )
    .map(drop)
}

/// Counts a failed attempt; returns whether it set a new lock.
pub fn failure(db: &mut dyn Conn, s: &Settings, st: &State, now: i64) -> Result<bool, DbError> {
    let mut newly = false;
    if s.lockout_failures > 0 {
        let e = bump(st.acct, s.lockout_failures, s, now);
        newly |= e.locked_until == now + s.lockout_time as i64 && e.locked_until > now;
        store(db, &st.acct_key, e)?;
    }
    if let (true, Some(k)) = (s.lockout_ip_failures > 0, &st.ip_key) {
        let e = bump(st.ip, s.lockout_ip_failures, s, now);
        newly |= e.locked_until == now + s.lockout_time as i64 && e.locked_until > now;
        store(db, k, e)?;
    }
    Ok(newly)
}

/// A successful login clears its account counter (the address counter stays: a sprayer
/// who guesses one password must not reset the count for all the others).
pub fn success(db: &mut dyn Conn, st: &State) -> Result<(), DbError> {
    if st.acct.is_none() {
        return Ok(());
    }
    let k = db.kind();
    let sql = format!(
        "DELETE FROM {} WHERE {} = ?",
        k.ident("lockout"),
        k.ident("lockkey")
    );
    db.exec(&sql, &[Val::text(&st.acct_key)]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting() {
        let s = Settings::default();
        let e1 = bump(None, 3, &s, 1000);
        assert_eq!((e1.failures, e1.locked_until), (1, 0));
        let e2 = bump(Some(e1), 3, &s, 1010);
        assert_eq!((e2.failures, e2.locked_until), (2, 0));
        let e3 = bump(Some(e2), 3, &s, 1020);
        assert_eq!(e3.locked_until, 1020 + 1800);
        // Old window: starts over.
        let e = bump(Some(e2), 3, &s, 1000 + 1801);
        assert_eq!((e.failures, e.locked_until), (1, 0));
        assert_eq!(address_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(address_key("192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn counters_from_a_hostile_row() {
        // The counters come from the database: no value of theirs overflows the arithmetic.
        let s = Settings::default();
        let row = |failures, first_ts| Entry {
            failures,
            first_ts,
            locked_until: 0,
        };
        let e = bump(Some(row(i64::MAX, i64::MAX)), 3, &s, 1000);
        assert_eq!(e.locked_until, 1000 + 1800);
        let e = bump(Some(row(1, i64::MAX)), 3, &s, 1000);
        assert_eq!((e.failures, e.locked_until), (2, 0));
        // A negative count is no count: this failure is the first, not a lock.
        let e = bump(Some(row(-5, 990)), 3, &s, 1000);
        assert_eq!((e.failures, e.locked_until), (1, 0));
        let e = bump(Some(row(i64::MIN, 990)), 3, &s, 1000);
        assert_eq!((e.failures, e.locked_until), (1, 0));
    }
}
