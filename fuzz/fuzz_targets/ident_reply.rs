//! `ucspi::ident::Parser` (djb's reading of an RFC 1413 reply line) on any bytes: never a
//! panic; the answer ends at the first newline or at `MAX_INFO` bytes kept; what is kept
//! is what follows the third colon, without blanks, tabs, CRs or newlines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ucspi::ident::{Parser, MAX_INFO};

fuzz_target!(|buf: &[u8]| {
    let mut p = Parser::default();
    let mut done = None;
    for (i, &c) in buf.iter().enumerate() {
        if p.feed(c) {
            done = Some(i);
            break;
        }
    }
    assert!(p.info.len() <= MAX_INFO);
    assert!(!p.info.iter().any(|c| b" \t\r\n".contains(c)));
    let used = &buf[..done.map_or(buf.len(), |i| i + 1)];
    // The model: drop blanks, then keep what follows the third colon.
    let line: Vec<u8> = used
        .iter()
        .copied()
        .filter(|c| !b" \t\r\n".contains(c))
        .collect();
    let mut colons = 0;
    let mut start = line.len();
    for (i, &c) in line.iter().enumerate() {
        if c == b':' {
            colons += 1;
            if colons == 3 {
                start = i + 1;
                break;
            }
        }
    }
    assert_eq!(p.info, &line[start..]);
    match done {
        Some(i) => assert!(buf[i] == b'\n' || p.info.len() == MAX_INFO),
        None => assert!(p.info.len() < MAX_INFO),
    }
});
