//! The embedded back end (SQLite, bundled).

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{Conn, DbError, Kind, Row, Val};

pub struct Sqlite(Connection);

fn err(e: rusqlite::Error) -> DbError {
    let s = e.to_string();
    if s.starts_with("no such table") {
        DbError::NoTable
    } else {
        DbError::Other(s)
    }
}

fn bind(params: &[Val]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|v| match v {
            Val::Null => rusqlite::types::Value::Null,
            Val::Int(i) => rusqlite::types::Value::Integer(*i),
            Val::Text(t) => rusqlite::types::Value::Text(String::from_utf8_lossy(t).into_owned()),
        })
        .collect()
}

impl Sqlite {
    /// Opens an existing database; a missing file is a configuration error, not a new
    /// empty user table.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let c = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| DbError::Other(format!("{}: {e}", path.display())))?;
        c.busy_timeout(super::TIMEOUT).map_err(err)?;
        Ok(Sqlite(c))
    }
}

impl Conn for Sqlite {
    fn kind(&self) -> Kind {
        Kind::Sqlite
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, DbError> {
        let mut st = self.0.prepare_cached(sql).map_err(err)?;
        let names: Vec<String> = st.column_names().map(|s| s.to_string()).collect();
        let mut rows = st
            .query(rusqlite::params_from_iter(bind(params)))
            .map_err(err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(err)? {
            let mut row = Vec::with_capacity(names.len());
            for (i, n) in names.iter().enumerate() {
                let v = match r.get_ref(i).map_err(err)? {
                    ValueRef::Null => Val::Null,
                    ValueRef::Integer(i) => Val::Int(i),
                    ValueRef::Real(f) => Val::Int(f as i64),
                    ValueRef::Text(t) | ValueRef::Blob(t) => Val::Text(t.to_vec()),
                };
                row.push((n.clone(), v));
            }
            out.push(Row(row));
        }
        Ok(out)
    }

    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, DbError> {
        let mut st = self.0.prepare_cached(sql).map_err(err)?;
        st.execute(rusqlite::params_from_iter(bind(params)))
            .map(|n| n as u64)
            .map_err(err)
    }

    fn close(self: Box<Self>) {
        let _ = self.0.close();
    }
}
