//! The account tables: vpopmail's user table (either layout), the tables checkpassword
//! writes (created here up front), and the change log.

use vpopdb::config::Tables;
use vpopdb::lockout;
use vpopdb::store::{Conn, DbError, Kind, Row, Val};
use vpopdb::users::{domain_table, write_own};

/// Where one domain's users are: the table and whether it has a `pw_domain` column.
pub struct Table {
    pub name: String,
    pub single: bool,
}

pub fn table(tables: Tables, domain: &str) -> Table {
    match tables {
        Tables::Single => Table {
            name: "vpopmail".into(),
            single: true,
        },
        Tables::PerDomain => Table {
            name: domain_table(domain),
            single: false,
        },
    }
}

fn user_ddl(k: Kind, t: &Table) -> String {
    let q = |c: &str| k.ident(c);
    let (dom, key) = if t.single {
        (
            format!("{} VARCHAR(96) NOT NULL, ", q("pw_domain")),
            format!("{}, {}", q("pw_name"), q("pw_domain")),
        )
    } else {
        (String::new(), q("pw_name"))
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({} VARCHAR(64) NOT NULL, {dom}{} VARCHAR(128), \
         {} INT, {} INT, {} VARCHAR(64), {} VARCHAR(160), {} VARCHAR(20), {} VARCHAR(128), \
         PRIMARY KEY ({key}))",
        q(&t.name),
        q("pw_name"),
        q("pw_passwd"),
        q("pw_uid"),
        q("pw_gid"),
        q("pw_gecos"),
        q("pw_dir"),
        q("pw_shell"),
        q("pw_clear_passwd"),
    )
}

/// A numbered primary key, in each dialect.
pub fn serial_key(k: Kind) -> &'static str {
    match k {
        Kind::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Kind::Mysql => "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
        Kind::Postgres => "BIGSERIAL PRIMARY KEY",
    }
}

fn changelog_ddl(k: Kind) -> String {
    let id = serial_key(k);
    let q = |c: &str| k.ident(c);
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({} {id}, {} BIGINT NOT NULL, {} VARCHAR(64) NOT NULL, \
         {} VARCHAR(64) NOT NULL, {} VARCHAR(96) NOT NULL, {} VARCHAR(32) NOT NULL, \
         {} VARCHAR(255) NOT NULL)",
        q("changelog"),
        q("id"),
        q("timestamp"),
        q("actor"),
        q("pw_name"),
        q("pw_domain"),
        q("action"),
        q("detail"),
    )
}

/// Creates every table that is missing; existing tables are left alone.
pub fn init(db: &mut dyn Conn, tables: Tables) -> Result<(), DbError> {
    let k = db.kind();
    if tables == Tables::Single {
        db.exec(&user_ddl(k, &table(tables, "")), &[])?;
    }
    db.exec(&changelog_ddl(k), &[])?;
    crate::app_password::create_table(db)?;
    db.exec(&vpopdb::limits::create_sql(k), &[])?;
    // checkpassword creates these on first use; a statement that touches no row makes
    // its own code create them now, with its own definitions.
    for t in ["lastauth", "relay", "lockout"] {
        write_own(
            db,
            t,
            &format!("DELETE FROM {} WHERE 1 = 0", k.ident(t)),
            &[],
        )?;
    }
    Ok(())
}

/// The per-domain layout's table for a new domain.
pub fn create_domain_table(db: &mut dyn Conn, domain: &str) -> Result<(), DbError> {
    let k = db.kind();
    db.exec(&user_ddl(k, &table(Tables::PerDomain, domain)), &[])
        .map(drop)
}

/// A placeholder for an integer: PostgreSQL infers a parameter's type from the column, and
/// vpopmail's `INT` columns would refuse our 64-bit values without the cast.
fn mark(k: Kind, v: &Val) -> &'static str {
    match (k, v) {
        (Kind::Postgres, Val::Int(_)) => "CAST(? AS BIGINT)",
        _ => "?",
    }
}

fn where_user(k: Kind, t: &Table, user: &str, domain: &str) -> (String, Vec<Val>) {
    if t.single {
        (
            format!(
                "{} = ? AND {} = ?",
                k.ident("pw_name"),
                k.ident("pw_domain")
            ),
            vec![Val::text(user), Val::text(domain)],
        )
    } else {
        (format!("{} = ?", k.ident("pw_name")), vec![Val::text(user)])
    }
}

pub fn get(db: &mut dyn Conn, t: &Table, user: &str, domain: &str) -> Result<Option<Row>, DbError> {
    let k = db.kind();
    let (w, p) = where_user(k, t, user, domain);
    let sql = format!("SELECT * FROM {} WHERE {w}", k.ident(&t.name));
    match db.query(&sql, &p) {
        Err(DbError::NoTable) => Ok(None),
        r => Ok(r?.into_iter().next()),
    }
}

/// A table not made yet has no rows.
fn rows_or_none(r: Result<Vec<Row>, DbError>) -> Result<Vec<Row>, DbError> {
    match r {
        Err(DbError::NoTable) => Ok(vec![]),
        r => r,
    }
}

/// Every user of `domain` (all domains: `None`, single layout only), sorted.
pub fn list(db: &mut dyn Conn, t: &Table, domain: Option<&str>) -> Result<Vec<Row>, DbError> {
    let k = db.kind();
    let (w, p) = match (domain, t.single) {
        (Some(d), true) => (
            format!(" WHERE {} = ?", k.ident("pw_domain")),
            vec![Val::text(d)],
        ),
        _ => (String::new(), vec![]),
    };
    let order = if t.single {
        format!("{}, {}", k.ident("pw_domain"), k.ident("pw_name"))
    } else {
        k.ident("pw_name")
    };
    let sql = format!("SELECT * FROM {}{w} ORDER BY {order}", k.ident(&t.name));
    rows_or_none(db.query(&sql, &p))
}

pub struct NewUser<'a> {
    pub user: &'a str,
    pub domain: &'a str,
    pub passwd: &'a str,
    pub clear: &'a str,
    pub gecos: &'a str,
    pub dir: &'a str,
    pub quota: &'a str,
    pub flags: i64,
}

pub fn insert(db: &mut dyn Conn, t: &Table, u: &NewUser) -> Result<(), DbError> {
    let k = db.kind();
    let mut cols = vec!["pw_name"];
    let mut p = vec![Val::text(u.user)];
    if t.single {
        cols.push("pw_domain");
        p.push(Val::text(u.domain));
    }
    cols.extend([
        "pw_passwd",
        "pw_uid",
        "pw_gid",
        "pw_gecos",
        "pw_dir",
        "pw_shell",
        "pw_clear_passwd",
    ]);
    p.extend([
        Val::text(u.passwd),
        Val::Int(0),
        Val::Int(u.flags),
        Val::text(u.gecos),
        Val::text(u.dir),
        Val::text(u.quota),
        Val::text(u.clear),
    ]);
    let names: Vec<String> = cols.iter().map(|c| k.ident(c)).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        k.ident(&t.name),
        names.join(", "),
        p.iter().map(|v| mark(k, v)).collect::<Vec<_>>().join(", ")
    );
    db.exec(&sql, &p).map(drop)
}

/// Sets columns of one user; returns whether the user exists.
pub fn update(
    db: &mut dyn Conn,
    t: &Table,
    user: &str,
    domain: &str,
    set: &[(&str, Val)],
) -> Result<bool, DbError> {
    let k = db.kind();
    let (w, wp) = where_user(k, t, user, domain);
    let sets: Vec<String> = set
        .iter()
        .map(|(c, v)| format!("{} = {}", k.ident(c), mark(k, v)))
        .collect();
    let mut p: Vec<Val> = set.iter().map(|(_, v)| v.clone()).collect();
    p.extend(wp);
    let sql = format!(
        "UPDATE {} SET {} WHERE {w}",
        k.ident(&t.name),
        sets.join(", ")
    );
    let n = db.exec(&sql, &p)?;
    if n > 0 {
        return Ok(true);
    }
    // MySQL counts changed rows: an unchanged value is 0 rows but the user exists.
    Ok(get(db, t, user, domain)?.is_some())
}

/// Deletes one user (or, with `user` None, every user of the domain) and their lastauth
/// and lockout rows. Returns the number of users deleted.
pub fn delete(
    db: &mut dyn Conn,
    t: &Table,
    user: Option<&str>,
    domain: &str,
) -> Result<u64, DbError> {
    let k = db.kind();
    let n = match user {
        Some(u) => {
            let (w, p) = where_user(k, t, u, domain);
            db.exec(&format!("DELETE FROM {} WHERE {w}", k.ident(&t.name)), &p)?
        }
        None if t.single => db.exec(
            &format!(
                "DELETE FROM {} WHERE {} = ?",
                k.ident(&t.name),
                k.ident("pw_domain")
            ),
            &[Val::text(domain)],
        )?,
        None => match db.exec(&format!("DROP TABLE IF EXISTS {}", k.ident(&t.name)), &[]) {
            Err(DbError::NoTable) => 0,
            r => r?,
        },
    };
    let (w, p) = match user {
        Some(u) => (
            format!("{} = ? AND {} = ?", k.ident("user"), k.ident("domain")),
            vec![Val::text(u), Val::text(domain)],
        ),
        None => (
            format!("{} = ?", k.ident("domain")),
            vec![Val::text(domain)],
        ),
    };
    write_own(
        db,
        "lastauth",
        &format!("DELETE FROM {} WHERE {w}", k.ident("lastauth")),
        &p,
    )?;
    if let Some(u) = user {
        unlock(db, &format!("{u}@{domain}"), None)?;
    }
    crate::app_password::forget(db, user, domain)?;
    Ok(n)
}

/// Lifts checkpassword's lockout for `login` (from every address, or from `ip` only;
/// with `ip` the address's own spraying lock goes too). Returns the rows removed.
pub fn unlock(db: &mut dyn Conn, login: &str, ip: Option<&str>) -> Result<u64, DbError> {
    let k = db.kind();
    let key = k.ident("lockkey");
    let table = k.ident("lockout");
    let n = match ip {
        Some(ip) => write_own(
            db,
            "lockout",
            &format!("DELETE FROM {table} WHERE {key} IN (?, ?)"),
            &[
                Val::text(&lockout::account_key(login, ip)),
                Val::text(&lockout::address_counter_key(ip)),
            ],
        )?,
        None => {
            let (from, to) = lockout::account_key_range(login);
            write_own(
                db,
                "lockout",
                &format!("DELETE FROM {table} WHERE {key} >= ? AND {key} < ?"),
                &[Val::text(&from), Val::text(&to)],
            )?
        }
    };
    Ok(n)
}

/// ` WHERE col = ? AND ...` for the columns given a value (nothing when none is).
fn filter(k: Kind, by: &[(&str, Option<&str>)]) -> (String, Vec<Val>) {
    let set: Vec<(&str, &str)> = by.iter().filter_map(|(c, v)| Some((*c, (*v)?))).collect();
    if set.is_empty() {
        return (String::new(), vec![]);
    }
    let w: Vec<String> = set
        .iter()
        .map(|(c, _)| format!("{} = ?", k.ident(c)))
        .collect();
    (
        format!(" WHERE {}", w.join(" AND ")),
        set.iter().map(|(_, v)| Val::text(v)).collect(),
    )
}

pub fn lastauth(
    db: &mut dyn Conn,
    domain: Option<&str>,
    user: Option<&str>,
) -> Result<Vec<Row>, DbError> {
    let k = db.kind();
    let (w, p) = filter(k, &[("domain", domain), ("user", user)]);
    let sql = format!(
        "SELECT * FROM {}{w} ORDER BY {}, {}",
        k.ident("lastauth"),
        k.ident("domain"),
        k.ident("user")
    );
    rows_or_none(db.query(&sql, &p))
}

pub struct Change<'a> {
    pub now: i64,
    pub actor: &'a str,
    pub user: &'a str,
    pub domain: &'a str,
    pub action: &'a str,
    pub detail: &'a str,
}

/// `INSERT INTO table (cols) VALUES (?, ...)`, one placeholder per column.
pub fn insert_sql(k: Kind, table: &str, cols: &[&str]) -> String {
    let names: Vec<String> = cols.iter().map(|c| k.ident(c)).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        k.ident(table),
        names.join(", "),
        vec!["?"; cols.len()].join(", ")
    )
}

/// Appends a change-log row (never a password or hash: callers pass only what changed).
pub fn log_change(db: &mut dyn Conn, c: &Change) -> Result<(), DbError> {
    let k = db.kind();
    let sql = insert_sql(
        k,
        "changelog",
        &[
            "timestamp",
            "actor",
            "pw_name",
            "pw_domain",
            "action",
            "detail",
        ],
    );
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let p = [
        Val::Int(c.now),
        Val::text(&cut(c.actor, 64)),
        Val::text(&cut(c.user, 64)),
        Val::text(&cut(c.domain, 96)),
        Val::text(c.action),
        Val::text(&cut(c.detail, 255)),
    ];
    match db.exec(&sql, &p) {
        Err(DbError::NoTable) => {
            db.exec(&changelog_ddl(k), &[])?;
            db.exec(&sql, &p).map(drop)
        }
        r => r.map(drop),
    }
}

pub fn changes(
    db: &mut dyn Conn,
    domain: Option<&str>,
    user: Option<&str>,
    limit: u64,
) -> Result<Vec<Row>, DbError> {
    let k = db.kind();
    let (w, p) = filter(k, &[("pw_domain", domain), ("pw_name", user)]);
    let sql = format!(
        "SELECT * FROM (SELECT * FROM {}{w} ORDER BY {} DESC LIMIT {limit}) {} ORDER BY {}",
        k.ident("changelog"),
        k.ident("id"),
        k.ident("recent"),
        k.ident("id"),
    );
    rows_or_none(db.query(&sql, &p))
}
