//! Argon2 hashes in the PHC string form that libargon2, libsodium (Dovecot's ARGON2I and
//! ARGON2ID schemes) and PHP's `password_hash` write: `$argon2id$v=19$m=65536,t=2,p=1$SALT$HASH`.
//! libxcrypt has no Argon2, so these are checked here, with RustCrypto's `argon2`.
//!
//! The parameters come from the database, so a hostile or mistaken row could ask a login
//! for gigabytes of memory or minutes of work: every number is checked against the bounds
//! below before anything is allocated, and a hash outside them is refused (the login fails
//! as a wrong password would, and checkpassword logs why).

use argon2::{Algorithm, Argon2, Params, Version};
use base64ct::{Base64Unpadded, Encoding};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Memory, KiB: 256 MiB. Covers PHP's default (64 MiB), Dovecot's ARGON2ID (64 MiB, or
/// 256 MiB at its "moderate" rounds) and ARGON2I (32 or 128 MiB); refuses libsodium's
/// "sensitive" levels (512 MiB, 1 GiB), which no login server should spend per attempt.
pub const MAX_M_KIB: u32 = 256 * 1024;
/// Passes.
pub const MAX_T: u32 = 32;
/// Memory times passes, KiB: 256 MiB four times over, which the defaults above stay under
/// (PHP 64 MiB × 4, Dovecot 256 MiB × 3, ARGON2I 128 MiB × 6). Bounds the time of one check.
pub const MAX_WORK: u64 = 4 * MAX_M_KIB as u64;
/// Lanes; the crate fills them one after another, so each costs time, not threads.
pub const MAX_P: u32 = 16;
/// Salt bytes (libsodium and PHP write 16).
pub const SALT_LEN: std::ops::RangeInclusive<usize> = 8..=64;
/// Hash bytes (libsodium and PHP write 32).
pub const OUT_LEN: std::ops::RangeInclusive<usize> = 16..=64;
/// The longest PHC string read at all.
const MAX_STRING: usize = 256;

/// Whether a stored hash (its `{SCHEME}` already removed) is an Argon2 PHC string.
pub fn is_argon2(hash: &[u8]) -> bool {
    hash.starts_with(b"$argon2")
}

/// One parsed hash: everything needed to recompute it, within the bounds above.
struct Parsed {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Zeroizing<[u8; 64]>,
    salt_len: usize,
    hash: Zeroizing<[u8; 64]>,
    hash_len: usize,
}

/// A decimal parameter: digits only (no sign, no leading `+`), at most 10 of them.
fn number(s: &str, name: &str) -> Result<u32, String> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("bad {name} parameter"));
    }
    s.parse()
        .map_err(|_| format!("{name} parameter out of range"))
}

fn b64(
    s: &str,
    what: &str,
    into: &mut [u8; 64],
    len: &std::ops::RangeInclusive<usize>,
) -> Result<usize, String> {
    // Four characters carry three bytes: anything longer than the bound is refused before decoding.
    if s.len() > (len.end() * 4).div_ceil(3) {
        return Err(format!("{what} longer than {} bytes", len.end()));
    }
    let n = Base64Unpadded::decode(s, &mut into[..])
        .map_err(|_| format!("{what} is not base64"))?
        .len();
    if !len.contains(&n) {
        return Err(format!(
            "{what} of {n} bytes (want {}..={})",
            len.start(),
            len.end()
        ));
    }
    Ok(n)
}

fn parse(hash: &[u8]) -> Result<Parsed, String> {
    if hash.len() > MAX_STRING {
        return Err(format!("longer than {MAX_STRING} bytes"));
    }
    let s = std::str::from_utf8(hash).map_err(|_| "not text".to_string())?;
    let mut fields = s.split('$');
    if fields.next() != Some("") {
        return Err("not a PHC string".into());
    }
    let algorithm = match fields.next() {
        Some("argon2id") => Algorithm::Argon2id,
        Some("argon2i") => Algorithm::Argon2i,
        Some(a) => return Err(format!("unsupported algorithm {a}")),
        None => return Err("not a PHC string".into()),
    };
    let mut next = fields.next().unwrap_or_default();
    // libargon2 wrote no version field before 1.3 (version 0x10).
    let version = match next.strip_prefix("v=") {
        Some(v) => {
            next = fields.next().unwrap_or_default();
            match number(v, "v")? {
                0x13 => Version::V0x13,
                0x10 => Version::V0x10,
                n => return Err(format!("unsupported version {n}")),
            }
        }
        None => Version::V0x10,
    };
    let mut mtp = next.split(',');
    let mut param = |name: &str| -> Result<u32, String> {
        let field = mtp.next().unwrap_or_default();
        match field.split_once('=') {
            Some((n, v)) if n == name => number(v, name),
            _ => Err(format!("want {name}= in the parameters")),
        }
    };
    let (m, t, p) = (param("m")?, param("t")?, param("p")?);
    if mtp.next().is_some() {
        return Err("unknown parameters after p=".into());
    }
    if m > MAX_M_KIB {
        return Err(format!("memory m={m} KiB over the limit of {MAX_M_KIB}"));
    }
    if t == 0 || t > MAX_T {
        return Err(format!("passes t={t} outside 1..={MAX_T}"));
    }
    if u64::from(m) * u64::from(t) > MAX_WORK {
        return Err(format!(
            "work m*t={} KiB over the limit of {MAX_WORK}",
            u64::from(m) * u64::from(t)
        ));
    }
    if p == 0 || p > MAX_P {
        return Err(format!("lanes p={p} outside 1..={MAX_P}"));
    }
    let (Some(salt_b64), Some(hash_b64), None) = (fields.next(), fields.next(), fields.next())
    else {
        return Err("want $SALT$HASH after the parameters".into());
    };
    let mut salt = Zeroizing::new([0u8; 64]);
    let salt_len = b64(salt_b64, "salt", &mut salt, &SALT_LEN)?;
    let mut out = Zeroizing::new([0u8; 64]);
    let hash_len = b64(hash_b64, "hash", &mut out, &OUT_LEN)?;
    let params = Params::new(m, t, p, Some(hash_len)).map_err(|e| format!("parameters: {e}"))?;
    Ok(Parsed {
        algorithm,
        version,
        params,
        salt,
        salt_len,
        hash: out,
        hash_len,
    })
}

/// For the fuzz targets (`fuzzing` feature): what [`verify`] would compute with, without
/// computing it: memory (KiB), passes, lanes, salt and hash lengths.
#[cfg(feature = "fuzzing")]
pub fn parse_bounds(hash: &[u8]) -> Result<(u32, u32, u32, usize, usize), String> {
    let p = parse(hash)?;
    let q = &p.params;
    Ok((q.m_cost(), q.t_cost(), q.p_cost(), p.salt_len, p.hash_len))
}

/// Whether `clear` matches the Argon2 `hash`, compared in constant time; `Err` names why
/// the hash itself is refused (malformed, or parameters outside the bounds).
pub fn verify(clear: &[u8], hash: &[u8]) -> Result<bool, String> {
    let p = parse(hash)?;
    let mut out = Zeroizing::new([0u8; 64]);
    let out = &mut out[..p.hash_len];
    Argon2::new(p.algorithm, p.version, p.params)
        .hash_password_into(clear, &p.salt[..p.salt_len], out)
        .map_err(|e| format!("argon2: {e}"))?;
    Ok(bool::from(out.ct_eq(&p.hash[..p.hash_len])))
}

/// A new `$argon2id$v=19$...` string of `clear` with the given cost and salt (16 bytes or
/// more), as libsodium and PHP write it: 32 bytes of hash.
#[cfg(feature = "admin")]
pub fn make(clear: &[u8], m: u32, t: u32, p: u32, salt: &[u8]) -> Result<String, String> {
    let params = Params::new(m, t, p, Some(32)).map_err(|e| format!("argon2 parameters: {e}"))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(clear, salt, &mut out[..])
        .map_err(|e| format!("argon2: {e}"))?;
    let mut sb = [0u8; 88];
    let mut hb = [0u8; 44];
    let s = Base64Unpadded::encode(salt, &mut sb).map_err(|_| "salt too long".to_string())?;
    let h = Base64Unpadded::encode(&out[..], &mut hb).map_err(|_| "hash too long".to_string())?;
    Ok(format!("$argon2id$v=19$m={m},t={t},p={p}${s}${h}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Debian's argon2 CLI (the reference implementation):
    //   echo -n password | argon2 somesalt -id -t 2 -m 16 -p 4 -l 32 -e
    // and the same with -i.
    const REF_ID: &str =
        "$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo";

    const REF_I: &str =
        "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$IMit9qkFULCMA/ViizL57cnTLOa5DiVM9eMwpAvPwr4";
    // -id -t 1 -m 6 -p 1 -v 10: version 0x10, which the CLI writes as v=16.
    const REF_V10: &str =
        "$argon2id$v=16$m=64,t=1,p=1$c29tZXNhbHQ$BNNN5hUxEQkUk67iF/12o/X1a4Jvvi9IzrjXfdGe2so";
    // -i -t 3 -m 12 -p 1.
    const REF_I_4M: &str =
        "$argon2i$v=19$m=4096,t=3,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A";

    #[test]
    fn reference_strings() {
        for h in [REF_ID, REF_I, REF_V10, REF_I_4M] {
            assert_eq!(verify(b"password", h.as_bytes()), Ok(true), "{h}");
            assert_eq!(verify(b"passwort", h.as_bytes()), Ok(false), "{h}");
        }
        // Without a version field: libargon2 before 1.3, version 0x10.
        let old = REF_V10.replace("v=16$", "");
        assert_eq!(verify(b"password", old.as_bytes()), Ok(true));
        // The same hash under the other version is another hash.
        let v13 = REF_V10.replace("v=16", "v=19");
        assert_eq!(verify(b"password", v13.as_bytes()), Ok(false));
    }

    #[test]
    #[cfg(feature = "admin")]
    fn made_here_verifies() {
        let h = make(b"Secret123", 64, 1, 1, b"0123456789abcdef").unwrap();
        assert!(
            h.starts_with("$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"),
            "{h}"
        );
        assert_eq!(verify(b"Secret123", h.as_bytes()), Ok(true));
        assert_eq!(verify(b"Secret124", h.as_bytes()), Ok(false));
    }

    #[test]
    fn hostile_and_broken_hashes_are_refused_before_hashing() {
        let salt_hash = "$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo";
        for (params, why) in [
            ("m=4194304,t=2,p=1", "memory"),
            ("m=4294967295,t=1,p=1", "memory"),
            ("m=262144,t=5,p=1", "work"),
            ("m=64,t=100,p=1", "passes"),
            ("m=64,t=0,p=1", "passes"),
            ("m=256,t=1,p=17", "lanes"),
            ("m=64,t=1", "want p="),
            ("m=64,t=1,p=1,x=1", "unknown"),
            ("t=1,m=64,p=1", "want m="),
            ("m=+64,t=1,p=1", "bad m"),
            ("m=99999999999,t=1,p=1", "bad m"),
        ] {
            let h = format!("$argon2id$v=19${params}{salt_hash}");
            let e = verify(b"password", h.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{params}: {e}");
        }
        for (h, why) in [
            ("$argon2d$v=19$m=64,t=1,p=1$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo", "algorithm"),
            ("$argon2id$v=18$m=64,t=1,p=1$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo", "version"),
            ("$argon2id$v=19$m=64,t=1,p=1$c29t$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo", "salt of 3"),
            ("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$GpZ3sK/oH9p7", "hash of 9"),
            ("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$!!!!", "base64"),
            ("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ", "want $SALT$HASH"),
            ("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo$", "want $SALT$HASH"),
        ] {
            let e = verify(b"password", h.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{h}: {e}");
        }
        let long = format!(
            "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ${}",
            "A".repeat(300)
        );
        assert!(verify(b"x", long.as_bytes())
            .unwrap_err()
            .contains("longer"));
    }
}
