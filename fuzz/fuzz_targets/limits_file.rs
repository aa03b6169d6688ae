//! vpopdb's `.qmailadmin-limits` / `vlimits.default` parser (`limits::parse_file`, which
//! reads whatever the domain's directory holds): no panic; the result has one number per
//! numeric limit and only switch bits; a file of comments, blank lines and unknown keys
//! gives the defaults; and parsing is line by line: the file with its lines in another
//! order (CR or LF ends) sets the same switches.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpopdb::limits::{parse_file, Limits, NUMBERS, SWITCHES};

fuzz_target!(|buf: &[u8]| {
    let l = parse_file(buf);
    assert_eq!(l.numbers.len(), NUMBERS.len());
    let all_bits = SWITCHES.iter().fold(0, |m, s| m | s.value);
    assert_eq!(l.mask & !all_bits, 0, "a bit no switch sets");
    // Each switch is on exactly when a line names it (its file key or column name).
    let lines: Vec<&[u8]> = buf.split(|&c| c == b'\n' || c == b'\r').collect();
    for s in SWITCHES {
        let named = lines.iter().any(|line| {
            if line.first() == Some(&b'#') {
                return false;
            }
            let end = line
                .iter()
                .position(|c| matches!(c, b' ' | b'\t' | b':'))
                .unwrap_or(line.len());
            let key = &line[..end];
            key == s.file_key.as_bytes() || key == s.name.as_bytes()
        });
        assert_eq!(l.mask & s.value != 0, named, "switch {}", s.name);
    }
    // The lines backwards: the same switches (numbers: the last line of a key wins).
    let mut rev = Vec::with_capacity(buf.len() + 1);
    for line in lines.iter().rev() {
        rev.extend_from_slice(line);
        rev.push(b'\n');
    }
    assert_eq!(parse_file(&rev).mask, l.mask);
    if lines.iter().all(|line| {
        line.is_empty() || line[0] == b'#' || !line.iter().any(|c| c.is_ascii_alphabetic())
    }) {
        assert_eq!(l.mask, Limits::default().mask);
        assert_eq!(l.numbers, Limits::default().numbers);
    }
});
