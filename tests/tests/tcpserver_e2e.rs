//! End to end: a real inetd-style service from Debian's packages (exim4 -bs with a
//! private configuration) under tcpserver, driven by a real SMTP client (swaks), with
//! rules that set RELAYCLIENT for one address only. Needs the Debian packages
//! exim4-daemon-light and swaks (installed by scripts/test.d for CI).

mod tcpserver_util;

use std::process::Command;
use std::time::Duration;

use blackbox::{run_with_input, show, TempDir};
use tcpserver_util::*;

const EXIM_CONF: &str = "primary_hostname = test.example
domainlist local_domains = test.example
keep_environment = RELAYCLIENT
spool_directory = DIR/spool
log_file_path = DIR/log/%slog
acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  accept domains = +local_domains
  accept condition = ${env{RELAYCLIENT}{yes}{no}}
  deny message = relaying denied
";

fn need(prog: &str) -> String {
    for d in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = format!("{d}/{prog}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!("{prog} is missing: install the Debian packages exim4-daemon-light and swaks");
}

fn rcpt(port: u16, from: &str, to: &str) -> String {
    let mut c = Command::new(need("swaks"));
    c.args([
        "--server",
        &format!("127.0.0.1:{port}"),
        "--local-interface",
        from,
        "--helo",
        "client.example",
        "--from",
        "a@b.example",
        "--to",
        to,
        "--quit-after",
        "RCPT",
        "--timeout",
        "20",
    ]);
    let o = run_with_input(&mut c, b"", Duration::from_secs(30));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    // swaks prints the command (` -> RCPT TO:<...>`) and the reply on the next line.
    let line = out
        .find("RCPT TO")
        .and_then(|i| out[i..].lines().nth(1).map(str::to_string));
    line.unwrap_or_else(|| panic!("no RCPT reply: {}", show(&o)))
}

#[test]
fn exim_under_tcpserver_relays_only_for_the_rules_address() {
    let exim = need("exim4");
    let d = TempDir::new("ts-exim");
    let dir = d.path().to_str().unwrap().to_string();
    for sub in ["spool", "log"] {
        let p = d.join(sub);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let conf = d.join("exim.conf");
    std::fs::write(&conf, EXIM_CONF.replace("DIR", &dir)).unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let cdb = rules(&d, "smtp.cdb", "127.0.0.2:allow,RELAYCLIENT=\"\"\n:allow\n");
    let conf = conf.to_str().unwrap().to_string();
    both(|bin| {
        let s = Server::start(
            bin,
            &["-HR", "-l0", "-x", &cdb],
            "127.0.0.1",
            &[&exim, "-C", &conf, "-bs"],
            &base_env(),
        );
        vec![
            rcpt(s.port, "127.0.0.2", "x@elsewhere.example"),
            rcpt(s.port, "127.0.0.3", "x@elsewhere.example"),
            rcpt(s.port, "127.0.0.3", "postmaster@test.example"),
        ]
    });
    let s = Server::start(
        &ours(),
        &["-HR", "-l0", "-x", &cdb],
        "127.0.0.1",
        &[&exim, "-C", &conf, "-bs"],
        &base_env(),
    );
    assert!(rcpt(s.port, "127.0.0.2", "x@elsewhere.example").contains("250"));
    assert!(rcpt(s.port, "127.0.0.3", "x@elsewhere.example").contains("550 relaying denied"));
}
