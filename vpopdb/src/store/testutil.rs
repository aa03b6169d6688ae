//! For the back ends' tests: a hostile server on a loopback port (TLS too, with the
//! certificates in `testdata/`), and what a call allocates (this test binary's allocator
//! counts, per thread).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::target::{SslMode, Tls};

/// A file of `testdata/`: `ca.pem` signed `server.pem` (127.0.0.1 and localhost, key
/// `server.key`) and `other.pem` (db.example only); `wrong-ca.pem` signed nothing here.
pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/store/testdata")
        .join(name)
}

/// TLS settings of `mode` with `testdata/ca` as the CA file.
pub fn tls_with(mode: SslMode, ca: &str) -> Tls {
    Tls {
        mode: Some(mode),
        ca: Some(testdata(ca)),
    }
}

/// A connection, plain or TLS, as a test server's script holds it.
pub trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

/// The server's side of TLS on `s`, with `testdata/server.pem`; the handshake runs at
/// the first read or write.
pub fn tls_accept(s: TcpStream) -> StreamOwned<ServerConnection, TcpStream> {
    tls_accept_as(s, "server")
}

/// The same with `testdata/NAME.pem` and its key.
pub fn tls_accept_as(s: TcpStream, name: &str) -> StreamOwned<ServerConnection, TcpStream> {
    let certs = tls::files::certificates(&testdata(&format!("{name}.pem"))).expect("cert");
    let key = tls::files::private_key(&testdata(&format!("{name}.key")), None).expect("key");
    let cfg = ServerConfig::builder_with_provider(tls::suites::provider(None))
        .with_protocol_versions(tls::suites::VERSIONS)
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key");
    StreamOwned::new(ServerConnection::new(Arc::new(cfg)).expect("server"), s)
}

/// How long the hostile server waits for its client, and for each read or write.
const LIMIT: Duration = Duration::from_secs(5);

/// Serves one connection on 127.0.0.1 with `script` in a thread; returns the port. The
/// thread gives up when nobody connects within [`LIMIT`].
pub fn server(script: impl FnOnce(TcpStream) + Send + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = l.local_addr().expect("local address").port();
    l.set_nonblocking(true).expect("nonblocking listener");
    std::thread::spawn(move || {
        let start = Instant::now();
        let s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(_) if start.elapsed() < LIMIT => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        };
        s.set_nonblocking(false).expect("blocking stream");
        s.set_read_timeout(Some(LIMIT)).expect("read timeout");
        s.set_write_timeout(Some(LIMIT)).expect("write timeout");
        script(s);
    });
    port
}

/// Closes `s` with a reset (SO_LINGER 0), which the peer's next read sees as an error.
pub fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: an open socket, and the option's value with its length.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const l).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER");
}

/// Reads a PostgreSQL client's startup message (its length, then the rest).
pub fn pg_startup(s: &mut TcpStream) {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).expect("startup length");
    let n = u32::from_be_bytes(h) as usize;
    let mut body = vec![0u8; n.saturating_sub(4)];
    s.read_exact(&mut body).expect("startup message");
}

/// What the calling thread allocated while [`measure`] ran `f`.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// The largest single allocation (or reallocation's new size).
    pub largest: usize,
    /// The most held at once, beyond what was held when `f` began.
    pub peak: isize,
}

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    LIVE.set(0);
    PEAK.set(0);
    LARGEST.set(0);
    ON.set(true);
    let r = f();
    ON.set(false);
    let u = Usage {
        largest: LARGEST.get(),
        peak: PEAK.get(),
    };
    (r, u)
}

fn count(freed: usize, got: usize) {
    // try_with: the allocator may run while the thread's locals are torn down.
    if ON.try_with(Cell::get) != Ok(true) {
        return;
    }
    let live = LIVE.get() - freed as isize + got as isize;
    LIVE.set(live);
    PEAK.set(PEAK.get().max(live));
    LARGEST.set(LARGEST.get().max(got));
}

struct Counting;

// SAFETY: every call goes to the system allocator unchanged; counting allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(0, l.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count(0, l.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(l.size(), 0);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(l.size(), new);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;
