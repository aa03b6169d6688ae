//! djb's tcpserver 0.88 as a library: options, the listening socket, the accept loop with
//! its concurrency limits, and the per-connection child.

pub mod child;
pub mod child_alloc;
pub mod client_counts;
pub mod client_slots;
pub mod clone_exec;
pub mod inherited;
pub mod listen;
pub mod options;
pub mod pages;
pub mod rules_cache;
pub mod server;
