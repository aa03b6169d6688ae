//! A vpopmail-compatible checkpassword: the interface of djb's checkpassword (fd 3, exit
//! codes, exec of the next program), vchkpw's login rules and user tables (MariaDB/MySQL,
//! PostgreSQL or embedded SQLite, through vpopdb), Dovecot 2.3's extensions, and safe
//! defaults: constant time checks, failed-login lockout, no root, no secrets in logs.

pub mod bookkeeping;
pub mod db;
pub mod deadline;
pub mod decide;
pub mod fd3;
pub mod log;
pub mod request;
pub mod run;
pub mod service;
pub mod setup;

/// Authentication failed (wrong password, unknown user, service denied, locked out).
pub const EXIT_FAIL: i32 = 1;
/// The caller misused the interface.
pub const EXIT_MISUSE: i32 = 2;
/// Dovecot lookup mode: no such user.
pub const EXIT_NOUSER: i32 = 3;
/// Temporary trouble: database, configuration, I/O.
pub const EXIT_TEMP: i32 = ucspi::msg::EXIT_TEMP;
