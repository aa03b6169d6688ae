//! PostgreSQL through the synchronous `postgres` crate.

use std::str::FromStr;

use postgres::types::{ToSql, Type};
use postgres::{Client, Config, NoTls};

use super::{Conn, DbError, Kind, Row, Val};

pub struct Postgres(Client);

fn err(e: postgres::Error) -> DbError {
    if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) {
        return DbError::NoTable;
    }
    // The crate's Display says only "db error"; the server's message is the useful part.
    let mut text = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    DbError::Other(text)
}

/// `?` placeholders become `$1`, `$2`, ... (our SQL has no `?` inside literals).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

enum P {
    Null(Option<String>),
    Int(i64),
    Text(String),
}

fn bind(params: &[Val]) -> Vec<P> {
    params
        .iter()
        .map(|v| match v {
            Val::Null => P::Null(None),
            Val::Int(i) => P::Int(*i),
            Val::Text(t) => P::Text(String::from_utf8_lossy(t).into_owned()),
        })
        .collect()
}

fn refs(p: &[P]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter()
        .map(|p| match p {
            P::Null(n) => n as &(dyn ToSql + Sync),
            P::Int(i) => i as &(dyn ToSql + Sync),
            P::Text(s) => s as &(dyn ToSql + Sync),
        })
        .collect()
}

impl Postgres {
    pub fn open(url: &str) -> Result<Self, DbError> {
        let mut c = Config::from_str(url).map_err(|e| DbError::Other(e.to_string()))?;
        c.connect_timeout(super::TIMEOUT);
        c.connect(NoTls).map(Postgres).map_err(err)
    }
}

fn val(r: &postgres::Row, i: usize) -> Result<Val, DbError> {
    let t = r.columns()[i].type_();
    let conv = |e: postgres::Error| DbError::Other(e.to_string());
    Ok(if *t == Type::INT2 {
        r.try_get::<_, Option<i16>>(i)
            .map_err(conv)?
            .map_or(Val::Null, |v| Val::Int(v.into()))
    } else if *t == Type::INT4 {
        r.try_get::<_, Option<i32>>(i)
            .map_err(conv)?
            .map_or(Val::Null, |v| Val::Int(v.into()))
    } else if *t == Type::INT8 {
        r.try_get::<_, Option<i64>>(i)
            .map_err(conv)?
            .map_or(Val::Null, Val::Int)
    } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(t) {
        r.try_get::<_, Option<String>>(i)
            .map_err(conv)?
            // char(n) columns come back blank-padded.
            .map_or(Val::Null, |v| {
                Val::Text(
                    if *t == Type::BPCHAR {
                        v.trim_end().into()
                    } else {
                        v
                    }
                    .into_bytes(),
                )
            })
    } else {
        // A column we do not read (ids, timestamps of a site's own schema).
        Val::Null
    })
}

impl Conn for Postgres {
    fn kind(&self) -> Kind {
        Kind::Postgres
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, DbError> {
        let p = bind(params);
        let rows = self.0.query(&numbered(sql), &refs(&p)).map_err(err)?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| Ok((r.columns()[i].name().to_string(), val(r, i)?)))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect()
    }

    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, DbError> {
        let p = bind(params);
        self.0.execute(&numbered(sql), &refs(&p)).map_err(err)
    }

    fn close(self: Box<Self>) {
        let _ = self.0.close();
    }
}
