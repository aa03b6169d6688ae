//! A handshake in memory that a server makes with itself before it forks: aws-lc and
//! rustls set things up on first use (one-time tables and method structures behind
//! pthread_once, an RSA key's Montgomery constants), and a connection's process that
//! does it first does it for itself alone, every time. Done in the server, every
//! connection's process inherits it. (aws-lc wipes an RSA key's blinding values in a
//! forked process, so that part stays per connection.)

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use crate::verifiers::Unverified;

/// Handshakes with `server`, once as TLS 1.3 and once as TLS 1.2, asking for each of
/// `names` (a certificate each: its key signs in each); failures are ignored (a server
/// that wants a client certificate refuses this client after it has signed).
pub fn server(server: &Arc<ServerConfig>, names: &[ServerName<'static>]) {
    let provider = server.crypto_provider().clone();
    for version in crate::suites::VERSIONS {
        let Ok(builder) = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[version])
        else {
            continue;
        };
        let client = Arc::new(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider.clone())))
                .with_no_client_auth(),
        );
        for name in names {
            let _ = handshake(client.clone(), server.clone(), name.clone());
        }
    }
}

fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    name: ServerName<'static>,
) -> Result<(), rustls::Error> {
    let mut c = ClientConnection::new(client, name)?;
    let mut s = ServerConnection::new(server)?;
    // A TLS 1.3 or 1.2 handshake takes two or three flights each way.
    for _ in 0..8 {
        let mut wire = Vec::new();
        let _ = c.write_tls(&mut wire);
        let mut rd = &wire[..];
        while !rd.is_empty() {
            if s.read_tls(&mut rd)
                .map_err(|_| rustls::Error::General("read".into()))?
                == 0
            {
                break;
            }
            s.process_new_packets()?;
        }
        wire.clear();
        let _ = s.write_tls(&mut wire);
        let mut rd = &wire[..];
        while !rd.is_empty() {
            if c.read_tls(&mut rd)
                .map_err(|_| rustls::Error::General("read".into()))?
                == 0
            {
                break;
            }
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
    }
    Err(rustls::Error::General("handshake did not finish".into()))
}
