//! A real Dovecot 2.3 (Debian's dovecot-core, started privately on loopback) logs users
//! in over IMAP and POP3 through our checkpassword as its passdb.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use blackbox::{ours, TempDir};

mod dovecot_util;
use dovecot_util::{free_port, start, Conn};

const UID: u32 = 43220;
const GID: u32 = 43221;

fn sql(db: &Path, sql: &str) -> String {
    let mut c = Command::new("sqlite3")
        .arg("-batch")
        .arg("-separator")
        .arg("\t")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sqlite3 (scripts/test.sh installs it)");
    c.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{sql}");
    String::from_utf8(o.stdout).unwrap()
}

fn mkpasswd(pw: &str) -> String {
    let o = Command::new("mkpasswd")
        .args(["-m", "sha-512", pw])
        .output()
        .expect("mkpasswd (package whois; scripts/test.sh installs it)");
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn dovecot_logs_users_in_through_checkpassword() {
    // SAFETY: plain id query.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "runs as root (scripts/test.sh does): Dovecot needs it"
    );
    let dir = TempDir::new("cp-dovecot");
    chmod(dir.path(), 0o755);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    chmod(&data, 0o777);
    let db = data.join("users.sqlite");
    let domain = "dovecot-test.example";
    let home = dir.join("home-quinn");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(UID), Some(GID)).unwrap();
    sql(
        &db,
        &format!(
            "CREATE TABLE vpopmail (pw_name VARCHAR(64) NOT NULL, pw_domain VARCHAR(96) NOT NULL, \
             pw_passwd VARCHAR(128), pw_uid INT, pw_gid INT, pw_gecos VARCHAR(64), \
             pw_dir VARCHAR(160), pw_shell VARCHAR(20), pw_clear_passwd VARCHAR(128), \
             PRIMARY KEY (pw_name, pw_domain));
             INSERT INTO vpopmail VALUES ('quinn', '{domain}', '{}', 0, 0, 'Q', '{}', 'NOQUOTA', '');
             INSERT INTO vpopmail VALUES ('noimap', '{domain}', '{}', 0, 8, 'N', '{}', 'NOQUOTA', '');
             INSERT INTO vpopmail VALUES ('noweb', '{domain}', '{}', 0, 4, 'W', '{}', 'NOQUOTA', '');",
            mkpasswd("Dove-pw1"),
            home.display(),
            mkpasswd("Dove-pw2"),
            home.display(),
            mkpasswd("Dove-pw3"),
            home.display(),
        ),
    );
    chmod(&db, 0o666);
    let conf = dir.join("checkpassword.conf");
    std::fs::write(
        &conf,
        format!(
            "db = sqlite:{}\nuid = {UID}\ngid = {GID}\nqmail = {}\nvpopmail_dir = {}\n",
            db.display(),
            dir.join("no-qmail").display(),
            dir.join("no-vpopmail").display()
        ),
    )
    .unwrap();
    chmod(&conf, 0o644);
    let (imap, pop3) = (free_port(), free_port());
    let auth = format!(
        "passdb {{\n  driver = checkpassword\n  args = /usr/bin/env CHECKPASSWORD_CONFIG={} {}\n}}\n\
         userdb {{\n  driver = prefetch\n}}\n",
        conf.display(),
        ours("checkpassword").display()
    );
    let d = start(&dir, imap, pop3, &auth);

    // IMAP: login, open the mailbox (as the uid we exported), wrong password, flags.
    let mut c = Conn::new(imap);
    c.send(&format!("a1 LOGIN quinn@{domain} Dove-pw1"));
    let r = c.tagged("a1");
    assert!(r.starts_with("a1 OK"), "{r}\n{}", d.log());
    c.send("a2 SELECT INBOX");
    let r = c.tagged("a2");
    assert!(r.starts_with("a2 OK"), "{r}\n{}", d.log());
    c.send("a3 LOGOUT");
    let meta = std::fs::metadata(home.join("Maildir")).expect("Maildir created by imap");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        UID,
        "mail runs as the uid checkpassword exported"
    );
    // Each failure from an address of its own: Dovecot delays an address's later
    // attempts after a failure.
    let mut c = Conn::from(imap, [127, 0, 0, 2]);
    c.send(&format!("b1 LOGIN quinn@{domain} wrong-pw"));
    let r = c.tagged("b1");
    assert!(r.starts_with("b1 NO"), "{r}");
    // IMAP from 127.0.0.1 is webmail to vchkpw (its compiled-in webmail address).
    let mut c = Conn::from(imap, [127, 0, 0, 1]);
    c.send(&format!("b2 LOGIN noweb@{domain} Dove-pw3"));
    let r = c.tagged("b2");
    assert!(r.starts_with("b2 NO"), "NO_WEBMAIL: {r}");
    let mut c = Conn::from(imap, [127, 0, 0, 3]);
    c.send(&format!("b3 LOGIN ghost@{domain} Dove-pw1"));
    let r = c.tagged("b3");
    assert!(r.starts_with("b3 NO"), "unknown user: {r}");
    let mut c = Conn::from(imap, [127, 0, 0, 4]);
    c.send(&format!("b4 LOGIN noimap@{domain} Dove-pw2"));
    let r = c.tagged("b4");
    assert!(r.starts_with("b4 NO"), "NO_IMAP: {r}");

    // POP3 with the same passdb; NO_IMAP does not stop POP.
    let mut p = Conn::from(pop3, [127, 0, 0, 5]);
    p.send(&format!("USER noimap@{domain}"));
    assert!(p.line().starts_with("+OK"));
    p.send("PASS Dove-pw2");
    let r = p.line();
    assert!(r.starts_with("+OK"), "{r}\n{}", d.log());
    p.send("QUIT");

    // Ours did the work: lastauth rows written by checkpassword.
    let rows = sql(
        &db,
        "SELECT user, domain, remote_ip FROM lastauth ORDER BY user;",
    );
    assert_eq!(
        rows,
        format!("noimap\t{domain}\t127.0.0.5\nquinn\t{domain}\t127.0.0.1\n"),
        "{}",
        d.log()
    );

    // An app password (our extension) for IMAP only: Dovecot's SERVICE says which.
    // Its hash: echo -n abcdefghijklmnop | argon2 appsalt-16bytes! -id -t 1 -k 1024 -p 1 -e
    sql(
        &db,
        &format!(
            "CREATE TABLE vpopmail_app_passwords (id INTEGER PRIMARY KEY AUTOINCREMENT, \
             pw_name VARCHAR(64) NOT NULL, pw_domain VARCHAR(96) NOT NULL, \
             label VARCHAR(32) NOT NULL, hash VARCHAR(255) NOT NULL, \
             services VARCHAR(32) NOT NULL, network VARCHAR(64), expires BIGINT, \
             created BIGINT NOT NULL, UNIQUE (pw_name, pw_domain, label));
             INSERT INTO vpopmail_app_passwords (pw_name, pw_domain, label, hash, services, \
             created) VALUES ('quinn', '{domain}', 'tablet', '{APP_HASH}', 'imap', 0);"
        ),
    );
    let mut c = Conn::from(imap, [127, 0, 0, 6]);
    c.send(&format!("c1 LOGIN quinn@{domain} abcd-efgh-ijkl-mnop"));
    let r = c.tagged("c1");
    assert!(
        r.starts_with("c1 OK"),
        "app password over IMAP: {r}\n{}",
        d.log()
    );
    c.send("c2 LOGOUT");
    let mut p = Conn::from(pop3, [127, 0, 0, 7]);
    p.send(&format!("USER quinn@{domain}"));
    assert!(p.line().starts_with("+OK"));
    p.send("PASS abcd-efgh-ijkl-mnop");
    let r = p.line();
    assert!(r.starts_with("-ERR"), "an IMAP app password over POP3: {r}");
    let rows = sql(
        &db,
        &format!("SELECT remote_ip FROM lastauth WHERE user = 'quinn' AND domain = '{domain}';"),
    );
    assert_eq!(rows, "127.0.0.6\n", "{}", d.log());

    let log = d.log();
    assert!(
        !log.contains("Dove-pw1") && !log.contains("wrong-pw") && !log.contains("abcd-efgh"),
        "password logged:\n{log}"
    );
}

const APP_HASH: &str =
    "$argon2id$v=19$m=1024,t=1,p=1$YXBwc2FsdC0xNmJ5dGVzIQ$+VMTONggIHCCKm9IK8KXhgz0HstGB7NqKhhAXK9Zh5c";
