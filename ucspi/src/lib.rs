//! Shared pieces of the ucspi-tcp replacements: the rules format and its lookup, cdb
//! reading, address text forms, djb's messages and exit codes, and his getopt rules.

pub mod addr;
pub mod cdb;
pub mod dns;
pub mod dnstxt;
pub mod env;
pub mod errstr;
pub mod getopt;
pub mod hostport;
pub mod ident;
pub mod lookup;
pub mod msg;
pub mod rules;
pub mod sock;
