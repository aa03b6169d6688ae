//! What sslserver and sslclient share: rustls set up from ucspi-ssl's files and names,
//! the relay between a program's pipes and a TLS connection, session tickets, the
//! mod_ssl variables, and the UCSPI-TLS hand-off.

pub mod files;
pub mod modssl;
pub mod relay;
pub mod suites;
pub mod tickets;
pub mod vars;
pub mod verifiers;
pub mod warm;
