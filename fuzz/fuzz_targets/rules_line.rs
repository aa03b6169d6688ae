//! `ucspi::rules::Compiler` on any lines: never a panic, and whatever it accepts compiles
//! into a cdb in which every key finds its first record, whose data reads back as the
//! items the line set (`D` at most once and first, then `+NAME=value` settings) when
//! the line holds no NUL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ucspi::cdb::Cdb;
use ucspi::lookup::{items, split_setting, Item};
use ucspi::rules::{quoted_line, CompileError, Compiler};

#[path = "common/cdbmake.rs"]
mod cdbmake;

fuzz_target!(|buf: &[u8]| {
    let mut c = Compiler::new();
    let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for line in buf.split_inclusive(|&b| b == b'\n') {
        let before = records.len();
        let mut emit = |k: &[u8], d: &[u8]| {
            records.push((k.to_vec(), d.to_vec()));
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
        for (_, d) in &records[before..] {
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
    }
    let bytes = cdbmake::make(&records);
    let db = Cdb::new(&bytes);
    for (k, _) in &records {
        let first = &records.iter().find(|(k2, _)| k2 == k).unwrap().1;
        assert_eq!(db.find(k).unwrap(), Some(&first[..]), "key {k:?}");
    }
});
