//! What sslserver does before tcpserver's accept loop takes over: its options, the key's
//! password (`-3`), the TLS configuration (read before the socket is bound, so a wrong
//! file stops the server before it listens), then tcpserver's listening socket, and
//! ucspi-ssl's `-v` lines.

use std::ffi::OsString;

use tcpserver::listen;
use tls::tickets::TicketKeys;
use ucspi::msg::{write_line, Msg, EXIT_TEMP};

use crate::certs::{Context, Settings};
use crate::conn::{RelayIds, Ssl};
use crate::options;

/// The largest password read from fd 3.
const MAX_PASSWORD: usize = 4096;

/// `-3`: the password, up to a NUL or the end of fd 3, which is closed after.
fn password_from_fd3(msg: &Msg) -> Vec<u8> {
    let Some(fd) = ucspi::fd::take_interface(3) else {
        msg.fatal(EXIT_TEMP, &[b"(111) unable to read password from FD3"]);
    };
    let mut pw = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match ucspi::fd::read(&fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => pw.extend_from_slice(&buf[..n]),
            Err(_) => msg.fatal(EXIT_TEMP, &[b"(111) unable to read password from FD3"]),
        }
        if pw.contains(&0) || pw.len() > MAX_PASSWORD {
            break;
        }
    }
    if let Some(end) = pw.iter().position(|&b| b == 0) {
        pw.truncate(end);
    }
    if pw.len() > MAX_PASSWORD {
        msg.fatal(EXIT_TEMP, &[b"(111) password too long"]);
    }
    pw
}

/// sslserver's main; never returns.
pub fn main(args: &[OsString]) -> ! {
    let (c, t) = options::parse_or_exit(args);
    let msg = Msg {
        prog: "sslserver",
        quiet: c.verbosity == 0,
    };
    tcpserver::server::set_up_signals();
    let env = |k: &str| std::env::var_os(k);
    let mut settings = Settings::from_env(&env, std::env::vars_os(), t.client_cert);
    if t.password_on_fd3 {
        settings.password = Some(password_from_fd3(&msg));
    }
    let Some(tickets) = TicketKeys::new() else {
        msg.fatal(EXIT_TEMP, &[b"(111) unable to make session ticket keys"]);
    };
    let ctx = match Context::load(settings, tickets) {
        Ok(ctx) => ctx,
        Err(e) => {
            write_line(&[
                b"sslserver: error: (111) ",
                e.what.as_bytes(),
                b" (",
                e.why.as_bytes(),
                b")",
            ]);
            std::process::exit(EXIT_TEMP)
        }
    };
    let relay = RelayIds::from_env(&c, &env);
    let listeners = listen::setup(&c, &msg);
    if c.verbosity >= 2 {
        ctx.log_settings(std::process::id());
    }
    tcpserver::server::run(
        c,
        msg,
        listeners,
        Ssl {
            opts: t,
            ctx,
            relay,
        },
    )
}
