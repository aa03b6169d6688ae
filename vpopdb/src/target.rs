//! Where the users are: the `db` URL (`sqlite:`, `mysql://`, `postgres://`) or
//! vpopmail's own vpopmail.mysql lines, each parsed once into the typed target its back
//! end connects to.

use std::path::PathBuf;

use zeroize::Zeroizing;

/// Debian's MariaDB socket, which libmysqlclient would use for host `localhost`.
pub const DEFAULT_MYSQL_SOCKET: &str = "/run/mysqld/mysqld.sock";

/// How a TCP connection uses TLS: libpq's `sslmode`, onto which MySQL's `ssl-mode`
/// names map (`DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`).
/// A unix socket never uses TLS, as with libpq and MySQL's client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// Plain first; TLS only when the server refuses the plain login.
    Allow,
    /// TLS when the server offers it, unverified (the default over TCP).
    Prefer,
    /// TLS or no connection, unverified.
    Require,
    /// TLS with the certificate's chain verified, not its name.
    VerifyCa,
    /// TLS with the chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    /// Either vocabulary, as admins type it: libpq's (`verify-full`) or MySQL's
    /// (`VERIFY_IDENTITY`, `verify-identity`), any case.
    pub fn parse(v: &str) -> Result<SslMode, String> {
        let v = v.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match v.as_str() {
            "disable" | "disabled" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" | "preferred" => SslMode::Prefer,
            "require" | "required" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" | "verify-identity" => SslMode::VerifyFull,
            _ => {
                return Err(format!(
                "bad TLS mode {v}: want disable, allow, prefer, require, verify-ca or verify-full \
                     (or MySQL's DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY)"
            ))
            }
        })
    }

    /// libpq's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// A connection's TLS settings as given (URL parameters, config keys); [`Tls::mode`]
/// resolves what was left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    pub mode: Option<SslMode>,
    /// The trust anchors: a PEM file, a directory of them, or `system` (the system's
    /// bundle); none given means the system's for the verifying modes.
    pub ca: Option<PathBuf>,
}

impl Tls {
    /// The mode of a TCP connection: as given, `prefer` when none was; a CA file named
    /// without a mode, or with `require` (libpq's rule), means `verify-ca`.
    pub fn mode(&self) -> SslMode {
        match (self.mode, &self.ca) {
            (None | Some(SslMode::Require), Some(_)) => SslMode::VerifyCa,
            (Some(m), _) => m,
            (None, None) => SslMode::Prefer,
        }
    }

    /// What is not given here, taken from `defaults` (the config keys under a URL's
    /// parameters).
    pub fn or(&self, defaults: &Tls) -> Tls {
        Tls {
            mode: self.mode.or(defaults.mode),
            ca: self.ca.clone().or_else(|| defaults.ca.clone()),
        }
    }

    /// Takes one URL parameter if it is a TLS one: `sslmode`, `ssl-mode`, `ssl_mode`;
    /// `sslrootcert`, `ssl-ca`, `ssl_ca`, `ssl-capath`.
    fn param(&mut self, k: &str, v: &str) -> Result<bool, String> {
        match k {
            "sslmode" | "ssl-mode" | "ssl_mode" => self.mode = Some(SslMode::parse(v)?),
            "sslrootcert" | "ssl-ca" | "ssl_ca" | "ssl-capath" | "ssl_capath" => {
                if v.is_empty() {
                    return Err(format!("empty {k}"));
                }
                self.ca = Some(PathBuf::from(v))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl Targets {
    /// Applies the config file's TLS settings to each target where its URL set none.
    pub fn with_tls_defaults(mut self, defaults: &Tls) -> Targets {
        let apply = |t: &mut Target| match t {
            Target::Mysql(m) => m.tls = m.tls.or(defaults),
            Target::Postgres(p) => p.tls = p.tls.or(defaults),
            Target::Sqlite(_) => {}
        };
        apply(&mut self.read);
        if let Some(w) = self.write.as_mut() {
            apply(w);
        }
        self
    }
}

/// A database to connect to.
#[derive(Clone)]
pub enum Target {
    Sqlite(PathBuf),
    Mysql(MysqlTarget),
    Postgres(PgTarget),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a password.
        match self {
            Target::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            Target::Mysql(m) => write!(f, "mysql {}@{}:{}/{}", m.user, m.host, m.port, m.db),
            Target::Postgres(p) => {
                write!(f, "postgres {}@{}:{}/{}", p.user, p.host, p.port, p.dbname)
            }
        }
    }
}

#[derive(Clone)]
pub struct MysqlTarget {
    pub host: String,
    pub port: u16,
    pub socket: Option<String>,
    pub user: String,
    pub pass: Zeroizing<String>,
    pub db: String,
    pub tls: Tls,
}

/// Where and as whom to connect to PostgreSQL. An empty `host` is libpq's default, the
/// local socket directory; one starting with `/` is a socket directory.
#[derive(Clone, Default, PartialEq)]
pub struct PgTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Zeroizing<String>,
    pub dbname: String,
    pub tls: Tls,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a password, even in a test's failure message.
        f.debug_struct("PgTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "(set)"
                },
            )
            .field("dbname", &self.dbname)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Reads go to `read`; `write` (vpopmail.mysql's second line) takes lastauth, relay and
/// lockout updates when present.
#[derive(Clone, Debug)]
pub struct Targets {
    pub read: Target,
    pub write: Option<Target>,
}

/// %-escapes of a URL's parts decoded (the one decoder for every URL).
fn pct_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("bad %-escape in URL")?;
            out.push(h);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "URL is not UTF-8".to_string())
}

/// `sqlite:PATH`, `mysql://user:pass@host:port/db?socket=PATH&ssl-mode=...&ssl-ca=PATH`,
/// `postgres://...`.
pub fn parse_url(url: &str) -> Result<Target, String> {
    if let Some(p) = url.strip_prefix("sqlite://") {
        return Ok(Target::Sqlite(PathBuf::from(p)));
    }
    if let Some(p) = url.strip_prefix("sqlite:") {
        return Ok(Target::Sqlite(PathBuf::from(p)));
    }
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        return parse_postgres(rest).map(Target::Postgres);
    }
    let Some(rest) = url.strip_prefix("mysql://") else {
        return Err("db: want a sqlite:, mysql:// or postgres:// URL".into());
    };
    let u = UrlParts::of(rest);
    let port = match u.port {
        Some(p) => p.parse::<u16>().map_err(|_| "db: bad port in mysql URL")?,
        None => 3306,
    };
    let mut socket = None;
    let mut tls = Tls::default();
    for kv in u.query.split('&').filter(|s| !s.is_empty()) {
        match kv.split_once('=') {
            Some(("socket", v)) => socket = Some(pct_decode(v)?),
            Some((k, v))
                if tls
                    .param(k, &pct_decode(v)?)
                    .map_err(|e| format!("db: {e}"))? => {}
            // The name only: the value may be a password (`password=` is libpq's).
            _ => {
                let k = kv.split_once('=').map_or(kv, |(k, _)| k);
                return Err(format!("db: unknown mysql URL parameter {k}"));
            }
        }
    }
    Ok(Target::Mysql(MysqlTarget {
        host: if u.host.is_empty() {
            "localhost".into()
        } else {
            pct_decode(u.host)?
        },
        port,
        socket,
        user: pct_decode(u.user)?,
        pass: Zeroizing::new(pct_decode(u.pass)?),
        db: pct_decode(u.path)?,
        tls,
    }))
}

/// `[user[:password]@][host][:port][/path][?query]` after a URL's scheme, split but not
/// yet decoded. A bracketed IPv6 host loses its brackets; an empty port is no port.
struct UrlParts<'a> {
    user: &'a str,
    pass: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    path: &'a str,
    query: &'a str,
}

impl<'a> UrlParts<'a> {
    fn of(rest: &'a str) -> UrlParts<'a> {
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = main.split_once('/').unwrap_or((main, ""));
        let (auth, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
        let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            // A colon inside brackets is the address's, not the port's.
            Some((h, p)) if !p.contains(']') => (h, Some(p).filter(|p| !p.is_empty())),
            _ => (hostport, None),
        };
        UrlParts {
            user,
            pass,
            host: host.trim_start_matches('[').trim_end_matches(']'),
            port,
            path,
            query,
        }
    }
}

/// libpq's URL after `postgres[ql]://`: `[user[:password]@][host][:port][/dbname]
/// [?key=value&...]` with `host` (a directory means a unix socket), `port`, `user`,
/// `password`, `dbname`, `sslmode`, `sslrootcert` (and MySQL's spellings of the two),
/// `connect_timeout` and `application_name` as parameters.
fn parse_postgres(rest: &str) -> Result<PgTarget, String> {
    let bad = |m: &str| format!("db: {m} in postgres URL");
    let dec = |s: &str| pct_decode(s).map_err(|e| format!("db: {e} (postgres)"));
    let u = UrlParts::of(rest);
    let mut p = PgTarget {
        host: dec(u.host)?,
        port: 5432,
        user: dec(u.user)?,
        password: Zeroizing::new(dec(u.pass)?),
        dbname: dec(u.path)?,
        tls: Tls::default(),
    };
    let port_of = |s: &str| s.parse::<u16>().map_err(|_| bad("bad port"));
    if let Some(pt) = u.port {
        p.port = port_of(pt)?;
    }
    for kv in u.query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let v = dec(v)?;
        match k {
            "host" => p.host = v,
            "port" => p.port = port_of(&v)?,
            "user" => p.user = v,
            "password" => p.password = Zeroizing::new(v),
            "dbname" => p.dbname = v,
            "connect_timeout" | "application_name" => {}
            _ if p.tls.param(k, &v).map_err(|e| bad(&e))? => {}
            _ => return Err(bad(&format!("unknown parameter {k}"))),
        }
    }
    if p.user.is_empty() {
        return Err(bad("no user"));
    }
    if p.dbname.is_empty() {
        p.dbname = p.user.clone();
    }
    Ok(p)
}

/// vpopmail's `host|port-or-/socket|user|password|database` lines: the first for reads,
/// an optional second for updates.
pub fn parse_vpopmail_mysql(text: &str) -> Result<Targets, String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 5 {
            return Err("want host|port|user|password|database".into());
        }
        let (port, socket) = if f[1].starts_with('/') {
            (3306, Some(f[1].to_string()))
        } else {
            let p: u16 = f[1].parse().map_err(|_| "bad port")?;
            if p == 0 && (f[0] == "localhost" || f[0].is_empty()) {
                (3306, Some(DEFAULT_MYSQL_SOCKET.to_string()))
            } else {
                (if p == 0 { 3306 } else { p }, None)
            }
        };
        found.push(Target::Mysql(MysqlTarget {
            host: f[0].to_string(),
            port,
            socket,
            user: f[2].to_string(),
            pass: Zeroizing::new(f[3].to_string()),
            db: f[4].to_string(),
            // vpopmail.mysql has no TLS fields: the config keys give them.
            tls: Tls::default(),
        }));
        if found.len() == 2 {
            break;
        }
    }
    let mut it = found.into_iter();
    let read = it.next().ok_or("no connection line")?;
    Ok(Targets {
        read,
        write: it.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn urls() {
        match parse_url("mysql://u:p%40ss@127.0.0.1:3307/vpop?socket=/run/my.sock").unwrap() {
            Target::Mysql(m) => {
                assert_eq!((m.user.as_str(), m.pass.as_str()), ("u", "p@ss"));
                assert_eq!(
                    (m.host.as_str(), m.port, m.db.as_str()),
                    ("127.0.0.1", 3307, "vpop")
                );
                assert_eq!(m.socket.as_deref(), Some("/run/my.sock"));
            }
            _ => panic!("not mysql"),
        }
        assert!(
            matches!(parse_url("sqlite:/a/b").unwrap(), Target::Sqlite(p) if p == Path::new("/a/b"))
        );
        assert!(matches!(
            parse_url("postgres://a@b/c").unwrap(),
            Target::Postgres(p) if p.dbname == "c"
        ));
        assert!(parse_url("oracle://x").is_err());
        // A bracketed IPv6 host with and without a port, as for postgres://.
        for (url, port) in [
            ("mysql://u@[::1]/d", 3306),
            ("mysql://u@[::1]:3307/d", 3307),
        ] {
            let Target::Mysql(m) = parse_url(url).unwrap() else {
                panic!("not mysql")
            };
            assert_eq!((m.host.as_str(), m.port), ("::1", port), "{url}");
        }
        assert!(parse_url("mysql://u@h:x/d").is_err());
    }

    #[test]
    fn errors_never_show_a_password() {
        // Found by fuzz/fuzz_targets/settings.rs: MySQL URLs take no password= parameter,
        // and refusing one named it whole, password and all, in the log.
        let Err(e) = parse_url("mysql://u@h/d?password=hunter22") else {
            panic!("password= taken in a mysql URL")
        };
        assert!(!e.contains("hunter22"), "{e}");
        assert!(e.contains("password"), "{e}");
    }

    #[test]
    fn postgres_urls() {
        let pg = |u: &str| match parse_url(u) {
            Ok(Target::Postgres(p)) => Ok(p),
            Ok(t) => panic!("{t:?}"),
            Err(e) => Err(e),
        };
        let p = pg("postgres://u%40x:p%3Aw@db.example:6543/mail?sslmode=disable").unwrap();
        assert_eq!(
            (
                p.user.as_str(),
                p.password.as_str(),
                p.host.as_str(),
                p.port,
                p.dbname.as_str()
            ),
            ("u@x", "p:w", "db.example", 6543, "mail")
        );
        let p = pg("postgresql://cp@localhost/cp?host=/run/pg&port=5433").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.dbname.as_str()),
            ("/run/pg", 5433, "cp")
        );
        let p = pg("postgres://cp@[::1]:5999").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.dbname.as_str()),
            ("::1", 5999, "cp")
        );
        assert!(pg("postgres://cp@h/d?sslmode=sometimes").is_err());
        assert!(pg("postgres://cp@h/d?bogus=1").is_err());
        assert!(pg("postgres://h/d").is_err());
    }

    #[test]
    fn tls_parameters() {
        let tls = |u: &str| match parse_url(u).unwrap() {
            Target::Mysql(m) => m.tls,
            Target::Postgres(p) => p.tls,
            Target::Sqlite(_) => panic!("{u}"),
        };
        let mode = |u: &str| tls(u).mode();
        // Nothing said: prefer (a unix socket ignores the mode in the back end).
        assert_eq!(mode("mysql://u@h/d"), SslMode::Prefer);
        assert_eq!(mode("postgres://u@h/d"), SslMode::Prefer);
        // Both vocabularies, both spellings of the key, any case.
        for (q, want) in [
            ("sslmode=disable", SslMode::Disable),
            ("ssl-mode=DISABLED", SslMode::Disable),
            ("ssl_mode=allow", SslMode::Allow),
            ("sslmode=PREFERRED", SslMode::Prefer),
            ("ssl-mode=REQUIRED", SslMode::Require),
            ("sslmode=verify-ca", SslMode::VerifyCa),
            ("ssl-mode=VERIFY_CA", SslMode::VerifyCa),
            ("sslmode=verify-full", SslMode::VerifyFull),
            ("ssl-mode=VERIFY_IDENTITY", SslMode::VerifyFull),
        ] {
            assert_eq!(mode(&format!("mysql://u@h/d?{q}")), want, "{q}");
            assert_eq!(mode(&format!("postgres://u@h/d?{q}")), want, "{q}");
        }
        // A CA file: verify-ca unless a mode says otherwise; require verifies too.
        let t = tls("postgres://u@h/d?sslrootcert=/etc/ssl/db%20ca.pem");
        assert_eq!(t.ca.as_deref(), Some(Path::new("/etc/ssl/db ca.pem")));
        assert_eq!(t.mode(), SslMode::VerifyCa);
        assert_eq!(
            mode("mysql://u@h/d?ssl-mode=REQUIRED&ssl-ca=/ca.pem"),
            SslMode::VerifyCa
        );
        assert_eq!(
            mode("mysql://u@h/d?ssl-ca=/ca.pem&ssl-mode=VERIFY_IDENTITY&socket=/s"),
            SslMode::VerifyFull
        );
        assert_eq!(
            mode("mysql://u@h/d?ssl_ca=/ca.pem&ssl_mode=preferred"),
            SslMode::Prefer
        );
        for bad in [
            "mysql://u@h/d?ssl-mode=sometimes",
            "postgres://u@h/d?sslmode=",
            "postgres://u@h/d?sslrootcert=",
            "mysql://u@h/d?ssl-key=/k",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        // The config keys fill in what the URL left out, on every target.
        let defaults = Tls {
            mode: Some(SslMode::VerifyFull),
            ca: Some(PathBuf::from("/ca.pem")),
        };
        let t = parse_vpopmail_mysql("db|3306|r|rp|v\ndb|3306|w|wp|v\n")
            .unwrap()
            .with_tls_defaults(&defaults);
        for t in [Some(t.read), t.write] {
            let Some(Target::Mysql(m)) = t else { panic!() };
            assert_eq!(m.tls, defaults);
        }
        let url = Targets {
            read: parse_url("postgres://u@h/d?sslmode=require").unwrap(),
            write: None,
        }
        .with_tls_defaults(&defaults);
        let Target::Postgres(p) = url.read else {
            panic!()
        };
        assert_eq!(
            (p.tls.mode, p.tls.mode()),
            (Some(SslMode::Require), SslMode::VerifyCa)
        );
    }

    #[test]
    fn vpopmail_mysql_file() {
        let t = parse_vpopmail_mysql(
            "# c\nlocalhost|0|r|rp|vpopmail\nlocalhost|/s.sock|w|wp|vpopmail\n",
        )
        .unwrap();
        let Target::Mysql(r) = t.read else { panic!() };
        assert_eq!(r.socket.as_deref(), Some(DEFAULT_MYSQL_SOCKET));
        let Some(Target::Mysql(w)) = t.write else {
            panic!()
        };
        assert_eq!(
            (w.user.as_str(), w.socket.as_deref()),
            ("w", Some("/s.sock"))
        );
        let t = parse_vpopmail_mysql("db.example|3307|r|rp|vp\n").unwrap();
        let Target::Mysql(r) = t.read else { panic!() };
        assert_eq!(
            (r.host.as_str(), r.port, r.socket),
            ("db.example", 3307, None)
        );
    }
}
