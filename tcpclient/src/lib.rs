//! tcpclient, rblsmtpd and the small ucspi-tcp tools as library code; the binaries in
//! src/bin only parse their arguments and call in here.

pub mod client;
pub mod crlf;
pub mod rbl;
pub mod relay;
