//! POP-before-SMTP (vpopmail's roaming users): the `relay` rows logins write, and the
//! tcpserver rules cdb built from them as vpopmail's `update_rules` builds it: the base
//! rules file's text, then `IP:allow,RELAYCLIENT="",RBLSMTPD=""` for every row younger
//! than `relay_minutes`, compiled by tcprules' own writer. The rows go in address order,
//! so every SMTP host of a farm that builds from one database writes the same bytes.

use std::fs::File;
use std::io::BufReader;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use ucspi::errstr::io_str;
use ucspi::rules_file::{Failure, Writer};

use crate::config::Settings;
use crate::store::{Conn, DbError, Val};
use crate::users::write_own;

/// vpopmail's `RELAY_CLEAR_MINUTES`.
pub const DEFAULT_MINUTES: u64 = 180;

/// How long a rebuild waits for another one on the same directory to finish.
const LOCK_WAIT: Duration = Duration::from_secs(15);

/// The rule vpopmail writes for an address that may relay.
const RULE: &str = ":allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"\n";

/// The base rules file and the cdb built from it.
#[derive(Debug, Clone)]
pub struct Files {
    pub rules: PathBuf,
    pub cdb: PathBuf,
}

impl Files {
    /// `relay_rules` (default `~vpopmail/etc/tcp.smtp`, as vpopmail's `TCP_FILE`) and
    /// `relay_cdb` (default the rules file + `.cdb`).
    pub fn of(settings: &Settings) -> Files {
        let rules = match &settings.relay_rules {
            Some(p) => p.clone(),
            None => settings.vpopmail_home().join("etc/tcp.smtp"),
        };
        let cdb = match &settings.relay_cdb {
            Some(p) => p.clone(),
            None => {
                let mut c = rules.as_os_str().to_owned();
                c.push(".cdb");
                PathBuf::from(c)
            }
        };
        Files { rules, cdb }
    }
}

/// One row of the `relay` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub ip: String,
    pub timestamp: i64,
}

/// The oldest timestamp still open at `now`: rows at or before `now - minutes*60` are
/// closed (clearopensmtp's `timestamp <= now - minutes*60`).
pub fn cutoff(now: i64, minutes: u64) -> i64 {
    let secs = i64::try_from(minutes.saturating_mul(60)).unwrap_or(i64::MAX);
    now.saturating_sub(secs)
}

/// A login's row for the client's address (vpopmail's `REPLACE INTO relay`).
pub fn touch(db: &mut dyn Conn, ip: &str, now: i64) -> Result<(), DbError> {
    let sql = db
        .kind()
        .upsert("relay", &["ip_addr", "timestamp"], &["ip_addr"]);
    write_own(db, "relay", &sql, &[Val::text(ip), Val::Int(now)]).map(drop)
}

/// Every row, in the database's order.
pub fn rows(db: &mut dyn Conn) -> Result<Vec<Row>, DbError> {
    let k = db.kind();
    let sql = format!(
        "SELECT {}, {} FROM {}",
        k.ident("ip_addr"),
        k.ident("timestamp"),
        k.ident("relay")
    );
    let rows = match db.query(&sql, &[]) {
        Err(DbError::NoTable) => return Ok(vec![]),
        r => r?,
    };
    Ok(rows
        .iter()
        .map(|r| Row {
            ip: String::from_utf8_lossy(r.get("ip_addr").map(Val::as_bytes).unwrap_or_default())
                .into_owned(),
            timestamp: r.get("timestamp").map_or(0, Val::as_int),
        })
        .collect())
}

/// clearopensmtp's delete: the rows closed at `now`; how many went.
pub fn expire(db: &mut dyn Conn, now: i64, minutes: u64) -> Result<u64, DbError> {
    let k = db.kind();
    let sql = format!(
        "DELETE FROM {} WHERE {} <= ?",
        k.ident("relay"),
        k.ident("timestamp")
    );
    match db.exec(&sql, &[Val::Int(cutoff(now, minutes))]) {
        Err(DbError::NoTable) => Ok(0),
        r => r,
    }
}

/// A row's address as tcpserver puts it in `TCPREMOTEIP` (dotted quad, also for a
/// v4-mapped address; compressed IPv6), or `None` for text that is no address: such a
/// row must not put its text into the rules.
pub fn address(ip: &str) -> Option<String> {
    let a: IpAddr = ip.trim().parse().ok()?;
    let mut out = Vec::with_capacity(39);
    ucspi::addr::ip_text(ucspi::addr::unmapped(a), &mut out);
    String::from_utf8(out).ok()
}

/// The rules lines for the rows open at `now`, one per address in address order, and
/// the rows skipped because their `ip_addr` is no address.
pub fn lines(rows: &[Row], now: i64, minutes: u64) -> (String, Vec<String>) {
    let since = cutoff(now, minutes);
    let mut open: Vec<String> = Vec::new();
    let mut bad = Vec::new();
    for r in rows.iter().filter(|r| r.timestamp > since) {
        match address(&r.ip) {
            Some(a) => open.push(a),
            None => bad.push(r.ip.clone()),
        }
    }
    open.sort();
    open.dedup();
    let mut text = String::with_capacity(open.len() * (RULE.len() + 16));
    for a in &open {
        text.push_str(a);
        text.push_str(RULE);
    }
    (text, bad)
}

/// What a rebuild did.
#[derive(Debug)]
pub struct Rebuilt {
    /// The addresses now open for relaying.
    pub open: usize,
    /// Rows whose `ip_addr` is no address, left out.
    pub skipped: Vec<String>,
}

#[derive(Debug)]
pub enum RebuildError {
    Db(DbError),
    /// A base rules line tcprules would refuse, named by file and line.
    Rules(String),
    /// Reading the base file, writing the cdb, or waiting for another rebuild.
    Io(String),
}

impl std::fmt::Display for RebuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RebuildError::Db(e) => write!(f, "database unavailable: {e}"),
            RebuildError::Rules(s) | RebuildError::Io(s) => f.write_str(s),
        }
    }
}

/// Writes `files.cdb` from the base rules file and the rows open at `now`. The old cdb
/// stays as it was on any error; rebuilds on one host run one at a time, so that a
/// rebuild that read the rows earlier cannot rename its cdb over a later one's.
pub fn rebuild(
    db: &mut dyn Conn,
    files: &Files,
    minutes: u64,
    now: i64,
) -> Result<Rebuilt, RebuildError> {
    let base = File::open(&files.rules).map_err(|e| {
        RebuildError::Io(format!(
            "unable to read {}: {}",
            files.rules.display(),
            io_str(&e)
        ))
    })?;
    let _lock = lock_dir(&files.cdb)?;
    let rows = rows(db).map_err(RebuildError::Db)?;
    let (text, skipped) = lines(&rows, now, minutes);
    let cdb = &files.cdb;
    let failed = |from: &Path, f: Failure| -> RebuildError {
        let (what, tmp) = (from.display(), ucspi::rules_file::tmp_beside(cdb));
        let tmp = tmp.display();
        match f {
            Failure::Parse(line, n) => RebuildError::Rules(format!(
                "{what} line {n}: unable to parse this line: {}",
                String::from_utf8_lossy(&line)
            )),
            Failure::TooLong(n) => RebuildError::Rules(format!(
                "{what} line {n}: longer than {} bytes",
                ucspi::rules_file::MAX_LINE
            )),
            Failure::Read(e) => RebuildError::Io(format!("unable to read {what}: {}", io_str(&e))),
            Failure::Create(e) | Failure::Write(e) => {
                RebuildError::Io(format!("unable to write {tmp}: {}", io_str(&e)))
            }
            Failure::Rename(e) => RebuildError::Io(format!(
                "unable to move {tmp} to {}: {}",
                cdb.display(),
                io_str(&e)
            )),
        }
    };
    let mut w = Writer::beside(cdb).map_err(|f| failed(cdb, f))?;
    w.add_lines(&mut BufReader::with_capacity(64 * 1024, base))
        .map_err(|f| failed(&files.rules, f))?;
    w.add_lines(&mut text.as_bytes())
        .map_err(|f| failed(Path::new("the relay rows"), f))?;
    w.commit(cdb).map_err(|f| failed(cdb, f))?;
    Ok(Rebuilt {
        open: text.lines().count(),
        skipped,
    })
}

/// Whether a rebuild for a login from `ip` would change nothing for `ip`: `cdb` already
/// holds a record under its own key (tcpserver finds the first record of a key, and the
/// base file's come first), or `ip` is no address (its row is left out). A missing or
/// unreadable cdb holds nothing.
pub fn covers(cdb: &Path, ip: &str) -> bool {
    let Some(a) = address(ip) else {
        return true;
    };
    let mut key = Vec::new();
    let line = format!("{a}{RULE}");
    let mut take = |k: &[u8], _: &[u8]| {
        key = k.to_vec();
        Ok(())
    };
    if ucspi::rules::Compiler::new()
        .line(line.as_bytes(), &mut take)
        .is_err()
    {
        return false;
    }
    let Ok(f) = ucspi::cdb::CdbFile::open(cdb) else {
        return false;
    };
    matches!(f.cdb().find(&key), Ok(Some(_)))
}

/// An exclusive lock on the cdb's directory (no lock file to leave behind), waited for
/// at most [`LOCK_WAIT`].
fn lock_dir(cdb: &Path) -> Result<Flock<File>, RebuildError> {
    let dir = match cdb.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let err = |e: std::io::Error| {
        RebuildError::Io(format!("unable to lock {}: {}", dir.display(), io_str(&e)))
    };
    let mut f = File::open(dir).map_err(err)?;
    let end = Instant::now() + LOCK_WAIT;
    loop {
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(l),
            Err((back, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < end => {
                f = back;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((_, e)) => return Err(err(std::io::Error::from(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ip: &str, timestamp: i64) -> Row {
        Row {
            ip: ip.into(),
            timestamp,
        }
    }

    #[test]
    fn addresses_as_tcpserver_names_them() {
        assert_eq!(address("127.0.0.5").as_deref(), Some("127.0.0.5"));
        assert_eq!(address("::ffff:10.1.2.3").as_deref(), Some("10.1.2.3"));
        assert_eq!(address("2001:DB8:0:0::1").as_deref(), Some("2001:db8::1"));
        for bad in [
            "",
            "1.2.3.4_",
            "1.2.3.4:allow,X=\"y\"\n:deny",
            "01.2.3.4",
            "fe80::1%eth0",
        ] {
            assert_eq!(address(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn open_rows_in_address_order() {
        let now = 1_000_000;
        let rows = [
            row("10.0.0.2", now),
            row("10.0.0.10", now - 60),
            row("::ffff:10.0.0.2", now - 5),
            row("2001:db8::7", now - 179 * 60),
            row("10.9.9.9", now - 180 * 60),
            row("junk;", now),
        ];
        let (text, bad) = lines(&rows, now, 180);
        assert_eq!(
            text,
            "10.0.0.10:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"\n\
             10.0.0.2:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"\n\
             2001:db8::7:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"\n"
        );
        assert_eq!(bad, ["junk;"]);
        // Each line compiles to the address's own key, IPv6 in ucspi-tcp6's full form.
        let mut keys = Vec::new();
        let mut c = ucspi::rules::Compiler::new();
        for l in text.lines() {
            let mut emit = |k: &[u8], d: &[u8]| {
                keys.push((String::from_utf8(k.to_vec()).unwrap(), d.to_vec()));
                Ok(())
            };
            c.line(l.as_bytes(), &mut emit).unwrap();
        }
        assert_eq!(keys[2].0, "2001:0DB8:0000:0000:0000:0000:0000:0007");
        assert_eq!(keys[0].1, b"+RELAYCLIENT=\0+RBLSMTPD=\0");
        assert_eq!(cutoff(5, u64::MAX), i64::MIN + 6);
    }

    #[test]
    fn covered_addresses() {
        let d = std::env::temp_dir().join(format!("vpopdb-relay-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let cdb = d.join("r.cdb");
        assert!(!covers(&cdb, "10.0.0.1"), "no cdb yet");
        let mut w = Writer::beside(&cdb).unwrap();
        let text = "10.0.0.1:deny\n10.0.0.:allow\n2001:db8::1:allow\n";
        w.add_lines(&mut text.as_bytes()).unwrap();
        w.commit(&cdb).unwrap();
        assert!(covers(&cdb, "10.0.0.1"));
        assert!(covers(&cdb, "::ffff:10.0.0.1"));
        assert!(covers(&cdb, "2001:DB8:0::1"));
        assert!(
            !covers(&cdb, "10.0.0.2"),
            "a prefix is not the address's own line"
        );
        assert!(covers(&cdb, "no address"), "nothing a rebuild could add");
        let _ = std::fs::remove_dir_all(&d);
    }
}
