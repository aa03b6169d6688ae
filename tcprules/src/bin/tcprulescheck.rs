use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ucspi::lookup::Client;
use ucspi::msg::{Msg, EXIT_TEMP};

const MSG: Msg = Msg::new("tcprulescheck");

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        MSG.usage("tcprulescheck rules.cdb");
    };
    let ip = std::env::var_os("TCPREMOTEIP").unwrap_or_else(|| "0.0.0.0".into());
    let host = std::env::var_os("TCPREMOTEHOST");
    let info = std::env::var_os("TCPREMOTEINFO");
    let client = Client {
        ip: ip.as_bytes(),
        host: host.as_deref().map(|h| h.as_bytes()),
        info: info.as_deref().map(|i| i.as_bytes()),
    };
    let mut out = Vec::with_capacity(256);
    if let Err(e) = tcprules::check::check(Path::new(&path), &client, &mut out) {
        MSG.fatal_sys(EXIT_TEMP, &[b"unable to read ", path.as_bytes()], &e);
    }
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(&out)
        .and_then(|()| stdout.flush())
        .is_err()
    {
        std::process::exit(EXIT_TEMP);
    }
}
