//! Password checks: the system's crypt(3) (libxcrypt, so every format the system knows),
//! Argon2 PHC strings (which libxcrypt lacks: [`crate::phc`]), APOP and CRAM-MD5 against
//! the clear column, all compared in constant time.

use std::ffi::{c_char, c_int, c_void, CString};

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

extern "C" {
    fn crypt_rn(
        phrase: *const c_char,
        setting: *const c_char,
        data: *mut c_void,
        size: c_int,
    ) -> *mut c_char;
}

/// libxcrypt's `struct crypt_data` is 32768 bytes.
const CRYPT_DATA_SIZE: usize = 32768;

/// A `$6$` hash of a random password: unknown users and locked accounts are hashed
/// against it so that they cost what a wrong password costs.
pub const DUMMY_HASH: &str =
    "$6$cQVklZDpVW4OCMI/$PFnKO7ftvXcXa8BQO1DHOZD5PeeqGONvtLOrA8WWUrit5Xa1OChHWJTVUDpuD/sJQ90SeTfcLeoqZguSG88KD/";

/// crypt(3) through libxcrypt's reentrant `crypt_rn`; `None` when the setting is not one
/// the system supports (libxcrypt's `*` failure tokens included).
pub fn crypt(phrase: &[u8], setting: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let phrase = Zeroizing::new(CString::new(phrase).ok()?.into_bytes_with_nul());
    let setting = CString::new(setting).ok()?;
    let mut data = Zeroizing::new(vec![0u8; CRYPT_DATA_SIZE]);
    // SAFETY: both strings are NUL-terminated and live; data is a writable buffer of the
    // size we pass; the result points into data, which outlives the copy below.
    let out = unsafe {
        let p = crypt_rn(
            phrase.as_ptr().cast(),
            setting.as_ptr(),
            data.as_mut_ptr().cast(),
            CRYPT_DATA_SIZE as c_int,
        );
        if p.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(p).to_bytes().to_vec()
    };
    if out.is_empty() || out[0] == b'*' {
        return None;
    }
    Some(Zeroizing::new(out))
}

/// The stored hash without a leading `{SCHEME}` (as vpopmail 5.6 strips it).
pub fn strip_scheme(stored: &[u8]) -> &[u8] {
    if stored.first() == Some(&b'{') {
        if let Some(i) = stored.iter().position(|&c| c == b'}') {
            return &stored[i + 1..];
        }
    }
    stored
}

/// A stored hash checked against a password.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    Match,
    Mismatch,
    /// The stored hash is refused (an Argon2 string outside [`crate::phc`]'s bounds, or
    /// malformed): a failed login, whose log should say why.
    BadHash(String),
}

/// Whether `clear` matches the stored `pw_passwd`. An empty or unusable stored value
/// still costs one dummy hash, so no stored value answers faster than another.
pub fn check_crypt(clear: &[u8], stored: &[u8]) -> bool {
    check(clear, stored) == Check::Match
}

/// [`check_crypt`], telling a refused hash from a wrong password.
pub fn check(clear: &[u8], stored: &[u8]) -> Check {
    let hash = strip_scheme(stored);
    if hash.is_empty() {
        dummy(clear);
        return Check::Mismatch;
    }
    if crate::phc::is_argon2(hash) {
        return match crate::phc::verify(clear, hash) {
            Ok(true) => Check::Match,
            Ok(false) => Check::Mismatch,
            Err(why) => Check::BadHash(why),
        };
    }
    match crypt(clear, hash) {
        Some(out) if bool::from(out.as_slice().ct_eq(hash)) => Check::Match,
        _ => Check::Mismatch,
    }
}

/// The cost of a password check without an account behind it.
pub fn dummy(clear: &[u8]) {
    let _ = crypt(clear, DUMMY_HASH.as_bytes());
}

fn hex(d: &[u8]) -> Vec<u8> {
    const H: &[u8; 16] = b"0123456789abcdef";
    d.iter()
        .flat_map(|b| [H[usize::from(b >> 4)], H[usize::from(b & 15)]])
        .collect()
}

/// APOP: lowercase hex of MD5(timestamp || clear password).
pub fn apop_ok(timestamp: &[u8], clear: &[u8], response: &[u8]) -> bool {
    let mut h = Md5::new();
    h.update(timestamp);
    h.update(clear);
    let want = Zeroizing::new(hex(&h.finalize()));
    bool::from(want.as_slice().ct_eq(response))
}

/// CRAM-MD5: lowercase hex of HMAC-MD5(key = clear password, message = challenge).
pub fn cram_ok(challenge: &[u8], clear: &[u8], response: &[u8]) -> bool {
    let Ok(mut m) = Hmac::<Md5>::new_from_slice(clear) else {
        return false;
    };
    m.update(challenge);
    let want = Zeroizing::new(hex(&m.finalize().into_bytes()));
    bool::from(want.as_slice().ct_eq(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypt_formats() {
        // Made with mkpasswd (libxcrypt) for "Secret123".
        let des = crypt(b"Secret123", b"ab").unwrap();
        assert!(check_crypt(b"Secret123", &des));
        assert!(check_crypt(b"Secret12X", &des), "DES counts 8 characters");
        for setting in [
            &b"$1$saltsalt"[..],
            b"$5$saltsalt",
            b"$6$saltsalt",
            b"$6$rounds=6000$salt",
        ] {
            let h = crypt(b"Secret123", setting).unwrap();
            assert!(check_crypt(b"Secret123", &h));
            assert!(!check_crypt(b"secret123", &h));
            let mut pre = b"{CRYPT}".to_vec();
            pre.extend_from_slice(&h);
            assert!(check_crypt(b"Secret123", &pre));
        }
        assert!(!check_crypt(b"x", b""));
        assert!(!check_crypt(b"x", b"*"));
        assert!(!check_crypt(b"x", b"!$6$abc$def"));
        assert!(crypt(b"x", DUMMY_HASH.as_bytes()).is_some());
    }

    #[test]
    fn argon2_with_and_without_dovecot_prefix() {
        // echo -n Secret123 | argon2 saltsaltsalt -id -t 3 -m 12 -p 1 -e (Debian's CLI)
        let id = "$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHRzYWx0$RcneG4zuA1KpllIibgPRnJPsSCuI9MmVfnWUow8XmU0";
        // echo -n Secret123 | argon2 saltsaltsalt -i -t 3 -m 12 -p 1 -e
        let i = "$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHRzYWx0$cjfWmC4azWmBU1ozpMYPU+bLJWLrxZEvmabhafQ0xlM";
        for (h, scheme) in [(id, "{ARGON2ID}"), (i, "{ARGON2I}")] {
            assert!(check_crypt(b"Secret123", h.as_bytes()));
            assert!(!check_crypt(b"Secret12", h.as_bytes()));
            let pre = format!("{scheme}{h}");
            assert_eq!(check(b"Secret123", pre.as_bytes()), Check::Match);
            assert_eq!(check(b"secret123", pre.as_bytes()), Check::Mismatch);
        }
        let hostile = "{ARGON2ID}$argon2id$v=19$m=4194304,t=3,p=1$c2FsdHNhbHRzYWx0$RcneG4zuA1KpllIibgPRnJPsSCuI9MmVfnWUow8XmU0";
        match check(b"Secret123", hostile.as_bytes()) {
            Check::BadHash(why) => assert!(why.contains("m=4194304"), "{why}"),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn challenge_responses() {
        // RFC 1939's APOP example.
        assert!(apop_ok(
            b"<1896.697170952@dbc.mtview.ca.us>",
            b"tanstaaf",
            b"c4c9334bac560ecc979e58001b3e22fb"
        ));
        assert!(!apop_ok(
            b"<1896.697170952@dbc.mtview.ca.us>",
            b"tanstaaf",
            b"C4C9334BAC560ECC979E58001B3E22FB"
        ));
        // RFC 2195's CRAM-MD5 example.
        assert!(cram_ok(
            b"<1896.697170952@postoffice.reston.mci.net>",
            b"tanstaaftanstaaf",
            b"b913a602c7eda7a495b4e6e7334d3890"
        ));
        assert!(!cram_ok(
            b"<x>",
            b"tanstaaftanstaaf",
            b"b913a602c7eda7a495b4e6e7334d3890"
        ));
    }
}
