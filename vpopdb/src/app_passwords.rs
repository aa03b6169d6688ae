//! App passwords, our extension (vpopmail has none): extra passwords of one account, one
//! per device or program, each with a label, the services it opens, optionally a client
//! network and an expiry, revocable on its own. They live in a table of ours,
//! [`TABLE`]; mailaccounts makes them, checkpassword accepts one when the account's
//! own password did not match.
//!
//! The secret is generated, never chosen: [`SECRET_LETTERS`] random lowercase letters
//! (about 75 bits), shown in groups as `abcd-efgh-ijkl-mnop`. What a user types is read
//! with spaces and dashes dropped and letters lowercased ([`normalize`]), so a typed
//! password of another shape costs no query and no hash at all.

use std::net::IpAddr;

use ipnet::IpNet;
use zeroize::Zeroizing;

use crate::store::{DbError, Kind, Row, Val};

pub const TABLE: &str = "vpopmail_app_passwords";
/// The most app passwords one account may have, and the most a login reads and may
/// hash: each costs a hash.
pub const MAX_PER_USER: usize = 50;
pub const SECRET_LETTERS: usize = 16;
/// The services an app password may open, as the `services` column names them.
pub const SERVICES: &[&str] = &["pop", "imap", "smtp", "webmail"];
/// Argon2id's cost for app passwords (memory KiB, passes, lanes). The secret is random
/// and long, so no guessing attack gains from a slow hash; the salt keeps equal secrets
/// apart, and a small cost keeps a login that tries many of them cheap.
pub const HASH_COST: (u32, u32, u32) = (1024, 1, 1);

/// A typed password as an app-password secret, or `None` when it cannot be one.
pub fn normalize(typed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if typed.len() > 4 * SECRET_LETTERS {
        return None;
    }
    let s: Zeroizing<Vec<u8>> = Zeroizing::new(
        typed
            .iter()
            .filter(|&&c| c != b' ' && c != b'-')
            .map(u8::to_ascii_lowercase)
            .collect(),
    );
    (s.len() == SECRET_LETTERS && s.iter().all(u8::is_ascii_lowercase)).then_some(s)
}

/// One app password as a login reads it.
pub struct AppPassword {
    pub label: String,
    pub hash: Zeroizing<Vec<u8>>,
    pub services: String,
    pub network: Option<String>,
    pub expires: Option<i64>,
}

impl AppPassword {
    /// Whether it may open `service` (one of [`SERVICES`]) for a client at `ip` at `now`.
    /// A network that does not parse matches no client.
    pub fn in_scope(&self, service: &str, ip: &str, now: i64) -> bool {
        let service_ok = self.services.split(',').any(|s| s == service);
        let net_ok = match &self.network {
            None => true,
            Some(n) => match (n.parse::<IpNet>(), ip.parse::<IpAddr>()) {
                (Ok(net), Ok(addr)) => net.contains(&addr),
                _ => false,
            },
        };
        service_ok && net_ok && self.expires.is_none_or(|e| now < e)
    }
}

/// The query for `user@domain`'s app passwords that have not expired, oldest first, at
/// most [`MAX_PER_USER`].
pub fn query(k: Kind, user: &str, domain: &str, now: i64) -> (String, Vec<Val>) {
    let q = |c: &str| k.ident(c);
    let sql = format!(
        "SELECT {}, {}, {}, {}, {} FROM {} WHERE {} = ? AND {} = ? AND ({} IS NULL OR {} > ?) \
         ORDER BY {} LIMIT {MAX_PER_USER}",
        q("label"),
        q("hash"),
        q("services"),
        q("network"),
        q("expires"),
        q(TABLE),
        q("pw_name"),
        q("pw_domain"),
        q("expires"),
        q("expires"),
        q("id"),
    );
    (sql, vec![Val::text(user), Val::text(domain), Val::Int(now)])
}

/// The answer to [`query`]; a table not made yet holds none.
pub fn read(rows: Result<Vec<Row>, DbError>) -> Result<Vec<AppPassword>, DbError> {
    let rows = match rows {
        Err(DbError::NoTable) => return Ok(vec![]),
        r => r?,
    };
    let text = |r: &Row, c: &str| -> Option<String> {
        match r.get(c)? {
            Val::Null => None,
            v => Some(String::from_utf8_lossy(v.as_bytes()).into_owned()),
        }
    };
    Ok(rows
        .iter()
        .take(MAX_PER_USER)
        .map(|r| AppPassword {
            label: text(r, "label").unwrap_or_default(),
            hash: Zeroizing::new(
                r.get("hash")
                    .map(|v| v.as_bytes().to_vec())
                    .unwrap_or_default(),
            ),
            services: text(r, "services").unwrap_or_default(),
            network: text(r, "network").filter(|n| !n.is_empty()),
            expires: r
                .get("expires")
                .filter(|v| **v != Val::Null)
                .map(Val::as_int),
        })
        .collect())
}

/// Whether an account whose own hash is `passwd` may use app passwords: not when it has
/// none or is locked (`!` or `*` in front, as usermod and vpopmail lock), so that locking
/// the account's password locks its app passwords too.
pub fn account_usable(passwd: &[u8]) -> bool {
    let h = crate::verify::strip_scheme(passwd);
    !h.is_empty() && !h.starts_with(b"!") && !h.starts_with(b"*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_forms() {
        let want = b"abcdefghijklmnop".to_vec();
        let cases: [(&[u8], bool); 9] = [
            (b"abcd-efgh-ijkl-mnop", true),
            (b"abcd efgh ijkl mnop", true),
            (b"ABCDEFGHIJKLMNOP", true),
            (b"abcdefghijklmnop", true),
            (b"abcd-efgh-ijkl-mno", false),
            (b"abcd-efgh-ijkl-mnop-q", false),
            (b"abcd-efgh-ijkl-mn0p", false),
            (b"Secret123", false),
            (b"", false),
        ];
        for (t, ok) in cases {
            let n = normalize(t);
            assert_eq!(n.as_deref(), ok.then_some(&want), "{t:?}");
        }
        assert!(normalize(&[b' '; 100]).is_none());
    }

    #[test]
    fn scopes() {
        let a = AppPassword {
            label: "phone".into(),
            hash: Zeroizing::new(vec![]),
            services: "imap,smtp".into(),
            network: Some("192.0.2.0/24".into()),
            expires: Some(1000),
        };
        assert!(a.in_scope("imap", "192.0.2.7", 999));
        assert!(a.in_scope("smtp", "192.0.2.7", 999));
        assert!(!a.in_scope("pop", "192.0.2.7", 999));
        assert!(!a.in_scope("imap", "198.51.100.7", 999));
        assert!(!a.in_scope("imap", "", 999));
        assert!(!a.in_scope("imap", "192.0.2.7", 1000));
        let v6 = AppPassword {
            network: Some("2001:db8::/32".into()),
            expires: None,
            ..a
        };
        assert!(v6.in_scope("imap", "2001:db8::1", i64::MAX));
        assert!(!v6.in_scope("imap", "192.0.2.7", 0));
        let bad = AppPassword {
            network: Some("not a net".into()),
            ..v6
        };
        assert!(!bad.in_scope("imap", "2001:db8::1", 0));
        assert!(account_usable(b"$6$x$y"));
        assert!(!account_usable(b""));
        assert!(!account_usable(b"!$6$x$y"));
        assert!(!account_usable(b"{CRYPT}*"));
    }
}
