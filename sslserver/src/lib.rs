//! ucspi-ssl's sslserver and sslclient on rustls. sslserver is tcpserver (its options,
//! accept loop and admission of a client, through tcpserver's library) with a TLS
//! service after admission; sslclient is tcpclient's connection with TLS on top.

pub mod certs;
pub mod client;
pub mod conn;
pub mod options;
pub mod program;
pub mod start;
