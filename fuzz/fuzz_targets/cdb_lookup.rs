//! `ucspi::cdb` and `ucspi::lookup` over any bytes taken as a rules cdb, for a client
//! described by the input's first bytes: never a panic or an over-read, a bounded probe,
//! and a found rule is the data of the key `lookup` reports, inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ucspi::cdb::Cdb;
use ucspi::lookup::{items, lookup, split_setting, Client, Item};

/// Addresses that parse, so the IPv6 and CIDR steps run even when the input's own text
/// would not.
const IPS: [&[u8]; 8] = [
    b"127.0.0.1",
    b"10.1.2.3",
    b"192.168.0.255",
    b"::1",
    b"2001:db8::1",
    b"fe80::1:2:3:4",
    b"::ffff:1.2.3.4",
    b"0.0.0.0",
];

fuzz_target!(|buf: &[u8]| {
    // Header: [ip selector, host length, info length], then ip text (when the selector's
    // top bit is set: its length is the low 5 bits), host, info; the rest is the cdb.
    let [sel, hlen, ilen, rest @ ..] = buf else {
        return;
    };
    let mut rest = rest;
    let mut take = |n: usize| {
        let n = n.min(rest.len());
        let (a, b) = rest.split_at(n);
        rest = b;
        a
    };
    let ip: &[u8] = if sel & 0x80 != 0 {
        take(usize::from(sel & 31))
    } else {
        IPS[usize::from(sel & 7)]
    };
    let host = (*hlen != 0xff).then(|| take(usize::from(hlen & 63)));
    let info = (*ilen != 0xff).then(|| take(usize::from(ilen & 31)));
    let data = rest;
    let db = Cdb::new(data);
    let client = Client { ip, host, info };
    let mut key = Vec::new();
    match lookup(&db, &client, &mut key) {
        Ok(Some(d)) => {
            let range = data.as_ptr_range();
            assert!(
                d.is_empty() || (range.contains(&d.as_ptr()) && d.as_ptr_range().end <= range.end)
            );
            // The key reported is the one that holds this rule.
            assert_eq!(db.find(&key).unwrap(), Some(d), "key {key:?}");
            for it in items(d) {
                if let Item::Set(s) = it {
                    let _ = split_setting(s);
                }
            }
        }
        Ok(None) => assert!(key.is_empty()),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EPROTO)),
    }
    // A direct probe of the input's own key text.
    let _ = db.find(ip);
});
