//! sslclient: tcpclient with TLS, a drop-in replacement for ucspi-ssl's.

fn main() {
    let args: Vec<_> = std::env::args_os().collect();
    sslserver::client::main(&args)
}
