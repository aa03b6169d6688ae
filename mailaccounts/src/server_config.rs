//! `mailaccounts config`: ready-to-include configuration that lets Dovecot (2.3 and 2.4,
//! whose checkpassword passdb is gone) and Postfix read the same vpopmail tables
//! checkpassword reads, with SQL queries that apply the same rules: pw_gid's flags and
//! the `limits` table per service, the hash schemes, users/assign's uid and gid, pw_dir
//! as the home, pw_shell as the quota, and the `relay` rows for POP-before-SMTP.
//!
//! Nothing here connects to the database: the output is text built from the settings
//! (where the database is, the table layout) and users/assign (the domains' ids), so it
//! must be printed again after `add-domain` or `del-domain`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use vpopdb::assign_file::AssignFile;
use vpopdb::config::{account, Settings, Tables};
use vpopdb::flags_quota::{NO_IMAP, NO_POP, NO_SMTP, NO_WEBMAIL, V_OVERRIDE};
use vpopdb::store::Kind;
use vpopdb::target::Target;
use vpopdb::users::domain_table;

use crate::cli::ConfigServer;
use crate::commands::{usage, Fail, R};
use crate::out::{Cell, Out};

/// vpopmail's BOUNCE_MAIL: vdelivermail bounces this user's mail.
const BOUNCE_MAIL: i64 = vpopdb::flags_quota::BOUNCE_MAIL;

/// Put into the output instead of the database password unless `--with-password`.
pub const PASSWORD_PLACEHOLDER: &str = "PASSWORD-HERE";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DovecotVersion {
    V23,
    V24,
}

/// What to print: for which server, and how.
pub struct Request {
    pub server: Server,
    pub with_password: bool,
    /// Write the files into this directory instead of printing them.
    pub out: Option<PathBuf>,
}

pub enum Server {
    Dovecot(DovecotVersion),
    Postfix { minutes: u32 },
}

/// One file of the output: where it goes, its mode, its text.
pub struct File {
    pub path: PathBuf,
    pub mode: u32,
    pub text: String,
}

/// `mailaccounts config SERVER ...`: the files printed, or written under `--out` (then
/// listed, with `--json` as a table of path, mode and text).
pub fn command(settings: &Settings, server: ConfigServer, json: bool) -> R<()> {
    let (server, opts) = match server {
        ConfigServer::Dovecot { version, opts } => {
            let v = match version.as_str() {
                "2.3" => DovecotVersion::V23,
                "2.4" => DovecotVersion::V24,
                _ => return usage(format!("bad --version {version:?}: want 2.3 or 2.4")),
            };
            (Server::Dovecot(v), opts)
        }
        ConfigServer::Postfix { minutes, opts } => {
            let minutes = minutes
                .parse::<u32>()
                .ok()
                .filter(|&m| m > 0 && m <= 100_000)
                .ok_or_else(|| Fail::Usage(format!("bad --minutes {minutes:?}")))?;
            (Server::Postfix { minutes }, opts)
        }
    };
    let written = opts.out.is_some();
    let files = run(
        settings,
        &Request {
            server,
            with_password: opts.with_password,
            out: opts.out,
        },
    )?;
    let mut out = Out::new(json);
    if json {
        let rows = files
            .iter()
            .map(|f| {
                vec![
                    Cell::s(&f.path.display().to_string()),
                    Cell::s(&format!("{:04o}", f.mode)),
                    Cell::s(&f.text),
                ]
            })
            .collect();
        out.table(&["path", "mode", "text"], rows);
    } else if written {
        for f in &files {
            out.message(&format!("wrote {}", f.path.display()));
        }
    } else {
        print!("{}", render(&files));
    }
    out.flush();
    Ok(())
}

/// Builds the files for `req` and prints them (or writes them under `--out`).
pub fn run(settings: &Settings, req: &Request) -> R<Vec<File>> {
    let targets = settings
        .targets()
        .map_err(|e| Fail::Temp(format!("bad configuration: {e}")))?;
    let db = Db::of(&targets.read, req.with_password)?;
    let ids = Ids::load(settings)?;
    let users = UsersRel::new(db.kind, settings.tables, &ids)?;
    let base = |default: &str| match &req.out {
        Some(d) => absolute(d),
        None => Ok(PathBuf::from(default)),
    };
    let files = match req.server {
        Server::Dovecot(v) => dovecot(
            v,
            &db,
            &users,
            &ids,
            settings,
            &base("/etc/dovecot")?,
            req.out.is_some(),
        ),
        Server::Postfix { minutes } => postfix(minutes, &db, &users, &base("/etc/postfix")?),
    };
    if let Some(dir) = &req.out {
        write_files(dir, &files)?;
    }
    if db.password_left_out {
        eprintln!(
            "mailaccounts: note: the database password is left out ({PASSWORD_PLACEHOLDER}); \
             --with-password puts it in"
        );
    }
    Ok(files)
}

fn absolute(d: &Path) -> R<PathBuf> {
    if d.is_absolute() {
        return Ok(d.to_path_buf());
    }
    std::env::current_dir()
        .map(|c| c.join(d))
        .map_err(|e| Fail::Temp(format!("unable to find the current directory: {e}")))
}

/// Each file replaced whole (written beside it, then renamed), created with its mode.
fn write_files(dir: &Path, files: &[File]) -> R<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Fail::Temp(format!("unable to create {}: {e}", dir.display())))?;
    for f in files {
        let name = f.path.file_name().unwrap_or_default();
        let path = dir.join(name);
        let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
        let _ = std::fs::remove_file(&tmp);
        let res = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(f.mode)
            .open(&tmp)
            .and_then(|mut h| {
                h.write_all(f.text.as_bytes())?;
                h.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(Fail::Temp(format!(
                "unable to write {}: {e}",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Where the database is, as each server's connection settings need it.
struct Db {
    kind: Kind,
    target: Target,
    /// The password to print: the real one, the placeholder, or none.
    password: Option<String>,
    password_left_out: bool,
}

impl Db {
    fn of(t: &Target, with_password: bool) -> R<Db> {
        let (kind, pw) = match t {
            Target::Sqlite(p) => {
                if p.to_str().is_none_or(|s| s.contains(['"', '\n', '\\'])) {
                    return usage(format!("database path {} cannot be quoted", p.display()));
                }
                (Kind::Sqlite, "")
            }
            Target::Mysql(m) => (Kind::Mysql, m.pass.as_str()),
            Target::Postgres(p) => (Kind::Postgres, p.password.as_str()),
        };
        let (password, left_out) = match (pw.is_empty(), with_password) {
            (true, _) => (None, false),
            (false, true) => (Some(pw.to_string()), false),
            (false, false) => (Some(PASSWORD_PLACEHOLDER.to_string()), true),
        };
        if let Some(p) = &password {
            // Dovecot 2.3's connect string is split at spaces, and no file here may be
            // cut short by a line break.
            if p.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return usage(
                    "the database password contains a space or control character, \
                     which Dovecot's and Postfix's settings cannot carry",
                );
            }
        }
        Ok(Db {
            kind,
            target: t.clone(),
            password,
            password_left_out: left_out,
        })
    }
}

/// The domains of users/assign with their mail owner, and the owner for the rest
/// (checkpassword's fallback: the uid/gid settings, else the vpopmail account).
struct Ids {
    domains: Vec<(String, u32, u32)>,
    fallback: Option<(u32, u32)>,
}

impl Ids {
    fn load(settings: &Settings) -> R<Ids> {
        let mut domains: Vec<(String, u32, u32)> = AssignFile::read_domains(&settings.qmail_dir)
            .map_err(Fail::Temp)?
            .into_iter()
            .filter(|d| vpopdb::loginname::domain_ok(&d.name) && !d.name.is_empty())
            .map(|d| (d.name, d.uid, d.gid))
            .collect();
        domains.sort();
        let fallback = settings
            .uid
            .zip(settings.gid)
            .or_else(|| account("vpopmail").map(|a| (a.uid, a.gid)));
        Ok(Ids { domains, fallback })
    }

    /// `CASE u.pw_domain WHEN 'd' THEN n ... END`: uid (`gid` false) or gid.
    fn case(&self, gid: bool) -> Option<String> {
        let pick = |u: u32, g: u32| if gid { g } else { u };
        let fb = self.fallback.map(|(u, g)| pick(u, g));
        if self.domains.is_empty() {
            return fb.map(|n| n.to_string());
        }
        let mut s = String::from("CASE u.pw_domain");
        for (d, u, g) in &self.domains {
            s.push_str(&format!(" WHEN '{d}' THEN {}", pick(*u, *g)));
        }
        if let Some(n) = fb {
            s.push_str(&format!(" ELSE {n}"));
        }
        s.push_str(" END");
        Some(s)
    }
}

/// The users as one relation `u` with pw_domain, in either layout: vpopmail's table, or
/// the per-domain tables of users/assign's domains as one UNION ALL.
struct UsersRel {
    from: String,
}

impl UsersRel {
    fn new(k: Kind, tables: Tables, ids: &Ids) -> R<UsersRel> {
        let from = match tables {
            Tables::Single => format!("{} u", k.ident("vpopmail")),
            Tables::PerDomain => {
                if ids.domains.is_empty() {
                    return usage(
                        "no domains in users/assign: the per-domain layout's tables are \
                         found through them (add-domain first)",
                    );
                }
                let parts: Vec<String> = ids
                    .domains
                    .iter()
                    .map(|(d, _, _)| {
                        format!(
                            "SELECT '{d}' AS pw_domain, pw_name, pw_passwd, pw_gid, pw_dir, \
                             pw_shell FROM {}",
                            k.ident(&domain_table(d))
                        )
                    })
                    .collect();
                format!("({}) u", parts.join(" UNION ALL "))
            }
        };
        Ok(UsersRel { from })
    }
}

/// SQL that differs between the three databases.
struct Dialect(Kind);

impl Dialect {
    fn concat(&self, parts: &[&str]) -> String {
        match self.0 {
            Kind::Mysql => format!("CONCAT({})", parts.join(", ")),
            _ => parts.join(" || "),
        }
    }
    /// The part of `s` before the first `ch`.
    fn before(&self, s: &str, ch: char) -> String {
        match self.0 {
            Kind::Sqlite => format!("substr({s}, 1, instr({s}, '{ch}') - 1)"),
            Kind::Mysql => format!("SUBSTRING_INDEX({s}, '{ch}', 1)"),
            Kind::Postgres => format!("split_part({s}, '{ch}', 1)"),
        }
    }
    /// The part of `s` after the first `ch`.
    fn after(&self, s: &str, ch: char) -> String {
        match self.0 {
            Kind::Sqlite => format!("substr({s}, instr({s}, '{ch}') + 1)"),
            Kind::Mysql => format!("SUBSTRING_INDEX({s}, '{ch}', -1)"),
            Kind::Postgres => format!("split_part({s}, '{ch}', 2)"),
        }
    }
    /// The current Unix time.
    fn now(&self) -> &'static str {
        match self.0 {
            Kind::Sqlite => "CAST(strftime('%s', 'now') AS INTEGER)",
            Kind::Mysql => "UNIX_TIMESTAMP()",
            Kind::Postgres => "CAST(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) AS BIGINT)",
        }
    }
}

/// Markers for the lookup's values in the queries below; each server's own variable
/// syntax replaces them after its `%` escaping.
const V_USER: &str = "{USERNAME}";
const V_DOMAIN: &str = "{DOMAIN}";
const V_SERVICE: &str = "{SERVICE}";
const V_IP: &str = "{REMOTE_IP}";
const V_KEY: &str = "{KEY}";

const FLAGS: &str = "COALESCE(u.pw_gid, 0)";

/// Whether the flags and the domain's limits allow a service: the user's bit clear and
/// the domain's `disable_*` off, unless V_OVERRIDE exempts the user from the domain's
/// limits (vpopmail's rule).
fn allowed(bit: i64, limit: &str) -> String {
    format!(
        "(({FLAGS} & {bit}) = 0 AND (COALESCE(l.{limit}, 0) = 0 OR ({FLAGS} & {V_OVERRIDE}) <> 0))"
    )
}

/// The service rule of checkpassword (vchkpw) as SQL: SMTP by name; POP and IMAP from
/// 127.0.0.1 are webmail; IMAP (and ManageSieve) by name; anything else is POP.
fn service_rule() -> String {
    format!(
        "CASE WHEN {V_SERVICE} IN ('smtp', 'submission', 'lmtp') THEN {} \
         WHEN {V_IP} = '127.0.0.1' THEN {} \
         WHEN {V_SERVICE} IN ('imap', 'sieve', 'managesieve') THEN {} \
         ELSE {} END",
        allowed(NO_SMTP, "disable_smtp"),
        allowed(NO_WEBMAIL, "disable_webmail"),
        allowed(NO_IMAP, "disable_imap"),
        allowed(NO_POP, "disable_pop"),
    )
}

/// pw_passwd with the scheme Dovecot needs: a stored `{SCHEME}` as it is, Argon2 PHC
/// strings as Dovecot's ARGON2 schemes, everything else crypt(3).
fn password_expr(d: &Dialect) -> String {
    format!(
        "CASE WHEN u.pw_passwd LIKE '{{%' THEN u.pw_passwd \
         WHEN u.pw_passwd LIKE '$argon2id$%' THEN {} \
         WHEN u.pw_passwd LIKE '$argon2i$%' THEN {} \
         ELSE {} END",
        d.concat(&["'{ARGON2ID}'", "u.pw_passwd"]),
        d.concat(&["'{ARGON2I}'", "u.pw_passwd"]),
        d.concat(&["'{CRYPT}'", "u.pw_passwd"]),
    )
}

fn passdb_query(d: &Dialect, users: &UsersRel) -> Vec<String> {
    vec![
        format!("SELECT {} AS password", password_expr(d)),
        format!(
            "FROM {} LEFT JOIN limits l ON l.domain = u.pw_domain",
            users.from
        ),
        format!("WHERE u.pw_name = {V_USER} AND u.pw_domain = {V_DOMAIN}"),
        "AND u.pw_passwd <> ''".into(),
        format!("AND {}", service_rule()),
    ]
}

/// pw_shell's quota (`NNNS`, `NNNC`, `NNNS,MMMC`) as Dovecot's quota fields.
fn quota_columns(d: &Dialect, v: DovecotVersion) -> String {
    let s = "u.pw_shell";
    let bytes = d.before(s, 'S');
    let count_after = format!("REPLACE({}, 'C', '')", d.after(s, ','));
    let count_only = format!("REPLACE({s}, 'C', '')");
    let both = format!("{s} LIKE '%S,%C'");
    let bytes_only = format!("{s} LIKE '%S'");
    let count_alone = format!("{s} LIKE '%C'");
    match v {
        DovecotVersion::V23 => format!(
            "CASE WHEN {both} THEN {} WHEN {bytes_only} THEN {} WHEN {count_alone} THEN {} \
             END AS quota_rule",
            d.concat(&["'*:storage='", &bytes, "'B:messages='", &count_after]),
            d.concat(&["'*:storage='", &bytes, "'B'"]),
            d.concat(&["'*:messages='", &count_only]),
        ),
        DovecotVersion::V24 => format!(
            "CASE WHEN {both} OR {bytes_only} THEN {bytes} END AS quota_storage_size, \
             CASE WHEN {both} THEN {count_after} WHEN {count_alone} THEN {count_only} \
             END AS quota_message_count"
        ),
    }
}

fn userdb_query(d: &Dialect, users: &UsersRel, ids: &Ids, v: DovecotVersion) -> Vec<String> {
    let mut cols = vec!["u.pw_dir AS home".to_string()];
    if let (Some(u), Some(g)) = (ids.case(false), ids.case(true)) {
        cols.push(format!("{u} AS uid"));
        cols.push(format!("{g} AS gid"));
    }
    cols.push(quota_columns(d, v));
    vec![
        format!("SELECT {}", cols.join(", ")),
        format!("FROM {}", users.from),
        format!("WHERE u.pw_name = {V_USER} AND u.pw_domain = {V_DOMAIN}"),
    ]
}

fn iterate_query(users: &UsersRel) -> Vec<String> {
    vec![format!(
        "SELECT u.pw_name AS username, u.pw_domain AS domain FROM {}",
        users.from
    )]
}

/// A query's lines for a Dovecot setting: `%` escaped, the markers as `v`'s variables,
/// continued with `\`.
fn dovecot_sql(lines: &[String], v: DovecotVersion) -> String {
    let vars: [(&str, &str); 4] = match v {
        DovecotVersion::V23 => [
            (V_USER, "'%n'"),
            (V_DOMAIN, "'%d'"),
            (V_SERVICE, "'%s'"),
            (V_IP, "'%r'"),
        ],
        DovecotVersion::V24 => [
            (V_USER, "'%{user | username}'"),
            (V_DOMAIN, "'%{user | domain}'"),
            (V_SERVICE, "'%{protocol}'"),
            (V_IP, "'%{remote_ip}'"),
        ],
    };
    lines
        .iter()
        .map(|l| {
            let mut l = l.replace('%', "%%");
            for (m, var) in vars {
                l = l.replace(m, var);
            }
            l
        })
        .collect::<Vec<_>>()
        .join(" \\\n    ")
}

/// A section name as Dovecot's examples write them (`mysql /run/mysqld/mysqld.sock {`):
/// bare when it is a plain host name, address or path, quoted otherwise.
fn section_name(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c))
    {
        s.to_string()
    } else {
        dquote(s)
    }
}

/// A value in double quotes, as Dovecot's config reads it.
fn dquote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

const DIFFERENCES: &str = "\
# The passdb query joins vpopmail's limits table (domain, disable_pop, disable_imap,
# disable_smtp, disable_webmail, ...): it must exist, even empty, or every login fails.
# What Dovecot's SQL passdb does NOT do that checkpassword does:
#  - no lockout after repeated failures (checkpassword's lockout table is neither read
#    nor written: use Dovecot's auth_policy or fail2ban on Dovecot's log instead);
#  - no app passwords: only pw_passwd is tried;
#  - no lastauth or relay rows are written: POP-before-SMTP needs checkpassword's
#    logins (or a post-login script) to fill the relay table;
#  - pw_clear_passwd is not used: only plaintext mechanisms (PLAIN, LOGIN) work, APOP
#    and CRAM-MD5 do not (returning the clear column would let the auth process see
#    every stored clear password);
#  - users/cdb alias domains are not followed: log in with the real domain.
# What it does the same way: pw_gid's NO_POP, NO_IMAP, NO_SMTP and NO_WEBMAIL (POP and
# IMAP from 127.0.0.1 count as webmail, as in vchkpw), the limits table's disable_pop,
# disable_imap, disable_smtp and disable_webmail (a domain without a row has no
# limits; V_OVERRIDE exempts a user from them), crypt(3) hashes of every kind the
# system's libxcrypt knows ($y$, $6$, $5$, $2b$, $1$, DES) as {CRYPT}, stored
# {SCHEME} prefixes as they are, $argon2id$/$argon2i$ as ARGON2ID/ARGON2I (only when
# Dovecot was built with libsodium), pw_dir as the home, users/assign's uid and gid,
# pw_shell as the quota.
";

fn header(what: &str, settings_note: &str) -> String {
    format!(
        "# {what}\n# Made by `mailaccounts config` from checkpassword's settings and users/assign.\n\
         # Print it again after add-domain or del-domain: the domains' uid and gid{settings_note}\n\
         # are written into the queries.\n"
    )
}

fn dovecot(
    v: DovecotVersion,
    db: &Db,
    users: &UsersRel,
    ids: &Ids,
    settings: &Settings,
    base: &Path,
    flat: bool,
) -> Vec<File> {
    let d = Dialect(db.kind);
    let per_domain_note = if users.from.starts_with('(') {
        " (and, per-domain layout, the tables)"
    } else {
        ""
    };
    let passdb = dovecot_sql(&passdb_query(&d, users), v);
    let userdb = dovecot_sql(&userdb_query(&d, users, ids, v), v);
    let iterate = dovecot_sql(&iterate_query(users), v);
    let mut notes = String::new();
    if ids.case(false).is_none() {
        notes.push_str(
            "# No uid and gid: users/assign has no domains and neither the uid/gid settings\n\
             # nor a vpopmail account give one; set mail_uid and mail_gid.\n",
        );
    }
    if let Some(min) = ids.domains.iter().map(|x| x.1).min() {
        notes.push_str(&format!(
            "# first_valid_uid must not be above {min}, the lowest uid in users/assign.\n"
        ));
    }
    let mode = if db.password.is_some() { 0o600 } else { 0o644 };
    let conf_d = |name: &str| {
        if flat {
            base.join(name)
        } else {
            base.join("conf.d").join(name)
        }
    };
    match v {
        DovecotVersion::V23 => {
            let sql_path = base.join("dovecot-sql-vpopmail.conf.ext");
            let driver = match db.kind {
                Kind::Sqlite => "sqlite",
                Kind::Mysql => "mysql",
                Kind::Postgres => "pgsql",
            };
            let sql = format!(
                "{}# Opened by Dovecot as root: keep it owned by root, mode 0600.\n\n\
                 driver = {driver}\nconnect = {}\n\n\
                 password_query = {passdb}\n\n\
                 user_query = {userdb}\n\n\
                 iterate_query = {iterate}\n",
                header(
                    "Dovecot 2.3 SQL settings for checkpassword's vpopmail tables.",
                    per_domain_note
                ),
                dquote(&connect_23(db)),
            );
            let auth = format!(
                "{}#\n# In conf.d/10-auth.conf: `!include auth-vpopmail.conf.ext` in place of\n\
                 # `!include auth-system.conf.ext`.\n{notes}{DIFFERENCES}\n\
                 # vpopmail's layout: pw_dir is the user's directory, the mail is in its Maildir.\n\
                 mail_location = maildir:~/Maildir\n{}\n\
                 passdb {{\n  driver = sql\n  args = {path}\n}}\n\n\
                 userdb {{\n  driver = sql\n  args = {path}\n}}\n",
                header(
                    "Dovecot 2.3 passdb and userdb over checkpassword's vpopmail tables.",
                    per_domain_note
                ),
                default_domain(settings, "auth_default_realm"),
                path = sql_path.display(),
            );
            vec![
                File {
                    path: conf_d("auth-vpopmail.conf.ext"),
                    mode: 0o644,
                    text: auth,
                },
                File {
                    path: sql_path,
                    mode: 0o600,
                    text: sql,
                },
            ]
        }
        DovecotVersion::V24 => {
            let text = format!(
                "{}#\n# Dovecot 2.4 syntax (dovecot_config_version 2.4.0 and later); include it\n\
                 # from dovecot.conf with `!include conf.d/auth-vpopmail.conf.ext`.\n\
                 # Needs the SQL driver package (dovecot-sqlite, dovecot-mysql or dovecot-pgsql).\n\
                 # The quota fields apply when the quota plugin is enabled.\n{notes}{DIFFERENCES}\n\
                 {}\n# vpopmail's layout: pw_dir is the user's directory, the mail is in its Maildir.\n\
                 mail_driver = maildir\nmail_path = ~/Maildir\n{}\n\
                 passdb sql {{\n  query = {passdb}\n}}\n\n\
                 userdb sql {{\n  query = {userdb}\n  iterate_query = {iterate}\n}}\n",
                header(
                    "Dovecot 2.4 passdb and userdb over checkpassword's vpopmail tables.",
                    per_domain_note
                ),
                connect_24(db),
                default_domain(settings, "auth_default_domain"),
            );
            vec![File {
                path: conf_d("auth-vpopmail.conf.ext"),
                mode,
                text,
            }]
        }
    }
}

fn default_domain(settings: &Settings, key: &str) -> String {
    match &settings.default_domain {
        Some(d) => {
            format!("# checkpassword's default_domain, for logins without one.\n{key} = {d}\n")
        }
        None => String::new(),
    }
}

/// Dovecot 2.3's `connect` value (before quoting).
fn connect_23(db: &Db) -> String {
    let pw = db
        .password
        .as_ref()
        .map(|p| format!(" password={p}"))
        .unwrap_or_default();
    match &db.target {
        Target::Sqlite(p) => p.display().to_string(),
        Target::Mysql(m) => {
            let host = match &m.socket {
                Some(s) => format!("host={s}"),
                None => format!("host={} port={}", m.host, m.port),
            };
            format!("{host} dbname={} user={}{pw}", m.db, m.user)
        }
        Target::Postgres(p) => {
            let host = if p.host.is_empty() {
                String::new()
            } else {
                format!("host={} ", p.host)
            };
            format!(
                "{host}port={} dbname={} user={}{pw}",
                p.port, p.dbname, p.user
            )
        }
    }
}

/// Dovecot 2.4's SQL driver settings.
fn connect_24(db: &Db) -> String {
    let pw = db
        .password
        .as_ref()
        .map(|p| format!("  password = {}\n", dquote(p)))
        .unwrap_or_default();
    match &db.target {
        Target::Sqlite(p) => format!(
            "sql_driver = sqlite\nsqlite_path = {}\n",
            dquote(&p.display().to_string())
        ),
        Target::Mysql(m) => {
            let (host, port) = match &m.socket {
                Some(s) => (s.clone(), String::new()),
                None => (m.host.clone(), format!("  port = {}\n", m.port)),
            };
            format!(
                "sql_driver = mysql\nmysql {} {{\n{port}  user = {}\n{pw}  dbname = {}\n}}\n",
                section_name(&host),
                dquote(&m.user),
                dquote(&m.db)
            )
        }
        Target::Postgres(p) => {
            let host = if p.host.is_empty() {
                "/var/run/postgresql".to_string()
            } else {
                p.host.clone()
            };
            let pw = pw.replace("  password", "    password");
            format!(
                "sql_driver = pgsql\npgsql {} {{\n  parameters {{\n    port = {}\n    user = {}\n\
                 {pw}    dbname = {}\n  }}\n}}\n",
                section_name(&host),
                p.port,
                dquote(&p.user),
                dquote(&p.dbname)
            )
        }
    }
}

/// A query's lines for a Postfix map: `%` escaped, the markers as Postfix's `%s`, `%u`,
/// `%d`, continued on indented lines.
fn postfix_sql(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| {
            l.replace('%', "%%")
                .replace(V_KEY, "'%s'")
                .replace(V_USER, "'%u'")
                .replace(V_DOMAIN, "'%d'")
        })
        .collect::<Vec<_>>()
        .join("\n    ")
}

fn postfix_connect(db: &Db) -> String {
    let pw = db
        .password
        .as_ref()
        .map(|p| format!("password = {p}\n"))
        .unwrap_or_default();
    match &db.target {
        Target::Sqlite(p) => format!("dbpath = {}\n", p.display()),
        Target::Mysql(m) => {
            let hosts = match &m.socket {
                Some(s) => format!("unix:{s}"),
                None if m.host.contains(':') => format!("inet:[{}]:{}", m.host, m.port),
                None => format!("inet:{}:{}", m.host, m.port),
            };
            format!(
                "hosts = {hosts}\nuser = {}\n{pw}dbname = {}\n",
                m.user, m.db
            )
        }
        Target::Postgres(p) if p.host.starts_with('/') || p.host.is_empty() => {
            // A socket directory and port only fit libpq's URI form.
            let dir = if p.host.is_empty() {
                "/var/run/postgresql"
            } else {
                &p.host
            };
            let pwq = db
                .password
                .as_ref()
                .map(|p| format!("&password={p}"))
                .unwrap_or_default();
            format!(
                "hosts = postgresql://{}@/{}?host={dir}&port={}{pwq}\n",
                p.user, p.dbname, p.port
            )
        }
        Target::Postgres(p) => {
            let hosts = if p.host.contains(':') {
                format!("inet:[{}]:{}", p.host, p.port)
            } else {
                format!("inet:{}:{}", p.host, p.port)
            };
            format!(
                "hosts = {hosts}\nuser = {}\n{pw}dbname = {}\n",
                p.user, p.dbname
            )
        }
    }
}

fn postfix(minutes: u32, db: &Db, users: &UsersRel, base: &Path) -> Vec<File> {
    let d = Dialect(db.kind);
    let map_type = match db.kind {
        Kind::Sqlite => "sqlite",
        Kind::Mysql => "mysql",
        Kind::Postgres => "pgsql",
    };
    let conn = postfix_connect(db);
    let domains = postfix_sql(&[
        "SELECT u.pw_domain".into(),
        format!("FROM {}", users.from),
        format!("WHERE u.pw_domain = {V_KEY} LIMIT 1"),
    ]);
    let mailboxes = postfix_sql(&[
        format!("SELECT {}", d.concat(&["u.pw_dir", "'/Maildir/'"])),
        format!("FROM {}", users.from),
        format!("WHERE u.pw_name = {V_USER} AND u.pw_domain = {V_DOMAIN}"),
        format!("AND ({FLAGS} & {BOUNCE_MAIL}) = 0 AND u.pw_dir <> ''"),
    ]);
    let relay = postfix_sql(&[
        "SELECT 'OK' FROM relay r".into(),
        format!(
            "WHERE r.ip_addr = {V_KEY} AND r.timestamp >= {} - {}",
            d.now(),
            u64::from(minutes) * 60
        ),
    ]);
    let map = |name: &str| base.join(name);
    let domains_f = map("vpopmail-domains.cf");
    let mailboxes_f = map("vpopmail-mailboxes.cf");
    let relay_f = map("vpopmail-relay.cf");
    let what = |s: &str| {
        format!(
            "# Postfix {s} over checkpassword's vpopmail tables, made by `mailaccounts config`.\n\
             # Readable by root and the postfix group only (it holds the database login):\n\
             #   chown root:postfix FILE; chmod 0640 FILE\n"
        )
    };
    let main = format!(
        "# Postfix main.cf settings for checkpassword's vpopmail tables, made by\n\
         # `mailaccounts config postfix`. Add them to main.cf (postconf -e works).\n\
         # Print the maps again after add-domain or del-domain when the tables are per domain.\n\
         #\n\
         # Domains and mailboxes (users with BOUNCE_MAIL are not mailboxes). pw_dir is\n\
         # absolute, so the base is the root; delivery runs as the domain's owner:\n\
         # set virtual_uid_maps and virtual_gid_maps to users/assign's ids (static:N).\n\
         virtual_mailbox_domains = {map_type}:{}\n\
         virtual_mailbox_maps = {map_type}:{}\n\
         virtual_mailbox_base = /\n\
         #\n\
         # POP-before-SMTP: a client whose address has a relay row younger than {minutes}\n\
         # minutes may relay (checkpassword writes the rows when `relay = on`; vpopmail's\n\
         # clearopensmtp may delete old ones). Before reject_unauth_destination:\n\
         smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,\n    \
         check_client_access {map_type}:{}, reject_unauth_destination\n",
        domains_f.display(),
        mailboxes_f.display(),
        relay_f.display(),
    );
    vec![
        File {
            path: map("main.cf-vpopmail"),
            mode: 0o644,
            text: main,
        },
        File {
            path: domains_f,
            mode: 0o640,
            text: format!(
                "{}# virtual_mailbox_domains: a domain with users.\n{conn}query = {domains}\n",
                what("domain map")
            ),
        },
        File {
            path: mailboxes_f,
            mode: 0o640,
            text: format!(
                "{}# virtual_mailbox_maps: user@domain -> the user's Maildir/.\n{conn}query = {mailboxes}\n",
                what("mailbox map")
            ),
        },
        File {
            path: relay_f,
            mode: 0o640,
            text: format!(
                "{}# check_client_access: OK for an address with a relay row younger than\n\
                 # {minutes} minutes (POP-before-SMTP).\n{conn}query = {relay}\n",
                what("POP-before-SMTP map")
            ),
        },
    ]
}

/// The files as text for people: each under a header naming where it goes.
pub fn render(files: &[File]) -> String {
    let mut s = String::new();
    for f in files {
        s.push_str(&format!(
            "#### {} (mode {:04o})\n{}\n",
            f.path.display(),
            f.mode,
            f.text
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpopdb::target::MysqlTarget;
    use zeroize::Zeroizing;

    fn ok<T>(r: R<T>) -> T {
        match r {
            Ok(v) => v,
            Err(Fail::Usage(m) | Fail::Temp(m)) => panic!("{m}"),
        }
    }

    fn ids() -> Ids {
        Ids {
            domains: vec![("a.example".into(), 89, 90), ("b.example".into(), 91, 92)],
            fallback: None,
        }
    }

    #[test]
    fn uid_cases() {
        assert_eq!(
            ids().case(true).as_deref(),
            Some("CASE u.pw_domain WHEN 'a.example' THEN 90 WHEN 'b.example' THEN 92 END")
        );
        let none = Ids {
            domains: vec![],
            fallback: Some((5, 6)),
        };
        assert_eq!(none.case(false).as_deref(), Some("5"));
    }

    #[test]
    fn variables_and_escapes() {
        let d = Dialect(Kind::Mysql);
        let users = ok(UsersRel::new(Kind::Mysql, Tables::Single, &ids()));
        let q23 = dovecot_sql(&passdb_query(&d, &users), DovecotVersion::V23);
        assert!(
            q23.contains("u.pw_name = '%n' AND u.pw_domain = '%d'"),
            "{q23}"
        );
        assert!(q23.contains("LIKE '$argon2id$%%'"), "{q23}");
        assert!(q23.contains("WHEN '%r' = '127.0.0.1'"), "{q23}");
        let q24 = dovecot_sql(&passdb_query(&d, &users), DovecotVersion::V24);
        assert!(q24.contains("'%{user | username}'"), "{q24}");
        assert!(q24.contains("'%{protocol}' IN ('imap'"), "{q24}");
        // A 2.4 variable stands for one whole value, never inside a longer string.
        for var in [
            "%{user | username}",
            "%{user | domain}",
            "%{protocol}",
            "%{remote_ip}",
        ] {
            for (i, _) in q24.match_indices(var) {
                assert_eq!(&q24[i - 1..i], "'");
                assert_eq!(&q24[i + var.len()..i + var.len() + 1], "'");
            }
        }
        let per = ok(UsersRel::new(Kind::Postgres, Tables::PerDomain, &ids()));
        assert!(per
            .from
            .contains("FROM \"a_example\" UNION ALL SELECT 'b.example'"));
        assert!(UsersRel::new(
            Kind::Sqlite,
            Tables::PerDomain,
            &Ids {
                domains: vec![],
                fallback: None
            }
        )
        .is_err());
    }

    #[test]
    fn passwords_left_out_unless_asked() {
        let t = Target::Mysql(MysqlTarget {
            host: "db.example".into(),
            port: 3306,
            socket: None,
            user: "u".into(),
            pass: Zeroizing::new("s3cret#x".into()),
            db: "vpopmail".into(),
            tls: Default::default(),
        });
        let db = ok(Db::of(&t, false));
        assert!(db.password_left_out);
        assert!(!connect_23(&db).contains("s3cret"));
        let db = ok(Db::of(&t, true));
        assert_eq!(
            dquote(&connect_23(&db)),
            "\"host=db.example port=3306 dbname=vpopmail user=u password=s3cret#x\""
        );
        let bad = Target::Mysql(MysqlTarget {
            host: "h".into(),
            port: 1,
            socket: None,
            user: "u".into(),
            pass: Zeroizing::new("a b".into()),
            db: "d".into(),
            tls: Default::default(),
        });
        assert!(Db::of(&bad, true).is_err());
    }
}
