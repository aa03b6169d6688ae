//! qmail's `users/cdb`: the `!domain-` entry vpopmail's vadddomain writes, which gives
//! the real domain (alias domains point at it) and the uid, gid and directory mail for
//! the domain belongs to.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ucspi::cdb::CdbFile;
use ucspi::errstr::io_str;

/// One domain's entry: its (real) name, and the owner and directory of its mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub dir: PathBuf,
}

/// Looks `domain` up in `QMAIL/users/cdb`. No cdb, or no entry: `Ok(None)`. A cdb that
/// cannot be read or is corrupt: an error (a corrupt file is not an open door).
pub fn lookup(qmail: &Path, domain: &str) -> Result<Option<Domain>, String> {
    let path = qmail.join("users/cdb");
    let f = match CdbFile::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("unable to read {}: {}", path.display(), io_str(&e))),
    };
    let key = format!("!{domain}-");
    let bad = || format!("{}: bad entry for {domain}", path.display());
    let data = match f.cdb().find(key.as_bytes()) {
        Ok(Some(d)) => d,
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("unable to read {}: {}", path.display(), io_str(&e))),
    };
    let mut it = data.split(|&b| b == 0);
    let mut field = || -> Result<String, String> {
        it.next()
            .and_then(|f| std::str::from_utf8(f).ok())
            .map(str::to_string)
            .ok_or_else(bad)
    };
    let real = field()?.to_ascii_lowercase();
    let uid: u32 = field()?.parse().map_err(|_| bad())?;
    let gid: u32 = field()?.parse().map_err(|_| bad())?;
    if !crate::loginname::domain_ok(&real) || real.is_empty() {
        return Err(bad());
    }
    let dir = it.next().map(OsStr::from_bytes).unwrap_or_default();
    Ok(Some(Domain {
        name: real,
        uid,
        gid,
        dir: PathBuf::from(dir),
    }))
}
