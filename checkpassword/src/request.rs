//! What a login is asked to do: the credentials on fd 3, the program to run, and what the
//! caller's environment says (client address, service, Dovecot's mode), then the name
//! the credentials give resolved to a user and domain.

use std::ffi::OsString;
use std::time::Duration;

use nix::unistd::{getegid, geteuid, getgid, getuid};
use vpopdb::assign::{self, Domain};
use vpopdb::config::Settings;
use vpopdb::loginname::{self, LoginError, LoginName};

use crate::fd3::{self, Credentials};
use crate::run::Failure;
use crate::service::{self, Detected};

/// How long a caller may take to write fd 3.
const FD3_TIMEOUT: Duration = Duration::from_secs(60);

/// The process environment, minus what an untrusted (setuid) caller chose.
pub struct CallerEnv {
    pub trusted: bool,
}

impl CallerEnv {
    pub fn get(&self, name: &str) -> Option<String> {
        if !self.trusted && caller_chosen(name) {
            return None;
        }
        std::env::var(name).ok()
    }
}

/// Environment variables a setuid caller must not choose.
fn caller_chosen(name: &str) -> bool {
    name.starts_with("CHECKPASSWORD_") || name == "QMAIL" || name == "AUTHORIZED"
}

pub struct Request {
    /// The program to run on success, with its arguments.
    pub prog: Vec<OsString>,
    pub creds: Credentials,
    pub env: CallerEnv,
    /// Running setuid or setgid: the caller chose `prog` and the environment.
    pub setuid: bool,
    /// A setuid caller's real uid, when it is not root: a local user, who could name any
    /// client address.
    pub caller_uid: Option<u32>,
    /// The client's address as vchkpw's `get_remote_ip` cleans it.
    pub ip: String,
    /// Whether `ip` is believed (see [`Request::judge_address`]).
    pub ip_trusted: bool,
    /// Called by Dovecot's checkpassword passdb or userdb.
    pub dovecot: bool,
    /// Dovecot's `AUTHORIZED=1`: answer with `AUTHORIZED=2` on success.
    pub authorized: bool,
    /// Dovecot asks whether the user exists; there is no password to check.
    pub lookup_only: bool,
    pub service: Detected,
}

/// The user a login names, after the default domain and users/cdb's alias domains.
pub struct Who {
    pub name: LoginName,
    /// The domain's users/cdb entry, when it has one.
    pub assigned: Option<Domain>,
}

impl Who {
    pub fn user(&self) -> &str {
        &self.name.user
    }
    pub fn domain(&self) -> &str {
        &self.name.domain
    }
    pub fn address(&self) -> String {
        format!("{}@{}", self.name.user, self.name.domain)
    }
}

/// Reads the request: the program from `args`, then fd 3 (before anything else is
/// opened), then the environment.
pub fn read(args: &[OsString]) -> Result<Request, Failure> {
    if args.len() < 2 {
        return Err(Failure::Usage);
    }
    let raw = fd3::read_all(FD3_TIMEOUT).map_err(Failure::Fd3)?;
    let creds = fd3::parse(&raw).map_err(Failure::Fd3)?;
    drop(raw);
    let setuid = getuid() != geteuid() || getgid() != getegid();
    let env = CallerEnv { trusted: !setuid };
    let caller_uid = Some(getuid())
        .filter(|u| setuid && !u.is_root())
        .map(|u| u.as_raw());
    let ip = remote_ip(&env);
    let dovecot = env.get("ORIG_UID").is_some() || env.get("AUTHORIZED").is_some();
    let authorized = env.get("AUTHORIZED").as_deref() == Some("1");
    let lookup_only = authorized && creds.password.is_empty();
    let prog = args[1..].to_vec();
    let service = service::detect(
        env.get("SERVICE").as_deref().filter(|_| dovecot),
        env.get("TCPLOCALPORT").as_deref(),
        prog[0].as_encoded_bytes(),
        &ip,
    );
    Ok(Request {
        prog,
        creds,
        env,
        setuid,
        caller_uid,
        ip,
        ip_trusted: caller_uid.is_none(),
        dovecot,
        authorized,
        lookup_only,
        service,
    })
}

impl Request {
    /// Settles whether to believe the client address: always unless a local user runs
    /// us setuid, then only for the callers `trusted_uids` names. An address a local user
    /// chose must not pick the lockout counters (ten guesses from ten made-up addresses
    /// would each count as a first), open relaying for it, or go in the log, where
    /// fail2ban would ban whatever address it names.
    pub fn judge_address(&mut self, s: &Settings) {
        self.ip_trusted = self
            .caller_uid
            .is_none_or(|uid| s.trusted_uids.contains(&uid));
    }

    /// The client address failures are counted against and lastauth and relay record:
    /// none when it is not believed.
    pub fn client_ip(&self) -> &str {
        if self.ip_trusted {
            &self.ip
        } else {
            ""
        }
    }

    /// The log line for this attempt: `text` about `user` at `domain`.
    pub fn attempt(&self, text: &str, user: &[u8], domain: &str) {
        let untrusted;
        let addr = match self.caller_uid.filter(|_| !self.ip_trusted) {
            Some(uid) => {
                untrusted = format!("untrusted(uid={uid})");
                &untrusted
            }
            None => &self.ip,
        };
        crate::log::attempt(&self.service.logname, text, user, domain, addr);
    }

    /// Whom the credentials name: vchkpw's login forms, a password unless Dovecot only
    /// looks the user up, the default domain, and the real domain of an alias.
    pub fn who(&self, settings: &Settings) -> Result<Who, Failure> {
        let refused = |text, user: &[u8], domain: &str| Failure::Refused {
            text,
            user: user.to_vec(),
            domain: domain.to_string(),
        };
        let mut name = match loginname::parse(&self.creds.login) {
            Ok(l) => l,
            Err(LoginError::Empty) => return Err(refused("null user name given", b"", "")),
            Err(_) => {
                let text = "invalid user/domain characters";
                return Err(refused(text, &self.creds.login, ""));
            }
        };
        if self.creds.password.is_empty() && !self.lookup_only {
            let text = "null password given";
            return Err(refused(text, name.user.as_bytes(), &name.domain));
        }
        if name.domain.is_empty() {
            name.domain = self.default_domain(settings);
        }
        let assigned = assign::lookup(&settings.qmail_dir, &name.domain).map_err(Failure::Fatal)?;
        if let Some(a) = &assigned {
            // An alias domain's users live under the real domain.
            name.domain = a.name.clone();
        }
        Ok(Who { name, assigned })
    }

    /// The default domain: `VPOPMAIL_DOMAIN`, the `default_domain` setting, then the first
    /// line of `~vpopmail/etc/defaultdomain`.
    fn default_domain(&self, s: &Settings) -> String {
        if let Some(d) = self.env.get("VPOPMAIL_DOMAIN").filter(|d| !d.is_empty()) {
            return loginname::sanitize_domain(&d);
        }
        if let Some(d) = &s.default_domain {
            return d.clone();
        }
        let f = s.vpopmail_home().join("etc/defaultdomain");
        std::fs::read_to_string(f)
            .ok()
            .and_then(|t| t.lines().next().map(|l| l.trim().to_ascii_lowercase()))
            .filter(|d| loginname::domain_ok(d))
            .unwrap_or_default()
    }
}

/// `TCPREMOTEIP` as vchkpw's `get_remote_ip` treats it: a v4-mapped prefix removed and
/// anything but address characters replaced.
fn remote_ip(env: &CallerEnv) -> String {
    let raw = env
        .get("TCPREMOTEIP")
        .or_else(|| env.get("REMOTE_IP"))
        .unwrap_or_default();
    let raw = raw.strip_prefix("::ffff:").unwrap_or(&raw);
    raw.chars()
        .take(39)
        .map(|c| {
            if c.is_ascii_hexdigit() || c == '.' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
