//! Property tests: the rules parser and the cdb reader take untrusted input and must
//! never panic; what the compiler writes, the lookup finds.

use proptest::prelude::*;
use ucspi::cdb::Cdb;
use ucspi::lookup::{items, lookup, Client, Item};
use ucspi::rules::{CompileError, Compiler};

fn build(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "ucspi-prop-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    let mut m = cdb2::CDBMake::new(f).unwrap();
    for (k, v) in records {
        m.add(k, v).unwrap();
    }
    m.finish().unwrap();
    let b = std::fs::read(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    b
}

fn compile(lines: &[Vec<u8>]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut c = Compiler::new();
    let mut out = Vec::new();
    for l in lines {
        let mut emit = |k: &[u8], d: &[u8]| {
            out.push((k.to_vec(), d.to_vec()));
            Ok(())
        };
        match c.line(l, &mut emit) {
            Ok(()) | Err(CompileError::Syntax) => {}
            Err(CompileError::Io(e)) => panic!("{e}"),
        }
    }
    out
}

fn rules_line() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"1.2.3.4".to_vec()),
        Just(b"10.0.0.0/8".to_vec()),
        Just(b"::1".to_vec()),
        Just(b"2001:db8::/32".to_vec()),
        Just(b"=".to_vec()),
        Just(b"@".to_vec()),
        Just(b":".to_vec()),
        Just(b"allow".to_vec()),
        Just(b"deny".to_vec()),
        Just(b",X=\"v\"".to_vec()),
        Just(b"-".to_vec()),
        Just(b".".to_vec()),
        Just(b"\r".to_vec()),
        prop::collection::vec(any::<u8>(), 0..6),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|v| {
        let mut l: Vec<u8> = v.concat();
        l.push(b'\n');
        l
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn parser_never_panics(line in rules_line()) {
        let _ = compile(&[line]);
    }

    #[test]
    fn reader_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..6000), key in prop::collection::vec(any::<u8>(), 0..40)) {
        let db = Cdb::new(&bytes);
        let _ = db.find(&key);
        let mut k = Vec::new();
        let _ = lookup(&db, &Client { ip: b"1.2.3.4", host: Some(b"a.b.c"), info: Some(b"joe") }, &mut k);
        let _ = lookup(&db, &Client { ip: b"2001:db8::1", host: None, info: None }, &mut k);
    }

    #[test]
    fn reader_never_panics_on_damaged_cdbs(lines in prop::collection::vec(rules_line(), 1..30), cut in any::<prop::sample::Index>(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6)) {
        let good = build(&compile(&lines));
        let mut bad = good.clone();
        for (at, v) in flips {
            let i = at.index(bad.len());
            bad[i] = v;
        }
        bad.truncate(cut.index(bad.len() + 1));
        let db = Cdb::new(&bad);
        let mut k = Vec::new();
        for ip in [&b"1.2.3.4"[..], b"10.1.2.3", b"::1", b"2001:db8::7"] {
            if let Ok(Some(d)) = lookup(&db, &Client { ip, host: Some(b"x.example"), info: Some(b"u") }, &mut k) {
                let _ = items(d).count();
            }
        }
    }

    #[test]
    fn what_is_compiled_is_found_first_line_wins(ips in prop::collection::vec((0u8..4, 0u8..4, 0u8..4, 0u8..4), 1..40)) {
        let lines: Vec<Vec<u8>> = ips.iter().enumerate().map(|(i, (a, b, c, d))| format!("{a}.{b}.{c}.{d}:allow,N=\"{i}\"\n").into_bytes()).collect();
        let bytes = build(&compile(&lines));
        let db = Cdb::new(&bytes);
        for (a, b, c, d) in &ips {
            let ip = format!("{a}.{b}.{c}.{d}");
            let first = ips.iter().position(|x| x == &(*a, *b, *c, *d)).unwrap();
            let mut k = Vec::new();
            let data = lookup(&db, &Client { ip: ip.as_bytes(), host: None, info: None }, &mut k).unwrap().unwrap();
            prop_assert_eq!(&k, &ip.as_bytes().to_vec());
            let want = format!("N={first}");
            prop_assert_eq!(items(data).collect::<Vec<_>>(), vec![Item::Set(want.as_bytes())]);
        }
    }
}
