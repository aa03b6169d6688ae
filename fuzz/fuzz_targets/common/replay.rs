//! A loopback TCP server that replays the fuzz input as a database server's bytes: the
//! real `vpopdb` clients speak to it through their real socket code (`Wire`), which has
//! no in-memory stand-in. Each input is one connection: accept, send the input, shut the
//! sending side, then read what the client says until it closes. One server thread for
//! the whole run (a thread per input costs more, and its thread-local destructors show
//! up as leaks to LeakSanitizer).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

struct Server {
    port: u16,
    scripts: Sender<Vec<u8>>,
    done: Receiver<()>,
}

static SERVER: OnceLock<Mutex<Server>> = OnceLock::new();

fn start() -> Mutex<Server> {
    // libFuzzer's C main never ran Rust's start-up, which ignores SIGPIPE: a write to a
    // client that already hung up must be an error, not the end of the process.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = l.local_addr().expect("local address").port();
    let (scripts, script_rx) = channel::<Vec<u8>>();
    let (done_tx, done) = channel();
    std::thread::spawn(move || {
        for script in script_rx {
            if let Ok((mut s, _)) = l.accept() {
                let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                let _ = s.write_all(&script);
                let _ = s.shutdown(Shutdown::Write);
                let mut sink = [0u8; 4096];
                while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
            }
            if done_tx.send(()).is_err() {
                return;
            }
        }
    });
    Mutex::new(Server {
        port,
        scripts,
        done,
    })
}

/// Runs `client(port)` against a server that sends `script`; the client must connect once
/// to 127.0.0.1:`port` and close the connection before it returns.
pub fn with_server<R>(script: &[u8], client: impl FnOnce(u16) -> R) -> R {
    let server = SERVER.get_or_init(start).lock().unwrap();
    server.scripts.send(script.to_vec()).expect("server thread");
    let r = client(server.port);
    server.done.recv().expect("server thread");
    r
}
