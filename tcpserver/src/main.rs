//! tcpserver: accept TCP connections and run a program for each, as djb's.
//!
//! `no_main`: std's runtime setup (main-thread stack guard, which reads
//! /proc/self/maps with scanf, and SIGPIPE handling) is skipped; the server sets the
//! signal state it needs itself, and this keeps its idle memory near djb's.
#![no_main]

/// A child's allocations in pages of its own: see `tcpserver::child_alloc`.
#[global_allocator]
static ALLOC: tcpserver::child_alloc::ChildAlloc = tcpserver::child_alloc::ChildAlloc;

#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let args: Vec<_> = std::env::args_os().collect();
    let config = tcpserver::options::parse_or_exit(&args);
    let msg = ucspi::msg::Msg {
        prog: "tcpserver",
        quiet: config.verbosity == 0,
    };
    tcpserver::server::set_up_signals();
    let listeners = tcpserver::listen::setup(&config, &msg);
    tcpserver::child_alloc::reserve();
    tcpserver::server::run(config, msg, listeners, tcpserver::child::Exec)
}
