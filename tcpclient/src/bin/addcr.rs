//! addcr: CR before every LF, stdin to stdout.
fn main() {
    tcpclient::relay::filter_stdio(tcpclient::crlf::add_cr, |_| {})
}
