//! Shared pieces of the ucspi-tcp replacements: the rules format and its lookup, cdb
//! reading, address text forms, djb's messages and exit codes, and his getopt rules.

pub mod addr;
pub mod cdb;
pub mod dns;
pub mod env;
pub mod errstr;
pub mod exec;
pub mod fd;
pub mod fileid;
pub mod fmt;
pub mod getopt;
pub mod hostport;
pub mod ident;
pub mod lookup;
pub mod msg;
pub mod proxy;
pub mod rules;
pub mod rules_file;

// gcc's unwinder is linked in rather than loaded from libgcc_s.so at every start: one
// shared library fewer for every program here to map and bind when it starts, and for
// tcpserver fewer mappings for every fork to copy. libc stays shared.
#[link(name = "gcc_eh", kind = "static", modifiers = "-bundle")]
extern "C" {}
