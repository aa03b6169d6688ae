//! vpopdb's MySQL/MariaDB client (`store::connect` with a MySQL target) against a server
//! that sends any bytes: handshake greeting, OK/ERR, authentication switch and
//! caching_sha2 steps, then a query without and one with parameters (column definitions,
//! text and binary rows, length-encoded integers). Never a panic, a hang or an
//! unbounded allocation; every failure is a `DbError`. The bytes come from a socket pair
//! (`common/replay.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpopdb::store::fuzzing::connect_over;
use vpopdb::store::Val;
use vpopdb::target::{MysqlTarget, SslMode, Target, Tls};
use zeroize::Zeroizing;

#[path = "common/replay.rs"]
mod replay;

fuzz_target!(|buf: &[u8]| {
    replay::with_server(buf, |sock| {
        let t = Target::Mysql(MysqlTarget {
            host: "127.0.0.1".into(),
            port: 1,
            socket: None,
            user: "vpopmail".into(),
            pass: Zeroizing::new("secret".into()),
            db: "vpopmail".into(),
            // The replayed bytes are the plain protocol.
            tls: Tls {
                mode: Some(SslMode::Disable),
                ca: None,
            },
        });
        let Ok(mut c) = connect_over(&t, sock) else {
            return;
        };
        let _ = c.query("SELECT pw_name FROM vpopmail", &[]);
        let _ = c.query(
            "SELECT pw_name, pw_uid FROM vpopmail WHERE pw_name = ? AND pw_uid = ?",
            &[Val::text("alice"), Val::Int(7)],
        );
        c.close();
    });
});
