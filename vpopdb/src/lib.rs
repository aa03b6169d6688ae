//! vpopmail's user database, as the login (checkpassword) and the account tool
//! (mailaccounts) both use it: settings and where the database is, the three SQL back
//! ends, the user table and the rows a login writes, failed-login lockout, the domains'
//! limits (vlimits), the POP-before-SMTP rules built from the relay rows, qmail's
//! users/cdb, password checks (Argon2 too) and the rules for login names, and our app
//! passwords.
//!
//! With the `admin` feature also what only the account tool needs: users/assign and
//! users/cdb written as qmail-newu writes them, and new password hashes.

pub mod app_passwords;
pub mod assign;
#[cfg(feature = "admin")]
pub mod assign_file;
pub mod config;
pub mod flags_quota;
#[cfg(feature = "admin")]
pub mod hash;
pub mod limits;
pub mod lockout;
pub mod loginname;
pub mod phc;
pub mod relay;
pub mod store;
pub mod target;
pub mod users;
pub mod verify;

/// The time as the tables keep it: seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

// libxcrypt (crypt_rn, crypt_gensalt_rn) is linked in, not loaded from a shared library
// at every start: each shared library costs every login its mapping and symbol binding.
// The binaries stay position-independent; libm and libc stay shared.
#[link(name = "crypt", kind = "static", modifiers = "-bundle")]
extern "C" {}
