//! vpopdb's PostgreSQL client (`store::connect` with a PostgreSQL target) against a
//! server that sends any bytes: authentication requests (cleartext, MD5, SCRAM-SHA-256
//! server-first and server-final), ParameterStatus, BackendKeyData, ErrorResponse,
//! NoticeResponse, ReadyForQuery, then a query without and one with parameters
//! (ParseComplete, BindComplete, RowDescription, DataRow, CommandComplete). Never a panic,
//! a hang or an unbounded allocation. The bytes come from a socket pair
//! (`common/replay.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpopdb::store::fuzzing::connect_over;
use vpopdb::store::Val;
use vpopdb::target::{PgTarget, SslMode, Target, Tls};
use zeroize::Zeroizing;

#[path = "common/replay.rs"]
mod replay;

fuzz_target!(|buf: &[u8]| {
    replay::with_server(buf, |sock| {
        let t = Target::Postgres(PgTarget {
            host: "127.0.0.1".into(),
            port: 1,
            user: "vpopmail".into(),
            password: Zeroizing::new("secret".into()),
            dbname: "vpopmail".into(),
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
            "SELECT pw_name, pw_uid FROM vpopmail WHERE pw_name = $1 AND pw_uid = $2",
            &[Val::text("alice"), Val::Int(7)],
        );
        c.close();
    });
});
