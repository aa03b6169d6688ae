//! MariaDB/MySQL through the synchronous `mysql` crate, over a unix socket or TCP.

use mysql::prelude::Queryable;
use mysql::{Conn as MyConn, OptsBuilder, Params, Value};

use super::{Conn, DbError, Kind, Row, Val};
use crate::config::MysqlTarget;

pub struct Mysql(MyConn);

fn err(e: mysql::Error) -> DbError {
    match &e {
        // ER_NO_SUCH_TABLE
        mysql::Error::MySqlError(m) if m.code == 1146 => DbError::NoTable,
        _ => DbError::Other(e.to_string()),
    }
}

fn bind(params: &[Val]) -> Params {
    if params.is_empty() {
        return Params::Empty;
    }
    Params::Positional(
        params
            .iter()
            .map(|v| match v {
                Val::Null => Value::NULL,
                Val::Int(i) => Value::Int(*i),
                Val::Text(t) => Value::Bytes(t.clone()),
            })
            .collect(),
    )
}

impl Mysql {
    pub fn open(t: &MysqlTarget) -> Result<Self, DbError> {
        let mut o = OptsBuilder::new()
            .user(Some(t.user.as_str()))
            .pass(Some(t.pass.as_str()))
            .db_name(Some(t.db.as_str()))
            // Without this the crate connects over TCP first and then reconnects to the
            // socket the server reports: two connects per login.
            .prefer_socket(false)
            .tcp_connect_timeout(Some(super::TIMEOUT))
            .read_timeout(Some(super::TIMEOUT))
            .write_timeout(Some(super::TIMEOUT))
            .stmt_cache_size(Some(8))
            // Saves the `SELECT @@max_allowed_packet` round trip; our packets are tiny.
            .max_allowed_packet(Some(1024 * 1024));
        o = match &t.socket {
            Some(s) => o.socket(Some(s.as_str())),
            None => o.ip_or_hostname(Some(t.host.as_str())).tcp_port(t.port),
        };
        MyConn::new(o).map(Mysql).map_err(err)
    }
}

fn val(v: &Value) -> Val {
    match v {
        Value::NULL => Val::Null,
        Value::Int(i) => Val::Int(*i),
        Value::UInt(u) => Val::Int(*u as i64),
        Value::Bytes(b) => Val::Text(b.clone()),
        Value::Float(f) => Val::Int(*f as i64),
        Value::Double(f) => Val::Int(*f as i64),
        other => Val::Text(other.as_sql(true).into_bytes()),
    }
}

impl Conn for Mysql {
    fn kind(&self) -> Kind {
        Kind::Mysql
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, DbError> {
        let rows: Vec<mysql::Row> = self.0.exec(sql, bind(params)).map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| {
                Row(r
                    .columns_ref()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        (
                            c.name_str().into_owned(),
                            r.as_ref(i).map(val).unwrap_or(Val::Null),
                        )
                    })
                    .collect())
            })
            .collect())
    }

    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, DbError> {
        self.0.exec_drop(sql, bind(params)).map_err(err)?;
        Ok(self.0.affected_rows())
    }

    fn close(self: Box<Self>) {
        // Dropping the crate's connection sends COM_QUIT.
        drop(self.0);
    }
}
