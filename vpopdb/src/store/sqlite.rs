//! The embedded back end (SQLite, bundled).

use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{Conn, DbError, Kind, Row, Val};

pub struct Sqlite(Connection, PathBuf);

/// The size of write-ahead log at which `close` checkpoints and truncates it. A login
/// adds one page to the log (lastauth is updated in place), so this is a checkpoint (two
/// fsyncs) every ~30 logins, and each login's recovery reads 64 KiB of log on average.
const WAL_LIMIT: u64 = 128 * 1024;

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
        // No lookaside allocator and no bulk page-cache allocation: SQLite threads a free
        // list through each whole buffer when a connection opens, two dozen page faults for
        // a process that reads a handful of pages and runs four statements.
        // SAFETY: configuration calls with their integer and null-pointer arguments, made
        // before the library's first use in this process (or else refused harmlessly with
        // SQLITE_MISUSE).
        unsafe {
            use rusqlite::ffi;
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_LOOKASIDE, 0i32, 0i32);
            ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_PAGECACHE,
                std::ptr::null_mut::<std::ffi::c_void>(),
                0i32,
                0i32,
            );
        }
        let c = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| DbError::Other(format!("{}: {e}", path.display())))?;
        c.busy_timeout(super::TIMEOUT).map_err(err)?;
        // A double-quoted name that matches no column would otherwise be taken as a string
        // (SQLite's old leniency): a table missing a column must be an error, not a query
        // that quietly finds no row.
        c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DML, false)
            .map_err(err)?;
        // Every login writes (lastauth, lockout). In the default rollback-journal mode
        // each write costs four fsyncs, ~10 ms here; in WAL mode with synchronous=NORMAL
        // a commit costs none and the file still cannot be corrupted by a crash (a power
        // loss may lose the last bookkeeping rows). WAL is a property of the file, so this
        // switches it once; a read-only file or directory just stays as it is.
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            let _ = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0));
        }
        c.execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(err)?;
        // The last connection to close would otherwise checkpoint (two fsyncs) every
        // time, and each login is a last connection. Instead `close` checkpoints once the
        // log has grown past WAL_LIMIT: short, because every process that opens the file
        // alone first reads the whole log back (WAL recovery), and SQLite's own
        // auto-checkpoint never restarts the log when every connection is a new process.
        let _ = c.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        );
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Sqlite(c, PathBuf::from(wal)))
    }
}

impl Conn for Sqlite {
    fn kind(&self) -> Kind {
        Kind::Sqlite
    }

    fn run(&mut self, sql: &str, params: &[Val]) -> Result<(Vec<Row>, u64), DbError> {
        let mut st = self.0.prepare_cached(sql).map_err(err)?;
        if st.column_count() == 0 {
            let n = st
                .execute(rusqlite::params_from_iter(bind(params)))
                .map_err(err)?;
            return Ok((Vec::new(), n as u64));
        }
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
        Ok((out, 0))
    }

    fn close(self: Box<Self>) {
        if std::fs::metadata(&self.1).is_ok_and(|m| m.len() > WAL_LIMIT) {
            let _ = self.0.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        }
        let _ = self.0.close();
    }
}
