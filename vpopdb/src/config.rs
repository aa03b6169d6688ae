//! Settings: a `key = value` config file, each key overridable by `CHECKPASSWORD_<KEY>`
//! (unless running setuid, where the environment belongs to the caller), and the database
//! chosen from `db`, else vpopmail's own `~vpopmail/etc/vpopmail.mysql`, else the
//! embedded SQLite default.

use std::path::PathBuf;
use ucspi::errstr::io_str;

use zeroize::Zeroizing;

use crate::target::{parse_url, parse_vpopmail_mysql, SslMode, Target, Targets, Tls};

/// Where the config file is unless `CHECKPASSWORD_CONFIG` names another.
pub const DEFAULT_CONFIG: &str = "/etc/checkpassword.conf";
/// The embedded database used when nothing else is configured.
pub const DEFAULT_SQLITE: &str = "/var/lib/checkpassword/vpopmail.sqlite";

/// The user table layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    /// One `vpopmail` table with a `pw_domain` column (vpopmail's default).
    Single,
    /// One table per domain (`example_com`), `users` for logins without a domain.
    PerDomain,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub db: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub tables: Tables,
    pub lockout_failures: u64,
    pub lockout_window: u64,
    pub lockout_time: u64,
    pub lockout_ip_failures: u64,
    pub relay: bool,
    /// POP-before-SMTP's rules (see `relay`): the base rules file and the cdb built from
    /// it (unset: `~vpopmail/etc/tcp.smtp` and that + `.cdb`), how long a relay row opens
    /// relaying, and whether a login that opens it rebuilds the cdb at once.
    pub relay_rules: Option<PathBuf>,
    pub relay_cdb: Option<PathBuf>,
    pub relay_minutes: u64,
    pub relay_rebuild: bool,
    pub default_domain: Option<String>,
    pub vpopmail_dir: Option<PathBuf>,
    pub qmail_dir: PathBuf,
    /// mailaccounts also writes pw_clear_passwd (for APOP and CRAM-MD5).
    pub clear_passwords: bool,
    /// Seconds a whole login may take once its request is read (0: no limit).
    pub login_timeout: u64,
    /// Callers whose client address a setuid checkpassword believes (qmaild's, say): any
    /// other unprivileged caller chooses `TCPREMOTEIP` itself.
    pub trusted_uids: Vec<u32>,
    /// `db_sslmode` and `db_sslrootcert`: TLS for every database target whose URL does
    /// not say (vpopmail.mysql's lines cannot).
    pub db_tls: Tls,
    /// The vpopmail account's home once looked up: a login may need it for
    /// vpopmail.mysql, the default domain, vlimits.default and the relay rules, and each
    /// lookup reads the password database.
    pub(crate) account_home: std::sync::OnceLock<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            db: None,
            uid: None,
            gid: None,
            tables: Tables::Single,
            lockout_failures: 3,
            lockout_window: 1800,
            lockout_time: 1800,
            lockout_ip_failures: 20,
            relay: false,
            relay_rules: None,
            relay_cdb: None,
            relay_minutes: crate::relay::DEFAULT_MINUTES,
            relay_rebuild: false,
            default_domain: None,
            vpopmail_dir: None,
            account_home: std::sync::OnceLock::new(),
            qmail_dir: PathBuf::from("/var/qmail"),
            clear_passwords: false,
            login_timeout: 20,
            trusted_uids: Vec::new(),
            db_tls: Tls::default(),
        }
    }
}

/// Every key the config file accepts; each also reads `CHECKPASSWORD_<KEY>`.
pub const KEYS: &[&str] = &[
    "db",
    "uid",
    "gid",
    "tables",
    "lockout_failures",
    "lockout_window",
    "lockout_time",
    "lockout_ip_failures",
    "relay",
    "relay_rules",
    "relay_cdb",
    "relay_minutes",
    "relay_rebuild",
    "default_domain",
    "vpopmail_dir",
    "qmail",
    "clear_passwords",
    "login_timeout",
    "trusted_uids",
    "db_sslmode",
    "db_sslrootcert",
];

fn num(key: &str, v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .map_err(|_| format!("bad value for {key}: not a number"))
}

fn on_off(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "on" | "yes" | "1" => Ok(true),
        "off" | "no" | "0" => Ok(false),
        _ => Err(format!("bad value for {key}: want on or off")),
    }
}

fn path(key: &str, v: &str) -> Result<PathBuf, String> {
    if v.is_empty() {
        return Err(format!("bad value for {key}: want a path"));
    }
    Ok(PathBuf::from(v))
}

fn id(key: &str, v: &str) -> Result<u32, String> {
    let n = v
        .parse::<u32>()
        .map_err(|_| format!("bad value for {key}: not a number"))?;
    if n == 0 {
        return Err(format!("refusing {key} 0"));
    }
    Ok(n)
}

/// Uids, or account names, separated by commas or spaces.
fn uids(v: &str) -> Result<Vec<u32>, String> {
    v.split([',', ' ', '\t'])
        .filter(|w| !w.is_empty())
        .map(|w| match w.parse::<u32>() {
            Ok(n) => Ok(n),
            Err(_) => account(w)
                .map(|a| a.uid)
                .ok_or_else(|| format!("bad value for trusted_uids: no account {w:?}")),
        })
        .collect()
}

impl Settings {
    fn set(&mut self, key: &str, v: &str) -> Result<(), String> {
        let v = v.trim();
        match key {
            "db" => self.db = Some(v.to_string()),
            "uid" => self.uid = Some(id(key, v)?),
            "gid" => self.gid = Some(id(key, v)?),
            "tables" => {
                self.tables = match v {
                    "single" => Tables::Single,
                    "per-domain" => Tables::PerDomain,
                    _ => return Err("bad value for tables: want single or per-domain".into()),
                }
            }
            "lockout_failures" => self.lockout_failures = num(key, v)?,
            "lockout_window" => self.lockout_window = num(key, v)?,
            "lockout_time" => self.lockout_time = num(key, v)?,
            "lockout_ip_failures" => self.lockout_ip_failures = num(key, v)?,
            "relay" => self.relay = on_off(key, v)?,
            "relay_rules" => self.relay_rules = Some(path(key, v)?),
            "relay_cdb" => self.relay_cdb = Some(path(key, v)?),
            "relay_minutes" => match num(key, v)? {
                0 => return Err("bad value for relay_minutes: want 1 or more".into()),
                n => self.relay_minutes = n,
            },
            "relay_rebuild" => self.relay_rebuild = on_off(key, v)?,
            "default_domain" => {
                if !crate::loginname::domain_ok(v) || v.is_empty() {
                    return Err("bad value for default_domain".into());
                }
                self.default_domain = Some(v.to_ascii_lowercase())
            }
            "vpopmail_dir" => self.vpopmail_dir = Some(PathBuf::from(v)),
            "qmail" => self.qmail_dir = PathBuf::from(v),
            "clear_passwords" => {
                self.clear_passwords = match v {
                    "on" | "yes" | "1" => true,
                    "off" | "no" | "0" => false,
                    _ => return Err("bad value for clear_passwords: want on or off".into()),
                }
            }
            "login_timeout" => self.login_timeout = num(key, v)?,
            "trusted_uids" => self.trusted_uids = uids(v)?,
            "db_sslmode" => self.db_tls.mode = Some(SslMode::parse(v)?),
            "db_sslrootcert" if v.is_empty() => return Err("empty db_sslrootcert".into()),
            "db_sslrootcert" => self.db_tls.ca = Some(PathBuf::from(v)),
            // Named only when it looks like a key: a URL without its `db =` splits at
            // a parameter's `=`, and its password must not reach the log.
            _ if key.len() <= 32 && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') => {
                return Err(format!("unknown setting {key}"))
            }
            _ => return Err("want key = value, the key a setting's name".into()),
        }
        Ok(())
    }

    /// Applies a config file's text: `key = value` lines, `#` comments, blank lines.
    pub fn apply_file(&mut self, name: &str, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("{name} line {}: want key = value", n + 1));
            };
            self.set(k.trim(), v)
                .map_err(|e| format!("{name} line {}: {e}", n + 1))?;
        }
        Ok(())
    }

    /// Applies `CHECKPASSWORD_<KEY>` (and `QMAIL`) from `env`.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        for key in KEYS {
            let var = format!("CHECKPASSWORD_{}", key.to_ascii_uppercase());
            if let Some(v) = env(&var) {
                self.set(key, &v).map_err(|e| format!("{var}: {e}"))?;
            }
        }
        if let Some(q) = env("QMAIL") {
            self.set("qmail", &q)?;
        }
        Ok(())
    }

    /// Loads the config file and, when `env_trusted`, the environment on top of it.
    pub fn load(env: &dyn Fn(&str) -> Option<String>, env_trusted: bool) -> Result<Self, String> {
        let mut s = Settings::default();
        let (path, named) = match env_trusted.then(|| env("CHECKPASSWORD_CONFIG")).flatten() {
            Some(p) => (p, true),
            None => (DEFAULT_CONFIG.to_string(), false),
        };
        match std::fs::read(&path) {
            Ok(t) => {
                let t = Zeroizing::new(t);
                let text =
                    std::str::from_utf8(&t).map_err(|_| format!("{path}: not UTF-8 text"))?;
                s.apply_file(&path, text)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => {}
            Err(e) => return Err(format!("unable to read {path}: {}", io_str(&e))),
        }
        if env_trusted {
            s.apply_env(env)?;
        }
        Ok(s)
    }

    /// `~vpopmail`: the setting, else the vpopmail account's home, else /home/vpopmail.
    pub fn vpopmail_home(&self) -> PathBuf {
        if let Some(d) = &self.vpopmail_dir {
            return d.clone();
        }
        self.account_home
            .get_or_init(|| match account("vpopmail") {
                Some(a) => a.home,
                None => PathBuf::from("/home/vpopmail"),
            })
            .clone()
    }

    /// Where the users are: `db`, else vpopmail.mysql, else the SQLite default.
    pub fn targets(&self) -> Result<Targets, String> {
        self.targets_as_given()
            .map(|t| t.with_tls_defaults(&self.db_tls))
    }

    fn targets_as_given(&self) -> Result<Targets, String> {
        if let Some(url) = &self.db {
            return Ok(Targets {
                read: parse_url(url)?,
                write: None,
            });
        }
        let vm = self.vpopmail_home().join("etc/vpopmail.mysql");
        match std::fs::read(&vm) {
            Ok(t) => {
                let t = Zeroizing::new(t);
                return parse_vpopmail_mysql(&String::from_utf8_lossy(&t))
                    .map_err(|e| format!("{}: {e}", vm.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("unable to read {}: {}", vm.display(), io_str(&e))),
        }
        Ok(Targets {
            read: Target::Sqlite(PathBuf::from(DEFAULT_SQLITE)),
            write: None,
        })
    }
}

/// A system account's ids and home.
#[derive(Debug, Clone)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

pub fn account(name: &str) -> Option<Account> {
    let u = nix::unistd::User::from_name(name).ok().flatten()?;
    Some(Account {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        home: u.dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env() {
        let mut s = Settings::default();
        s.apply_file(
            "t",
            "# c\n db = sqlite:/x \nlockout_failures=5\ntables = per-domain\n",
        )
        .unwrap();
        assert_eq!(s.lockout_failures, 5);
        assert_eq!(s.tables, Tables::PerDomain);
        let env = |k: &str| (k == "CHECKPASSWORD_LOCKOUT_FAILURES").then(|| "7".to_string());
        s.apply_env(&env).unwrap();
        assert_eq!(s.lockout_failures, 7);
        assert!(s.apply_file("t", "nonsense = 1").is_err());
        // Found by fuzz/fuzz_targets/settings.rs: a URL without its `db =` in front has
        // its first `=` (a parameter's) taken for the key's end; the error named that
        // "key", password and all.
        let e = s
            .apply_file("t", "mysql://u:hunter22@h/d?ssl-mode=REQUIRED")
            .unwrap_err();
        assert!(!e.contains("hunter22"), "{e}");
        assert!(e.contains("t line 1"), "{e}");
        let e = s.apply_file("t", "lockout_failure = 3").unwrap_err();
        assert!(e.contains("unknown setting lockout_failure"), "{e}");
        assert!(s.apply_file("t", "uid = 0").is_err());
        assert!(s.apply_file("t", "lockout_time = -1").is_err());
        assert!(s.apply_file("t", "relay = maybe").is_err());
        s.apply_file("t", "trusted_uids = 64011, root").unwrap();
        assert_eq!(s.trusted_uids, [64011, 0]);
        assert!(s
            .apply_file("t", "trusted_uids = no-such-account-here")
            .is_err());
        assert!(s.apply_file("t", "relay_minutes = 0").is_err());
        assert!(s.apply_file("t", "relay_rules =").is_err());
        s.apply_file("t", "relay_minutes = 30\nrelay_rebuild = on")
            .unwrap();
        assert_eq!((s.relay_minutes, s.relay_rebuild), (30, true));
    }

    #[test]
    fn tls_keys_under_url_parameters() {
        let mut s = Settings::default();
        s.apply_file(
            "t",
            "db = postgres://u@db.example/m?sslmode=verify-full\n\
             db_sslmode = REQUIRED\ndb_sslrootcert = /etc/ca.pem\n",
        )
        .unwrap();
        let Target::Postgres(p) = s.targets().unwrap().read else {
            panic!()
        };
        // The URL's mode, the key's CA file.
        assert_eq!(p.tls.mode(), SslMode::VerifyFull);
        assert_eq!(
            p.tls.ca.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        s.apply_file("t", "db = mysql://u@db.example/m").unwrap();
        let Target::Mysql(m) = s.targets().unwrap().read else {
            panic!()
        };
        // REQUIRED with a CA file verifies the chain.
        assert_eq!(m.tls.mode(), SslMode::VerifyCa);
        let env = |k: &str| (k == "CHECKPASSWORD_DB_SSLMODE").then(|| "disable".to_string());
        s.apply_env(&env).unwrap();
        assert_eq!(s.db_tls.mode, Some(SslMode::Disable));
        assert!(s.apply_file("t", "db_sslmode = sometimes").is_err());
        assert!(s.apply_file("t", "db_sslrootcert =").is_err());
    }
}
