//! TLS towards a database server: rustls on the aws-lc-rs provider, set up as the
//! `tls` crate sets it up for sslclient, with the verification each [`SslMode`] asks for.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
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
