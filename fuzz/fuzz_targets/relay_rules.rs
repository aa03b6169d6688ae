//! vpopdb's relay rows to rules lines (`relay::address`, `relay::lines`): the `ip_addr`
//! text comes from the database, and the lines go into the rules that tcpserver's cdb is
//! built from. The input is the rows' `ip_addr` values, separated by NULs, all open.
//! No panic; a row's text becomes an address only when it is one (only hex digits, dots
//! and colons, naming the same address); the output is exactly one line per distinct
//! address, each of which ucspi's rules `Compiler` accepts as one record with the two
//! settings vpopmail writes: never a second line or another instruction (injection).
#![no_main]

use std::collections::BTreeSet;
use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use ucspi::lookup::{items, Item};
use ucspi::rules::Compiler;
use vpopdb::relay::{address, lines, Row};

const NOW: i64 = 1_800_000_000;

fuzz_target!(|buf: &[u8]| {
    let rows: Vec<Row> = buf
        .split(|&c| c == 0)
        .map(|ip| Row {
            ip: String::from_utf8_lossy(ip).into_owned(),
            timestamp: NOW,
        })
        .collect();
    let mut want = BTreeSet::new();
    let mut bad = 0;
    for r in &rows {
        match address(&r.ip) {
            Some(a) => {
                assert!(
                    a.bytes()
                        .all(|c| c.is_ascii_hexdigit() || c == b'.' || c == b':'),
                    "address {a:?} from {:?}",
                    r.ip
                );
                let got: IpAddr = a.parse().expect("an address that does not parse");
                let row: IpAddr = r.ip.trim().parse().expect("an address from no address");
                assert_eq!(got, ucspi::addr::unmapped(row));
                want.insert(a);
            }
            None => bad += 1,
        }
    }
    let (text, skipped) = lines(&rows, NOW, 180);
    assert_eq!(skipped.len(), bad);
    assert_eq!(text.is_empty(), want.is_empty());
    assert!(text.is_empty() || text.ends_with('\n'));
    let mut c = Compiler::new();
    let mut n = 0;
    for (line, a) in text.split_inclusive('\n').zip(&want) {
        n += 1;
        assert!(line.starts_with(a.as_str()), "line {line:?} for {a:?}");
        let mut records = Vec::new();
        let mut emit = |k: &[u8], d: &[u8]| {
            records.push((k.to_vec(), d.to_vec()));
            Ok(())
        };
        c.line(line.as_bytes(), &mut emit)
            .unwrap_or_else(|_| panic!("rules line {line:?} refused"));
        assert_eq!(records.len(), 1, "line {line:?}");
        let (k, d) = &records[0];
        assert!(!k.is_empty() && !k.contains(&0));
        let sets: Vec<&[u8]> = items(d)
            .map(|it| match it {
                Item::Set(s) => s,
                Item::Deny => panic!("a relay line that denies: {line:?}"),
            })
            .collect();
        assert_eq!(sets, [&b"RELAYCLIENT="[..], &b"RBLSMTPD="[..]], "{line:?}");
    }
    assert_eq!(n, want.len());
    assert_eq!(text.lines().count(), want.len(), "lines of {text:?}");
});
