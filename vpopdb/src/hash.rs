//! New password hashes: libxcrypt's `crypt_gensalt_rn` picks the salt from the kernel's
//! random source, `crypt_rn` (through [`crate::verify::crypt`]) hashes; Argon2id, which
//! libxcrypt lacks, is made by [`crate::phc`] with a salt from `getrandom(2)`.

use std::ffi::{c_char, c_int, c_ulong, CStr, CString};

use zeroize::Zeroizing;

extern "C" {
    fn crypt_gensalt_rn(
        prefix: *const c_char,
        count: c_ulong,
        rbytes: *const c_char,
        nrbytes: c_int,
        output: *mut c_char,
        output_size: c_int,
    ) -> *mut c_char;
}

/// The methods `--hash` accepts, strongest first: (name, crypt prefix).
pub const METHODS: &[(&str, &str)] = &[
    ("yescrypt", "$y$"),
    ("argon2id", "$argon2id$"),
    ("sha512", "$6$"),
    ("sha256", "$5$"),
    ("bcrypt", "$2b$"),
    ("md5", "$1$"),
];

/// A fresh setting (prefix, cost, salt) for `prefix`, or `None` when this libxcrypt
/// lacks the method.
pub fn gensalt(prefix: &str) -> Option<String> {
    let p = CString::new(prefix).ok()?;
    let mut out = [0 as c_char; 256];
    // SAFETY: prefix is NUL-terminated; a null rbytes makes libxcrypt read the kernel's
    // random source; out is writable for the size passed.
    let r = unsafe {
        crypt_gensalt_rn(
            p.as_ptr(),
            0,
            std::ptr::null(),
            0,
            out.as_mut_ptr(),
            out.len() as c_int,
        )
    };
    if r.is_null() {
        return None;
    }
    // SAFETY: on success the output is a NUL-terminated string in out.
    let s = unsafe { CStr::from_ptr(out.as_ptr()) }.to_str().ok()?;
    (!s.starts_with('*')).then(|| s.to_string())
}

/// The method used when none is named: yescrypt where this libxcrypt has it, else SHA-512.
pub fn default_method() -> &'static str {
    if gensalt("$y$").is_some() {
        "yescrypt"
    } else {
        "sha512"
    }
}

/// Argon2id's cost for new hashes: 64 MiB (PHP's and Dovecot's default memory) and three
/// passes (RFC 9106's second recommendation), one lane (the login fills lanes serially).
pub const ARGON2ID_COST: (u32, u32, u32) = (64 * 1024, 3, 1);

/// Fills `buf` from the kernel's random source.
pub fn random(buf: &mut [u8]) -> Result<(), String> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: rest is writable for its length.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("getrandom: {e}"));
            }
            continue;
        }
        done += n as usize;
    }
    Ok(())
}

/// An Argon2id hash of `clear` with the given (memory KiB, passes, lanes) and a fresh salt.
pub fn argon2id(clear: &[u8], (m, t, p): (u32, u32, u32)) -> Result<String, String> {
    let mut salt = [0u8; 16];
    random(&mut salt)?;
    crate::phc::make(clear, m, t, p, &salt)
}

/// Hashes `clear` with the named method.
pub fn hash(clear: &[u8], method: &str) -> Result<String, String> {
    if method == "argon2id" {
        return argon2id(clear, ARGON2ID_COST);
    }
    let prefix = METHODS
        .iter()
        .find(|(n, _)| *n == method)
        .map(|(_, p)| *p)
        .ok_or_else(|| format!("unknown hash method {method}"))?;
    let setting = gensalt(prefix).ok_or_else(|| format!("this system's crypt lacks {method}"))?;
    let h: Zeroizing<Vec<u8>> = crate::verify::crypt(clear, setting.as_bytes())
        .ok_or_else(|| format!("crypt failed for {method}"))?;
    String::from_utf8(h.to_vec()).map_err(|_| "crypt returned non-text".to_string())
}

/// The method a stored hash was made with, for `show`.
pub fn method_of(stored: &[u8]) -> &'static str {
    let h = crate::verify::strip_scheme(stored);
    match h {
        [] => "none",
        [b'$', b'y', b'$', ..] => "yescrypt",
        _ if h.starts_with(b"$argon2id$") => "argon2id",
        _ if h.starts_with(b"$argon2i$") => "argon2i",
        [b'$', b'6', b'$', ..] => "sha512",
        [b'$', b'5', b'$', ..] => "sha256",
        [b'$', b'2', ..] => "bcrypt",
        [b'$', b'1', b'$', ..] => "md5",
        [b'*', ..] | [b'!', ..] => "locked",
        _ if h.len() == 13 => "des",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_verifies() {
        for (name, prefix) in METHODS {
            let h = hash(b"Secret123", name).unwrap();
            assert!(h.starts_with(prefix), "{h}");
            assert_eq!(method_of(h.as_bytes()), *name);
            assert!(crate::verify::check_crypt(b"Secret123", h.as_bytes()));
            assert!(!crate::verify::check_crypt(b"Secret124", h.as_bytes()));
        }
        assert_ne!(hash(b"x", "sha512").unwrap(), hash(b"x", "sha512").unwrap());
        assert_ne!(
            argon2id(b"x", (64, 1, 1)).unwrap(),
            argon2id(b"x", (64, 1, 1)).unwrap()
        );
        assert_eq!(
            method_of(b"{ARGON2I}$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$x"),
            "argon2i"
        );
        assert!(hash(b"x", "des").is_err());
    }
}
