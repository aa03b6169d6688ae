//! sslserver's TLS configuration: the certificates and keys ucspi-ssl's variables name
//! (`CERTFILE`, `KEYFILE`, `CERTCHAINFILE`), more certificates chosen by the server name
//! a client asks for (`CERTFILE:name`, `KEYFILE:name`, as s6-tlsserver names them), the
//! CA list for client certificates (`CAFILE`, `CADIR`, `CCAFILE`), `CIPHERS` and
//! `DHFILE`, and the session-ticket keys.
//!
//! Everything is read once in the server, before any connection, and every connection's
//! process inherits it through fork: a child never opens a key file. Before each fork the
//! server checks whether any of the files changed (as it does for the rules) and, if so,
//! reads them all again; a set that does not load is logged and the old one kept.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tls::files;
use tls::modssl::Side;
use tls::tickets::TicketKeys;
use tls::vars::Block;
use ucspi::fileid::{self, Identity};
use ucspi::msg::Line;

use crate::options::ClientCert;

/// What the environment names, read once at start.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub chainfile: Option<PathBuf>,
    pub cafile: Option<PathBuf>,
    pub cadir: Option<PathBuf>,
    /// `CCAFILE`: the CA names sent with the certificate request (default: the CA list's).
    pub ccafile: Option<PathBuf>,
    pub dhfile: Option<PathBuf>,
    pub ciphers: Option<String>,
    /// `CERTFILE:name` and `KEYFILE:name`.
    pub sni: Vec<(String, PathBuf, Option<PathBuf>)>,
    pub client_cert: ClientCert,
    /// The key's password (`-3`).
    pub password: Option<Vec<u8>>,
}

/// A variable's value, empty counting as unset (ucspi-ssl's rule).
fn var(env: &dyn Fn(&str) -> Option<OsString>, name: &str) -> Option<OsString> {
    env(name).filter(|v| !v.is_empty())
}

impl Settings {
    /// From the environment (`vars` lists every variable, for the `CERTFILE:name` ones).
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<OsString>,
        vars: impl Iterator<Item = (OsString, OsString)>,
        mut client_cert: ClientCert,
    ) -> Settings {
        let path = |n: &str| var(env, n).map(PathBuf::from);
        let ccafile = path("CCAFILE");
        // ucspi-ssl: CCAFILE=- asks for no client certificate at all.
        if ccafile.as_deref() == Some(Path::new("-")) {
            client_cert = ClientCert::None;
        }
        let mut sni = Vec::new();
        for (k, v) in vars {
            let k = k.into_vec();
            if let Some(name) = k.strip_prefix(b"CERTFILE:") {
                if name.is_empty() || v.is_empty() {
                    continue;
                }
                let name = String::from_utf8_lossy(name).into_owned();
                let key = var(env, &format!("KEYFILE:{name}")).map(PathBuf::from);
                sni.push((name.to_ascii_lowercase(), PathBuf::from(v), key));
            }
        }
        sni.sort();
        Settings {
            certfile: path("CERTFILE"),
            keyfile: path("KEYFILE"),
            chainfile: path("CERTCHAINFILE"),
            cafile: path("CAFILE"),
            cadir: path("CADIR"),
            ccafile: ccafile.filter(|p| p != Path::new("-")),
            dhfile: path("DHFILE"),
            ciphers: var(env, "CIPHERS").map(|v| v.to_string_lossy().into_owned()),
            sni,
            client_cert,
            password: None,
        }
    }

    /// Every file whose change means reading everything again.
    fn files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = [
            &self.certfile,
            &self.keyfile,
            &self.chainfile,
            &self.cafile,
            &self.cadir,
            &self.ccafile,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        for (_, c, k) in &self.sni {
            v.push(c.clone());
            v.extend(k.clone());
        }
        v
    }
}

/// Why the configuration did not load: ucspi-ssl's message and the file's problem.
#[derive(Debug)]
pub struct LoadError {
    pub what: String,
    pub why: String,
}

impl LoadError {
    fn new(what: &str, file: Option<&Path>, why: impl ToString) -> LoadError {
        let mut w = what.to_string();
        if let Some(f) = file {
            w.push_str(": ");
            w.push_str(&f.display().to_string());
        }
        LoadError {
            what: w,
            why: why.to_string(),
        }
    }
}

/// One certificate with its key, and its `SSL_SERVER_*` variables (computed once).
#[derive(Debug)]
pub struct Entry {
    pub key: Arc<CertifiedKey>,
    pub vars: Block,
}

/// The certificates by server name.
#[derive(Debug, Default)]
pub struct Certs {
    default: Option<Entry>,
    /// Lower-case names; `*.example.com` matches one more label.
    names: Vec<(String, Entry)>,
}

impl Certs {
    /// The certificate for a client that asked for `name` (or for none).
    pub fn select(&self, name: Option<&str>) -> Option<&Entry> {
        let by_name = name.and_then(|n| {
            let n = n.to_ascii_lowercase();
            let exact = self.names.iter().find(|(k, _)| *k == n);
            exact
                .or_else(|| {
                    let parent = n.split_once('.').map(|(_, p)| p)?;
                    self.names
                        .iter()
                        .find(|(k, _)| k.strip_prefix("*.") == Some(parent))
                })
                .map(|(_, e)| e)
        });
        by_name.or(self.default.as_ref())
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.select(hello.server_name()).map(|e| e.key.clone())
    }
}

/// The server's TLS configuration, kept up to date with its files.
pub struct Context {
    settings: Settings,
    pub config: Arc<ServerConfig>,
    pub certs: Arc<Certs>,
    tickets: TicketKeys,
    ids: Vec<(PathBuf, Option<Identity>)>,
}

fn certified(
    cert: &Path,
    chain: Option<&Path>,
    key: Option<&Path>,
    password: Option<&[u8]>,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Entry, LoadError> {
    let cert_file = chain.unwrap_or(cert);
    let what = if chain.is_some() {
        "unable to load certificate chain file"
    } else {
        "unable to load certificate"
    };
    let certs: Vec<CertificateDer<'static>> =
        files::certificates(cert_file).map_err(|e| LoadError::new(what, Some(cert_file), e))?;
    let key_file = key.unwrap_or(cert_file);
    let key_der = files::private_key(key_file, password)
        .map_err(|e| LoadError::new("unable to load key", Some(key_file), e))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| LoadError::new("unable to load key", Some(key_file), e))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()
        .map_err(|e| LoadError::new("key does not match certificate", Some(key_file), e))?;
    let vars = tls::vars::certificate(Side::Server, &ck.cert);
    Ok(Entry {
        key: Arc::new(ck),
        vars,
    })
}

impl Context {
    /// Reads everything `settings` names; `tickets` are the server's ticket keys.
    pub fn load(settings: Settings, tickets: TicketKeys) -> Result<Context, LoadError> {
        let ids = settings
            .files()
            .into_iter()
            .map(|p| {
                let id = fileid::of_path(&p);
                (p, id)
            })
            .collect();
        let (config, certs) = build(&settings, &tickets)?;
        Ok(Context {
            settings,
            config,
            certs,
            tickets,
            ids,
        })
    }

    /// Before each fork: rotates the ticket keys when due and, when a file changed,
    /// reads everything again (on failure the old configuration stays, with a warning).
    pub fn refresh(&mut self, now: Instant) {
        self.tickets.rotate_if_due(now);
        let changed = self.ids.iter().any(|(p, id)| fileid::of_path(p) != *id);
        if !changed {
            return;
        }
        for (p, id) in &mut self.ids {
            *id = fileid::of_path(p);
        }
        // New ticket keys with new files: a session resumed from an older ticket would
        // keep a client certificate that a changed CA list may no longer accept.
        let Some(tickets) = TicketKeys::new() else {
            return;
        };
        match build(&self.settings, &tickets) {
            Ok((config, certs)) => {
                self.config = config;
                self.certs = certs;
                self.tickets = tickets;
            }
            Err(e) => {
                Line::new()
                    .push(b"sslserver: warning: keeping the old certificates: ")
                    .push(e.what.as_bytes())
                    .push(b" (")
                    .push(e.why.as_bytes())
                    .push(b")")
                    .write();
            }
        }
    }

    /// The `-v` lines ucspi-ssl prints at start.
    pub fn log_settings(&self, pid: u32) {
        let s = &self.settings;
        let show = |name: &str, v: Option<&[u8]>| {
            Line::new()
                .push(b"sslserver: ")
                .push(name.as_bytes())
                .push(b" ")
                .num(pid.into())
                .push(b" ")
                .push(v.unwrap_or_default())
                .write();
        };
        let p = |p: &Option<PathBuf>| p.as_ref().map(|p| p.as_os_str().as_bytes().to_vec());
        show("ciphers", s.ciphers.as_deref().map(str::as_bytes));
        show("cafile", p(&s.cafile).as_deref());
        show("ccafile", p(&s.ccafile).as_deref());
        show("cadir", p(&s.cadir).as_deref());
        show("certchainfile", p(&s.chainfile).as_deref());
        show("cert", p(&s.certfile).as_deref());
        show("key", p(&s.keyfile).as_deref());
        show("dhparam", p(&s.dhfile).as_deref());
        for (name, cert, _) in &s.sni {
            let mut v = name.as_bytes().to_vec();
            v.push(b' ');
            v.extend_from_slice(cert.as_os_str().as_bytes());
            show("sni", Some(&v));
        }
    }
}

/// The configuration `s` describes.
fn build(s: &Settings, tickets: &TicketKeys) -> Result<(Arc<ServerConfig>, Arc<Certs>), LoadError> {
    let suites = match &s.ciphers {
        None => None,
        Some(list) => Some(
            tls::suites::parse_ciphers(list)
                .map_err(|e| LoadError::new("unable to set cipher list", None, e.0))?,
        ),
    };
    let provider = tls::suites::provider(suites);
    if let Some(dh) = &s.dhfile {
        // rustls offers only (EC)DHE over named groups: finite-field parameters are read
        // to catch a wrong file, as ucspi-ssl would, and not used.
        let text = files::read(dh)
            .map_err(|e| LoadError::new("unable to set DH parameters", Some(dh), e))?;
        if !String::from_utf8_lossy(&text).contains("-----BEGIN DH PARAMETERS-----") {
            return Err(LoadError::new(
                "unable to set DH parameters",
                Some(dh),
                "no DH PARAMETERS in it",
            ));
        }
    }
    let pw = s.password.as_deref();
    let mut certs = Certs::default();
    if let Some(cert) = s.chainfile.as_ref().or(s.certfile.as_ref()) {
        let chain = s.chainfile.as_deref();
        certs.default = Some(certified(cert, chain, s.keyfile.as_deref(), pw, &provider)?);
    }
    for (name, cert, key) in &s.sni {
        let e = certified(cert, None, key.as_deref(), pw, &provider)?;
        certs.names.push((name.clone(), e));
    }
    if certs.default.is_none() && certs.names.is_empty() {
        return Err(LoadError::new(
            "unable to load certificate",
            None,
            "no CERTFILE, CERTCHAINFILE or CERTFILE:name set",
        ));
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(tls::suites::VERSIONS)
        .map_err(|e| LoadError::new("unable to create TLS context", None, e))?;
    let builder = match s.client_cert {
        ClientCert::None => builder.with_no_client_auth(),
        ClientCert::Required | ClientCert::RequiredWithName => {
            if s.cafile.is_none() && s.cadir.is_none() {
                return Err(LoadError::new(
                    "unable to load CA list",
                    None,
                    "-m and -z need CAFILE or CADIR",
                ));
            }
            let roots = files::roots(s.cafile.as_deref(), s.cadir.as_deref())
                .map_err(|e| LoadError::new("unable to load CA list", None, e))?;
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if let Some(cca) = &s.ccafile {
                let named = files::roots(Some(cca), None)
                    .map_err(|e| LoadError::new("unable to load client CA list", Some(cca), e))?;
                v = v
                    .clear_root_hint_subjects()
                    .add_root_hint_subjects(named.subjects());
            }
            let v = v
                .build()
                .map_err(|e| LoadError::new("unable to load CA list", None, e))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let certs = Arc::new(certs);
    let mut config = builder.with_cert_resolver(certs.clone());
    config.ticketer = Arc::new(tickets.clone());
    // Each connection is its own process: a session cache would be per process, so only
    // tickets (whose keys every process shares) resume sessions.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    let config = Arc::new(config);
    let mut names = vec![ServerName::try_from("localhost").expect("a name")];
    for (n, _) in &certs.names {
        // A wildcard entry is asked for with a name it matches.
        let n = n.replace('*', "warm-up");
        names.extend(ServerName::try_from(n).ok());
    }
    tls::warm::server(&config, &names);
    Ok((config, certs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_env() {
        let env: Vec<(OsString, OsString)> = vec![
            ("CERTFILE".into(), "/c.pem".into()),
            ("KEYFILE".into(), "".into()),
            ("CCAFILE".into(), "-".into()),
            ("CERTFILE:Mail.Example.COM".into(), "/m.pem".into()),
            ("KEYFILE:Mail.Example.COM".into(), "/mk.pem".into()),
            ("CERTFILE:*.example.org".into(), "/w.pem".into()),
        ];
        let e2 = env.clone();
        let get = move |k: &str| e2.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let s = Settings::from_env(&get, env.into_iter(), ClientCert::Required);
        assert_eq!(s.certfile.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(s.keyfile, None, "empty is unset");
        assert_eq!(s.client_cert, ClientCert::None, "CCAFILE=- asks for none");
        assert_eq!(s.sni.len(), 2);
        assert_eq!(s.sni[1].0, "mail.example.com");
        assert_eq!(s.sni[1].2.as_deref(), Some(Path::new("/mk.pem")));
    }
}
