//! `ucspi::proxy::parse` on any bytes, under every `Accept`: never a panic, and the
//! properties `read_header` relies on to consume exactly the header and nothing more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ucspi::proxy::{looks_like_header, parse, Accept, MAX_HEADER};

fuzz_target!(|buf: &[u8]| {
    for accept in [Accept::Any, Accept::V1, Accept::V2] {
        match parse(buf, accept) {
            Ok(Some((header, n))) => {
                assert!(n <= buf.len(), "header longer than its input");
                assert!(n <= MAX_HEADER, "header over MAX_HEADER");
                // The header's bytes alone say the same: nothing after them was looked at.
                assert_eq!(parse(&buf[..n], accept), Ok(Some((header, n))));
                assert!(looks_like_header(buf));
                // Every shorter start is only a wait for more: read_header consumes it.
                for k in [0, n / 2, n.saturating_sub(1)] {
                    assert_eq!(parse(&buf[..k], accept), Ok(None), "prefix of {k}");
                }
            }
            // A wait for more is all header bytes, so it must fit the reader's buffer.
            Ok(None) => {
                assert!(buf.len() < MAX_HEADER, "still waiting at MAX_HEADER");
                assert!(buf.is_empty() || looks_like_header(buf));
            }
            Err(e) => assert!(!e.what().is_empty()),
        }
    }
});
