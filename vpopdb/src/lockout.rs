//! Failed-login lockout, kept in the database so every server of a farm sees it: per
//! account and client address, and per address across accounts (password spraying).

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use crate::config::Settings;
use crate::store::{Conn, DbError, Kind, Row, Val};

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
/// than a lookup. An empty `ip` (none, or none believed) counts against the account
/// alone: `acct:LOGIN:`, shared by every such attempt, and no address counter.
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

/// The statement that counts one failure against `key` in the database itself, so that
/// failures made at once from many connections all count (writing back a count read
/// before deciding would keep only one of them): [`bump`] in SQL, over the row as it is
/// when the statement runs. Its parameters, and whether it answers the row (SQLite and
/// PostgreSQL: `RETURNING`; MySQL has none, so the row is read back after it).
fn failure_sql(k: Kind, key: &str, threshold: u64, s: &Settings, now: i64) -> (String, Vec<Val>) {
    let window = i64::try_from(s.lockout_window).unwrap_or(i64::MAX);
    let cutoff = now.saturating_sub(window);
    let until = now.saturating_add(i64::try_from(s.lockout_time).unwrap_or(i64::MAX));
    let threshold = i64::try_from(threshold).unwrap_or(i64::MAX);
    let table = k.ident("lockout");
    // The stored row's columns, a missing value counting as 0 as `read` takes it. SQLite
    // and PostgreSQL evaluate every assignment over the old row; MySQL assigns from left
    // to right, each later expression seeing the new values of the columns already set.
    let col = |c: &str| match k {
        Kind::Mysql => format!("COALESCE({}, 0)", k.ident(c)),
        _ => format!("COALESCE({table}.{}, 0)", k.ident(c)),
    };
    let (f, t, l) = (col("failures"), col("first_ts"), col("locked_until"));
    let mut params = Vec::new();
    let insert = bump(None, threshold as u64, s, now);
    params.extend([
        Val::text(key),
        Val::Int(insert.failures),
        Val::Int(insert.first_ts),
        Val::Int(insert.locked_until),
    ]);
    // The count after this failure: a new window once the old one has passed, a negative
    // count counting as none, and no overflow on a hostile row.
    let next = format!(
        "CASE WHEN {t} <= ? THEN 1 WHEN {f} < 0 THEN 1 \
         WHEN {f} < 9223372036854775807 THEN {f} + 1 ELSE {f} END"
    );
    // A new lock: none in force, and the count reaches the threshold.
    let lock = format!("({l} <= ? AND {next} >= ?)");
    let lock_params = [Val::Int(now), Val::Int(cutoff), Val::Int(threshold)];
    let (failures, first_ts, locked_until) = match k {
        // After the first assignment `failures` is the new count, which is 0 exactly
        // when this failure set a lock (a count that goes on is at least 1).
        Kind::Mysql => {
            params.extend(lock_params.iter().cloned());
            params.push(Val::Int(cutoff));
            params.extend([Val::Int(cutoff), Val::Int(now), Val::Int(until)]);
            let fl = k.ident("failures");
            (
                format!("CASE WHEN {lock} THEN 0 ELSE {next} END"),
                format!("CASE WHEN {fl} = 0 OR {t} <= ? THEN ? ELSE {t} END"),
                format!("CASE WHEN {fl} = 0 THEN ? ELSE {l} END"),
            )
        }
        Kind::Sqlite | Kind::Postgres => {
            params.extend(lock_params.iter().cloned());
            params.push(Val::Int(cutoff));
            params.extend(lock_params.iter().cloned());
            params.extend([Val::Int(cutoff), Val::Int(now)]);
            params.extend(lock_params.iter().cloned());
            params.push(Val::Int(until));
            (
                format!("CASE WHEN {lock} THEN 0 ELSE {next} END"),
                format!("CASE WHEN {lock} OR {t} <= ? THEN ? ELSE {t} END"),
                format!("CASE WHEN {lock} THEN ? ELSE {l} END"),
            )
        }
    };
    let names = ["lockkey", "failures", "first_ts", "locked_until"].map(|c| k.ident(c));
    let sets = format!(
        "{} = {failures}, {} = {first_ts}, {} = {locked_until}",
        names[1], names[2], names[3]
    );
    let head = format!(
        "INSERT INTO {table} ({}) VALUES (?, ?, ?, ?)",
        names.join(", ")
    );
    let sql = match k {
        Kind::Mysql => format!("{head} ON DUPLICATE KEY UPDATE {sets}"),
        Kind::Sqlite | Kind::Postgres => format!(
            "{head} ON CONFLICT ({}) DO UPDATE SET {sets} RETURNING {}, {}",
            names[0], names[1], names[3]
        ),
    };
    (sql, params)
}

/// Counts one failure against `key`; returns whether it set a new lock.
fn count(
    db: &mut dyn Conn,
    key: &str,
    threshold: u64,
    s: &Settings,
    now: i64,
) -> Result<bool, DbError> {
    let k = db.kind();
    let (sql, params) = failure_sql(k, key, threshold, s, now);
    let row = if k == Kind::Mysql {
        let read = format!(
            "SELECT {}, {} FROM {} WHERE {} = ?",
            k.ident("failures"),
            k.ident("locked_until"),
            k.ident("lockout"),
            k.ident("lockkey")
        );
        let key = [Val::text(key)];
        let pair = |db: &mut dyn Conn| db.query_pair((&sql, &params), (&read, &key));
        let [a, b] = match pair(db) {
            [Err(DbError::NoTable), _] => {
                db.exec(&crate::users::create_sql(k, "lockout"), &[])?;
                pair(db)
            }
            r => r,
        };
        a?;
        b?
    } else {
        match db.query(&sql, &params) {
            Err(DbError::NoTable) => {
                db.exec(&crate::users::create_sql(k, "lockout"), &[])?;
                db.query(&sql, &params)?
            }
            r => r?,
        }
    };
    // A count of 0 after a failure means this failure set the lock. (MySQL's row is read
    // after the write: a failure from elsewhere in between may hide a new lock from this
    // log line, or show another's; the count is exact either way.)
    let until = now.saturating_add(i64::try_from(s.lockout_time).unwrap_or(i64::MAX));
    Ok(row.first().is_some_and(|r| {
        r.get("failures").map_or(-1, Val::as_int) == 0
            && r.get("locked_until").map_or(0, Val::as_int) == until
            && until > now
    }))
}

/// Counts a failed attempt, each counter raised in the database by one statement that
/// reads and writes it at once; returns whether it set a new lock.
pub fn failure(db: &mut dyn Conn, s: &Settings, st: &State, now: i64) -> Result<bool, DbError> {
    let mut newly = false;
    if s.lockout_failures > 0 {
        newly |= count(db, &st.acct_key, s.lockout_failures, s, now)?;
    }
    if let (true, Some(k)) = (s.lockout_ip_failures > 0, &st.ip_key) {
        newly |= count(db, k, s.lockout_ip_failures, s, now)?;
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

    /// A fresh SQLite file (an empty file is an empty database), removed on drop.
    struct TempDb(std::path::PathBuf);

    impl TempDb {
        fn new(name: &str) -> TempDb {
            let p = std::env::temp_dir().join(format!(
                "vpopdb-lockout-{name}-{}.sqlite",
                std::process::id()
            ));
            TempDb::remove(&p);
            std::fs::File::create(&p).expect("create the test database");
            TempDb(p)
        }
        fn remove(p: &std::path::Path) {
            for ext in ["", "-wal", "-shm"] {
                let mut q = p.as_os_str().to_owned();
                q.push(ext);
                let _ = std::fs::remove_file(q);
            }
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            TempDb::remove(&self.0);
        }
    }

    /// The databases to test on: a fresh SQLite file, and the MariaDB and PostgreSQL
    /// servers of the black-box tests when their URLs are set (scripts/test.sh).
    fn targets(name: &str) -> (TempDb, Vec<crate::target::Target>) {
        let db = TempDb::new(name);
        let mut t = vec![crate::target::Target::Sqlite(db.0.clone())];
        for var in ["CHECKPASSWORD_TEST_MYSQL_URL", "CHECKPASSWORD_TEST_PG_URL"] {
            if let Ok(url) = std::env::var(var) {
                t.push(crate::target::parse_url(&url).expect(var));
            }
        }
        (db, t)
    }

    fn conn(t: &crate::target::Target) -> Box<dyn Conn> {
        crate::store::connect(t).expect("open the test database")
    }

    /// Keys of this test run alone (the servers are shared and outlive a run).
    fn tag() -> String {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("{}-{t}", std::process::id())
    }

    fn stored(db: &mut dyn Conn, key: &str) -> Option<Entry> {
        let rows = db
            .query(
                "SELECT failures, first_ts, locked_until FROM lockout WHERE lockkey = ?",
                &[Val::text(key)],
            )
            .expect("read the counter");
        rows.first().map(|r| Entry {
            failures: r.get("failures").map_or(0, Val::as_int),
            first_ts: r.get("first_ts").map_or(0, Val::as_int),
            locked_until: r.get("locked_until").map_or(0, Val::as_int),
        })
    }

    #[test]
    fn concurrent_failures_all_count() {
        // Failures made at once from many connections: each is counted (a count read
        // before the decision and written back whole kept about one in three).
        const THREADS: usize = 8;
        const EACH: usize = 25;
        let (_db, targets) = targets("concurrent");
        let s = Settings {
            lockout_failures: 100_000,
            lockout_ip_failures: 100_000,
            ..Settings::default()
        };
        let now = 1_000_000;
        for t in &targets {
            let tag = tag();
            let (st, _) = query(
                Kind::Sqlite,
                &s,
                &format!("carol-{tag}@example.com"),
                "192.0.2.7",
            );
            let st = State {
                ip_key: Some(format!("ip:{tag}")),
                ..st
            };
            let start = std::sync::Barrier::new(THREADS);
            std::thread::scope(|sc| {
                for _ in 0..THREADS {
                    sc.spawn(|| {
                        let mut c = conn(t);
                        start.wait();
                        for _ in 0..EACH {
                            // Every thread judged the attempt on the same stale counters.
                            let stale = State {
                                acct_key: st.acct_key.clone(),
                                ip_key: st.ip_key.clone(),
                                acct: None,
                                ip: None,
                            };
                            failure(c.as_mut(), &s, &stale, now).expect("count a failure");
                        }
                    });
                }
            });
            let mut c = conn(t);
            let want = (THREADS * EACH) as i64;
            let acct = stored(c.as_mut(), &st.acct_key).expect("account counter");
            let ip = stored(c.as_mut(), st.ip_key.as_deref().unwrap()).expect("address counter");
            assert_eq!(
                (acct.failures, acct.first_ts, acct.locked_until),
                (want, now, 0)
            );
            assert_eq!(
                (ip.failures, ip.first_ts, ip.locked_until),
                (want, now, 0),
                "{t:?}"
            );
        }
    }

    #[test]
    fn the_statement_counts_as_bump_does() {
        // The SQL that counts a failure gives the row `bump` gives, from every kind of
        // stored row: none, in the window, past it, at the threshold, locked, hostile.
        let (_db, targets) = targets("bump");
        let s = Settings {
            lockout_failures: 3,
            lockout_window: 60,
            lockout_time: 100,
            ..Settings::default()
        };
        let now = 10_000;
        let row = |failures, first_ts, locked_until| Entry {
            failures,
            first_ts,
            locked_until,
        };
        let olds = [
            None,
            Some(row(1, now - 10, 0)),
            Some(row(2, now - 10, 0)),
            Some(row(2, now - 60, 0)),
            Some(row(2, now - 61, 0)),
            Some(row(5, now - 10, now + 50)),
            Some(row(0, now, now + 100)),
            Some(row(2, now - 10, now)),
            Some(row(2, now - 100, now - 1)),
            Some(row(i64::MAX, i64::MAX, 0)),
            Some(row(1, i64::MAX, 0)),
            Some(row(-5, now - 10, 0)),
            Some(row(i64::MIN, now - 10, 0)),
            Some(row(2, i64::MIN, i64::MIN)),
        ];
        for t in &targets {
            let mut c = conn(t);
            let create = crate::users::create_sql(c.kind(), "lockout");
            c.exec(&create, &[]).unwrap();
            let tag = tag();
            for (n, old) in olds.iter().copied().enumerate() {
                let key = format!("acct:k{n}-{tag}@example.com:192.0.2.1");
                c.exec("DELETE FROM lockout WHERE lockkey = ?", &[Val::text(&key)])
                    .or_else(|e| match e {
                        DbError::NoTable => Ok(0),
                        e => Err(e),
                    })
                    .unwrap();
                if let Some(e) = old {
                    c.exec(
                        "INSERT INTO lockout VALUES (?, ?, ?, ?)",
                        &[
                            Val::text(&key),
                            Val::Int(e.failures),
                            Val::Int(e.first_ts),
                            Val::Int(e.locked_until),
                        ],
                    )
                    .unwrap();
                }
                let want = bump(old, 3, &s, now);
                let newly = count(c.as_mut(), &key, 3, &s, now).unwrap();
                assert_eq!(stored(c.as_mut(), &key), Some(want), "{t:?} from {old:?}");
                let want_newly =
                    want.locked_until == now + 100 && old.is_none_or(|o| o.locked_until <= now);
                assert_eq!(newly, want_newly, "{t:?}: new lock from {old:?}");
            }
        }
    }
}
