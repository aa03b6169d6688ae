//! One login, as djb's checkpassword `doit` reads: the request (fd 3, environment) →
//! whom it names → the decision (lockout and password) → bookkeeping → the process set
//! up (ids, directory, environment) → exec. Every way it can end is a [`Failure`], and
//! its log line and exit code are chosen in one place, [`end`].

use std::convert::Infallible;
use std::ffi::OsString;

use vpopdb::config::Settings;
use vpopdb::store::DbError;
use vpopdb::users::User;

use crate::db::Db;
use crate::decide::{self, Outcome};
use crate::fd3::{self, Fd3Error};
use crate::request::{self, Request, Who};
use crate::{bookkeeping, deadline, log, setup};
use crate::{EXIT_FAIL, EXIT_MISUSE, EXIT_NOUSER, EXIT_TEMP};

/// Why a login did not reach its program.
pub enum Failure {
    /// No program to run.
    Usage,
    Fd3(Fd3Error),
    Config(String),
    Db(DbError),
    /// Trouble of our own (users/cdb, ids, directory, exec): its text.
    Fatal(String),
    /// A refused attempt: vchkpw's log text, and the user and domain it names.
    Refused {
        text: &'static str,
        user: Vec<u8>,
        domain: String,
    },
    /// Dovecot looked up a user who does not exist.
    NoUser {
        user: String,
        domain: String,
    },
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Failure {
        Failure::Db(e)
    }
}

/// Runs one login; returns an exit code, or does not return (prog was exec'd).
pub fn run(args: &[OsString]) -> i32 {
    match request::read(args) {
        Ok(mut req) => {
            let Err(f) = login(&mut req);
            end(f, Some(&req))
        }
        Err(f) => end(f, None),
    }
}

fn login(req: &mut Request) -> Result<Infallible, Failure> {
    let settings = Settings::load(&|k| req.env.get(k), req.env.trusted).map_err(Failure::Config)?;
    deadline::arm(settings.login_timeout);
    req.judge_address(&settings);
    let req = &*req;
    let who = req.who(&settings)?;
    let targets = settings.targets().map_err(Failure::Config)?;
    let mut db = Db::open(targets)?;
    let user = decide_and_record(req, &settings, &who, &mut db);
    db.close();
    let user = user?;
    let env = setup::process(req, &settings, &who, &user).map_err(Failure::Fatal)?;
    deadline::disarm();
    Err(Failure::Fatal(setup::exec(&req.prog, &env)))
}

/// The decision and what it leaves in the database: the user, when the login goes on.
fn decide_and_record(
    req: &Request,
    settings: &Settings,
    who: &Who,
    db: &mut Db,
) -> Result<User, Failure> {
    let now = vpopdb::now();
    let d = decide::decide(req, settings, who, db, now)?;
    bookkeeping::record(req, settings, who, db, &d, now)?;
    let refused = |text| Failure::Refused {
        text,
        user: who.user().as_bytes().to_vec(),
        domain: who.domain().to_string(),
    };
    match d.outcome {
        Outcome::Accepted { user, .. } | Outcome::Found(user) => Ok(user),
        Outcome::Failed(text) | Outcome::Denied(text) => Err(refused(text)),
        Outcome::NotFound => Err(Failure::NoUser {
            user: who.user().to_string(),
            domain: who.domain().to_string(),
        }),
    }
}

/// The log line and exit code of each way a login ends short of its program.
fn end(f: Failure, req: Option<&Request>) -> i32 {
    let attempt = |text: &str, user: &[u8], domain: &str| {
        if let Some(r) = req {
            r.attempt(text, user, domain);
        }
    };
    match f {
        Failure::Usage => {
            log::fatal("usage: checkpassword prog [args...]");
            EXIT_MISUSE
        }
        Failure::Fd3(e) => {
            let (code, what) = match e {
                Fd3Error::NotOpen => (
                    EXIT_MISUSE,
                    "fd 3 is not open: not called by a checkpassword caller".to_string(),
                ),
                Fd3Error::TooLong => (
                    EXIT_MISUSE,
                    format!("more than {} bytes on fd 3", fd3::MAX_INPUT),
                ),
                Fd3Error::Malformed => (EXIT_MISUSE, "malformed input on fd 3".into()),
                Fd3Error::Timeout => (EXIT_TEMP, "timed out reading fd 3".into()),
                Fd3Error::Read(n) => (
                    EXIT_TEMP,
                    format!("unable to read fd 3: {}", ucspi::errstr::errno_str(n)),
                ),
            };
            log::fatal(&what);
            code
        }
        Failure::Config(e) => {
            log::fatal(&format!("bad configuration: {e}"));
            EXIT_TEMP
        }
        Failure::Db(e) => {
            log::fatal(&format!("database unavailable: {e}"));
            EXIT_TEMP
        }
        Failure::Fatal(e) => {
            log::fatal(&e);
            EXIT_TEMP
        }
        Failure::Refused { text, user, domain } => {
            attempt(text, &user, &domain);
            EXIT_FAIL
        }
        Failure::NoUser { user, domain } => {
            attempt("vpopmail user not found", user.as_bytes(), &domain);
            EXIT_NOUSER
        }
    }
}
