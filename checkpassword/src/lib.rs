//! A vpopmail-compatible checkpassword: the interface of djb's checkpassword (fd 3, exit
//! codes, exec of the next program), vchkpw's login rules and user tables (MariaDB/MySQL,
//! PostgreSQL or embedded SQLite), Dovecot 2.3's extensions, and safe defaults: constant
//! time checks, failed-login lockout, no root, no secrets in logs.

pub mod accounts;
pub mod assign;
pub mod config;
pub mod fd3;
pub mod lockout;
pub mod log;
pub mod login;
pub mod run;
pub mod service;
pub mod setup;
pub mod store;
pub mod users;
pub mod verify;

/// Authentication failed (wrong password, unknown user, service denied, locked out).
pub const EXIT_FAIL: i32 = 1;
/// The caller misused the interface.
pub const EXIT_MISUSE: i32 = 2;
/// Dovecot lookup mode: no such user.
pub const EXIT_NOUSER: i32 = 3;
/// Temporary trouble: database, configuration, I/O.
pub const EXIT_TEMP: i32 = ucspi::msg::EXIT_TEMP;

// libxcrypt (crypt_rn, crypt_gensalt_rn) is linked in, not loaded from a shared library
// at every start: each shared library costs every login its mapping and symbol binding;
// with gcc's unwinder (linked in by ucspi) together ~0.12 ms of a ~1 ms start
// (bench/checkpassword). The binary stays position-independent; libm and libc stay shared.
#[link(name = "crypt", kind = "static", modifiers = "-bundle")]
extern "C" {}
