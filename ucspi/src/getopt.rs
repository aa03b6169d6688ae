//! djb's getopt conventions (his `sgetopt`): clustered flags (`-vRHl0`), values attached
//! (`-c40`) or in the next argument (`-c 40`), parsing stops at the first operand or a
//! lone `-`, `--` ends the options. clap cannot stop at the first operand and lexopt
//! would still need the exact error lines, so this small scanner does it.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// One parsed option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opt {
    /// A flag that takes no value.
    Flag(u8),
    /// An option with its value.
    Value(u8, OsString),
}

/// What went wrong; the caller prints its usage line after `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptError {
    Illegal(u8),
    NeedsArgument(u8),
}

impl OptError {
    /// djb's wording, e.g. `tcpserver: illegal option -- z`.
    pub fn message(&self, progname: &str) -> Vec<u8> {
        let (what, c) = match self {
            OptError::Illegal(c) => ("illegal option -- ", *c),
            OptError::NeedsArgument(c) => ("option requires an argument -- ", *c),
        };
        let mut v = Vec::new();
        v.extend_from_slice(progname.as_bytes());
        v.extend_from_slice(b": ");
        v.extend_from_slice(what.as_bytes());
        v.push(c);
        v
    }
}

/// The base name of argv[0], which sgetopt puts in front of its complaints.
pub fn progname(argv0: Option<&OsStr>, fallback: &str) -> String {
    match argv0 {
        Some(a) => {
            let b = a.as_bytes();
            let base = b.rsplit(|&c| c == b'/').next().unwrap_or(b);
            String::from_utf8_lossy(base).into_owned()
        }
        None => fallback.to_string(),
    }
}

/// Parses `args` (without argv[0]) against a spec like `"1UXpPhHrRoOdDqQvc:x:B:"`, where a
/// letter followed by `:` takes a value. Returns the options in order and the index of the
/// first operand.
pub fn parse(args: &[OsString], spec: &str) -> Result<(Vec<Opt>, usize), OptError> {
    let spec = spec.as_bytes();
    let takes_value = |c: u8| -> Option<bool> {
        let i = spec.iter().position(|&s| s == c && c != b':')?;
        Some(spec.get(i + 1) == Some(&b':'))
    };
    let mut opts = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        if a.len() < 2 || a[0] != b'-' {
            break;
        }
        if a == b"--" {
            i += 1;
            break;
        }
        let mut j = 1;
        while j < a.len() {
            let c = a[j];
            match takes_value(c) {
                None => return Err(OptError::Illegal(c)),
                Some(false) => {
                    opts.push(Opt::Flag(c));
                    j += 1;
                }
                Some(true) => {
                    if j + 1 < a.len() {
                        opts.push(Opt::Value(c, OsStr::from_bytes(&a[j + 1..]).to_os_string()));
                    } else if i + 1 < args.len() {
                        i += 1;
                        opts.push(Opt::Value(c, args[i].clone()));
                    } else {
                        return Err(OptError::NeedsArgument(c));
                    }
                    break;
                }
            }
        }
        i += 1;
    }
    Ok((opts, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn clusters_and_attached_values() {
        let (o, i) = parse(
            &os(&["-vRHl0", "-c40", "-x", "r.cdb", "0", "25", "-v"]),
            "vRHl:c:x:",
        )
        .unwrap();
        assert_eq!(
            o,
            vec![
                Opt::Flag(b'v'),
                Opt::Flag(b'R'),
                Opt::Flag(b'H'),
                Opt::Value(b'l', "0".into()),
                Opt::Value(b'c', "40".into()),
                Opt::Value(b'x', "r.cdb".into()),
            ]
        );
        assert_eq!(i, 4);
    }

    #[test]
    fn stops_at_operand_dash_and_double_dash() {
        assert_eq!(parse(&os(&["-v", "-", "-q"]), "vq").unwrap().1, 1);
        assert_eq!(parse(&os(&["-v", "--", "-q"]), "vq").unwrap().1, 2);
        assert_eq!(parse(&os(&["host", "-q"]), "vq").unwrap().1, 0);
    }

    #[test]
    fn errors() {
        assert_eq!(parse(&os(&["-z"]), "v"), Err(OptError::Illegal(b'z')));
        assert_eq!(
            parse(&os(&["-vc"]), "vc:"),
            Err(OptError::NeedsArgument(b'c'))
        );
        assert_eq!(
            OptError::Illegal(b'z').message("tcpserver"),
            b"tcpserver: illegal option -- z".to_vec()
        );
    }
}
