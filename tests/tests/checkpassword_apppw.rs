//! Black-box tests of Argon2 hashes and app passwords, on SQLite and the private MariaDB
//! and PostgreSQL servers (scripts/test.d/10-databases.sh): accounts made by our
//! mailaccounts, hashes made by it and by Debian's `argon2` CLI (the reference
//! implementation), logins through our checkpassword as qmail-popup, an IMAP server
//! and qmail-smtpd call it.

use std::process::{Command, Stdio};
use std::time::Duration;

use blackbox::accounts::{Kind, World};
use blackbox::{run_with_input, show};

/// A client address in no app password's network below.
const ELSEWHERE: &str = "198.51.100.9";

/// Settings for the tests of what a login accepts, where a lockout would only get in the way.
const NO_LOCKOUT: &str = "lockout_failures = 0\nlockout_ip_failures = 0\n";

/// A fresh domain, with `settings` as checkpassword's settings file.
fn world(kind: Kind, settings: &str) -> World {
    blackbox::need_root("they create maildirs owned by other users");
    let w = World::new(kind);
    std::fs::write(&w.config, settings).unwrap();
    w.setup();
    w
}

fn set_hash(w: &World, user: &str, hash: &str) {
    w.sql(&format!(
        "UPDATE vpopmail SET pw_passwd = '{hash}' WHERE pw_name = '{user}' AND pw_domain = '{}';",
        w.domain
    ));
}

/// `app-password add`; returns the secret it printed.
fn app_password(w: &World, login: &str, args: &[&str]) -> String {
    let mut a = vec!["--json", "app-password", "add", login];
    a.extend(args);
    let out = w.ok(&a, "");
    let s = out
        .split("\"secret\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no secret in {out}"))
        .to_string();
    assert_eq!(s.len(), 19, "{out}");
    s
}

/// Debian's argon2 CLI: the PHC string of `pw` (salt, then its options).
fn argon2_cli(pw: &str, salt: &str, opts: &[&str]) -> String {
    let mut c = Command::new("argon2");
    c.arg(salt).args(opts).arg("-e");
    c.stdin(Stdio::piped());
    let o = run_with_input(&mut c, pw.as_bytes(), Duration::from_secs(60));
    assert!(
        o.status.success(),
        "argon2 (Debian's argon2 package, installed by scripts/test.d/10-databases.sh)\n{}",
        show(&o)
    );
    let h = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert!(h.starts_with("$argon2"), "{h}");
    h
}

blackbox::backend_matrix!(argon2_hashes, app_password_scopes, app_password_lockout);

fn argon2_hashes(kind: Kind) {
    let w = world(kind, NO_LOCKOUT);
    let alice = w.login("alice");
    // Made by mailaccounts.
    w.ok(&["add", &alice, "--hash", "argon2id"], "alice pw\n");
    assert!(w.ok(&["show", &alice], "").contains("argon2id"));
    let stored = w.sql(&format!(
        "SELECT pw_passwd FROM vpopmail WHERE pw_domain = '{}';",
        w.domain
    ));
    assert!(
        stored.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"),
        "{stored}"
    );
    assert_eq!(w.check(&alice, "alice pw", "110"), 0);
    assert_eq!(w.check(&alice, "alice pX", "110"), 1);
    w.ok(&["passwd", &alice, "--hash", "argon2id"], "new pw\n");
    assert_eq!(w.check(&alice, "new pw", "143"), 0);
    assert_eq!(w.check(&alice, "alice pw", "143"), 1);

    // Made by the reference implementation, as PHP's password_hash (m=64 MiB, t=4) and
    // Dovecot's ARGON2ID (t=2) and ARGON2I (32 MiB, t=4) schemes write them.
    let php = argon2_cli(
        "php pw",
        "phpsalt-16bytes!",
        &["-id", "-m", "16", "-t", "4", "-p", "1"],
    );
    let dovecot_id = argon2_cli(
        "dc pw",
        "dovecotsalt16byt",
        &["-id", "-m", "16", "-t", "2", "-p", "1"],
    );
    let dovecot_i = argon2_cli(
        "dci pw",
        "dovecotsalt16byt",
        &["-i", "-m", "15", "-t", "4", "-p", "1"],
    );
    for (hash, pw) in [
        (php.clone(), "php pw"),
        (format!("{{ARGON2ID}}{dovecot_id}"), "dc pw"),
        (format!("{{ARGON2I}}{dovecot_i}"), "dci pw"),
        (dovecot_i.clone(), "dci pw"),
    ] {
        set_hash(&w, "alice", &hash);
        assert_eq!(w.check(&alice, pw, "110"), 0, "{hash}");
        assert_eq!(w.check(&alice, "wrong", "110"), 1, "{hash}");
    }
    // A hostile hash (4 GiB) is refused before hashing: a failed login with a reason.
    let hostile = php.replace("m=65536", "m=4194304");
    set_hash(&w, "alice", &format!("{{ARGON2ID}}{hostile}"));
    let (code, log) = w.check_from(&alice, "php pw", "110", &w.ip);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("unusable password hash for") && log.contains("m=4194304 KiB over the limit"),
        "{log}"
    );
    assert!(log.contains("password fail"), "{log}");
    assert!(!log.contains("php pw"), "{log}");
}

fn app_password_scopes(kind: Kind) {
    let w = world(kind, NO_LOCKOUT);
    let bob = w.login("bob");
    w.ok(&["add", &bob], "bob main pw\n");
    let net = format!("{}/24", w.ip.rsplit_once('.').unwrap().0.to_string() + ".0");
    let imap = app_password(
        &w,
        &bob,
        &["--label", "phone", "--service", "imap", "--network", &net],
    );
    let smtp = app_password(
        &w,
        &bob,
        &["--label", "mailer", "--service", "smtp", "--expires", "30"],
    );

    // IMAP with the IMAP one: accepted, the label logged, never the secret.
    let (code, log) = w.check_from(&bob, &imap, "143", &w.ip);
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("login success app password \"phone\""),
        "{log}"
    );
    assert!(
        !log.contains(&imap) && !log.contains(&imap.replace('-', "")),
        "{log}"
    );
    // As typed on a phone: capitals, spaces.
    let typed = imap.to_uppercase().replace('-', " ");
    assert_eq!(w.check(&bob, &typed, "143"), 0);
    // Not for POP or SMTP, not from outside its network.
    assert_eq!(w.check(&bob, &imap, "110"), 1);
    assert_eq!(w.check(&bob, &imap, "25"), 1);
    let (code, log) = w.check_from(&bob, &imap, "143", ELSEWHERE);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("password fail"), "{log}");
    // The SMTP one: SMTP only, from anywhere.
    let (code, log) = w.check_from(&bob, &smtp, "25", ELSEWHERE);
    assert_eq!(code, 0, "{log}");
    assert_eq!(w.check(&bob, &smtp, "143"), 1);
    // The main password still opens everything.
    for port in ["110", "143", "25"] {
        assert_eq!(w.check(&bob, "bob main pw", port), 0, "{port}");
    }

    // list: scopes, never secrets or hashes.
    let list = w.ok(&["app-password", "list", &bob], "");
    assert!(
        list.contains("phone") && list.contains(&net) && list.contains("mailer"),
        "{list}"
    );
    assert!(!list.contains("$argon2") && !list.contains(&imap), "{list}");
    let log = w.ok(&["log", &bob], "");
    assert!(log.contains("added phone") && !log.contains(&smtp), "{log}");

    // Expired: refused, and shown as such.
    w.sql(&format!(
        "UPDATE vpopmail_app_passwords SET expires = 1000 WHERE pw_domain = '{}' AND label = 'mailer';",
        w.domain
    ));
    assert_eq!(w.check(&bob, &smtp, "25"), 1);
    assert!(w
        .ok(&["app-password", "list", &bob], "")
        .contains("expired"));

    // Revoked: refused; revoking again is an error.
    w.ok(&["app-password", "revoke", &bob, "phone"], "");
    assert_eq!(w.check(&bob, &imap, "143"), 1);
    let o = w.ma(&["app-password", "revoke", &bob, "phone"], "");
    assert_eq!(o.status.code(), Some(100), "{}", show(&o));
    assert_eq!(w.check(&bob, "bob main pw", "143"), 0);

    // Bad arguments are usage errors, and a label is unique per account.
    for args in [
        vec!["--label", "x y"],
        vec!["--label", "a", "--service", "ftp"],
        vec!["--label", "a", "--network", "10.0.0.1"],
        vec!["--label", "a", "--expires", "2001-01-01"],
        vec!["--label", "mailer"],
    ] {
        let mut a = vec!["app-password", "add", bob.as_str()];
        a.extend(&args);
        let o = w.ma(&a, "");
        assert_eq!(o.status.code(), Some(100), "{args:?}\n{}", show(&o));
    }

    // Deleting the account takes its app passwords along.
    w.ok(&["del", &bob], "");
    let left = w.sql(&format!(
        "SELECT COUNT(*) FROM vpopmail_app_passwords WHERE pw_domain = '{}';",
        w.domain
    ));
    assert_eq!(left.trim(), "0");
}

fn app_password_lockout(kind: Kind) {
    // The defaults: three failures lock an account from one address.
    let w = world(kind, "");
    let carol = w.login("carol");
    w.ok(&["add", &carol], "carol pw\n");
    let mut secrets = vec![];
    for l in ["a", "b", "c"] {
        secrets.push(app_password(&w, &carol, &["--label", l]));
    }
    // A wrong secret tried against three app passwords is one failure, not three.
    assert_eq!(w.check(&carol, "aaaa-bbbb-cccc-dddd", "110"), 1);
    let key = format!("acct:{carol}:{}", w.ip);
    let failures = |w: &World| {
        w.sql(&format!(
            "SELECT failures FROM lockout WHERE lockkey = '{key}';"
        ))
        .trim()
        .to_string()
    };
    assert_eq!(failures(&w), "1");
    // A right app password clears the counter as the main password does.
    assert_eq!(w.check(&carol, &secrets[0], "110"), 0);
    assert_eq!(failures(&w), "");
    // Three failures lock the account, for its app passwords and its own password alike.
    for _ in 0..3 {
        assert_eq!(w.check(&carol, "zzzz-zzzz-zzzz-zzzz", "143"), 1);
    }
    let (code, log) = w.check_from(&carol, &secrets[1], "143", &w.ip);
    assert_eq!(code, 1);
    assert!(log.contains("locked out"), "{log}");
    assert_eq!(w.check(&carol, "carol pw", "143"), 1);
    w.ok(&["unlock", &carol], "");
    assert_eq!(w.check(&carol, &secrets[2], "143"), 0);
    assert_eq!(w.check(&carol, "carol pw", "143"), 0);
    // Locking the account's own password locks its app passwords too.
    let locked = if kind == Kind::Mysql {
        "CONCAT('!', pw_passwd)"
    } else {
        "'!' || pw_passwd"
    };
    w.sql(&format!(
        "UPDATE vpopmail SET pw_passwd = {locked} WHERE pw_name = 'carol' AND pw_domain = '{}';",
        w.domain
    ));
    assert_eq!(w.check(&carol, &secrets[2], "143"), 1);
}
