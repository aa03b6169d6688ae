//! The PostgreSQL client's side of SCRAM-SHA-256 (`vpopdb::store::fuzzing::FuzzScram`,
//! the client's own `auth_answer` with a nonce of ours, since a replayed server cannot
//! know a random one): the input is the server-first message, a NUL, and the
//! server-final message. No panic; a server-first message whose `r=` does not extend our
//! nonce is refused; a server-final message is accepted only when it carries exactly the
//! signature the client computed, and the right one is always accepted (the first input
//! byte's low bit asks for it instead of the input's).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpopdb::store::fuzzing::FuzzScram;

const NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
const PASSWORD: &str = "pencil";

/// `i=` as the client reads it (the last one): counts above this are passed over, as
/// each costs two HMACs and the parsing is what is fuzzed; the bound the client enforces
/// (1..=1000000) is still tried above it.
const MAX_ITERATIONS: u32 = 64;

fuzz_target!(|buf: &[u8]| {
    let Some((&flags, rest)) = buf.split_first() else {
        return;
    };
    let (first, fin) = match rest.iter().position(|&c| c == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    if let Ok(text) = std::str::from_utf8(first) {
        let mut i = None;
        for part in text.split(',') {
            if let Some(v) = part.strip_prefix("i=") {
                i = Some(v);
            }
        }
        if let Some(n) = i.and_then(|v| v.parse::<u32>().ok()) {
            if n > MAX_ITERATIONS && n <= 1_000_000 {
                return;
            }
        }
    }
    let s = match FuzzScram::first(PASSWORD, NONCE, first) {
        Ok(s) => s,
        Err(_) => return,
    };
    // Accepted: the server's nonce extends ours, and an iteration count in bounds.
    let text = std::str::from_utf8(first).expect("accepted a message that is not text");
    let r = text
        .split(',')
        .rev()
        .find_map(|p| p.strip_prefix("r="))
        .expect("accepted without r=");
    assert!(r.starts_with(NONCE) && r.len() > NONCE.len(), "nonce {r:?}");
    let expected = s.expected_final().expect("no signature after server-first");
    if flags & 1 == 1 {
        assert!(
            s.finish(expected.as_bytes()).is_ok(),
            "the right signature refused"
        );
        return;
    }
    let accepted = s.finish(fin).is_ok();
    // The client's base64 reading passes over `=` and a last character's spare bits
    // (several spellings of one signature): what counts is the bytes.
    let want = decode(&expected.as_bytes()[2..]).expect("our own base64");
    let got = fin.strip_prefix(b"v=").and_then(decode);
    assert_eq!(accepted, got == Some(want), "server-final {fin:?}");
});

/// Base64 (standard alphabet) to bytes, `=` passed over, spare bits dropped.
fn decode(s: &[u8]) -> Option<Vec<u8>> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for &c in s.iter().filter(|&&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}
