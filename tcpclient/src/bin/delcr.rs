//! delcr: drops a CR right before LF, stdin to stdout.
use std::cell::RefCell;

fn main() {
    let d = RefCell::new(tcpclient::crlf::DelCr::default());
    let r = tcpclient::fdio::filter_copy(
        0,
        1,
        |b, o| d.borrow_mut().feed(b, o),
        |o| d.borrow_mut().finish(o),
    );
    ucspi::msg::exit(if r.is_ok() { 0 } else { ucspi::msg::EXIT_TEMP });
}
