//! vpopmail's per-domain limits (vlimits): the switches that close a service (POP, IMAP,
//! SMTP, webmail, relaying...) for a whole domain, and the domain's quotas and counts.
//!
//! They come from the `limits` table's row for the domain (vpopmail's
//! `--enable-mysql-limits`), else the domain directory's `.qmailadmin-limits` file
//! (vpopmail without it), else `~vpopmail/etc/vlimits.default` (both). vpopmail reads
//! either the table or the domain's file, as it was built; reading both lets a site move
//! from files to the table a domain at a time. A login ORs the switches' flag bits into
//! the user's pw_gid (vchkpw's `pw_flags`), unless the user has `V_OVERRIDE`.

use std::io::Read;
use std::path::{Path, PathBuf};

use ucspi::errstr::io_str;

use crate::flags_quota::{
    DELETE_SPAM, NO_DIALUP, NO_IMAP, NO_MAILDROP, NO_PASSWD_CHNG, NO_POP, NO_RELAY, NO_SMTP,
    NO_SPAMASSASSIN, NO_WEBMAIL, V_OVERRIDE,
};
use crate::store::{DbError, Kind, Row, Val};

/// vpopmail's table name.
pub const TABLE: &str = "limits";

/// The largest `.qmailadmin-limits` read; vpopmail writes about 500 bytes.
pub const MAX_FILE: u64 = 64 * 1024;

/// The domain directory's file.
pub const DOMAIN_FILE: &str = ".qmailadmin-limits";

/// One column of the table, with its key in `.qmailadmin-limits` (where vpopmail spelt
/// it otherwise) and its value: for a switch, the pw_gid bit it sets
/// (`vlimits_get_flag_mask`); for a number, vpopmail's default (-1: no limit on a count,
/// 0: none set).
pub struct Column {
    pub name: &'static str,
    pub file_key: &'static str,
    pub value: i64,
}

const fn col(name: &'static str, file_key: &'static str, value: i64) -> Column {
    Column {
        name,
        file_key,
        value,
    }
}

/// The on/off limits.
pub const SWITCHES: &[Column] = &[
    col("disable_pop", "disable_pop", NO_POP),
    col("disable_imap", "disable_imap", NO_IMAP),
    col("disable_dialup", "disable_dialup", NO_DIALUP),
    col(
        "disable_passwordchanging",
        "disable_password_changing",
        NO_PASSWD_CHNG,
    ),
    col("disable_webmail", "disable_webmail", NO_WEBMAIL),
    col("disable_relay", "disable_external_relay", NO_RELAY),
    col("disable_smtp", "disable_smtp", NO_SMTP),
    col(
        "disable_spamassassin",
        "disable_spamassassin",
        NO_SPAMASSASSIN,
    ),
    col("delete_spam", "delete_spam", DELETE_SPAM),
    col("disable_maildrop", "disable_maildrop", NO_MAILDROP),
];

/// The numeric limits: counts, quotas, and the non-postmaster admins' permissions.
pub const NUMBERS: &[Column] = &[
    col("maxpopaccounts", "maxpopaccounts", -1),
    col("maxaliases", "maxaliases", -1),
    col("maxforwards", "maxforwards", -1),
    col("maxautoresponders", "maxautoresponders", -1),
    col("maxmailinglists", "maxmailinglists", -1),
    col("diskquota", "quota", 0),
    col("maxmsgcount", "maxmsgcount", 0),
    col("defaultquota", "default_quota", 0),
    col("defaultmaxmsgcount", "default_maxmsgcount", 0),
    col("perm_account", "perm_account", 0),
    col("perm_alias", "perm_alias", 0),
    col("perm_forward", "perm_forward", 0),
    col("perm_autoresponder", "perm_autoresponder", 0),
    col("perm_maillist", "perm_maillist", 0),
    col("perm_quota", "perm_quota", 0),
    col("perm_defaultquota", "perm_defaultquota", 0),
];

/// A domain's limits: the switches as pw_gid bits, the numbers in [`NUMBERS`]' order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub mask: i64,
    pub numbers: Vec<i64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            mask: 0,
            numbers: NUMBERS.iter().map(|n| n.value).collect(),
        }
    }
}

/// Where a domain's limits came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Table,
    File(PathBuf),
    /// Neither a row nor a file: vpopmail's built-in defaults (no switch on).
    Builtin,
}

/// The query for `domain`'s row. `SELECT *`: tables made by older vpopmail versions lack
/// the later columns, which then count as off.
pub fn query(k: Kind, domain: &str) -> (String, Vec<Val>) {
    (
        format!(
            "SELECT * FROM {} WHERE {} = ?",
            k.ident(TABLE),
            k.ident("domain")
        ),
        vec![Val::text(domain)],
    )
}

/// The limits in the answer to [`query`]: `None` without a row (or without the table,
/// which vpopmail creates only when limits are first set).
pub fn read(rows: Result<Vec<Row>, DbError>) -> Result<Option<Limits>, DbError> {
    let rows = match rows {
        Err(DbError::NoTable) => return Ok(None),
        r => r?,
    };
    Ok(rows.first().map(|r| {
        let mut l = Limits::default();
        for s in SWITCHES {
            if r.get(s.name).is_some_and(|v| v.as_int() != 0) {
                l.mask |= s.value;
            }
        }
        for (i, n) in NUMBERS.iter().enumerate() {
            if let Some(v) = r.get(n.name).filter(|v| **v != Val::Null) {
                l.numbers[i] = v.as_int();
            }
        }
        l
    }))
}

/// A `.qmailadmin-limits` file's text as vlimits_read_limits_file reads it: one key a
/// line, its value after spaces, tabs or colons; `#` starts a comment line. A switch is
/// on when its key is there, whatever follows it (vpopmail writes it bare). Unknown keys
/// are passed over; a number that does not parse counts as 0, as atoi's would.
pub fn parse_file(text: &[u8]) -> Limits {
    let mut l = Limits::default();
    let sep = |c: &u8| matches!(c, b' ' | b'\t' | b':');
    for line in text.split(|&c| c == b'\n' || c == b'\r') {
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let end = line.iter().position(sep).unwrap_or(line.len());
        let (key, rest) = line.split_at(end);
        let start = rest.iter().position(|c| !sep(c)).unwrap_or(rest.len());
        let value = &rest[start..];
        // Our table's names for the two switches vpopmail's file spells otherwise: an
        // admin who writes them means them.
        if let Some(s) = SWITCHES
            .iter()
            .find(|s| key == s.file_key.as_bytes() || key == s.name.as_bytes())
        {
            l.mask |= s.value;
        } else if let Some(i) = NUMBERS.iter().position(|n| key == n.file_key.as_bytes()) {
            if !value.is_empty() {
                l.numbers[i] = leading_int(value);
            }
        }
    }
    l
}

/// atoi: optional sign and the digits that follow, saturating.
fn leading_int(v: &[u8]) -> i64 {
    let (neg, digits) = match v.first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let n = digits
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .fold(0i64, |n, &c| {
            n.saturating_mul(10).saturating_add(i64::from(c - b'0'))
        });
    if neg {
        -n
    } else {
        n
    }
}

/// Reads a limits file: `None` when there is none. One that cannot be read, is not a
/// plain file or is too long is an error: passing it over would open what it closes.
pub fn read_file(path: &Path) -> Result<Option<Limits>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let unreadable =
        |e: std::io::Error| format!("unable to read {}: {}", path.display(), io_str(&e));
    // Non-blocking: a FIFO put in the domain's directory must not hold every login.
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e)),
    };
    if !f.metadata().map_err(unreadable)?.is_file() {
        return Err(format!("{}: not a plain file", path.display()));
    }
    let mut text = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut text)
        .map_err(unreadable)?;
    if text.len() as u64 > MAX_FILE {
        return Err(format!("{}: longer than {MAX_FILE} bytes", path.display()));
    }
    Ok(Some(parse_file(&text)))
}

/// The files tried when the table has no row: the domain's, then vpopmail's default.
pub fn files(domain_dir: &Path, vpopmail_home: &Path) -> [PathBuf; 2] {
    [
        domain_dir.join(DOMAIN_FILE),
        vpopmail_home.join("etc/vlimits.default"),
    ]
}

/// A domain's limits and their source: the table's row, else the first file there is.
pub fn resolve(row: Option<Limits>, files: &[PathBuf]) -> Result<(Limits, Source), String> {
    if let Some(l) = row {
        return Ok((l, Source::Table));
    }
    for f in files {
        if let Some(l) = read_file(f)? {
            return Ok((l, Source::File(f.clone())));
        }
    }
    Ok((Limits::default(), Source::Builtin))
}

/// vchkpw's `pw_flags`: the user's pw_gid with the domain's switches, unless the user
/// has `V_OVERRIDE`.
pub fn effective_flags(pw_gid: i64, mask: i64) -> i64 {
    if pw_gid & V_OVERRIDE != 0 {
        pw_gid
    } else {
        pw_gid | mask
    }
}

/// vpopmail's LIMITS_TABLE_LAYOUT in each dialect (PostgreSQL and SQLite have no TINYINT
/// nor UNSIGNED).
pub fn create_sql(k: Kind) -> String {
    let (flag, count, big) = match k {
        Kind::Mysql => ("TINYINT(1)", "INT(10)", "BIGINT UNSIGNED"),
        Kind::Sqlite | Kind::Postgres => ("SMALLINT", "INT", "BIGINT"),
    };
    let number = |n: &Column| {
        let ty = match range(n) {
            (-1, _) => count,
            (0, 127) => flag,
            _ => big,
        };
        format!("{} {ty} NOT NULL DEFAULT {}", k.ident(n.name), n.value)
    };
    // vpopmail's order: counts and quotas, switches, then the admins' permissions.
    let perm = |n: &&Column| n.name.starts_with("perm_");
    let mut cols = vec![format!(
        "{} CHAR(96) NOT NULL PRIMARY KEY",
        k.ident("domain")
    )];
    cols.extend(NUMBERS.iter().filter(|n| !perm(n)).map(number));
    cols.extend(
        SWITCHES
            .iter()
            .map(|s| format!("{} {flag} NOT NULL DEFAULT 0", k.ident(s.name))),
    );
    cols.extend(NUMBERS.iter().filter(perm).map(number));
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        k.ident(TABLE),
        cols.join(", ")
    )
}

/// The values a number's column holds.
fn range(n: &Column) -> (i64, i64) {
    if n.value == -1 {
        (-1, i64::from(i32::MAX))
    } else if n.name.starts_with("perm_") {
        (0, 127)
    } else {
        (0, i64::MAX)
    }
}

/// The upsert of a domain's whole row, and its parameters.
pub fn upsert(k: Kind, domain: &str, l: &Limits) -> (String, Vec<Val>) {
    let mut cols = vec!["domain"];
    let mut params = vec![Val::text(domain)];
    for (n, v) in NUMBERS.iter().zip(&l.numbers) {
        cols.push(n.name);
        params.push(Val::Int(*v));
    }
    for s in SWITCHES {
        cols.push(s.name);
        params.push(Val::Int(i64::from(l.mask & s.value != 0)));
    }
    (k.upsert(TABLE, &cols, &["domain"]), params)
}

/// Applies `+NAME`/`-NAME` (a column name or the flag's name: `disable_pop` or `NO_POP`)
/// and `NAME=N` changes.
pub fn apply_changes(l: &mut Limits, changes: &[String]) -> Result<(), String> {
    for c in changes {
        let c = c.trim();
        if let Some((name, v)) = c.split_once('=') {
            let name = name.trim().to_ascii_lowercase();
            let i = NUMBERS
                .iter()
                .position(|n| n.name == name || n.file_key == name)
                .ok_or_else(|| format!("unknown limit {name}; known: {}", known()))?;
            let (lo, hi) = range(&NUMBERS[i]);
            l.numbers[i] = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| format!("bad value for {name}: want a number from {lo} to {hi}"))?;
            continue;
        }
        let (on, name) = match c.as_bytes().first() {
            Some(b'+') => (true, &c[1..]),
            Some(b'-') => (false, &c[1..]),
            _ => return Err(format!("limit change {c:?}: want +NAME, -NAME or NAME=N")),
        };
        let lower = name.to_ascii_lowercase();
        let upper = name.to_ascii_uppercase();
        let by_flag = crate::flags_quota::FLAGS
            .iter()
            .find(|(n, _)| *n == upper)
            .map(|f| f.1);
        let s = SWITCHES
            .iter()
            .find(|s| s.name == lower || s.file_key == lower || Some(s.value) == by_flag)
            .ok_or_else(|| format!("unknown limit {name}; known: {}", known()))?;
        if on {
            l.mask |= s.value;
        } else {
            l.mask &= !s.value;
        }
    }
    Ok(())
}

fn known() -> String {
    let s = SWITCHES.iter().map(|s| format!("+/-{}", s.name));
    let n = NUMBERS.iter().map(|n| format!("{}=N", n.name));
    s.chain(n).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_format() {
        let l = parse_file(
            b"maxpopaccounts: 10\r\n# disable_imap\ndisable_pop\ndisable_external_relay\n\
              quota: 5000\ndefault_maxmsgcount\t-3x\nnonsense 7\n\ndisable_smtp: 0\n",
        );
        assert_eq!(l.mask, NO_POP | NO_RELAY | NO_SMTP);
        assert_eq!(l.numbers[0], 10);
        assert_eq!(l.numbers[5], 5000);
        assert_eq!(l.numbers[8], -3);
        assert_eq!(l.numbers[1], -1);
        assert_eq!(parse_file(b"").mask, 0);
        assert_eq!(parse_file(b"disable_relay").mask, NO_RELAY);
        assert_eq!(leading_int(b"99999999999999999999999"), i64::MAX);
    }

    #[test]
    fn override_and_changes() {
        assert_eq!(effective_flags(0x2, NO_SMTP), 0x2 | NO_SMTP);
        assert_eq!(effective_flags(V_OVERRIDE, NO_SMTP), V_OVERRIDE);
        let mut l = Limits::default();
        let ch = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        apply_changes(&mut l, &ch(&["+disable_pop", "+NO_SMTP", "maxaliases=4"])).unwrap();
        assert_eq!(l.mask, NO_POP | NO_SMTP);
        assert_eq!(l.numbers[1], 4);
        apply_changes(&mut l, &ch(&["-no_pop", "+disable_external_relay"])).unwrap();
        assert_eq!(l.mask, NO_SMTP | NO_RELAY);
        assert!(apply_changes(&mut l, &ch(&["+V_OVERRIDE"])).is_err());
        assert!(apply_changes(&mut l, &ch(&["disable_pop"])).is_err());
        assert!(apply_changes(&mut l, &ch(&["maxaliases=x"])).is_err());
        assert!(apply_changes(&mut l, &ch(&["diskquota=-1"])).is_err());
        assert!(apply_changes(&mut l, &ch(&["maxaliases=-1", "quota=5"])).is_ok());
    }

    #[test]
    fn sqlite_table() {
        let p = std::env::temp_dir().join(format!("vpopdb-limits-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, b"").unwrap();
        let mut db = crate::store::connect(&crate::target::Target::Sqlite(p.clone())).unwrap();
        let (sql, params) = query(Kind::Sqlite, "a.example");
        assert!(read(db.query(&sql, &params)).unwrap().is_none(), "no table");
        db.exec(&create_sql(Kind::Sqlite), &[]).unwrap();
        assert!(read(db.query(&sql, &params)).unwrap().is_none(), "no row");
        let mut l = Limits {
            mask: NO_IMAP | DELETE_SPAM,
            ..Limits::default()
        };
        l.numbers[0] = 7;
        let (up, up_params) = upsert(Kind::Sqlite, "a.example", &l);
        db.exec(&up, &up_params).unwrap();
        db.exec(&up, &up_params).unwrap();
        assert_eq!(read(db.query(&sql, &params)).unwrap(), Some(l));
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn files_in_order() {
        let d = std::env::temp_dir().join(format!("vpopdb-limits-files-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let (a, b) = (d.join("a"), d.join("b"));
        std::fs::write(&b, "disable_imap\n").unwrap();
        let fs = [a.clone(), b.clone()];
        assert_eq!(resolve(None, &fs).unwrap().1, Source::File(b.clone()));
        std::fs::write(&a, "disable_pop\n").unwrap();
        let (l, src) = resolve(None, &fs).unwrap();
        assert_eq!((l.mask, src), (NO_POP, Source::File(a.clone())));
        let row = Limits::default();
        assert_eq!(resolve(Some(row), &fs).unwrap().1, Source::Table);
        std::fs::write(&a, vec![b'#'; MAX_FILE as usize + 1]).unwrap();
        assert!(resolve(None, &fs).is_err(), "too long");
        std::fs::remove_file(&a).unwrap();
        nix::unistd::mkfifo(&a, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = resolve(None, &fs).unwrap_err();
        assert!(e.contains("not a plain file"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
