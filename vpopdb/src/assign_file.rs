//! qmail's `users/assign`, where vadddomain records a domain's owner and directory
//! (`+example.com-:example.com:89:89:/home/vpopmail/domains/example.com:-::`), and its
//! compiled form `users/cdb`, built exactly as qmail-newu builds it, so that qmail-lspawn,
//! vpopmail and our checkpassword all read the same entry.

use std::fs::File;

use nix::fcntl::{Flock, FlockArg};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use crate::assign::Domain;

/// A cdb record: key and data.
pub type Record = (Vec<u8>, Vec<u8>);

/// The lines of users/assign, kept as they are, with the domains we understand.
pub struct AssignFile {
    pub path: PathBuf,
    lines: Vec<String>,
    _lock: Flock<File>,
}

fn domain_of(line: &str) -> Option<Domain> {
    let rest = line.strip_prefix('+')?;
    let f: Vec<&str> = rest.split(':').collect();
    if f.len() < 5 {
        return None;
    }
    let name = f[0].strip_suffix('-')?;
    if name.is_empty() || f[1] != name {
        return None;
    }
    Some(Domain {
        name: name.to_string(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        dir: PathBuf::from(f[4]),
    })
}

/// users/assign's lines up to its closing `.` (none when the file is missing).
fn read_lines(path: &Path) -> Result<Vec<String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("unable to read {}: {e}", path.display())),
    };
    Ok(text
        .lines()
        .take_while(|l| !l.starts_with('.'))
        .map(str::to_string)
        .collect())
}

impl AssignFile {
    /// Reads `QMAIL/users/assign` (missing: empty) under an exclusive lock held until drop,
    /// so two runs do not lose each other's domains.
    pub fn open(qmail: &Path) -> Result<AssignFile, String> {
        let users = qmail.join("users");
        std::fs::create_dir_all(&users)
            .map_err(|e| format!("unable to create {}: {e}", users.display()))?;
        let lockp = users.join("assign.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lockp)
            .map_err(|e| format!("unable to open {}: {e}", lockp.display()))?;
        let lock = Flock::lock(lock, FlockArg::LockExclusive).map_err(|(_, e)| {
            format!(
                "unable to lock {}: {}",
                lockp.display(),
                std::io::Error::from_raw_os_error(e as i32)
            )
        })?;
        let path = users.join("assign");
        let lines = read_lines(&path)?;
        Ok(AssignFile {
            path,
            lines,
            _lock: lock,
        })
    }

    /// The domains of `QMAIL/users/assign` (none when it is missing), read without the
    /// lock or creating anything: for readers that change nothing.
    pub fn read_domains(qmail: &Path) -> Result<Vec<Domain>, String> {
        let lines = read_lines(&qmail.join("users/assign"))?;
        Ok(lines.iter().filter_map(|l| domain_of(l)).collect())
    }

    pub fn domains(&self) -> Vec<Domain> {
        self.lines.iter().filter_map(|l| domain_of(l)).collect()
    }

    pub fn find(&self, name: &str) -> Option<Domain> {
        self.domains().into_iter().find(|d| d.name == name)
    }

    pub fn add(&mut self, d: &Domain) {
        self.remove(&d.name);
        self.lines.push(format!(
            "+{0}-:{0}:{1}:{2}:{3}:-::",
            d.name,
            d.uid,
            d.gid,
            d.dir.display()
        ));
    }

    pub fn remove(&mut self, name: &str) {
        self.lines
            .retain(|l| domain_of(l).is_none_or(|d| d.name != name));
    }

    /// Writes users/assign and then users/cdb, each to a temporary file renamed into place.
    pub fn save(&self) -> Result<(), String> {
        let mut text = String::new();
        for l in &self.lines {
            text.push_str(l);
            text.push('\n');
        }
        text.push_str(".\n");
        let dir = self.path.parent().unwrap_or(Path::new("."));
        replace(&self.path, 0o644, |mut f| f.write_all(text.as_bytes()))?;
        let recs = newu(&self.lines)?;
        replace(&dir.join("cdb"), 0o644, |f| write_cdb(f, &recs))
    }
}

/// Writes `recs` as a cdb, through the cdb2 crate's writer (the one tcprules uses).
fn write_cdb(f: &File, recs: &[Record]) -> std::io::Result<()> {
    let mut make = cdb2::CDBMake::new(f.try_clone()?)?;
    for (k, v) in recs {
        make.add(k, v)?;
    }
    make.finish()
}

/// Replaces `path` by a file of `mode` that `write` fills: a temporary file, synced,
/// renamed into place.
fn replace(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&File) -> std::io::Result<()>,
) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let e = |what: &str, err: std::io::Error| format!("unable to {what} {}: {err}", tmp.display());
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|err| e("create", err))?;
    // As qmail-newu (umask 033): readable by all whatever the caller's umask.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(|err| e("chmod", err))?;
    write(&f).map_err(|err| e("write", err))?;
    f.sync_all().map_err(|err| e("write", err))?;
    std::fs::rename(&tmp, path).map_err(|err| {
        format!(
            "unable to move {} to {}: {err}",
            tmp.display(),
            path.display()
        )
    })
}

/// qmail-newu's records for users/assign's lines, in its order: `=` lines keyed
/// `!local\0`, `+` lines keyed `!prefix` (their last characters collected under the
/// empty key), data the next six fields NUL-separated.
pub fn newu(lines: &[String]) -> Result<Vec<Record>, String> {
    let mut recs: Vec<Record> = Vec::new();
    let mut wild: Vec<u8> = Vec::new();
    for l in lines {
        let b = l.as_bytes();
        let bad = || format!("users/assign: bad line {l:?}");
        let i = b.iter().position(|&c| c == b':').ok_or_else(bad)?;
        if i == 0 || b.contains(&0) {
            return Err(bad());
        }
        let mut key = vec![b'!'];
        key.extend_from_slice(&b[1..i]);
        match b[0] {
            b'+' => {
                if i >= 2 && !wild.contains(&b[i - 1]) {
                    wild.push(b[i - 1]);
                }
            }
            b'=' => key.push(0),
            _ => return Err(bad()),
        }
        key.make_ascii_lowercase();
        let mut data = b[i + 1..].to_vec();
        let mut colons = 0;
        let mut end = data.len();
        for (j, c) in data.iter_mut().enumerate() {
            if *c == b':' {
                *c = 0;
                colons += 1;
                if colons == 6 {
                    end = j;
                    break;
                }
            }
        }
        if colons < 6 {
            return Err(bad());
        }
        data.truncate(end);
        recs.push((key, data));
    }
    recs.push((Vec::new(), wild));
    Ok(recs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// users/cdb as `save` writes it for `lines`.
    fn cdb_of(lines: &[String]) -> Vec<u8> {
        let path = std::env::temp_dir().join(format!(
            "vpopdb-newu-{}-{}",
            std::process::id(),
            lines.len()
        ));
        let recs = newu(lines).unwrap();
        replace(&path, 0o644, |f| write_cdb(f, &recs)).unwrap();
        let out = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        out
    }

    #[test]
    fn newu_matches_qmail() {
        let lines = vec![
            "+example.com-:example.com:89:90:/home/vpopmail/domains/example.com:-::".to_string(),
            "=joe:joe:1000:1000:/home/joe:::".to_string(),
        ];
        let cdb = cdb_of(&lines);
        let c = ucspi::cdb::Cdb::new(&cdb);
        assert_eq!(
            c.find(b"!example.com-").unwrap(),
            Some(&b"example.com\x0089\x0090\x00/home/vpopmail/domains/example.com\x00-\x00"[..])
        );
        assert_eq!(
            c.find(b"!joe\0").unwrap(),
            Some(&b"joe\x001000\x001000\x00/home/joe\x00\x00"[..])
        );
        assert_eq!(c.find(b"").unwrap(), Some(&b"-"[..]));
        assert!(newu(&["+x:short".to_string()]).is_err());
    }

    #[test]
    fn users_cdb_bytes_as_before() {
        // The writer this replaced (djb's format written by hand, compared byte for byte
        // with cdb2's CDBMake for these records before it was removed) gave these 91,779
        // bytes for qmail-newu's records of 1,401 lines: slot and table collisions, the
        // empty wildcard key, a repeated key.
        use sha2::{Digest, Sha256};
        let mut lines = Vec::new();
        for i in 0..700 {
            lines.push(format!(
                "+d{i}.example-:d{i}.example:89:89:/home/v/d{i}:-::"
            ));
            lines.push(format!(
                "=u{i}:u{i}:{}:{}:/home/u{i}:::",
                1000 + i,
                1000 + i
            ));
        }
        lines.push("+d1.example-:d1.example:90:90:/elsewhere:-::".to_string());
        let b = cdb_of(&lines);
        let h: String = Sha256::digest(&b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        assert_eq!(
            (b.len(), h.as_str()),
            (
                91_779,
                "7726523d954549e8aded2702c3a13160d30b4c26cd65f959195365fbfc0dc4c9"
            )
        );
        // No line: the empty key alone, as qmail-newu writes it.
        assert_eq!(cdb_of(&[]).len(), 2048 + 8 + 2 * 8);
    }
}
