//! delcr: drops a CR right before LF, stdin to stdout.
use std::cell::RefCell;

fn main() {
    let d = RefCell::new(tcpclient::crlf::DelCr::default());
    tcpclient::relay::filter_stdio(
        |b, o| d.borrow_mut().feed(b, o),
        |o| d.borrow_mut().finish(o),
    )
}
