//! The stub resolver's reply parsers (`ucspi::dns`, through its `fuzzing` feature) on any
//! bytes: never a panic, an over-read or a loop; names are valid wire form of at most 255
//! bytes whose presentation form reads back as the same name (lower-cased); addresses
//! have their type's length; `check_reply` accepts only a reply to the query.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ucspi::dns::fuzzing::{
    addresses, check_reply, first_ptr, get_name, txt_strings, Verdict, T_A, T_AAAA,
};
use ucspi::dns::{from_dot, to_dot};

fn check_name(wire: &[u8]) {
    assert!(wire.len() <= 255, "name over 255 bytes");
    // Labels up to the root, nothing after it.
    let mut i = 0;
    loop {
        let n = usize::from(wire[i]);
        assert!(n < 64, "label over 63");
        i += n + 1;
        if n == 0 {
            break;
        }
    }
    assert_eq!(i, wire.len(), "bytes after the root");
    let dot = to_dot(wire);
    assert_eq!(from_dot(&dot).unwrap(), wire.to_ascii_lowercase());
}

fuzz_target!(|p: &[u8]| {
    if let Ok(Some(name)) = first_ptr(p) {
        check_name(&name);
    }
    let _ = txt_strings(p);
    for t in [T_A, T_AAAA] {
        if let Ok(v) = addresses(p, t) {
            let want = if t == T_A { 4 } else { 16 };
            assert!(v.iter().all(|a| a.len() == want));
        }
    }
    // A name at any position: the first byte picks it.
    if let Some(&b) = p.first() {
        if let Ok(name) = get_name(p, usize::from(b)) {
            check_name(&name);
        }
    }
    // The reply judged against the query it claims to answer (its own id and
    // question), and against one with another id.
    if p.len() >= 12 {
        let qend = (12..p.len())
            .find(|&i| p[i] == 0)
            .map_or(p.len(), |i| (i + 5).min(p.len()));
        let mut query = p[..2].to_vec();
        query.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        query.extend_from_slice(&p[12..qend]);
        let v = check_reply(p, &query);
        if v != Verdict::Bad {
            assert!(p[2] & 0x80 != 0 && p[4..6] == [0, 1]);
        }
        query[0] ^= 1;
        assert_eq!(check_reply(p, &query), Verdict::Bad, "another id accepted");
    }
    // Presentation form on any bytes.
    if let Ok(w) = from_dot(p) {
        check_name(&w);
    }
});
