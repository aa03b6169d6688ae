//! The database connections of one login: reads on the first, writes on the second when
//! vpopmail.mysql names an update account, opened only if a write happens.

use vpopdb::store::{self, Conn, DbError};
use vpopdb::target::{Target, Targets};

pub struct Db {
    read: Box<dyn Conn>,
    write_target: Option<Target>,
    write: Option<Box<dyn Conn>>,
}

impl Db {
    pub fn open(t: Targets) -> Result<Db, DbError> {
        Ok(Db {
            read: store::connect(&t.read)?,
            write_target: t.write,
            write: None,
        })
    }

    pub fn reader(&mut self) -> &mut dyn Conn {
        self.read.as_mut()
    }

    pub fn writer(&mut self) -> Result<&mut dyn Conn, DbError> {
        if let Some(t) = &self.write_target {
            if self.write.is_none() {
                self.write = Some(store::connect(t)?);
            }
            return Ok(self.write.as_deref_mut().expect("opened above"));
        }
        Ok(self.read.as_mut())
    }

    /// Closes both politely (before the exec, which would drop them without a word).
    pub fn close(self) {
        self.read.close();
        if let Some(w) = self.write {
            w.close();
        }
    }
}
