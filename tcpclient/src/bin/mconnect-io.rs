//! mconnect-io: stdin to fd 7 with CRs added, fd 6 to stdout (run by mconnect).
fn main() {
    tcpclient::relay::mconnect_io(&ucspi::msg::Msg::new("mconnect-io"))
}
