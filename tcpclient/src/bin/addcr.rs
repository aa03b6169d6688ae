//! addcr: CR before every LF, stdin to stdout.
fn main() {
    let r = tcpclient::fdio::filter_copy(0, 1, tcpclient::crlf::add_cr, |_| {});
    ucspi::msg::exit(if r.is_ok() { 0 } else { ucspi::msg::EXIT_TEMP });
}
