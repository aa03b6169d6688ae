//! `ucspi::rules::Compiler` on any lines: never a panic, and whatever it accepts compiles
//! into a cdb in which every key finds its first record, whose data reads back as the
//! items the line set (`D` at most once and first, then `+NAME=value` settings) when
//! the line holds no NUL.
#![no_main]

use std::collections::HashMap;
use std::ops::Range;

use libfuzzer_sys::fuzz_target;
use ucspi::cdb::Cdb;
use ucspi::lookup::{items, split_setting, Item};
use ucspi::rules::{quoted_line, CompileError, Compiler};

#[path = "common/cdbmake.rs"]
mod cdbmake;

fuzz_target!(|buf: &[u8]| {
    let mut c = Compiler::new();
    // The records' bytes in one buffer, each record its key's and data's ranges there:
    // two allocations per record cost more than the rest of the target under ASan.
    let mut bytes: Vec<u8> = Vec::with_capacity(4 * buf.len());
    let mut records: Vec<(Range<usize>, Range<usize>)> = Vec::new();
    for line in buf.split_inclusive(|&b| b == b'\n') {
        let before = records.len();
        let mut emit = |k: &[u8], d: &[u8]| {
            let at = bytes.len();
            bytes.extend_from_slice(k);
            bytes.extend_from_slice(d);
            records.push((at..at + k.len(), at + k.len()..bytes.len()));
            Ok(())
        };
        match c.line(line, &mut emit) {
            Ok(()) => {}
            Err(CompileError::Syntax) => {
                // A rejected line emits nothing: tcprules stops at it.
                assert_eq!(records.len(), before, "records from a rejected line");
                let q = quoted_line(line);
                assert!(line.starts_with(q) && !q.contains(&0));
            }
            Err(CompileError::Io(e)) => panic!("emit never fails here: {e}"),
        }
        // A range expands to at most 256 keys.
        assert!(records.len() - before <= 256, "range expanded too far");
        // A NUL inside a name or value is stored as djb stores it, and splits the item
        // there when read back, as his readers do: only NUL-free lines are checked.
        if line.contains(&0) {
            continue;
        }
        // A line's records share its data (a range repeats it for each key): read it
        // back once.
        let Some((_, d)) = records.get(before) else {
            continue;
        };
        let d = &bytes[d.clone()];
        for (_, other) in &records[before + 1..] {
            assert!(
                &bytes[other.clone()] == d,
                "records of one line with other data"
            );
        }
        let mut deny_seen = false;
        let mut n = 0;
        for (i, it) in items(d).enumerate() {
            n += 1;
            match it {
                Item::Deny => {
                    assert_eq!(i, 0, "D not first");
                    deny_seen = true;
                }
                Item::Set(s) => assert!(split_setting(s).is_some(), "setting without ="),
            }
        }
        // Every item is NUL-terminated and readable: the count matches the NULs.
        assert_eq!(n, d.iter().filter(|&&b| b == 0).count());
        assert_eq!(deny_seen, d.starts_with(b"D\0"));
    }
    let records: Vec<(&[u8], &[u8])> = records
        .into_iter()
        .map(|(k, d)| (&bytes[k], &bytes[d]))
        .collect();
    let file = cdbmake::make(&records);
    let db = Cdb::new(&file);
    // Each key's first record, found in one pass: a search of the list per key made the
    // target quadratic in a range's 256 keys (and every comparison goes through
    // libFuzzer's memcmp hook).
    let mut first: HashMap<&[u8], &[u8]> = HashMap::with_capacity(records.len());
    for &(k, d) in &records {
        first.entry(k).or_insert(d);
    }
    for (k, d) in first {
        assert_eq!(db.find(k).unwrap(), Some(d), "key {k:?}");
    }
});
