//! tcpclient: connects and runs a program on fds 6 and 7.
fn main() {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    tcpclient::client::main_with(&args)
}
