//! Certificates, private keys and CA lists read from the PEM files ucspi-ssl's variables
//! and options name (`CERTFILE`, `KEYFILE`, `CERTCHAINFILE`, `CAFILE`, `CADIR`,
//! `CCAFILE`, sslclient's `-a`, `-A`, `-c`, `-k`). Keys may be PKCS#8 (also encrypted,
//! with the password of `-3` or `-K`), PKCS#1 (RSA) or SEC1 (EC).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

/// Largest PEM file read: certificate bundles (Debian's has ~150 CAs) are a few hundred
/// KiB; anything far larger is not a certificate file.
const MAX_FILE: u64 = 16 << 20;

/// Why a file gave no usable certificate, key or CA list.
#[derive(Debug)]
pub enum FileError {
    Io(PathBuf, io::Error),
    /// No PEM section of the wanted kind.
    Empty(PathBuf),
    /// A section that does not decode, or a key rustls cannot use.
    Bad(PathBuf, String),
    /// An encrypted key and no password (`-3`, `-K`).
    NeedPassword(PathBuf),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Io(p, e) => write!(f, "{}: {}", p.display(), ucspi::errstr::io_str(e)),
            FileError::Empty(p) => write!(f, "{}: nothing usable in it", p.display()),
            FileError::Bad(p, why) => write!(f, "{}: {}", p.display(), why),
            FileError::NeedPassword(p) => {
                write!(
                    f,
                    "{}: the key is encrypted and no password was given",
                    p.display()
                )
            }
        }
    }
}

/// The file's bytes, bounded.
pub fn read(path: &Path) -> Result<Vec<u8>, FileError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| FileError::Io(path.into(), e))?;
    let mut v = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut v)
        .map_err(|e| FileError::Io(path.into(), e))?;
    if v.len() as u64 > MAX_FILE {
        return Err(FileError::Bad(path.into(), "file too large".into()));
    }
    Ok(v)
}

/// Every certificate in a PEM file, in file order (the server's certificate, then its
/// chain).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let bytes = read(path)?;
    let mut out = Vec::new();
    for c in CertificateDer::pem_slice_iter(&bytes) {
        out.push(c.map_err(|e| FileError::Bad(path.into(), format!("{e:?}")))?);
    }
    if out.is_empty() {
        return Err(FileError::Empty(path.into()));
    }
    Ok(out)
}

/// The first private key in a PEM file; `password` decrypts an `ENCRYPTED PRIVATE KEY`
/// (PKCS#8 with PBES2, what `openssl genpkey -aes256` and `openssl pkcs8 -topk8 -v2`
/// write).
pub fn private_key(
    path: &Path,
    password: Option<&[u8]>,
) -> Result<PrivateKeyDer<'static>, FileError> {
    let bytes = read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(FileError::Bad(
            path.into(),
            "a key encrypted in OpenSSL's legacy PEM format: convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc`".into(),
        ));
    }
    if let Some(start) = text.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let Some(password) = password else {
            return Err(FileError::NeedPassword(path.into()));
        };
        return decrypt(path, &text[start..], password);
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => FileError::Empty(path.into()),
        e => FileError::Bad(path.into(), format!("{e:?}")),
    })
}

fn decrypt(path: &Path, pem: &str, password: &[u8]) -> Result<PrivateKeyDer<'static>, FileError> {
    use pkcs8::der::Decode;
    let end_marker = "-----END ENCRYPTED PRIVATE KEY-----";
    let end = pem
        .find(end_marker)
        .map(|i| i + end_marker.len())
        .ok_or_else(|| FileError::Bad(path.into(), "unterminated PEM section".into()))?;
    let (label, der) = pkcs8::der::pem::decode_vec(&pem.as_bytes()[..end])
        .map_err(|e| FileError::Bad(path.into(), e.to_string()))?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(FileError::Bad(
            path.into(),
            format!("unexpected PEM label {label}"),
        ));
    }
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(&der)
        .map_err(|e| FileError::Bad(path.into(), e.to_string()))?;
    let doc = info.decrypt(password).map_err(|_| {
        FileError::Bad(
            path.into(),
            "wrong password or unsupported encryption".into(),
        )
    })?;
    Ok(PrivateKeyDer::Pkcs8(doc.as_bytes().to_vec().into()))
}

/// Trust anchors from a PEM file and/or a directory of PEM files (OpenSSL's `CADIR`
/// holds hashed links to them; every regular file that holds certificates counts).
/// Certificates that are not usable as anchors are skipped, as OpenSSL skips them.
pub fn roots(file: Option<&Path>, dir: Option<&Path>) -> Result<RootCertStore, FileError> {
    let mut store = RootCertStore::empty();
    if let Some(f) = file {
        let (added, _) = store.add_parsable_certificates(certificates(f)?);
        if added == 0 {
            return Err(FileError::Empty(f.into()));
        }
    }
    if let Some(d) = dir {
        let entries = std::fs::read_dir(d).map_err(|e| FileError::Io(d.into(), e))?;
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for p in names.iter().take(100_000) {
            if p.is_file() {
                if let Ok(certs) = certificates(p) {
                    store.add_parsable_certificates(certs);
                }
            }
        }
    }
    Ok(store)
}

/// The system's trust anchors, for sslclient without `-a`/`-A`: `$SSL_CERT_FILE`,
/// `$SSL_CERT_DIR`, or the bundle Debian (ca-certificates), Fedora or Alpine keeps.
pub fn system_roots() -> Result<RootCertStore, FileError> {
    let file = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let dir = std::env::var_os("SSL_CERT_DIR").map(PathBuf::from);
    if file.is_some() || dir.is_some() {
        return roots(file.as_deref(), dir.as_deref());
    }
    const BUNDLES: [&str; 4] = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    ];
    let found = BUNDLES.iter().map(Path::new).find(|p| p.exists());
    match found {
        Some(p) => roots(Some(p), None),
        None => roots(None, Some(Path::new("/etc/ssl/certs"))),
    }
}
