//! vpopmail's user table, in either layout, and the bookkeeping tables it writes on a
//! successful login (`lastauth`, and `relay`'s, whose rows `crate::relay` writes),
//! created on first use as vpopmail does.

use zeroize::Zeroizing;

use crate::config::Tables;
use crate::store::{Conn, DbError, Kind, Row, Val};

/// The columns of a vpopmail row that a login needs.
pub struct User {
    pub passwd: Zeroizing<Vec<u8>>,
    pub clear: Zeroizing<Vec<u8>>,
    /// pw_gid: vpopmail's flag bits.
    pub flags: i64,
    pub dir: Vec<u8>,
    /// pw_shell: the quota string.
    pub quota: Vec<u8>,
}

/// The per-domain table for `domain` (`example.com` → `example_com`; no domain: `users`).
/// `domain` has passed [`crate::loginname::domain_ok`], so the name holds only `[-_.0-9a-z]`
/// mapped to `[_0-9a-z]` and can be quoted safely.
pub fn domain_table(domain: &str) -> String {
    if domain.is_empty() {
        return "users".into();
    }
    domain
        .chars()
        .map(|c| if c == '.' || c == '-' { '_' } else { c })
        .collect()
}

/// The query for a user's row, in either layout.
pub fn query(k: Kind, tables: Tables, user: &str, domain: &str) -> (String, Vec<Val>) {
    match tables {
        Tables::Single => (
            format!(
                "SELECT * FROM {} WHERE {} = ? AND {} = ?",
                k.ident("vpopmail"),
                k.ident("pw_name"),
                k.ident("pw_domain")
            ),
            vec![Val::text(user), Val::text(domain)],
        ),
        Tables::PerDomain => (
            format!(
                "SELECT * FROM {} WHERE {} = ?",
                k.ident(&domain_table(domain)),
                k.ident("pw_name")
            ),
            vec![Val::text(user)],
        ),
    }
}

/// The user from the answer to [`query`], or `None` when there is no such user (or,
/// per-domain, no such domain).
pub fn read(tables: Tables, rows: Result<Vec<Row>, DbError>) -> Result<Option<User>, DbError> {
    let rows = match (tables, rows) {
        (Tables::PerDomain, Err(DbError::NoTable)) => return Ok(None),
        (_, r) => r?,
    };
    let Some(r) = rows.into_iter().next() else {
        return Ok(None);
    };
    let text = |c: &str| r.get(c).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    if r.get("pw_passwd").is_none() {
        return Err(DbError::Other("user table has no pw_passwd column".into()));
    }
    Ok(Some(User {
        passwd: Zeroizing::new(text("pw_passwd")),
        clear: Zeroizing::new(text("pw_clear_passwd")),
        flags: r.get("pw_gid").map(Val::as_int).unwrap_or(0),
        dir: text("pw_dir"),
        quota: text("pw_shell"),
    }))
}

pub(crate) fn create_sql(k: Kind, table: &str) -> String {
    let q = |c: &str| k.ident(c);
    match table {
        "lastauth" => format!(
            "CREATE TABLE IF NOT EXISTS {} ({} VARCHAR(64) NOT NULL, {} VARCHAR(96) NOT NULL, \
             {} VARCHAR(39) NOT NULL, {} BIGINT NOT NULL DEFAULT 0, PRIMARY KEY ({}, {}))",
            q("lastauth"),
            q("user"),
            q("domain"),
            q("remote_ip"),
            q("timestamp"),
            q("user"),
            q("domain")
        ),
        "relay" => format!(
            "CREATE TABLE IF NOT EXISTS {} ({} VARCHAR(39) NOT NULL, {} BIGINT NOT NULL DEFAULT 0, \
             PRIMARY KEY ({}))",
            q("relay"),
            q("ip_addr"),
            q("timestamp"),
            q("ip_addr")
        ),
        _ => format!(
            "CREATE TABLE IF NOT EXISTS {} ({} VARCHAR(255) NOT NULL, {} BIGINT NOT NULL, \
             {} BIGINT NOT NULL, {} BIGINT NOT NULL, PRIMARY KEY ({}))",
            q("lockout"),
            q("lockkey"),
            q("failures"),
            q("first_ts"),
            q("locked_until"),
            q("lockkey")
        ),
    }
}

/// Runs a write against one of our own tables, creating the table when it is missing.
pub fn write_own(
    db: &mut dyn Conn,
    table: &str,
    sql: &str,
    params: &[Val],
) -> Result<u64, DbError> {
    match db.exec(sql, params) {
        Err(DbError::NoTable) => {
            db.exec(&create_sql(db.kind(), table), &[])?;
            db.exec(sql, params)
        }
        r => r,
    }
}

/// The row vpopmail replaces in `lastauth` on every successful login (its REPLACE INTO;
/// ours updates the row in place, see [`Kind::upsert`]).
pub fn lastauth(
    db: &mut dyn Conn,
    user: &str,
    domain: &str,
    ip: &str,
    now: i64,
) -> Result<(), DbError> {
    let sql = db.kind().upsert(
        "lastauth",
        &["user", "domain", "remote_ip", "timestamp"],
        &["user", "domain"],
    );
    write_own(
        db,
        "lastauth",
        &sql,
        &[
            Val::text(user),
            Val::text(domain),
            Val::text(ip),
            Val::Int(now),
        ],
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        assert_eq!(domain_table("mail-1.example.com"), "mail_1_example_com");
        assert_eq!(domain_table(""), "users");
    }
}
