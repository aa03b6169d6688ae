//! The crypto provider, the cipher suites it offers under their OpenSSL names (what
//! ucspi-ssl's `SSL_CIPHER` and `CIPHERS` use), and `CIPHERS` itself.
//!
//! aws-lc-rs rather than ring: an RSA-2048 signature, the server's dominant cost in a full
//! handshake, took 0.30 ms against ring's 0.76 ms on this project's machine, and it builds
//! with cargo and a C compiler alone (no cmake, nasm or clang on x86_64 Linux).

use std::sync::Arc;

use rustls::crypto::aws_lc_rs::{self, cipher_suite as cs};
use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, ProtocolVersion, SupportedCipherSuite};

/// A suite's names and key sizes as OpenSSL reports them.
pub struct SuiteInfo {
    pub suite: SupportedCipherSuite,
    /// OpenSSL's name (`TLS_AES_256_GCM_SHA384`, `ECDHE-RSA-AES128-GCM-SHA256`).
    pub openssl: &'static str,
    /// Secret bits of the cipher (`SSL_CIPHER_USEKEYSIZE`, `_ALGKEYSIZE`).
    pub bits: u32,
}

/// Every suite this build can negotiate, TLS 1.3 first, in the provider's preference
/// order.
pub fn all() -> [SuiteInfo; 9] {
    [
        info(cs::TLS13_AES_256_GCM_SHA384, "TLS_AES_256_GCM_SHA384", 256),
        info(cs::TLS13_AES_128_GCM_SHA256, "TLS_AES_128_GCM_SHA256", 128),
        info(
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            "TLS_CHACHA20_POLY1305_SHA256",
            256,
        ),
        info(
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            256,
        ),
        info(
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            128,
        ),
        info(
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            256,
        ),
        info(
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            "ECDHE-RSA-AES256-GCM-SHA384",
            256,
        ),
        info(
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            "ECDHE-RSA-AES128-GCM-SHA256",
            128,
        ),
        info(
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            "ECDHE-RSA-CHACHA20-POLY1305",
            256,
        ),
    ]
}

fn info(suite: SupportedCipherSuite, openssl: &'static str, bits: u32) -> SuiteInfo {
    SuiteInfo {
        suite,
        openssl,
        bits,
    }
}

/// OpenSSL's name and bits of a negotiated suite.
pub fn describe(suite: CipherSuite) -> Option<(&'static str, u32)> {
    all()
        .into_iter()
        .find(|i| i.suite.suite() == suite)
        .map(|i| (i.openssl, i.bits))
}

/// `SSL_PROTOCOL`'s text for a version.
pub fn protocol_name(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3",
        ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "unknown",
    }
}

/// A `CIPHERS` value naming a suite this build does not have.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownCipher(pub String);

/// The suites `CIPHERS` allows: a list of OpenSSL or IANA suite names separated by `:`,
/// `,` or spaces. ucspi-ssl hands the value to OpenSSL's TLS 1.3 list, which leaves TLS
/// 1.2 at its defaults; here the TLS 1.3 names choose among TLS 1.3 suites and TLS 1.2
/// names among TLS 1.2 suites, and a version the list does not mention keeps all of its
/// suites. Any other word (OpenSSL's `HIGH`, `!aNULL`) is refused, as ucspi-ssl refuses
/// it, rather than silently ignored.
pub fn parse_ciphers(list: &str) -> Result<Vec<SupportedCipherSuite>, UnknownCipher> {
    let table = all();
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    for word in list
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        let found = table.iter().find(|i| {
            i.openssl.eq_ignore_ascii_case(word)
                || i.suite
                    .suite()
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(word))
        });
        match found {
            Some(i) if !chosen.iter().any(|c| c.suite() == i.suite.suite()) => chosen.push(i.suite),
            Some(_) => {}
            None => return Err(UnknownCipher(word.to_string())),
        }
    }
    let is13 = |s: &SupportedCipherSuite| s.version() == &rustls::version::TLS13;
    let mut out = Vec::new();
    for want13 in [true, false] {
        let named: Vec<_> = chosen
            .iter()
            .filter(|s| is13(s) == want13)
            .copied()
            .collect();
        if named.is_empty() {
            out.extend(table.iter().map(|i| i.suite).filter(|s| is13(s) == want13));
        } else {
            out.extend(named);
        }
    }
    Ok(out)
}

/// The provider with `suites` (None: all of [`all`]).
pub fn provider(suites: Option<Vec<SupportedCipherSuite>>) -> Arc<CryptoProvider> {
    let mut p = aws_lc_rs::default_provider();
    p.cipher_suites = suites.unwrap_or_else(|| all().into_iter().map(|i| i.suite).collect());
    Arc::new(p)
}

/// TLS 1.3 and 1.2, nothing older.
pub static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphers_by_version() {
        let all_n = all().len();
        assert_eq!(parse_ciphers("").unwrap().len(), all_n);
        let only = parse_ciphers("TLS_CHACHA20_POLY1305_SHA256").unwrap();
        assert_eq!(only[0].suite(), CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
        // TLS 1.2 untouched: its six suites follow.
        assert_eq!(only.len(), 1 + 6);
        let mixed = parse_ciphers("ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_256_GCM_SHA384").unwrap();
        assert_eq!(mixed.len(), 2);
        assert_eq!(mixed[0].suite(), CipherSuite::TLS13_AES_256_GCM_SHA384);
        assert_eq!(
            parse_ciphers("HIGH").unwrap_err(),
            UnknownCipher("HIGH".into())
        );
        assert_eq!(
            parse_ciphers("TLS13_AES_128_GCM_SHA256, tls_aes_128_gcm_sha256")
                .unwrap()
                .len(),
            1 + 6
        );
        assert_eq!(
            describe(CipherSuite::TLS13_AES_128_GCM_SHA256),
            Some(("TLS_AES_128_GCM_SHA256", 128))
        );
    }
}
