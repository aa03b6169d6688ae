//! The three SQL back ends behind one small interface: parameterised queries returning
//! rows whose columns are looked up by name, and the dialect differences (placeholders,
//! identifier quoting, upserts) kept in [`Kind`].

mod mysql;
mod postgres;
mod sqlite;
#[cfg(test)]
mod testutil;
mod tls;
mod wire;

use std::time::Duration;

use crate::target::Target;

/// How long a connect or a query may take before the database counts as down.
pub const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Null,
    Int(i64),
    Text(Vec<u8>),
}

impl Val {
    pub fn text(s: &str) -> Val {
        Val::Text(s.as_bytes().to_vec())
    }
    pub fn as_int(&self) -> i64 {
        match self {
            Val::Int(i) => *i,
            Val::Text(t) => std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            Val::Null => 0,
        }
    }
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Val::Text(t) => t,
            _ => b"",
        }
    }
}

/// One result row: (column name, value) pairs.
#[derive(Debug, Clone, Default)]
pub struct Row(pub Vec<(String, Val)>);

impl Row {
    pub fn get(&self, col: &str) -> Option<&Val> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(col))
            .map(|(_, v)| v)
    }
}

#[derive(Debug)]
pub enum DbError {
    /// The table does not exist (per-domain layout: an unknown domain).
    NoTable,
    /// Anything else: the database is down, refused us, or the schema is wrong.
    Other(String),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::NoTable => write!(f, "no such table"),
            DbError::Other(s) => write!(f, "{s}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Mysql,
    Postgres,
}

impl Kind {
    /// Quotes an identifier we built from checked characters.
    pub fn ident(self, name: &str) -> String {
        match self {
            Kind::Mysql => format!("`{name}`"),
            _ => format!("\"{name}\""),
        }
    }

    /// `INSERT` that updates the row with the same primary key in place, if there is one.
    pub fn upsert(self, table: &str, cols: &[&str], key: &[&str]) -> String {
        let q = |c: &str| self.ident(c);
        let list = |cs: &[&str]| cs.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
        // The columns outside the key, each set from the row that was to be inserted.
        let sets = |from: &dyn Fn(&str) -> String| {
            cols.iter()
                .filter(|c| !key.contains(c))
                .map(|c| format!("{} = {}", q(c), from(&q(c))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            q(table),
            list(cols),
            vec!["?"; cols.len()].join(", ")
        );
        match self {
            // Not REPLACE (vpopmail's): InnoDB carries that out as a delete and an insert.
            Kind::Mysql => format!(
                "{insert} ON DUPLICATE KEY UPDATE {}",
                sets(&|c| format!("VALUES({c})"))
            ),
            // Not SQLite's REPLACE either, which deletes the row and inserts a new one and so
            // rewrites the primary key's index page too (two pages of log per login, not one).
            Kind::Sqlite | Kind::Postgres => format!(
                "{insert} ON CONFLICT ({}) DO UPDATE SET {}",
                list(key),
                sets(&|c| format!("EXCLUDED.{c}"))
            ),
        }
    }
}

/// A connection to one of the back ends.
pub trait Conn {
    fn kind(&self) -> Kind;
    /// Runs a statement with `?` placeholders bound to `params`: its rows, and the
    /// number of rows it changed.
    fn run(&mut self, sql: &str, params: &[Val]) -> Result<(Vec<Row>, u64), DbError>;
    /// A query's rows.
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, DbError> {
        self.run(sql, params).map(|(rows, _)| rows)
    }
    /// A statement's count of changed rows.
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, DbError> {
        self.run(sql, params).map(|(_, n)| n)
    }
    /// Runs queries in order, each answered on its own; a back end that can sends them
    /// all before it reads any answer (one round trip).
    fn query_batch(&mut self, qs: &[(&str, &[Val])]) -> Vec<Result<Vec<Row>, DbError>> {
        qs.iter().map(|(sql, p)| self.query(sql, p)).collect()
    }
    /// Runs two queries as [`Conn::query_batch`] does.
    fn query_pair(
        &mut self,
        a: (&str, &[Val]),
        b: (&str, &[Val]),
    ) -> [Result<Vec<Row>, DbError>; 2] {
        let mut r = self.query_batch(&[a, b]).into_iter();
        let mut next = || r.next().unwrap_or(Err(DbError::Other("no answer".into())));
        [next(), next()]
    }
    /// Closes the connection politely (a MySQL COM_QUIT) before we exec.
    fn close(self: Box<Self>);
}

pub fn connect(t: &Target) -> Result<Box<dyn Conn>, DbError> {
    match t {
        Target::Sqlite(p) => Ok(Box::new(sqlite::Sqlite::open(p)?)),
        Target::Mysql(m) => Ok(Box::new(mysql::Mysql::open(m)?)),
        Target::Postgres(p) => Ok(Box::new(postgres::Postgres::open(p)?)),
    }
}

/// For the fuzz targets (`fuzzing` feature): the clients' code on a connection whose
/// server side the caller plays.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use super::{mysql, postgres, wire::Wire, Conn, DbError};
    use crate::target::Target;
    use std::os::unix::net::UnixStream;

    pub use super::postgres::FuzzScram;

    /// [`super::connect`] for a MySQL or PostgreSQL target over `s`, as over TCP in the
    /// target's TLS mode.
    pub fn connect_over(t: &Target, s: UnixStream) -> Result<Box<dyn Conn>, DbError> {
        let w = Wire::fuzzing(s);
        match t {
            Target::Mysql(m) => Ok(Box::new(mysql::Mysql::over(w, m, m.tls.mode())?)),
            Target::Postgres(p) => Ok(Box::new(postgres::Postgres::over_tcp(w, p, p.tls.mode())?)),
            Target::Sqlite(_) => Err(DbError::Other("not a network target".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upserts() {
        assert_eq!(
            Kind::Mysql.upsert("relay", &["ip_addr", "timestamp"], &["ip_addr"]),
            "INSERT INTO `relay` (`ip_addr`, `timestamp`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `timestamp` = VALUES(`timestamp`)"
        );
        assert_eq!(
            Kind::Postgres.upsert("relay", &["ip_addr", "timestamp"], &["ip_addr"]),
            "INSERT INTO \"relay\" (\"ip_addr\", \"timestamp\") VALUES (?, ?) ON CONFLICT (\"ip_addr\") DO UPDATE SET \"timestamp\" = EXCLUDED.\"timestamp\""
        );
        assert_eq!(
            Kind::Sqlite.upsert("relay", &["ip_addr", "timestamp"], &["ip_addr"]),
            Kind::Postgres.upsert("relay", &["ip_addr", "timestamp"], &["ip_addr"])
        );
    }
}
