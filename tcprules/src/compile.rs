//! tcprules: rules on stdin → cdb in TMP → fsync → rename over CDB. The old CDB is
//! replaced only by that rename, so a bad line, a full disk or a kill leaves it as it was.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ucspi::rules::{CompileError, Compiler};

/// No real rules line comes near this; it bounds memory when stdin is endless garbage.
pub const MAX_LINE: usize = 1 << 20;

/// Why tcprules stopped, each mapped to djb's message and exit code by the binary.
#[derive(Debug)]
pub enum Failure {
    Create(io::Error),
    Write(io::Error),
    Read(io::Error),
    /// The offending line as djb quotes it, and its 1-based number.
    Parse(Vec<u8>, u64),
    TooLong(u64),
    Rename(io::Error),
}

/// Compiles `input` into `tmp`, then renames it to `cdb`.
pub fn compile<R: BufRead>(input: &mut R, cdb: &Path, tmp: &Path) -> Result<(), Failure> {
    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NONBLOCK)
        .open(tmp)
        .map_err(Failure::Create)?;
    let sync_handle = file.try_clone().map_err(Failure::Write)?;
    let mut make = cdb2::CDBMake::new(file).map_err(Failure::Write)?;
    let mut compiler = Compiler::new();
    let mut line = Vec::with_capacity(256);
    let mut lineno: u64 = 0;
    let mut write_err: Option<io::Error> = None;
    loop {
        line.clear();
        let n = input
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(Failure::Read)?;
        if n == 0 {
            break;
        }
        lineno += 1;
        if line.len() > MAX_LINE {
            return Err(Failure::TooLong(lineno));
        }
        let mut emit = |k: &[u8], d: &[u8]| make.add(k, d);
        match compiler.line(&line, &mut emit) {
            Ok(()) => {}
            Err(CompileError::Syntax) => {
                return Err(Failure::Parse(
                    ucspi::rules::quoted_line(&line).to_vec(),
                    lineno,
                ))
            }
            Err(CompileError::Io(e)) => {
                write_err = Some(e);
                break;
            }
        }
    }
    if let Some(e) = write_err {
        return Err(Failure::Write(e));
    }
    make.finish().map_err(Failure::Write)?;
    sync_handle.sync_all().map_err(Failure::Write)?;
    close(sync_handle).map_err(Failure::Write)?;
    std::fs::rename(tmp, cdb).map_err(Failure::Rename)
}

/// close(2) with its error reported (NFS reports write errors there), unlike `drop`.
fn close(f: File) -> io::Result<()> {
    nix::unistd::close(f).map_err(io::Error::from)
}
