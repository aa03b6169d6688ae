//! sslserver against real TLS clients (openssl s_client, Python's ssl, curl) on
//! loopback, with certificates made by the test.

mod tls_util;

use tls_util::*;

#[test]
fn openssl_client_gets_the_program_inside_tls() {
    let pki = Pki::new();
    let s = Server::start(
        &[
            ("CERTFILE", &pki.s("server.pem")),
            ("KEYFILE", &pki.s("server.key")),
        ],
        &["-v"],
        "127.0.0.1",
        &["sh", "-c", "echo hello $SSLREMOTEIP; read x; echo got $x"],
    );
    let (out, err) = s_client(
        &s.addr(),
        &["-CAfile", &pki.s("ca.pem"), "-quiet"],
        b"ping\n",
    );
    assert!(out.contains("hello 127.0.0.1"), "{out}\n{err}");
    assert!(out.contains("got ping"), "{out}\n{err}");
    s.wait_log("sslserver: tls ");
    let ended = s.wait_log("ended by");
    assert!(ended.ends_with("status 0"), "{ended}");
}
