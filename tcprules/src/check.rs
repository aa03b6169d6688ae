//! tcprulescheck: the rule tcpserver would apply to the client described by
//! TCPREMOTEIP / TCPREMOTEHOST / TCPREMOTEINFO, in djb's words.

use std::io;
use std::path::Path;

use ucspi::cdb::CdbFile;
use ucspi::lookup::{items, lookup, Client, Item};

/// Writes tcprulescheck's report for `client` to `out`.
pub fn check(path: &Path, client: &Client<'_>, out: &mut Vec<u8>) -> io::Result<()> {
    let file = CdbFile::open(path)?;
    let db = file.cdb();
    let mut key = Vec::new();
    let Some(data) = lookup(&db, client, &mut key)? else {
        out.extend_from_slice(b"default:\nallow connection\n");
        return Ok(());
    };
    out.extend_from_slice(b"rule ");
    out.extend_from_slice(&key);
    out.extend_from_slice(b":\n");
    for item in items(data) {
        match item {
            Item::Deny => {
                out.extend_from_slice(b"deny connection\n");
                return Ok(());
            }
            Item::Set(s) => {
                out.extend_from_slice(b"set environment variable ");
                out.extend_from_slice(s);
                out.push(b'\n');
            }
        }
    }
    out.extend_from_slice(b"allow connection\n");
    Ok(())
}
