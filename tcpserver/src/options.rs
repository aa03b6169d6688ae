//! Command line: djb's option letters and getopt behaviour, plus `-4`/`-6` (the IPv6
//! forks) and `-C n[:msg]` (per-client-IP limit, as tcpsvd). sslserver parses its command
//! line here too ([`parse_as`] with [`Flavour::Ssl`]): the letters both programs share
//! mean the same, with ucspi-ssl's defaults, and its own letters go to its callback.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use ucspi::fmt::scan_ulong;
use ucspi::getopt::{self, Opt};
use ucspi::msg::{write_line, EXIT_USAGE};

/// djb's usage line, unchanged so that scripts and log scanners see the same text; the
/// added options (`-4`, `-6`, `-C`, `-I`, `-L`, `-a`) are documented in the man page.
pub const USAGE: &str = "tcpserver [ -1UXpPhHrRoOdDqQv ] [ -c limit ] [ -x rules.cdb ] [ -B banner ] [ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] host port program";

const SPEC: &str = "461UXpPhHrRoOdDqQvac:C:x:B:g:u:b:l:t:I:L:";

/// The default listen backlog: large, so that a burst the `-c` limit serves later waits in
/// the kernel queue (the kernel caps it at net.core.somaxconn). djb's default is 20.
pub const DEFAULT_BACKLOG: i32 = 4096;

/// Whose program this is. tcpserver and sslserver share the accept loop and the
/// admission of a client; they differ in defaults, in log lines (ucspi-ssl's `status:
/// a/b/c`, `ended by`, `ip connection limit` wording) and in the parent's privileges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Tcp,
    Ssl,
}

impl Flavour {
    pub fn prog(self) -> &'static str {
        match self {
            Flavour::Tcp => "tcpserver",
            Flavour::Ssl => "sslserver",
        }
    }
}

/// Which address families to serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Any,
    V4,
    V6,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub flavour: Flavour,
    /// 0 quiet, 1 errors (default), 2 verbose, 3 verbose with TLS details (sslserver's
    /// `-V`).
    pub verbosity: u8,
    pub print_port: bool,
    pub limit: u64,
    /// `-C`: most connections from one client IP (0: no limit) and what to tell the
    /// client over it.
    pub per_ip: u64,
    pub per_ip_msg: Vec<u8>,
    pub rules: Option<PathBuf>,
    /// sslserver's `-y`: rules looked up by address alone, before DNS and ident; a
    /// matching rule is the client's rule, and `-x` is not consulted.
    pub ip_rules: Option<PathBuf>,
    pub allow_no_rules: bool,
    pub banner: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub backlog: i32,
    pub local_name: Option<Vec<u8>>,
    pub remote_host: bool,
    pub paranoid: bool,
    pub remote_info: bool,
    pub timeout: u64,
    pub nodelay: bool,
    pub kill_ip_options: bool,
    pub family: Family,
    /// `-I`: the interface (scope) of a link-local IPv6 address, as fefe's patch.
    pub interface: Option<Vec<u8>>,
    pub host: Vec<u8>,
    pub port: Vec<u8>,
    /// `-L`: inherited listening sockets, each a descriptor number or a name in
    /// `LISTEN_FDNAMES` (see [`crate::inherited`]).
    pub inherit: Vec<Vec<u8>>,
    /// `-a`: every peer sends a PROXY protocol header (v1 or v2) first.
    pub proxy_all: bool,
    /// The program and its arguments, NUL-terminated for execve.
    pub argv: Vec<CString>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            flavour: Flavour::Tcp,
            verbosity: 1,
            print_port: false,
            limit: 40,
            per_ip: 0,
            per_ip_msg: Vec::new(),
            rules: None,
            ip_rules: None,
            allow_no_rules: false,
            banner: Vec::new(),
            uid: 0,
            gid: 0,
            backlog: DEFAULT_BACKLOG,
            local_name: None,
            remote_host: true,
            paranoid: false,
            remote_info: true,
            timeout: 26,
            nodelay: false,
            kill_ip_options: true,
            family: Family::Any,
            interface: None,
            host: Vec::new(),
            port: Vec::new(),
            inherit: Vec::new(),
            proxy_all: false,
            argv: Vec::new(),
        }
    }
}

impl Config {
    /// Whether the server counts each client address's connections: for `-C`, for the
    /// rules' `MAXCONIP`, and behind a balancer (`-a`); they are then in `TCPCONNNUM`
    /// and in SIGUSR1's list. Without any of these nothing is counted, which costs the
    /// parent nothing per connection.
    pub fn counts_clients(&self) -> bool {
        self.per_ip > 0 || self.rules.is_some() || self.proxy_all
    }
}

/// Why the command line was refused: a message line (if any) before the usage line.
#[derive(Debug, PartialEq, Eq)]
pub struct Usage(pub Option<Vec<u8>>);

fn num(v: &OsString) -> u64 {
    scan_ulong(v.as_bytes()).0
}

fn cstring(b: &[u8]) -> CString {
    // Arguments from argv cannot hold NUL; a value cut at one is what C would see.
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    CString::new(&b[..end]).unwrap_or_default()
}

/// Parses argv (with argv[0]); `env` gives `$UID`/`$GID` for `-U`.
pub fn parse(args: &[OsString], env: &dyn Fn(&str) -> Option<OsString>) -> Result<Config, Usage> {
    parse_as(args, env, Flavour::Tcp, SPEC, &mut |_| false)
}

/// The defaults a flavour starts from: djb's for tcpserver; ucspi-ssl's for sslserver
/// (TCP_NODELAY on, no ident lookup, a per-IP limit equal to `-c`'s).
fn defaults(flavour: Flavour) -> Config {
    let mut c = Config {
        flavour,
        ..Config::default()
    };
    if flavour == Flavour::Ssl {
        c.nodelay = true;
        c.remote_info = false;
        c.per_ip = c.limit;
    }
    c
}

/// Parses argv for `flavour` with getopt letters `spec`; letters this module does not
/// know go to `extra`, which returns whether it took them.
pub fn parse_as(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<OsString>,
    flavour: Flavour,
    spec: &str,
    extra: &mut dyn FnMut(&Opt) -> bool,
) -> Result<Config, Usage> {
    let prog = getopt::progname(args.first().map(|a| a.as_os_str()), flavour.prog());
    let rest = args.get(1..).unwrap_or(&[]);
    let (opts, first) = getopt::parse(rest, spec).map_err(|e| Usage(Some(e.message(&prog))))?;
    let mut c = defaults(flavour);
    let mut per_ip_given = false;
    for o in opts {
        match o {
            Opt::Flag(f) => match f {
                b'4' => c.family = Family::V4,
                b'6' => c.family = Family::V6,
                b'1' => c.print_port = true,
                b'U' => {
                    if let Some(x) = env("UID") {
                        c.uid = num(&x) as u32;
                    }
                    if let Some(x) = env("GID") {
                        c.gid = num(&x) as u32;
                    }
                }
                b'X' => c.allow_no_rules = true,
                b'p' => c.paranoid = true,
                b'P' => c.paranoid = false,
                b'h' => c.remote_host = true,
                b'H' => c.remote_host = false,
                b'r' => c.remote_info = true,
                b'R' => c.remote_info = false,
                b'o' => c.kill_ip_options = false,
                b'O' => c.kill_ip_options = true,
                b'd' => c.nodelay = false,
                b'D' => c.nodelay = true,
                b'q' => c.verbosity = 0,
                b'Q' => c.verbosity = 1,
                b'v' => c.verbosity = 2,
                b'V' => c.verbosity = 3,
                b'a' => c.proxy_all = true,
                _ if extra(&o) => {}
                _ => unreachable!("flag not in SPEC"),
            },
            Opt::Value(f, ref v) => match f {
                b'c' => {
                    c.limit = num(v);
                    // ucspi-ssl: `-c` also sets the per-IP limit.
                    if flavour == Flavour::Ssl && !per_ip_given {
                        c.per_ip = c.limit;
                    }
                }
                b'C' => {
                    let b = v.as_bytes();
                    c.per_ip = scan_ulong(b).0;
                    c.per_ip_msg = match b.iter().position(|&x| x == b':') {
                        Some(i) => b[i + 1..].to_vec(),
                        None => Vec::new(),
                    };
                    per_ip_given = true;
                }
                b'x' => c.rules = Some(PathBuf::from(v)),
                b'y' => c.ip_rules = Some(PathBuf::from(v)),
                b'B' => c.banner = v.as_bytes().to_vec(),
                b'g' => c.gid = num(v) as u32,
                b'u' => c.uid = num(v) as u32,
                b'b' => c.backlog = num(v) as i32,
                b'l' => c.local_name = Some(v.as_bytes().to_vec()),
                b't' => c.timeout = num(v),
                b'I' => c.interface = Some(v.as_bytes().to_vec()),
                b'L' => c.inherit.push(v.as_bytes().to_vec()),
                _ if extra(&o) => {}
                _ => unreachable!("option not in SPEC"),
            },
        }
    }
    // ucspi-ssl: `$MAXCONIP` overrides `-c`'s per-IP limit (`-C`, ours, overrides both).
    if flavour == Flavour::Ssl && !per_ip_given {
        if let Some(x) = env("MAXCONIP") {
            c.per_ip = num(&x);
        }
    }
    let mut operands = rest[first..].iter();
    c.host = operands.next().ok_or(Usage(None))?.as_bytes().to_vec();
    c.port = operands.next().ok_or(Usage(None))?.as_bytes().to_vec();
    c.argv = operands.map(|a| cstring(a.as_bytes())).collect();
    if c.argv.is_empty() {
        return Err(Usage(None));
    }
    Ok(c)
}

/// Parses the process's command line, or prints djb's usage and exits 100.
pub fn parse_or_exit(args: &[OsString]) -> Config {
    or_exit(parse(args, &|k| std::env::var_os(k)), Flavour::Tcp, USAGE)
}

/// The parsed configuration, or [`usage_exit`].
pub fn or_exit(parsed: Result<Config, Usage>, flavour: Flavour, usage: &str) -> Config {
    parsed.unwrap_or_else(|u| usage_exit(u, flavour, usage))
}

/// The refusal's message and `usage` printed as `PROG: usage: USAGE`, exit 100.
pub fn usage_exit(Usage(line): Usage, flavour: Flavour, usage: &str) -> ! {
    if let Some(l) = line {
        write_line(&[&l]);
    }
    write_line(&[flavour.prog().as_bytes(), b": usage: ", usage.as_bytes()]);
    std::process::exit(EXIT_USAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Config, Usage> {
        let args: Vec<OsString> = std::iter::once("tcpserver")
            .chain(v.iter().copied())
            .map(OsString::from)
            .collect();
        parse(&args, &|k| match k {
            "UID" => Some("1000".into()),
            "GID" => Some("100x".into()),
            _ => None,
        })
    }

    #[test]
    fn clusters_values_and_overrides() {
        let c = p(&["-vRHl0", "-c40x", "-q", "-v", "-U", "0", "25", "prog", "-x"]).unwrap();
        assert_eq!(c.verbosity, 2);
        assert!(!c.remote_info && !c.remote_host);
        assert_eq!(c.local_name.as_deref(), Some(&b"0"[..]));
        assert_eq!(c.limit, 40);
        assert_eq!((c.uid, c.gid), (1000, 100));
        assert_eq!(c.argv.len(), 2);
        assert_eq!(p(&["-c", "junk", "0", "1", "x"]).unwrap().limit, 0);
        assert_eq!(
            p(&["-C", "3:busy", "0", "1", "x"]).unwrap().per_ip_msg,
            b"busy"
        );
    }

    #[test]
    fn usage_errors() {
        assert_eq!(p(&["0", "25"]).unwrap_err(), Usage(None));
        assert_eq!(p(&["0"]).unwrap_err(), Usage(None));
        assert_eq!(
            p(&["-z", "0", "25", "x"]).unwrap_err(),
            Usage(Some(b"tcpserver: illegal option -- z".to_vec()))
        );
        assert!(p(&["-c"]).is_err());
        assert_eq!(p(&["--", "-v", "25", "x"]).unwrap().host, b"-v");
    }
}
