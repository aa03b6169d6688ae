//! sslserver's command line: tcpserver's letters with ucspi-ssl's defaults (parsed by
//! tcpserver's own parser), and ucspi-ssl's TLS letters.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use tcpserver::options::{self, Config, Flavour, Usage};
use ucspi::fmt::scan_ulong;
use ucspi::getopt::Opt;

/// ucspi-ssl's usage line, with `-C`, `-L` and `-a` (ours, as tcpserver's) and `-I`'s
/// argument added.
pub const USAGE: &str = "sslserver [ -1346UXpPhHrRoOdDqQvVeEsSnNmzZa ] [ -c limit ] [ -C perip[:message] ] [ -y iprules.cdb ] [ -x rules.cdb ] [ -B banner ] [ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] [ -I interface ] [ -T ssltimeout ] [ -w progtimeout ] [ -L socket ] host port program";

/// ucspi-ssl 0.13's letters, `-I` with its argument (it declares none and crashes), and
/// tcpserver's `-C`, `-L` and `-a`.
const SPEC: &str = "1346dDvVqQhHrRUXx:y:t:T:u:g:l:b:B:c:C:pPoOI:EeSsw:nNzZmaL:";

/// Client certificates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientCert {
    /// `-Z`: none asked for.
    #[default]
    None,
    /// `-m`: one is required and verified against the CA list.
    Required,
    /// `-z`: as `-m`, and it must name the client's host (from `-h`'s lookup).
    RequiredWithName,
}

/// What sslserver adds to tcpserver's options.
#[derive(Clone, Debug)]
pub struct Tls {
    /// `-3`: the key's password comes NUL-terminated on fd 3.
    pub password_on_fd3: bool,
    /// `-T`: seconds for the handshake.
    pub handshake_timeout: u64,
    /// `-w`: seconds the relay waits with nothing moving.
    pub idle_timeout: u64,
    /// `-e`/`-E`: the `TCP*` variables too (and `PROTO=TCP`), or only `SSL*` (`PROTO=TLS`).
    pub tcp_env: bool,
    /// `-s`/`-S`: the session's and certificates' `SSL_*` variables for the program.
    pub ssl_env: bool,
    /// `-n`/`-N`: UCSPI-TLS (the program starts in plain text and asks for TLS).
    pub delayed: bool,
    pub client_cert: ClientCert,
    /// `-B`: written to the program's output just before it runs (inside TLS, or in
    /// plain text under `-n`), as ucspi-ssl does.
    pub banner: Vec<u8>,
}

impl Default for Tls {
    fn default() -> Tls {
        Tls {
            password_on_fd3: false,
            handshake_timeout: 26,
            idle_timeout: 3600,
            tcp_env: true,
            ssl_env: false,
            delayed: false,
            client_cert: ClientCert::None,
            banner: Vec::new(),
        }
    }
}

/// Parses argv (with argv[0]).
pub fn parse(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(Config, Tls), Usage> {
    let mut t = Tls::default();
    let mut c = options::parse_as(args, env, Flavour::Ssl, SPEC, &mut |o| {
        match o {
            Opt::Flag(b'3') => t.password_on_fd3 = true,
            Opt::Flag(b'e') => t.tcp_env = true,
            Opt::Flag(b'E') => t.tcp_env = false,
            Opt::Flag(b's') => t.ssl_env = true,
            Opt::Flag(b'S') => t.ssl_env = false,
            Opt::Flag(b'n') => t.delayed = true,
            Opt::Flag(b'N') => t.delayed = false,
            Opt::Flag(b'm') => t.client_cert = ClientCert::Required,
            Opt::Flag(b'z') => t.client_cert = ClientCert::RequiredWithName,
            Opt::Flag(b'Z') => t.client_cert = ClientCert::None,
            Opt::Value(b'T', v) => t.handshake_timeout = scan_ulong(v.as_bytes()).0,
            Opt::Value(b'w', v) => t.idle_timeout = scan_ulong(v.as_bytes()).0,
            _ => return false,
        }
        true
    })?;
    // The banner goes to the program's output, not (as tcpserver's) to the socket.
    t.banner = std::mem::take(&mut c.banner);
    Ok((c, t))
}

/// Parses the process's command line, or prints the usage line and exits 100.
pub fn parse_or_exit(args: &[OsString]) -> (Config, Tls) {
    parse(args, &|k| std::env::var_os(k))
        .unwrap_or_else(|u| options::usage_exit(u, Flavour::Ssl, USAGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str], maxconip: Option<&str>) -> Result<(Config, Tls), Usage> {
        let args: Vec<OsString> = std::iter::once("sslserver")
            .chain(v.iter().copied())
            .map(OsString::from)
            .collect();
        let m = maxconip.map(OsString::from);
        parse(&args, &move |k| {
            if k == "MAXCONIP" {
                m.clone()
            } else {
                None
            }
        })
    }

    #[test]
    fn ucspi_ssl_defaults_and_letters() {
        let (c, t) = p(&["0", "465", "prog"], None).unwrap();
        assert!(c.nodelay && !c.remote_info && c.remote_host);
        assert_eq!((c.limit, c.per_ip), (40, 40));
        assert!(t.tcp_env && !t.ssl_env && !t.delayed);
        assert_eq!((t.handshake_timeout, t.idle_timeout), (26, 3600));
        let (c, t) = p(
            &[
                "-vVsEnmdT5",
                "-w",
                "9",
                "-c10",
                "-Bhi",
                "-y",
                "ip.cdb",
                "0",
                "1",
                "x",
            ],
            None,
        )
        .unwrap();
        assert_eq!(c.verbosity, 3);
        assert!(t.ssl_env && !t.tcp_env && t.delayed && !c.nodelay);
        assert_eq!(t.client_cert, ClientCert::Required);
        assert_eq!((t.handshake_timeout, t.idle_timeout), (5, 9));
        assert_eq!((c.limit, c.per_ip), (10, 10));
        assert_eq!(t.banner, b"hi");
        assert!(c.banner.is_empty());
        assert!(c.ip_rules.is_some());
        assert_eq!(
            p(&["-I", "lo", "0", "1", "x"], None)
                .unwrap()
                .0
                .interface
                .unwrap(),
            b"lo"
        );
    }

    #[test]
    fn maxconip_and_per_ip() {
        assert_eq!(p(&["-c5", "0", "1", "x"], Some("3")).unwrap().0.per_ip, 3);
        assert_eq!(
            p(&["-C2", "-c5", "0", "1", "x"], Some("3"))
                .unwrap()
                .0
                .per_ip,
            2
        );
        assert_eq!(p(&["-c5", "0", "1", "x"], None).unwrap().0.per_ip, 5);
    }

    #[test]
    fn usage() {
        assert!(p(&["0", "1"], None).is_err());
        assert_eq!(
            p(&["-k", "0", "1", "x"], None).unwrap_err(),
            Usage(Some(b"sslserver: illegal option -- k".to_vec()))
        );
    }
}
