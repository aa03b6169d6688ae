//! TLS towards a database server: rustls on the aws-lc-rs provider, set up as the
//! `tls` crate sets it up for sslclient, with the verification each [`SslMode`] asks for.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tls::verifiers::{AnyName, Unverified};

use super::DbError;
use crate::target::{SslMode, Tls};

/// What [`super::wire::Wire::start_tls`] needs: the client's configuration, the name the
/// certificate must carry, and the settings for messages.
pub struct Setup {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
    pub mode: SslMode,
}

/// The configuration for `mode` towards `host`: no verification for `allow`, `prefer`
/// and `require` (the handshake's signatures are still checked), the chain against the
/// CA for `verify-ca`, the chain and `host` for `verify-full`.
pub fn setup(tls: &Tls, mode: SslMode, host: &str) -> Result<Setup, DbError> {
    let provider = ::tls::suites::provider(None);
    let fail = |what: String| DbError::Other(format!("TLS to {host}: {what}"));
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(::tls::suites::VERSIONS)
        .map_err(|e| fail(e.to_string()))?;
    let name = ServerName::try_from(host.to_string());
    let builder = if mode.verifies() {
        let roots = match tls.ca.as_deref() {
            None => ::tls::files::system_roots(),
            Some(p) if p == Path::new("system") => ::tls::files::system_roots(),
            Some(p) if p.is_dir() => ::tls::files::roots(None, Some(p)),
            Some(p) => ::tls::files::roots(Some(p), None),
        }
        .map_err(|e| fail(format!("CA certificates: {e}")))?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| fail(format!("CA certificates: {e}")))?;
        if mode == SslMode::VerifyFull {
            builder.with_webpki_verifier(webpki)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
        }
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
    };
    let name = match name {
        Ok(n) => n,
        Err(_) if mode == SslMode::VerifyFull => {
            return Err(fail(format!(
                "{host} is not a name a certificate can carry (sslmode {})",
                mode.name()
            )))
        }
        // Unchecked: any name will do, and none is sent (an address is not).
        Err(_) => ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    };
    Ok(Setup {
        config: Arc::new(builder.with_no_client_auth()),
        name,
        mode,
    })
}

/// RFC 5929's `tls-server-end-point` data for SCRAM's channel binding: the certificate's
/// hash by the hash function of its signature (SHA-256 for MD5 and SHA-1); none for a
/// signature without one of its own (RSA-PSS, Ed25519), as PostgreSQL has none then.
pub fn end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let (_, certificate) = der(cert, 0x30)?;
    let (rest, _tbs) = der(certificate, 0x30)?;
    let (_, algorithm) = der(rest, 0x30)?;
    let (_, oid) = der(algorithm, 0x06)?;
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    let hash = match (oid.strip_prefix(RSA), oid.strip_prefix(ECDSA)) {
        // md5, sha1, sha256 WithRSAEncryption; ecdsa-with-SHA1, -SHA256
        (Some([4 | 5 | 11]), _) | (_, Some([1] | [3, 2])) => Sha256::digest(cert).to_vec(),
        (Some([12]), _) | (_, Some([3, 3])) => Sha384::digest(cert).to_vec(),
        (Some([13]), _) | (_, Some([3, 4])) => Sha512::digest(cert).to_vec(),
        _ => return None,
    };
    Some(hash)
}

/// One DER element of type `tag` at the start of `b`: what follows it, and its contents.
fn der(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, b) = b.split_first()?;
    let (&l, mut b) = b.split_first()?;
    if t != tag {
        return None;
    }
    let len = if l < 0x80 {
        usize::from(l)
    } else {
        let n = usize::from(l & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = b.split_at_checked(n)?;
        b = rest;
        bytes.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x))
    };
    let (contents, rest) = b.split_at_checked(len)?;
    Some((rest, contents))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::testdata;

    #[test]
    fn end_point_hashes() {
        // ecdsa-with-SHA256: the certificate's SHA-256.
        let der = ::tls::files::certificates(&testdata("server.pem")).unwrap();
        let cert = der[0].as_ref();
        assert_eq!(end_point_hash(cert), Some(Sha256::digest(cert).to_vec()));
        // A signature algorithm it does not know, and bytes that are not a certificate.
        let mut other = cert.to_vec();
        let at = other
            .windows(8)
            .rposition(|w| w == [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04])
            .unwrap();
        other[at + 9] = 9;
        assert_eq!(end_point_hash(&other), None);
        assert_eq!(end_point_hash(&cert[..20]), None);
        assert_eq!(end_point_hash(b""), None);
    }
}
