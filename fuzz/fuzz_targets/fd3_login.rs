//! checkpassword's fd 3 record (`checkpassword::fd3::parse`) and the login forms of its
//! first field (`vpopdb::loginname::parse`) on any bytes: never a panic; the fields are
//! the record's NUL-separated pieces; an accepted login is lower-cased ASCII within the
//! length limits, split at its first `@`, else `%`, else `/`.
#![no_main]

use checkpassword::fd3::{self, Fd3Error, MAX_INPUT};
use libfuzzer_sys::fuzz_target;
use vpopdb::loginname::{self, domain_ok, sanitize_domain, MAX_LOGIN};

fn check_login(raw: &[u8]) {
    let Ok(l) = loginname::parse(raw) else {
        return;
    };
    assert!(!raw.is_empty() && raw.len() <= MAX_LOGIN);
    assert_eq!(l.full.as_bytes(), raw.to_ascii_lowercase());
    assert!(l.full.is_ascii() && !l.user.is_empty());
    assert!(l.user.len() <= 64 && l.domain.len() <= 96);
    assert!(domain_ok(&l.domain));
    assert_eq!(sanitize_domain(&l.domain), l.domain);
    let sep = [b'@', b'%', b'/'].into_iter().find(|s| raw.contains(s));
    match sep {
        Some(s) => {
            assert!(!l.domain.is_empty());
            let joined = [l.user.as_bytes(), &[s], l.domain.as_bytes()].concat();
            assert_eq!(joined, l.full.as_bytes());
        }
        None => {
            assert!(l.domain.is_empty());
            assert_eq!(l.user, l.full);
        }
    }
}

fuzz_target!(|buf: &[u8]| {
    // As fd3::read_all hands it over: at most MAX_INPUT bytes.
    let buf = &buf[..buf.len().min(MAX_INPUT)];
    match fd3::parse(buf) {
        Ok(c) => {
            assert!(!c.login.contains(&0) && !c.password.contains(&0));
            assert!(!c.challenge.contains(&0));
            let head = [
                &c.login[..],
                b"\0",
                &c.password[..],
                b"\0",
                &c.challenge[..],
            ]
            .concat();
            assert!(buf.starts_with(&head), "fields are not the record's");
            check_login(&c.login);
        }
        Err(e) => {
            assert_eq!(e, Fd3Error::Malformed);
            // Only records without a terminated login and password are refused.
            assert!(buf.iter().filter(|&&b| b == 0).count() < 2);
        }
    }
    // Any bytes as a login (sanitize_domain's input as the environment gives it).
    check_login(buf);
    let _ = sanitize_domain(&String::from_utf8_lossy(buf));
});
