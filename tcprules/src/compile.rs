//! tcprules: rules on stdin → cdb in TMP → fsync → rename over CDB, through the writer
//! it shares with the POP-before-SMTP rebuild (`ucspi::rules_file`).

use std::io::BufRead;
use std::path::Path;

use ucspi::rules_file::Writer;
pub use ucspi::rules_file::{Failure, MAX_LINE};

/// Compiles `input` into `tmp`, then renames it to `cdb`.
pub fn compile<R: BufRead>(input: &mut R, cdb: &Path, tmp: &Path) -> Result<(), Failure> {
    let mut w = Writer::create(tmp)?;
    w.add_lines(input)?;
    w.commit(cdb)
}
