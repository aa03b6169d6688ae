use std::io::BufReader;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tcprules::compile::{compile, Failure, MAX_LINE};
use ucspi::msg::{Msg, EXIT_TEMP, EXIT_USAGE};

const MSG: Msg = Msg::new("tcprules");

fn main() {
    let args: Vec<_> = std::env::args_os().collect();
    let (Some(cdb), Some(tmp)) = (args.get(1), args.get(2)) else {
        MSG.usage("tcprules rules.cdb rules.tmp");
    };
    let (cdb_b, tmp_b) = (cdb.as_bytes(), tmp.as_bytes());
    let mut input = BufReader::with_capacity(64 * 1024, std::io::stdin().lock());
    match compile(&mut input, Path::new(cdb), Path::new(tmp)) {
        Ok(()) => {}
        Err(Failure::Create(e)) => MSG.fatal_sys(EXIT_TEMP, &[b"unable to create ", tmp_b], &e),
        Err(Failure::Write(e)) => MSG.fatal_sys(EXIT_TEMP, &[b"unable to write to ", tmp_b], &e),
        Err(Failure::Read(e)) => MSG.fatal_sys(EXIT_TEMP, &[b"unable to read input"], &e),
        Err(Failure::Rename(e)) => {
            MSG.fatal_sys(EXIT_TEMP, &[b"unable to move ", tmp_b, b" to ", cdb_b], &e)
        }
        Err(Failure::Parse(line, n)) => {
            // djb's line first, unchanged; then where it is, which his does not say.
            ucspi::msg::write_line(&[b"tcprules: fatal: unable to parse this line: ", &line]);
            MSG.fatal(
                EXIT_USAGE,
                &[b"that is line ", n.to_string().as_bytes(), b" of the input"],
            );
        }
        Err(Failure::TooLong(n)) => MSG.fatal(
            EXIT_USAGE,
            &[
                b"line ",
                n.to_string().as_bytes(),
                b" of the input is longer than ",
                MAX_LINE.to_string().as_bytes(),
                b" bytes",
            ],
        ),
    }
}
