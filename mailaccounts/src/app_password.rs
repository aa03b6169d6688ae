//! `mailaccounts app-password add|list|revoke`: our app passwords (vpopmail has none),
//! kept in [`app_passwords::TABLE`] beside vpopmail's tables. See vpopdb's
//! `app_passwords` for what a login does with them.

use clap::Subcommand;
use ipnet::IpNet;
use vpopdb::app_passwords::{self, HASH_COST, MAX_PER_USER, SECRET_LETTERS, SERVICES, TABLE};
use vpopdb::hash;
use vpopdb::store::{Conn, DbError, Kind, Row, Val};
use zeroize::Zeroizing;

use crate::commands::{parse_login, usage, Ctx, Fail, R};
use crate::db;
use crate::out::{self, Cell};

#[derive(Subcommand)]
pub enum Action {
    /// Make a new app password; its secret is printed once, here, and never again
    Add {
        #[arg(value_name = "USER@DOMAIN")]
        login: String,
        /// A name for it, unique for the account: letters, digits, '.', '_', '-'
        #[arg(long, value_name = "LABEL")]
        label: String,
        /// The services it opens, separated by commas: pop, imap, smtp, webmail
        #[arg(long, value_name = "LIST", default_value = "pop,imap,smtp")]
        service: String,
        /// Only for clients in this network (CIDR, e.g. 192.0.2.0/24 or 2001:db8::/32)
        #[arg(long, value_name = "CIDR")]
        network: Option<String>,
        /// Expires after N days, or at 00:00 UTC of YYYY-MM-DD
        #[arg(long, value_name = "DAYS|YYYY-MM-DD")]
        expires: Option<String>,
    },
    /// List an account's app passwords (never their secrets or hashes)
    List {
        #[arg(value_name = "USER@DOMAIN")]
        login: String,
    },
    /// Revoke one app password
    Revoke {
        #[arg(value_name = "USER@DOMAIN")]
        login: String,
        label: String,
    },
}

/// The table, in each dialect. One row per app password; (account, label) is unique.
fn ddl(k: Kind) -> String {
    let q = |c: &str| k.ident(c);
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({} {}, {} VARCHAR(64) NOT NULL, {} VARCHAR(96) NOT NULL, \
         {} VARCHAR(32) NOT NULL, {} VARCHAR(255) NOT NULL, {} VARCHAR(32) NOT NULL, \
         {} VARCHAR(64), {} BIGINT, {} BIGINT NOT NULL, UNIQUE ({}, {}, {}))",
        q(TABLE),
        q("id"),
        db::serial_key(k),
        q("pw_name"),
        q("pw_domain"),
        q("label"),
        q("hash"),
        q("services"),
        q("network"),
        q("expires"),
        q("created"),
        q("pw_name"),
        q("pw_domain"),
        q("label"),
    )
}

pub fn create_table(db: &mut dyn Conn) -> Result<(), DbError> {
    db.exec(&ddl(db.kind()), &[]).map(drop)
}

/// A statement on the table, which is made first when missing.
fn write(db: &mut dyn Conn, sql: &str, params: &[Val]) -> Result<u64, DbError> {
    match db.exec(sql, params) {
        Err(DbError::NoTable) => {
            create_table(db)?;
            db.exec(sql, params)
        }
        r => r,
    }
}

/// Removes every app password of `user@domain`, or of the whole domain (`user` None):
/// an account deleted and made again must not inherit them.
pub fn forget(db: &mut dyn Conn, user: Option<&str>, domain: &str) -> Result<u64, DbError> {
    let k = db.kind();
    let (w, p) = match user {
        Some(u) => (
            format!(
                "{} = ? AND {} = ?",
                k.ident("pw_name"),
                k.ident("pw_domain")
            ),
            vec![Val::text(u), Val::text(domain)],
        ),
        None => (
            format!("{} = ?", k.ident("pw_domain")),
            vec![Val::text(domain)],
        ),
    };
    write(db, &format!("DELETE FROM {} WHERE {w}", k.ident(TABLE)), &p)
}

fn rows(db: &mut dyn Conn, user: &str, domain: &str) -> Result<Vec<Row>, DbError> {
    let k = db.kind();
    let sql = format!(
        "SELECT * FROM {} WHERE {} = ? AND {} = ? ORDER BY {}",
        k.ident(TABLE),
        k.ident("pw_name"),
        k.ident("pw_domain"),
        k.ident("id")
    );
    match db.query(&sql, &[Val::text(user), Val::text(domain)]) {
        Err(DbError::NoTable) => Ok(vec![]),
        r => r,
    }
}

pub fn run(c: &mut Ctx, action: Action) -> R<()> {
    match action {
        Action::Add {
            login,
            label,
            service,
            network,
            expires,
        } => add(
            c,
            &login,
            &label,
            &service,
            network.as_deref(),
            expires.as_deref(),
        ),
        Action::List { login } => list(c, &login),
        Action::Revoke { login, label } => {
            let (u, d) = parse_login(&login)?;
            check_label(&label)?;
            let k = c.db.kind();
            let sql = format!(
                "DELETE FROM {} WHERE {} = ? AND {} = ? AND {} = ?",
                k.ident(TABLE),
                k.ident("pw_name"),
                k.ident("pw_domain"),
                k.ident("label")
            );
            let p = [Val::text(&u), Val::text(&d), Val::text(&label)];
            if write(c.db.as_mut(), &sql, &p)? == 0 {
                return usage(format!("no app password {label:?} for {u}@{d}"));
            }
            c.log(&u, &d, "app-password", &format!("revoked {label}"))?;
            c.out
                .message(&format!("app password {label:?} of {u}@{d} revoked"));
            Ok(())
        }
    }
}

fn check_label(l: &str) -> R<()> {
    let ok = (1..=32).contains(&l.len())
        && l.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        usage(format!(
            "bad label {l:?}: 1 to 32 letters, digits, '.', '_', '-'"
        ))
    }
}

/// The services in the order of [`SERVICES`], each once.
fn parse_services(s: &str) -> R<String> {
    let want: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    if let Some(bad) = want.iter().find(|w| !SERVICES.contains(w)) {
        return usage(format!(
            "unknown service {bad:?}; known: {}",
            SERVICES.join(",")
        ));
    }
    let list: Vec<&str> = SERVICES
        .iter()
        .copied()
        .filter(|s| want.contains(s))
        .collect();
    if list.is_empty() {
        return usage("--service names no service");
    }
    Ok(list.join(","))
}

/// A network in its canonical form (host bits cleared).
fn parse_network(s: &str) -> R<String> {
    match s.parse::<IpNet>() {
        Ok(n) => Ok(n.trunc().to_string()),
        Err(_) => usage(format!("bad --network {s:?}: want CIDR, e.g. 192.0.2.0/24")),
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days-from-civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// `--expires`: a number of days from `now` (1 to 36500), or a date (its 00:00 UTC),
/// which must be in the future.
fn parse_expires(s: &str, now: i64) -> R<i64> {
    let bad = || Fail::Usage(format!("bad --expires {s:?}: want DAYS or YYYY-MM-DD"));
    let t = if let Ok(n) = s.strip_suffix('d').unwrap_or(s).parse::<i64>() {
        if !(1..=36500).contains(&n) {
            return Err(bad());
        }
        now + n * 86400
    } else {
        let parts: Vec<&str> = s.split('-').collect();
        let [y, m, d] = parts.as_slice() else {
            return Err(bad());
        };
        let num = |p: &str, len: usize| -> R<i64> {
            if p.len() != len || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let (y, m, d) = (num(y, 4)?, num(m, 2)?, num(d, 2)?);
        let t = days_from_civil(y, m, d) * 86400;
        // A day the month lacks (02-30) comes back as another date.
        if !(1..=12).contains(&m) || out::utc(t)[..10] != *s {
            return Err(bad());
        }
        t
    };
    if t <= now {
        return usage(format!("--expires {s:?} is not in the future"));
    }
    Ok(t)
}

/// A fresh secret: [`SECRET_LETTERS`] lowercase letters from the kernel's random source
/// (rejection sampling, so every letter is equally likely), in groups of four.
fn secret() -> R<Zeroizing<String>> {
    let mut letters = Zeroizing::new(Vec::with_capacity(SECRET_LETTERS));
    let mut buf = Zeroizing::new([0u8; 64]);
    // 234 = 9 × 26: bytes at or above it would favour the first letters. Each round
    // keeps about 91 % of 64 bytes, so one round nearly always suffices; bounded anyway.
    for _ in 0..16 {
        hash::random(&mut buf[..]).map_err(Fail::Temp)?;
        let want = SECRET_LETTERS - letters.len();
        letters.extend(
            buf.iter()
                .filter(|&&b| b < 234)
                .map(|&b| b'a' + b % 26)
                .take(want),
        );
        if letters.len() == SECRET_LETTERS {
            let groups: Vec<&str> = letters
                .chunks(4)
                .map(|g| std::str::from_utf8(g).unwrap_or_default())
                .collect();
            return Ok(Zeroizing::new(groups.join("-")));
        }
    }
    Err(Fail::Temp(
        "the random source gave too few usable bytes".into(),
    ))
}

fn add(
    c: &mut Ctx,
    login: &str,
    label: &str,
    services: &str,
    network: Option<&str>,
    expires: Option<&str>,
) -> R<()> {
    let (u, d) = parse_login(login)?;
    check_label(label)?;
    let services = parse_services(services)?;
    let network = network.map(parse_network).transpose()?;
    let now = vpopdb::now();
    let expires = expires.map(|e| parse_expires(e, now)).transpose()?;
    c.row(&u, &d)?;
    let existing = rows(c.db.as_mut(), &u, &d)?;
    if existing.iter().any(|r| text(r, "label") == label) {
        return usage(format!(
            "{u}@{d} already has an app password {label:?} (revoke it first)"
        ));
    }
    if existing.len() >= MAX_PER_USER {
        return usage(format!(
            "{u}@{d} has {MAX_PER_USER} app passwords, the most a login checks"
        ));
    }
    let secret = secret()?;
    let plain = app_passwords::normalize(secret.as_bytes())
        .ok_or_else(|| Fail::Temp("generated secret is malformed".into()))?;
    let h = hash::argon2id(&plain, HASH_COST).map_err(Fail::Temp)?;
    let sql = db::insert_sql(
        c.db.kind(),
        TABLE,
        &[
            "pw_name",
            "pw_domain",
            "label",
            "hash",
            "services",
            "network",
            "expires",
            "created",
        ],
    );
    let opt_text = |v: &Option<String>| v.as_deref().map_or(Val::Null, Val::text);
    let p = [
        Val::text(&u),
        Val::text(&d),
        Val::text(label),
        Val::text(&h),
        Val::text(&services),
        opt_text(&network),
        expires.map_or(Val::Null, Val::Int),
        Val::Int(now),
    ];
    if let Err(e) = write(c.db.as_mut(), &sql, &p) {
        // Another run added the same label meanwhile (the unique key refused this one).
        if rows(c.db.as_mut(), &u, &d)?
            .iter()
            .any(|r| text(r, "label") == label)
        {
            return usage(format!("{u}@{d} already has an app password {label:?}"));
        }
        return Err(e.into());
    }
    let scope = format!(
        "{label} services {services}{}{}",
        network
            .as_deref()
            .map(|n| format!(" network {n}"))
            .unwrap_or_default(),
        expires
            .map(|e| format!(" expires {}", out::utc(e)))
            .unwrap_or_default()
    );
    c.log(&u, &d, "app-password", &format!("added {scope}"))?;
    c.out.record(&[
        ("login", Cell::s(&format!("{u}@{d}"))),
        ("label", Cell::s(label)),
        ("services", Cell::s(&services)),
        ("network", network.as_deref().map_or(Cell::Null, Cell::s)),
        ("expires", expires.map_or(Cell::Null, Cell::time)),
        ("secret", Cell::s(&secret)),
        ("note", Cell::s("the secret is shown only this once")),
    ]);
    Ok(())
}

fn text(r: &Row, col: &str) -> String {
    String::from_utf8_lossy(r.get(col).map(Val::as_bytes).unwrap_or_default()).into_owned()
}

fn list(c: &mut Ctx, login: &str) -> R<()> {
    let (u, d) = parse_login(login)?;
    c.row(&u, &d)?;
    let now = vpopdb::now();
    let time = |r: &Row, col: &str| match r.get(col) {
        None | Some(Val::Null) => Cell::Null,
        Some(v) => Cell::time(v.as_int()),
    };
    let cells = rows(c.db.as_mut(), &u, &d)?
        .iter()
        .map(|r| {
            let expired =
                matches!(r.get("expires"), Some(v) if *v != Val::Null && v.as_int() <= now);
            vec![
                Cell::s(&text(r, "label")),
                Cell::s(&text(r, "services")),
                Cell::s(&text(r, "network")),
                time(r, "expires"),
                Cell::s(if expired { "expired" } else { "active" }),
                time(r, "created"),
            ]
        })
        .collect();
    c.out.table(
        &[
            "label", "services", "network", "expires", "state", "created",
        ],
        cells,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        assert_eq!(
            parse_services("smtp, imap,imap").ok().as_deref(),
            Some("imap,smtp")
        );
        assert!(parse_services("ftp").is_err());
        assert!(parse_services(",").is_err());
        assert_eq!(
            parse_network("192.0.2.7/24").ok().as_deref(),
            Some("192.0.2.0/24")
        );
        assert_eq!(
            parse_network("2001:db8::1/32").ok().as_deref(),
            Some("2001:db8::/32")
        );
        assert!(parse_network("192.0.2.7").is_err());
        let now = 1_700_000_000;
        assert_eq!(parse_expires("30", now).ok(), Some(now + 30 * 86400));
        assert_eq!(parse_expires("7d", now).ok(), Some(now + 7 * 86400));
        assert_eq!(parse_expires("2030-02-28", now).ok(), Some(1_898_467_200));
        assert!(parse_expires("2030-02-30", now).is_err());
        assert!(parse_expires("2020-01-01", now).is_err());
        assert!(parse_expires("0", now).is_err());
        assert!(parse_expires("soon", now).is_err());
        assert!(check_label("phone-2.mail_app").is_ok());
        assert!(check_label("my phone").is_err());
        assert!(check_label("").is_err());
        assert!(check_label(&"x".repeat(33)).is_err());
    }

    #[test]
    fn secrets_are_typable_and_differ() {
        let a = secret().ok().unwrap();
        let b = secret().ok().unwrap();
        assert_ne!(*a, *b);
        assert_eq!(a.len(), SECRET_LETTERS + 3);
        assert!(app_passwords::normalize(a.as_bytes()).is_some());
        assert_eq!(a.split('-').count(), 4);
    }
}
