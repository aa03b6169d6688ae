//! vpopmail's two packed columns: pw_gid's flag bits (what a user may not do) and
//! pw_shell's quota string, as the account tool writes them and the login reads them.

pub const NO_PASSWD_CHNG: i64 = 0x01;
pub const NO_POP: i64 = 0x02;
pub const NO_WEBMAIL: i64 = 0x04;
pub const NO_IMAP: i64 = 0x08;
pub const BOUNCE_MAIL: i64 = 0x10;
pub const NO_RELAY: i64 = 0x20;
pub const NO_DIALUP: i64 = 0x40;
pub const V_USER0: i64 = 0x80;
pub const V_USER1: i64 = 0x100;
pub const V_USER2: i64 = 0x200;
pub const V_USER3: i64 = 0x400;
pub const NO_SMTP: i64 = 0x800;
pub const QA_ADMIN: i64 = 0x1000;
pub const V_OVERRIDE: i64 = 0x2000;
pub const NO_SPAMASSASSIN: i64 = 0x4000;
pub const DELETE_SPAM: i64 = 0x8000;
pub const SA_ADMIN: i64 = 0x10000;
pub const SA_EXPERT: i64 = 0x20000;
pub const NO_MAILDROP: i64 = 0x40000;

/// The flag bits by vpopmail's names, in bit order.
pub const FLAGS: &[(&str, i64)] = &[
    ("NO_PASSWD_CHNG", NO_PASSWD_CHNG),
    ("NO_POP", NO_POP),
    ("NO_WEBMAIL", NO_WEBMAIL),
    ("NO_IMAP", NO_IMAP),
    ("BOUNCE_MAIL", BOUNCE_MAIL),
    ("NO_RELAY", NO_RELAY),
    ("NO_DIALUP", NO_DIALUP),
    ("V_USER0", V_USER0),
    ("V_USER1", V_USER1),
    ("V_USER2", V_USER2),
    ("V_USER3", V_USER3),
    ("NO_SMTP", NO_SMTP),
    ("QA_ADMIN", QA_ADMIN),
    ("V_OVERRIDE", V_OVERRIDE),
    ("NO_SPAMASSASSIN", NO_SPAMASSASSIN),
    ("DELETE_SPAM", DELETE_SPAM),
    ("SA_ADMIN", SA_ADMIN),
    ("SA_EXPERT", SA_EXPERT),
    ("NO_MAILDROP", NO_MAILDROP),
];

/// The names of the bits set in `bits`; bits without a name as one hex number.
pub fn flag_names(bits: i64) -> Vec<String> {
    let mut v: Vec<String> = FLAGS
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(n, _)| n.to_string())
        .collect();
    let known: i64 = FLAGS.iter().map(|(_, b)| b).sum();
    if bits & !known != 0 {
        v.push(format!("0x{:x}", bits & !known));
    }
    v
}

/// Applies `+NAME`/`-NAME` changes (names in any case) to `bits`.
pub fn apply_flags(mut bits: i64, changes: &[String]) -> Result<i64, String> {
    for c in changes {
        let (on, name) = match c.as_bytes().first() {
            Some(b'+') => (true, &c[1..]),
            Some(b'-') => (false, &c[1..]),
            _ => return Err(format!("flag change {c:?}: want +NAME or -NAME")),
        };
        let name = name.to_ascii_uppercase();
        let Some((_, b)) = FLAGS.iter().find(|(n, _)| *n == name) else {
            return Err(format!(
                "unknown flag {name}; known: {}",
                FLAGS.iter().map(|f| f.0).collect::<Vec<_>>().join(" ")
            ));
        };
        if on {
            bits |= b;
        } else {
            bits &= !b;
        }
    }
    Ok(bits)
}

/// A quota as vpopmail's format_maildirquota writes it: `NOQUOTA`, `<bytes>S`,
/// `<count>C`, `<bytes>S,<count>C`; `50M`, `1024K`, `2G` and plain numbers become bytes.
pub fn quota_string(q: &str) -> Result<String, String> {
    let q = q.trim();
    if q.eq_ignore_ascii_case("NOQUOTA") || q.eq_ignore_ascii_case("none") {
        return Ok("NOQUOTA".into());
    }
    let bad = || format!("bad quota {q:?}: want NOQUOTA, 50M, 1000000S, 1000000S,500C");
    let mut bytes = None;
    let mut count = None;
    for part in q.split(',') {
        let p = part.trim();
        let (num, mul, is_count) = match p.as_bytes().last().ok_or_else(bad)? {
            b'S' | b's' => (&p[..p.len() - 1], 1, false),
            b'C' | b'c' => (&p[..p.len() - 1], 1, true),
            b'K' | b'k' => (&p[..p.len() - 1], 1024, false),
            b'M' | b'm' => (&p[..p.len() - 1], 1024 * 1024, false),
            b'G' | b'g' => (&p[..p.len() - 1], 1024 * 1024 * 1024, false),
            _ => (p, 1, false),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        let n = n.checked_mul(mul).ok_or_else(bad)?;
        let slot = if is_count { &mut count } else { &mut bytes };
        if slot.replace(n).is_some() {
            return Err(bad());
        }
    }
    let s = match (bytes, count) {
        (Some(b), Some(c)) => format!("{b}S,{c}C"),
        (Some(b), None) => format!("{b}S"),
        (None, Some(c)) => format!("{c}C"),
        (None, None) => return Err(bad()),
    };
    if s.len() > 20 {
        return Err(format!("quota {s} does not fit pw_shell (20 characters)"));
    }
    Ok(s)
}

/// Dovecot's quota rule for a vpopmail quota string (`NOQUOTA`, `<bytes>S`,
/// `<bytes>S,<count>C`); `None` when there is no limit or the string is not understood.
pub fn dovecot_rule(shell: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(shell).ok()?.trim();
    if s.is_empty() || s.eq_ignore_ascii_case("NOQUOTA") {
        return None;
    }
    let mut rule = String::from("*:");
    let mut parts = Vec::new();
    for p in s.split(',') {
        let p = p.trim();
        if let Some(n) = p.strip_suffix(['S', 's']) {
            parts.push(format!("storage={}B", n.parse::<u64>().ok()?));
        } else if let Some(n) = p.strip_suffix(['C', 'c']) {
            parts.push(format!("messages={}", n.parse::<u64>().ok()?));
        } else {
            parts.push(format!("storage={}B", p.parse::<u64>().ok()?));
        }
    }
    rule.push_str(&parts.join(":"));
    Some(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_and_flags() {
        let q = |s: &str| quota_string(s).ok();
        assert_eq!(q("NOQUOTA").as_deref(), Some("NOQUOTA"));
        assert_eq!(q("50M").as_deref(), Some("52428800S"));
        assert_eq!(q("1024K").as_deref(), Some("1048576S"));
        assert_eq!(q("1000S,50C").as_deref(), Some("1000S,50C"));
        assert_eq!(q("1000").as_deref(), Some("1000S"));
        assert!(q("junk").is_none());
        assert!(q("1S,2S").is_none());
        assert_eq!(
            apply_flags(0x2, &["+no_smtp".into(), "-NO_POP".into()]).ok(),
            Some(0x800)
        );
        assert!(apply_flags(0, &["+NOPE".into()]).is_err());
        assert_eq!(flag_names(0x22), vec!["NO_POP", "NO_RELAY"]);
    }

    #[test]
    fn dovecot_rules() {
        assert_eq!(dovecot_rule(b"NOQUOTA"), None);
        assert_eq!(dovecot_rule(b"1000000S"), Some("*:storage=1000000B".into()));
        assert_eq!(
            dovecot_rule(b"1000S,50C"),
            Some("*:storage=1000B:messages=50".into())
        );
        assert_eq!(dovecot_rule(b"junk"), None);
    }
}
