//! Black-box tests of mailaccounts against SQLite and the private MariaDB and PostgreSQL
//! servers that scripts/test.sh starts (scripts/test.d/10-databases.sh), with round trips
//! through our checkpassword: what mailaccounts writes is what checkpassword accepts.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use blackbox::accounts::{env_or_fail, Kind, World, GID, UID};
use blackbox::{ours, run_with_input, show};

blackbox::backend_matrix!(
    account_lifecycle,
    every_hash_method,
    lockout_and_lastauth,
    domains_and_errors
);

fn account_lifecycle(kind: Kind) {
    blackbox::need_root("they create maildirs owned by other users");
    let w = World::new(kind);
    w.setup();
    // init again changes nothing.
    w.ok(&["init"], "");
    let alice = w.login("alice");
    let out = w.ok(
        &["add", &alice, "--quota", "50M", "--gecos", "Alice A"],
        "first pw\nignored\n",
    );
    assert!(out.contains("added"), "{out}");

    // vpopmail's layout, owned by the domain, mode 0700 at every level.
    let home = w.domain_dir().join("alice");
    for p in [
        home.clone(),
        home.join("Maildir"),
        home.join("Maildir/cur"),
        home.join("Maildir/new"),
        home.join("Maildir/tmp"),
    ] {
        let m = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (UID, GID, 0o700),
            "{}",
            p.display()
        );
    }

    let show = w.ok(&["--json", "show", &alice], "");
    assert!(
        show.contains(&format!("\"dir\":\"{}\"", home.display())),
        "{show}"
    );
    assert!(show.contains("\"quota\":\"52428800S\""), "{show}");
    assert!(show.contains("\"gecos\":\"Alice A\""), "{show}");
    assert!(show.contains("\"clear_password\":false"), "{show}");
    assert!(
        !show.contains("$y$") && !show.contains("$6$"),
        "no hash in output: {show}"
    );
    let list = w.ok(&["list", &w.domain], "");
    assert!(
        list.contains(&alice) && list.contains("52428800S"),
        "{list}"
    );

    // The round trip: what was added logs in; a wrong password does not.
    assert_eq!(w.check(&alice, "first pw", "110"), 0);
    assert_eq!(w.check(&alice, "second pw", "110"), 1);

    // passwd changes what checkpassword accepts.
    w.ok(&["passwd", &alice, "--hash", "sha512"], "second pw\n");
    assert_eq!(w.check(&alice, "second pw", "110"), 0);
    assert_eq!(w.check(&alice, "first pw", "110"), 1);
    assert!(w.ok(&["show", &alice], "").contains("sha512"));

    // flags changes which services it accepts.
    let f = w.ok(&["flags", &alice, "+NO_POP", "+no_relay"], "");
    assert!(f.contains("NO_POP,NO_RELAY"), "{f}");
    assert_eq!(w.check(&alice, "second pw", "110"), 1, "NO_POP refuses POP");
    assert_eq!(w.check(&alice, "second pw", "143"), 0, "IMAP still allowed");
    w.ok(&["flags", &alice, "-NO_POP", "+NO_IMAP"], "");
    assert_eq!(w.check(&alice, "second pw", "110"), 0);
    assert_eq!(
        w.check(&alice, "second pw", "143"),
        1,
        "NO_IMAP refuses IMAP"
    );
    w.fails(&["flags", &alice, "+NO_SUCH"], "", 100, "unknown flag");

    // quota as vpopmail writes it.
    w.ok(&["quota", &alice, "1000000S,500C"], "");
    assert!(w.ok(&["show", &alice], "").contains("1000000S,500C"));
    w.fails(&["quota", &alice, "lots"], "", 100, "bad quota");

    // The change log: every change, never a password.
    let log = w.ok(&["log", &alice], "");
    for a in ["add", "passwd", "flags", "quota"] {
        assert!(log.contains(a), "{a} missing:\n{log}");
    }
    assert!(log.contains("root"), "{log}");
    let logj = w.ok(&["--json", "log", &w.domain, "--limit", "50"], "");
    for secret in ["first pw", "second pw", "$6$", "$y$"] {
        assert!(
            !log.contains(secret) && !logj.contains(secret),
            "{secret} logged:\n{logj}"
        );
    }

    // del makes it fail; the directory stays unless asked.
    w.ok(&["del", &alice], "");
    assert_eq!(w.check(&alice, "second pw", "110"), 1);
    assert!(home.join("Maildir").is_dir());
    w.fails(&["show", &alice], "", 100, "no such account");
    // Adding again reuses the directory a failed or earlier run left.
    w.ok(&["add", &alice], "third pw\n");
    assert_eq!(w.check(&alice, "third pw", "110"), 0);
    w.ok(&["del", &alice, "--remove-dir"], "");
    assert!(!home.exists());
    assert!(w.ok(&["log", &alice], "").contains("directory removed"));
}

fn every_hash_method(kind: Kind) {
    blackbox::need_root("they create maildirs owned by other users");
    let w = World::new(kind);
    w.setup();
    for m in ["yescrypt", "sha512", "sha256", "bcrypt", "md5"] {
        let login = w.login(&format!("u-{m}"));
        w.ok(&["add", &login, "--hash", m], &format!("pw {m}\n"));
        let s = w.ok(&["show", &login], "");
        assert!(s.contains(m), "{s}");
        assert_eq!(w.check(&login, &format!("pw {m}"), "110"), 0, "{m}");
        assert_eq!(w.check(&login, "pw nope", "110"), 1, "{m}");
    }
    // The default is the strongest method this libxcrypt has.
    let d = w.login("default");
    w.ok(&["add", &d], "pw\n");
    assert!(w.ok(&["show", &d], "").contains("yescrypt"));
    w.fails(
        &["add", &w.login("x"), "--hash", "des"],
        "pw\n",
        100,
        "unknown hash method",
    );
}

fn lockout_and_lastauth(kind: Kind) {
    blackbox::need_root("they create maildirs owned by other users");
    let w = World::new(kind);
    w.setup();
    let bob = w.login("bob");
    w.ok(&["add", &bob], "bob pw\n");
    assert_eq!(w.check(&bob, "bob pw", "110"), 0);
    let la = w.ok(&["lastauth", &bob], "");
    assert!(la.contains(&bob) && la.contains(&w.ip), "{la}");
    let laj = w.ok(&["--json", "lastauth", &w.domain], "");
    assert!(laj.contains(&format!("\"ip\":\"{}\"", w.ip)), "{laj}");
    // Three failures lock the account from this address.
    for _ in 0..3 {
        assert_eq!(w.check(&bob, "wrong", "110"), 1);
    }
    assert_eq!(w.check(&bob, "bob pw", "110"), 1, "locked");
    let u = w.ok(&["unlock", &bob, &w.ip], "");
    assert!(u.contains("lifted"), "{u}");
    assert_eq!(w.check(&bob, "bob pw", "110"), 0, "unlocked");
    // Without an address: every lock of the account.
    for _ in 0..3 {
        assert_eq!(w.check(&bob, "wrong", "110"), 1);
    }
    assert_eq!(w.check(&bob, "bob pw", "110"), 1, "locked");
    w.ok(&["unlock", &bob], "");
    assert_eq!(w.check(&bob, "bob pw", "110"), 0);
    assert!(w.ok(&["log", &bob], "").contains("unlock"));
    w.fails(&["unlock", &bob, "not-an-ip"], "", 100, "bad address");
}

fn domains_and_errors(kind: Kind) {
    blackbox::need_root("they create maildirs owned by other users");
    let w = World::new(kind);
    w.setup();
    // users/assign as vadddomain writes it, and a users/cdb checkpassword reads.
    let assign = std::fs::read_to_string(w.dir.join("qmail/users/assign")).unwrap();
    assert_eq!(
        assign,
        format!(
            "+{0}-:{0}:{UID}:{GID}:{1}:-::\n.\n",
            w.domain,
            w.domain_dir().display()
        )
    );
    for f in ["qmail/users/assign", "qmail/users/cdb"] {
        let m = std::fs::metadata(w.dir.join(f)).unwrap();
        assert_eq!(m.mode() & 0o777, 0o644, "{f} as qmail-newu leaves it");
    }
    let m = std::fs::metadata(w.domain_dir()).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (UID, GID, 0o700));
    let ds = w.ok(&["--json", "domains"], "");
    assert!(
        ds.contains(&format!(
            "\"domain\":\"{}\",\"uid\":{UID},\"gid\":{GID}",
            w.domain
        )),
        "{ds}"
    );
    // A second domain by names (root's group and user are refused: uid 0).
    let other = format!("o{}", w.domain);
    let od = w.dir.join("domains").join(&other);
    w.ok(
        &[
            "add-domain",
            &other,
            "--uid",
            "nobody",
            "--gid",
            "nogroup",
            "--dir",
            od.to_str().unwrap(),
        ],
        "",
    );
    w.fails(
        &[
            "add-domain",
            "z.example",
            "--uid",
            "root",
            "--gid",
            "4",
            "--dir",
            "/tmp/z",
        ],
        "",
        100,
        "uid or gid 0",
    );
    w.fails(
        &[
            "add-domain",
            &other,
            "--uid",
            "1",
            "--gid",
            "1",
            "--dir",
            od.to_str().unwrap(),
        ],
        "",
        100,
        "exists",
    );
    w.ok(&["add", &format!("carol@{other}")], "c pw\n");
    // The same entry again changes nothing (a re-run after a failure mends).
    w.ok(
        &[
            "add-domain",
            &other,
            "--uid",
            "nobody",
            "--gid",
            "nogroup",
            "--dir",
            od.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(
        std::fs::read_to_string(w.dir.join("qmail/users/assign"))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with(&format!("+{other}-:")))
            .count(),
        1,
        "one line for the domain"
    );

    // A directory left by an interrupted add (wrong owner and mode) is taken over.
    let left = w.domain_dir().join("frank/Maildir/new");
    std::fs::create_dir_all(&left).unwrap();
    std::fs::set_permissions(&left, std::fs::Permissions::from_mode(0o755)).unwrap();
    w.ok(&["add", &w.login("frank")], "f pw\n");
    let m = std::fs::metadata(&left).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (UID, GID, 0o700));
    assert_eq!(w.check(&w.login("frank"), "f pw", "110"), 0);

    // Clear errors, exit 100, nothing asked for or written.
    w.fails(
        &["add", "dave@missing.example"],
        "pw\n",
        100,
        "no such domain",
    );
    w.fails(
        &["add", &format!("bad/name@{}", w.domain)],
        "pw\n",
        100,
        "bad user name",
    );
    w.fails(&["add", "nodomain"], "pw\n", 100, "want user@domain");
    w.fails(&["add", &w.login("eve")], "", 100, "empty password");
    w.fails(
        &["add", &w.login("eve"), "secret-on-argv"],
        "pw\n",
        100,
        "usage",
    );
    w.fails(&["frobnicate"], "", 100, "unknown command");
    w.fails(&[], "", 100, "usage");
    w.ok(&["add", &w.login("eve")], "pw\n");
    w.fails(&["add", &w.login("eve")], "pw\n", 100, "exists");

    // del-domain: rows and the assign entry go; the directory only when asked.
    w.ok(&["del-domain", &other, "--remove-dir"], "");
    assert!(!od.exists());
    assert_eq!(w.check(&format!("carol@{other}"), "c pw", "110"), 1);
    let ds = w.ok(&["domains"], "");
    assert!(!ds.contains(&other) && ds.contains(&w.domain), "{ds}");
    w.fails(&["del-domain", &other], "", 100, "no such domain");
    assert!(w.ok(&["log", &other], "").contains("del-domain"));
    assert_eq!(w.check(&w.login("eve"), "pw", "110"), 0);
}

#[test]
fn sqlite_clear_passwords_and_per_domain_tables() {
    blackbox::need_root("they create maildirs owned by other users");
    let w = World::new(Kind::Sqlite);
    w.setup();
    let db = w.url.strip_prefix("sqlite:").unwrap().to_string();
    let m = std::fs::metadata(&db).unwrap();
    assert_eq!(m.mode() & 0o777, 0o600, "the database holds hashes");
    let sql = |q: &str| {
        let o = Command::new("sqlite3")
            .arg(&db)
            .arg(q)
            .output()
            .expect("sqlite3");
        String::from_utf8(o.stdout).unwrap()
    };
    // Every table exists after init.
    let tables = sql("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    for t in ["changelog", "lastauth", "lockout", "relay", "vpopmail"] {
        assert!(tables.lines().any(|l| l == t), "{t}: {tables}");
    }
    w.ok(&["add", &w.login("plain")], "p1\n");
    assert_eq!(
        sql("SELECT pw_clear_passwd FROM vpopmail WHERE pw_name = 'plain'").trim(),
        ""
    );
    std::fs::write(&w.config, "clear_passwords = on\n").unwrap();
    w.ok(&["add", &w.login("apop")], "p2\n");
    assert_eq!(
        sql("SELECT pw_clear_passwd FROM vpopmail WHERE pw_name = 'apop'").trim(),
        "p2"
    );
    assert!(!sql("SELECT * FROM changelog").contains("p2"));
    std::fs::write(&w.config, "clear_passwords = maybe\n").unwrap();
    w.fails(&["list"], "", 111, "clear_passwords");

    // The per-domain layout: a table per domain, as vpopmail --disable-many-domains.
    let p = World::new(Kind::Sqlite);
    std::fs::write(&p.config, "tables = per-domain\n").unwrap();
    p.setup();
    p.ok(&["add", &p.login("pd")], "pd pw\n");
    let t = p.domain.replace(['.', '-'], "_");
    let pdb = p.url.strip_prefix("sqlite:").unwrap();
    let o = Command::new("sqlite3")
        .arg(pdb)
        .arg(format!("SELECT pw_name FROM \"{t}\""))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "pd");
    assert_eq!(p.check(&p.login("pd"), "pd pw", "110"), 0);
    assert!(p.ok(&["list"], "").contains(&p.login("pd")));
    p.ok(&["del", &p.login("pd")], "");
    assert_eq!(p.check(&p.login("pd"), "pd pw", "110"), 1);
}

#[test]
fn add_domain_makes_missing_parents() {
    blackbox::need_root("they create maildirs owned by other users");
    let w = World::new(Kind::Sqlite);
    w.ok(&["init"], "");
    // A fresh path, none of whose parents below the test's directory exist yet.
    let top = w.dir.join("fresh");
    let dir = top.join("vpopmail/domains").join(&w.domain);
    let d = dir.display().to_string();
    let (uid, gid) = (UID.to_string(), GID.to_string());
    w.ok(
        &[
            "add-domain",
            &w.domain,
            "--uid",
            &uid,
            "--gid",
            &gid,
            "--dir",
            &d,
        ],
        "",
    );
    // Parents as mkdir -p makes them, owned by the caller; the domain's own as before.
    for p in [
        top.clone(),
        top.join("vpopmail"),
        top.join("vpopmail/domains"),
    ] {
        let m = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (0, 0, 0o755),
            "{}",
            p.display()
        );
    }
    let m = std::fs::metadata(&dir).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (UID, GID, 0o700));
    // The domain works: an account in it logs in.
    let login = w.login("new");
    w.ok(&["add", &login], "new pw\n");
    assert_eq!(w.check(&login, "new pw", "110"), 0);
}

#[test]
fn database_down_is_temporary() {
    let w = World::new(Kind::Sqlite);
    let mut c = Command::new(ours("mailaccounts"));
    c.args(["list"]);
    w.env(&mut c);
    // A closed loopback port.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    c.env(
        "CHECKPASSWORD_DB",
        format!("mysql://u:p@127.0.0.1:{port}/x"),
    );
    let o = run_with_input(&mut c, b"", Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(111), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("database unavailable"));
    // A missing SQLite file is not silently created except by init.
    w.fails(&["list"], "", 111, "users.sqlite");
}

#[test]
fn mysql_vpopmail_file_update_line() {
    blackbox::need_root("they create maildirs owned by other users");
    let w = World::new(Kind::Mysql);
    w.setup();
    let sock = env_or_fail("CHECKPASSWORD_TEST_MYSQL_SOCKET_URL");
    let sock_path = sock.split("socket=").nth(1).unwrap().to_string();
    std::fs::create_dir_all(w.dir.join("vpopmail/etc")).unwrap();
    // vpopmail's file: reads through a read-only account, changes through the update line.
    std::fs::write(
        w.dir.join("vpopmail/etc/vpopmail.mysql"),
        format!("localhost|{sock_path}|cpread|cp-read|cptest\nlocalhost|{sock_path}|cptest|cp-pw|cptest\n"),
    )
    .unwrap();
    let run = |args: &[&str], input: &str| {
        let mut c = Command::new(ours("mailaccounts"));
        c.args(args);
        w.env(&mut c);
        c.env_remove("CHECKPASSWORD_DB");
        run_with_input(&mut c, input.as_bytes(), Duration::from_secs(60))
    };
    let o = run(&["add", &w.login("vf")], "vf pw\n");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(w.check(&w.login("vf"), "vf pw", "110"), 0);
    // The read-only line alone cannot change anything: a clear temporary failure.
    std::fs::write(
        w.dir.join("vpopmail/etc/vpopmail.mysql"),
        format!("localhost|{sock_path}|cpread|cp-read|cptest\n"),
    )
    .unwrap();
    let o = run(&["flags", &w.login("vf"), "+NO_POP"], "");
    assert_eq!(o.status.code(), Some(111), "{}", show(&o));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("cp-read"),
        "{}",
        show(&o)
    );
    assert_eq!(
        w.check(&w.login("vf"), "vf pw", "110"),
        0,
        "nothing changed"
    );
}

#[test]
fn refuses_to_run_setuid() {
    blackbox::need_root("they create maildirs owned by other users");
    let w = World::new(Kind::Sqlite);
    w.setup();
    let bin = w.dir.join("mailaccounts");
    let status = Command::new("cp")
        .arg(ours("mailaccounts"))
        .arg(&bin)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut c = Command::new(&bin);
    c.arg("list");
    w.env(&mut c);
    std::os::unix::process::CommandExt::uid(&mut c, 65534);
    let o = run_with_input(&mut c, b"", Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(100), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("setuid"),
        "{}",
        show(&o)
    );
}
