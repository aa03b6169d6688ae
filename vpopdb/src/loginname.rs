//! The rules for names: vchkpw's login forms (the whole login lowercased, split at the
//! first `@`, else `%`, else `/`, each part checked against vpopmail's character sets),
//! and the narrower rules for the names the account tool creates.

/// The longest login accepted: a 64-byte local part, a separator, a 96-byte domain.
pub const MAX_LOGIN: usize = 64 + 1 + 96;

/// A login split into its parts, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginName {
    /// The whole login as typed, lowercased (vchkpw's `VPOPUSER`).
    pub full: String,
    pub user: String,
    /// Empty when the login named no domain.
    pub domain: String,
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    Empty,
    TooLong,
    BadChars,
}

fn user_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$&'*+-./=?^_`{|}~".contains(&c)
}

/// Whether `d` is a syntactically acceptable domain (vpopmail's `- . 0-9 A-Z a-z`).
pub fn domain_ok(d: &str) -> bool {
    d.bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

/// Whether `u` may be the local part of a new account: vpopmail's set in lower case,
/// without `/` (a path separator in the user's directory) and without a leading dot.
pub fn new_user_ok(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && !u.starts_with('.')
        && u.bytes()
            .all(|c| user_char(c) && c != b'/' && !c.is_ascii_uppercase())
}

/// Whether `d` may be a new domain: the domain set in a form DNS could hold.
pub fn new_domain_ok(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 96
        && domain_ok(d)
        && d.contains(|c: char| c.is_ascii_alphanumeric())
        && !d.starts_with(['.', '-'])
        && !d.contains("..")
}

pub fn parse(raw: &[u8]) -> Result<LoginName, LoginError> {
    if raw.is_empty() {
        return Err(LoginError::Empty);
    }
    if raw.len() > MAX_LOGIN {
        return Err(LoginError::TooLong);
    }
    let lower: Vec<u8> = raw.iter().map(u8::to_ascii_lowercase).collect();
    let sep = [b'@', b'%', b'/']
        .iter()
        .find_map(|s| lower.iter().position(|c| c == s));
    let (user, domain) = match sep {
        Some(i) => (&lower[..i], &lower[i + 1..]),
        None => (&lower[..], &b""[..]),
    };
    if user.is_empty() {
        return Err(LoginError::Empty);
    }
    if user.len() > 64 || domain.len() > 96 {
        return Err(LoginError::TooLong);
    }
    if !user.iter().all(|&c| user_char(c)) {
        return Err(LoginError::BadChars);
    }
    let domain = std::str::from_utf8(domain).map_err(|_| LoginError::BadChars)?;
    if !domain_ok(domain) || (sep.is_some() && domain.is_empty()) {
        return Err(LoginError::BadChars);
    }
    // Both parts are ASCII now.
    Ok(LoginName {
        full: String::from_utf8_lossy(&lower).into_owned(),
        user: String::from_utf8_lossy(user).into_owned(),
        domain: domain.to_string(),
    })
}

/// `VPOPMAIL_DOMAIN` as vchkpw uses it: characters outside the domain set become `_`
/// (which then fails to match any domain rather than reaching SQL or a path).
pub fn sanitize_domain(d: &str) -> String {
    d.bytes()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == b'-' || c == b'.' {
                c as char
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_in_order() {
        let l = parse(b"Alice@Example.COM").unwrap();
        assert_eq!(
            (l.user.as_str(), l.domain.as_str()),
            ("alice", "example.com")
        );
        assert_eq!(l.full, "alice@example.com");
        let l = parse(b"bob%example.com").unwrap();
        assert_eq!((l.user.as_str(), l.domain.as_str()), ("bob", "example.com"));
        let l = parse(b"bob/example.com").unwrap();
        assert_eq!((l.user.as_str(), l.domain.as_str()), ("bob", "example.com"));
        let l = parse(b"a/b@example.com").unwrap();
        assert_eq!((l.user.as_str(), l.domain.as_str()), ("a/b", "example.com"));
        let l = parse(b"carol").unwrap();
        assert_eq!((l.user.as_str(), l.domain.as_str()), ("carol", ""));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(b""), Err(LoginError::Empty));
        assert_eq!(parse(b"@example.com"), Err(LoginError::Empty));
        assert_eq!(parse(b"a b@example.com"), Err(LoginError::BadChars));
        assert_eq!(parse(b"a'--@ex_ample.com"), Err(LoginError::BadChars));
        assert_eq!(parse(b"a@"), Err(LoginError::BadChars));
        assert_eq!(parse(b"a\xff@x.com"), Err(LoginError::BadChars));
        assert_eq!(parse(&[b'a'; 65]), Err(LoginError::TooLong));
        assert_eq!(parse(&[b'a'; 200]), Err(LoginError::TooLong));
        assert_eq!(sanitize_domain("Ex ample.com"), "ex_ample.com");
    }

    #[test]
    fn new_names() {
        assert!(new_user_ok("alice.b+x"));
        for u in ["", ".", "..", ".x", "a/b", "Alice", "a b", &"a".repeat(65)] {
            assert!(!new_user_ok(u), "{u:?}");
        }
        assert!(new_domain_ok("mail-1.example.com"));
        for d in ["", ".x", "-x", "a..b", "x/y", "-.-", &"a".repeat(97)] {
            assert!(!new_domain_ok(d), "{d:?}");
        }
    }
}
