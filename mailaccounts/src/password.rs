//! A new password: from the terminal without echo (asked twice), else the first line of
//! stdin, for scripts. Never from the command line, where every local user could read it.

use std::io::{BufRead, ErrorKind, Read};

use zeroize::Zeroizing;

use crate::commands::{usage, Fail, R};

pub fn read() -> R<Zeroizing<Vec<u8>>> {
    let pw = if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        let a = ask("New password: ")?;
        let b = ask("Retype new password: ")?;
        if *a != *b {
            return usage("the passwords differ");
        }
        a
    } else {
        first_line()?
    };
    if pw.is_empty() {
        return usage("empty password");
    }
    if pw.contains(&0) {
        return usage("password contains NUL");
    }
    Ok(pw)
}

/// One no-echo answer through rpassword, read from the terminal that is stdin (not
/// rpassword's default /dev/tty, which need not be the same), the prompt on stderr.
fn ask(prompt: &str) -> R<Zeroizing<Vec<u8>>> {
    let config = rpassword::ConfigBuilder::new()
        .input_file_path("/dev/stdin")
        .output_writer(std::io::stderr())
        .build();
    match rpassword::prompt_password_with_config(prompt, config) {
        Ok(s) => Ok(Zeroizing::new(Zeroizing::new(s).as_bytes().to_vec())),
        // End of input on an empty line: no password, as an empty line is.
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(Zeroizing::new(Vec::new())),
        Err(e) => Err(read_error(e)),
    }
}

/// rpassword reads /dev/tty when stdin is not a terminal: a script's password comes from
/// its stdin instead, the first line of it.
fn first_line() -> R<Zeroizing<Vec<u8>>> {
    let mut line = Zeroizing::new(Vec::new());
    std::io::stdin()
        .lock()
        .take(4096)
        .read_until(b'\n', &mut line)
        .map_err(read_error)?;
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(line)
}

fn read_error(e: std::io::Error) -> Fail {
    Fail::Temp(format!("unable to read the password: {e}"))
}
