//! rblsmtpd: refuses clients listed in DNS lists, else runs smtpd.
fn main() {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    tcpclient::rbl::main_with(&args)
}
