//! vpopdb's Argon2 PHC string parser (`phc::parse_bounds`, the part of `phc::verify`
//! before any hashing; the database server controls these strings): no panic, and a
//! string it accepts is short `$argon2i$`/`$argon2id$` text whose memory, passes, their
//! product, lanes, salt and hash lengths are within the documented bounds, so that a
//! login never computes more than those allow. The hash itself is never computed here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpopdb::phc::{parse_bounds, MAX_M_KIB, MAX_P, MAX_T, MAX_WORK, OUT_LEN, SALT_LEN};

fuzz_target!(|buf: &[u8]| {
    let Ok((m, t, p, salt, hash)) = parse_bounds(buf) else {
        return;
    };
    assert!(buf.len() <= 256, "a string of {} bytes accepted", buf.len());
    assert!(buf.starts_with(b"$argon2i$") || buf.starts_with(b"$argon2id$"));
    assert!(m <= MAX_M_KIB, "m={m}");
    assert!((1..=MAX_T).contains(&t), "t={t}");
    assert!(u64::from(m) * u64::from(t) <= MAX_WORK, "m*t");
    assert!((1..=MAX_P).contains(&p), "p={p}");
    // The argon2 crate's own floor: 8 KiB a lane.
    assert!(m >= 8 * p, "m={m} below 8*p={p}");
    assert!(SALT_LEN.contains(&salt), "salt of {salt} bytes");
    assert!(OUT_LEN.contains(&hash), "hash of {hash} bytes");
    // Exactly the fields of a PHC string: $alg[$v=N]$m=,t=,p=$salt$hash.
    let fields = buf.split(|&c| c == b'$').count();
    assert!(fields == 5 || fields == 6, "{fields} fields");
});
