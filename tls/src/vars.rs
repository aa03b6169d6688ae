//! The `SSL_*` variables of an established connection, in ucspi-ssl's order and formats,
//! as a block of `NAME=value\0` entries ended by one more `\0`: the UCSPI-TLS `Y` reply,
//! and what sslserver's program reads before it runs.

use rustls::pki_types::CertificateDer;
use rustls::Connection;

use crate::modssl::{self, Side};
use crate::suites;

/// Entries of a block being built.
#[derive(Clone, Debug, Default)]
pub struct Block(Vec<u8>);

impl Block {
    pub fn new() -> Block {
        Block(Vec::with_capacity(4096))
    }

    /// Adds `NAME=value`; a value is cut at a NUL (an environment cannot carry one).
    pub fn push(&mut self, name: &str, value: &[u8]) {
        let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
        self.0.extend_from_slice(name.as_bytes());
        self.0.push(b'=');
        self.0.extend_from_slice(&value[..end]);
        self.0.push(0);
    }

    /// Adds the entries of another block (without its end).
    pub fn extend(&mut self, other: &Block) {
        self.0.extend_from_slice(&other.0);
    }

    /// The block with its ending `\0`.
    pub fn finish(mut self) -> Vec<u8> {
        self.0.push(0);
        self.0
    }
}

/// The `NAME=value` entries of a finished block, up to its ending empty entry.
pub fn entries(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    block.split(|&b| b == 0).take_while(|e| !e.is_empty())
}

/// Whether `bytes` holds a whole block (it ends with an empty entry).
pub fn is_complete(bytes: &[u8]) -> bool {
    bytes == b"\0" || bytes.ends_with(b"\0\0")
}

/// A certificate's variables for `side` (computed once per certificate by a server).
pub fn certificate(side: Side, chain: &[CertificateDer<'_>]) -> Block {
    let mut b = Block::new();
    if let Some(leaf) = chain.first() {
        // A certificate x509-parser cannot read gets no variables, not a refused
        // connection: rustls accepted it.
        let _ = modssl::cert_vars(side, leaf, &mut |n, v| b.push(n, v));
        let rest: Vec<&[u8]> = chain[1..].iter().map(|c| c.as_ref()).collect();
        modssl::chain_vars(side, &rest, &mut |n, v| b.push(n, v));
    }
    b
}

/// The session's variables: protocol, cipher, library, and the server name the client
/// asked for (mod_ssl's `SSL_TLS_SNI`).
pub fn session(conn: &Connection) -> Block {
    let mut b = Block::new();
    let proto = conn.protocol_version().map_or("", suites::protocol_name);
    b.push("SSL_PROTOCOL", proto.as_bytes());
    // rustls does not expose session ids; TLS 1.3 and ticket resumption have none.
    b.push("SSL_SESSION_ID", b"");
    let (name, bits) = conn
        .negotiated_cipher_suite()
        .and_then(|s| suites::describe(s.suite()))
        .unwrap_or(("", 0));
    b.push("SSL_CIPHER", name.as_bytes());
    b.push("SSL_CIPHER_EXPORT", b"false");
    let bits = bits.to_string();
    b.push("SSL_CIPHER_USEKEYSIZE", bits.as_bytes());
    b.push("SSL_CIPHER_ALGKEYSIZE", bits.as_bytes());
    b.push("SSL_VERSION_INTERFACE", b"ucspi-ssl");
    b.push("SSL_VERSION_LIBRARY", LIBRARY.as_bytes());
    if let Connection::Server(s) = conn {
        if let Some(sni) = s.server_name() {
            b.push("SSL_TLS_SNI", sni.as_bytes());
        }
    }
    b
}

/// `SSL_VERSION_LIBRARY`.
pub const LIBRARY: &str = "rustls 0.23 (aws-lc-rs)";

/// `-V`'s `PROTO:CIPHER` of a connection.
pub fn summary(conn: &Connection) -> String {
    let proto = conn.protocol_version().map_or("", suites::protocol_name);
    let name = conn
        .negotiated_cipher_suite()
        .and_then(|s| suites::describe(s.suite()))
        .map_or("", |d| d.0);
    format!("{proto}:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks() {
        let mut b = Block::new();
        b.push("A", b"1");
        b.push("B", b"x\0y");
        let v = b.finish();
        assert_eq!(v, b"A=1\0B=x\0\0");
        assert!(is_complete(&v));
        assert!(!is_complete(b"A=1\0"));
        assert!(is_complete(b"\0"));
        assert_eq!(entries(&v).collect::<Vec<_>>(), vec![&b"A=1"[..], b"B=x"]);
        assert_eq!(entries(b"\0").count(), 0);
    }
}
