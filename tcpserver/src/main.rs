//! tcpserver: accept TCP connections and run a program for each, as djb's.

fn main() {
    let args: Vec<_> = std::env::args_os().collect();
    let config = tcpserver::options::parse_or_exit(&args);
    tcpserver::server::run(config)
}
