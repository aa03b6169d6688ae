//! A rules cdb written as tcprules writes it: records into a temporary file, fsync,
//! rename over the cdb. The old cdb is replaced only by that rename, so a bad line, a
//! full disk or a kill leaves it as it was. tcprules and the POP-before-SMTP rebuild
//! (vpopdb's `relay`) both write through this one [`Writer`], so their bytes agree.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::rules::{CompileError, Compiler};

/// No real rules line comes near this; it bounds memory when the input is endless garbage.
pub const MAX_LINE: usize = 1 << 20;

/// Why a cdb was not written, each mapped to djb's message and exit code by tcprules.
#[derive(Debug)]
pub enum Failure {
    Create(io::Error),
    Write(io::Error),
    Read(io::Error),
    /// The offending line as djb quotes it, and its 1-based number in its input.
    Parse(Vec<u8>, u64),
    TooLong(u64),
    Rename(io::Error),
}

/// A cdb being written into its temporary file.
pub struct Writer {
    make: Option<cdb2::CDBMake>,
    /// The same file, for fchmod, fchown, fsync and a close whose error is seen.
    sync_handle: Option<File>,
    compiler: Compiler,
    line: Vec<u8>,
    tmp: PathBuf,
    /// Set when the temporary name is ours (not the caller's): removed on failure.
    own_tmp: bool,
}

impl Writer {
    /// tcprules' writer: `tmp` is the caller's name, created with mode 0644 less the umask
    /// and, as djb's, left where it is when something fails.
    pub fn create(tmp: &Path) -> Result<Writer, Failure> {
        let file = open_trunc(tmp, libc::O_NONBLOCK)?;
        Self::on(file, tmp.to_path_buf(), false)
    }

    /// A writer for `cdb` through a temporary file of its own beside it (`CDB.tmp.PID`),
    /// readable by all whatever the umask (tcpserver may read it as another user), and
    /// removed unless [`Writer::commit`] renames it into place.
    pub fn beside(cdb: &Path) -> Result<Writer, Failure> {
        let tmp = tmp_beside(cdb);
        let file = open_trunc(&tmp, libc::O_NOFOLLOW)?;
        let w = Self::on(file, tmp, true)?;
        w.handle()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(Failure::Write)?;
        Ok(w)
    }

    fn on(file: File, tmp: PathBuf, own_tmp: bool) -> Result<Writer, Failure> {
        // Built before anything can fail, so that Drop removes a temporary file of ours.
        let mut w = Writer {
            make: None,
            sync_handle: Some(file.try_clone().map_err(Failure::Write)?),
            compiler: Compiler::new(),
            line: Vec::with_capacity(256),
            tmp,
            own_tmp,
        };
        w.make = Some(cdb2::CDBMake::new(file).map_err(Failure::Write)?);
        Ok(w)
    }

    fn handle(&self) -> &File {
        self.sync_handle.as_ref().expect("taken only by commit")
    }

    /// The temporary file's name.
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Compiles every line of `input`, numbering them from 1 for [`Failure::Parse`]. Each
    /// line stands alone: a last line without a newline does not run into the next input's.
    pub fn add_lines<R: BufRead>(&mut self, input: &mut R) -> Result<(), Failure> {
        let make = self.make.as_mut().expect("made in Writer::on");
        let mut lineno: u64 = 0;
        loop {
            self.line.clear();
            let n = input
                .by_ref()
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut self.line)
                .map_err(Failure::Read)?;
            if n == 0 {
                return Ok(());
            }
            lineno += 1;
            if self.line.len() > MAX_LINE {
                return Err(Failure::TooLong(lineno));
            }
            let mut emit = |k: &[u8], d: &[u8]| make.add(k, d);
            match self.compiler.line(&self.line, &mut emit) {
                Ok(()) => {}
                Err(CompileError::Syntax) => {
                    let quoted = crate::rules::quoted_line(&self.line).to_vec();
                    return Err(Failure::Parse(quoted, lineno));
                }
                Err(CompileError::Io(e)) => return Err(Failure::Write(e)),
            }
        }
    }

    /// Finishes the cdb, syncs it and renames it to `cdb`. A temporary file of our own
    /// takes the owner and group of the cdb it replaces where the process may give them
    /// (as root), so that an administrator's chown outlives every rebuild.
    pub fn commit(mut self, cdb: &Path) -> Result<(), Failure> {
        let make = self.make.take().expect("made in Writer::on");
        make.finish().map_err(Failure::Write)?;
        if self.own_tmp {
            if let Ok(old) = std::fs::metadata(cdb) {
                // EPERM (not root, someone else's file) keeps our own ids: still readable.
                let _ = std::os::unix::fs::fchown(self.handle(), Some(old.uid()), Some(old.gid()));
            }
        }
        let handle = self.sync_handle.take().expect("taken only here");
        handle.sync_all().map_err(Failure::Write)?;
        close(handle).map_err(Failure::Write)?;
        std::fs::rename(&self.tmp, cdb).map_err(Failure::Rename)?;
        self.own_tmp = false;
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.own_tmp {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The temporary file of [`Writer::beside`]: `CDB.tmp.PID`, as vpopmail names tcprules'.
pub fn tmp_beside(cdb: &Path) -> PathBuf {
    let mut tmp = cdb.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    PathBuf::from(tmp)
}

/// djb's `open_trunc`: mode 0644 less the umask; `flags` beside.
fn open_trunc(path: &Path, flags: i32) -> Result<File, Failure> {
    OpenOptions::new()
        .write(true)
        .read(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(flags)
        .open(path)
        .map_err(Failure::Create)
}

/// close(2) with its error reported (NFS reports write errors there), unlike `drop`.
fn close(f: File) -> io::Result<()> {
    nix::unistd::close(f).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ucspi-rf-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn records(cdb: &Path, key: &[u8]) -> Option<Vec<u8>> {
        let f = crate::cdb::CdbFile::open(cdb).unwrap();
        f.cdb().find(key).unwrap().map(<[u8]>::to_vec)
    }

    #[test]
    fn inputs_in_turn_and_failures_leave_nothing() {
        let d = dir("turns");
        let cdb = d.join("r.cdb");
        let mut w = Writer::beside(&cdb).unwrap();
        let tmp = w.tmp().to_path_buf();
        w.add_lines(&mut &b"1.2.3.4:deny"[..]).unwrap();
        w.add_lines(&mut &b"5.6.7.8:allow,X=\"y\"\n"[..]).unwrap();
        w.commit(&cdb).unwrap();
        assert!(!tmp.exists());
        assert_eq!(records(&cdb, b"1.2.3.4"), Some(b"D\0".to_vec()));
        assert_eq!(records(&cdb, b"5.6.7.8"), Some(b"+X=y\0".to_vec()));
        let before = std::fs::read(&cdb).unwrap();

        let mut w = Writer::beside(&cdb).unwrap();
        match w.add_lines(&mut &b"# c\n\nbad:line\n"[..]) {
            Err(Failure::Parse(l, 3)) => assert_eq!(l, b"bad:line"),
            other => panic!("{other:?}"),
        }
        drop(w);
        assert!(!tmp.exists(), "the temporary file is removed");
        assert_eq!(std::fs::read(&cdb).unwrap(), before);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_callers_tmp_is_left_as_djb_leaves_it() {
        let d = dir("djb");
        let tmp = d.join("r.tmp");
        let mut w = Writer::create(&tmp).unwrap();
        assert!(w.add_lines(&mut &b"x:nonsense\n"[..]).is_err());
        drop(w);
        assert!(tmp.exists());
        let _ = std::fs::remove_dir_all(&d);
    }
}
