//! A new password: from the terminal without echo (asked twice), else the first line of
//! stdin, for scripts. Never from the command line, where every local user could read it.

use zeroize::Zeroizing;

use crate::commands::{usage, Fail, R};

pub fn read() -> R<Zeroizing<Vec<u8>>> {
    use std::io::{BufRead, Read, Write};
    // SAFETY: isatty on stdin.
    let tty = unsafe { libc::isatty(0) } == 1;
    let read_line = || -> R<Zeroizing<Vec<u8>>> {
        let mut line = Zeroizing::new(Vec::new());
        std::io::stdin()
            .lock()
            .take(4096)
            .read_until(b'\n', &mut line)
            .map_err(|e| Fail::Temp(format!("unable to read the password: {e}")))?;
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Ok(line)
    };
    let pw = if tty {
        // SAFETY: termios calls on fd 0 with a zeroed struct filled by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        unsafe { libc::tcgetattr(0, &mut t) };
        let old = t;
        t.c_lflag &= !libc::ECHO;
        let ask = |prompt: &str| -> R<Zeroizing<Vec<u8>>> {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
            unsafe { libc::tcsetattr(0, libc::TCSAFLUSH, &t) };
            let r = read_line();
            unsafe { libc::tcsetattr(0, libc::TCSAFLUSH, &old) };
            eprintln!();
            r
        };
        let a = ask("New password: ")?;
        let b = ask("Retype new password: ")?;
        if *a != *b {
            return usage("the passwords differ");
        }
        a
    } else {
        read_line()?
    };
    if pw.is_empty() {
        return usage("empty password");
    }
    if pw.contains(&0) {
        return usage("password contains NUL");
    }
    Ok(pw)
}
