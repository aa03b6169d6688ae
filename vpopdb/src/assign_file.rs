//! qmail's `users/assign`, where vadddomain records a domain's owner and directory
//! (`+example.com-:example.com:89:89:/home/vpopmail/domains/example.com:-::`), and its
//! compiled form `users/cdb`, built exactly as qmail-newu builds it, so that qmail-lspawn,
//! vpopmail and our checkpassword all read the same entry.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One domain's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub dir: PathBuf,
}

/// The lines of users/assign, kept as they are, with the domains we understand.
pub struct Assign {
    pub path: PathBuf,
    lines: Vec<String>,
    _lock: std::fs::File,
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

impl Assign {
    /// Reads `QMAIL/users/assign` (missing: empty) under an exclusive lock held until drop,
    /// so two runs do not lose each other's domains.
    pub fn open(qmail: &Path) -> Result<Assign, String> {
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
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(std::os::unix::io::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0
        {
            return Err(format!(
                "unable to lock {}: {}",
                lockp.display(),
                std::io::Error::last_os_error()
            ));
        }
        let path = users.join("assign");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("unable to read {}: {e}", path.display())),
        };
        let mut lines = Vec::new();
        for l in text.lines() {
            if l.starts_with('.') {
                break;
            }
            lines.push(l.to_string());
        }
        Ok(Assign {
            path,
            lines,
            _lock: lock,
        })
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
        replace(&self.path, text.as_bytes(), 0o644)?;
        let cdb = newu(&self.lines)?;
        replace(&dir.join("cdb"), &cdb, 0o644)
    }
}

fn replace(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let e = |what: &str, err: std::io::Error| format!("unable to {what} {}: {err}", tmp.display());
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|err| e("create", err))?;
    // As qmail-newu (umask 033): readable by all whatever the caller's umask.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(|err| e("chmod", err))?;
    f.write_all(data).map_err(|err| e("write", err))?;
    f.sync_all().map_err(|err| e("write", err))?;
    std::fs::rename(&tmp, path).map_err(|err| {
        format!(
            "unable to move {} to {}: {err}",
            tmp.display(),
            path.display()
        )
    })
}

/// qmail-newu: `=` lines keyed `!local\0`, `+` lines keyed `!prefix` (their last
/// characters collected under the empty key), data the next six fields NUL-separated.
pub fn newu(lines: &[String]) -> Result<Vec<u8>, String> {
    Ok(make_cdb(&records(lines)?))
}

/// users/assign's lines as qmail-newu's records, in its order.
fn records(lines: &[String]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, String> {
    let mut recs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
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

/// djb's cdb format.
pub fn make_cdb(recs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0u8; 2048];
    let mut slots: Vec<Vec<(u32, u32)>> = vec![Vec::new(); 256];
    for (k, v) in recs {
        let h = ucspi::cdb::hash(k);
        slots[(h & 255) as usize].push((h, out.len() as u32));
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    for (n, s) in slots.iter().enumerate() {
        let len = s.len() * 2;
        let pos = out.len() as u32;
        out[n * 8..n * 8 + 4].copy_from_slice(&pos.to_le_bytes());
        out[n * 8 + 4..n * 8 + 8].copy_from_slice(&(len as u32).to_le_bytes());
        let mut table = vec![(0u32, 0u32); len];
        for &(h, p) in s {
            let mut j = ((h >> 8) as usize) % len;
            while table[j].1 != 0 {
                j = (j + 1) % len;
            }
            table[j] = (h, p);
        }
        for (h, p) in table {
            out.extend_from_slice(&h.to_le_bytes());
            out.extend_from_slice(&p.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newu_matches_qmail() {
        let lines = vec![
            "+example.com-:example.com:89:90:/home/vpopmail/domains/example.com:-::".to_string(),
            "=joe:joe:1000:1000:/home/joe:::".to_string(),
        ];
        let cdb = newu(&lines).unwrap();
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

    /// The cdb2 crate's writer, fed the same records in the same order.
    fn cdbmake(recs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let path = std::env::temp_dir().join(format!(
            "vpopdb-cdbmake-{}-{}",
            std::process::id(),
            recs.len()
        ));
        let f = std::fs::File::create(&path).unwrap();
        let mut m = cdb2::CDBMake::new(f).unwrap();
        for (k, v) in recs {
            m.add(k, v).unwrap();
        }
        m.finish().unwrap();
        let out = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        out
    }

    #[test]
    fn cdbmake_writes_the_same_bytes() {
        // qmail-newu's records for a users/assign of many domains and users (keys that
        // collide in slots and tables, the empty wildcard key, a repeated key), an
        // empty file, and one record.
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
        for set in [lines.clone(), Vec::new(), lines[..1].to_vec()] {
            let recs = records(&set).unwrap();
            assert_eq!(cdbmake(&recs), make_cdb(&recs), "{} lines", set.len());
        }
    }
}
