//! End to end: our tcpserver runs our rblsmtpd in front of a real Exim (Debian's
//! exim4-daemon-light, `exim4 -C private.conf -bs`, inetd style), and swaks delivers a
//! message from an unlisted client (127.0.0.1) and is refused from a listed one
//! (127.0.0.2), whose address a test DNS responder on 127.0.42.50 lists.

#[path = "tcpserver_util/mod.rs"]
mod util;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use blackbox::{dns_zone, ours, run_with_input, show, Rr, TempDir};

const DNS: &str = "127.0.42.50";
const EXIM: &str = "/usr/sbin/exim4";

fn exim_conf(dir: &TempDir) -> String {
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let conf = dir.join("exim.conf");
    std::fs::write(
        &conf,
        format!(
            "primary_hostname = mx.test\n\
             spool_directory = {spool}\n\
             log_file_path = {dir}/%slog\n\
             exim_user = root\n\
             exim_group = root\n\
             never_users =\n\
             keep_environment =\n\
             qualify_domain = mx.test\n\
             queue_only = true\n\
             acl_smtp_rcpt = acl_rcpt\n\
             begin acl\n\
             acl_rcpt:\n  accept domains = mx.test\n  deny message = relay not permitted\n\
             begin routers\n\
             begin transports\n",
            spool = spool.display(),
            dir = dir.path().display()
        ),
    )
    .unwrap();
    conf.display().to_string()
}

fn swaks(from_ip: &str, port: u16, subject: &str) -> Output {
    let mut c = Command::new("swaks");
    c.args([
        "--server",
        "127.0.42.51",
        "--port",
        &port.to_string(),
        "--local-interface",
        from_ip,
        "--helo",
        "client.test",
        "--from",
        "sender@client.test",
        "--to",
        "user@mx.test",
        "--header",
        &format!("Subject: {subject}"),
        "--timeout",
        "20",
    ])
    .env_clear()
    .env("PATH", "/usr/bin:/bin");
    run_with_input(&mut c, b"", Duration::from_secs(60))
}

fn queued(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("spool/input"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with("-H"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn exim_behind_rblsmtpd_under_tcpserver() {
    assert!(
        Path::new(EXIM).exists(),
        "exim4 missing: scripts/test.d/20-smtp.sh installs it"
    );
    dns_zone(
        DNS,
        vec![(
            "2.0.0.127.e2e.test".into(),
            16,
            Rr::Txt(vec![b"You are listed in e2e.test".to_vec()]),
        )],
        Duration::from_secs(120),
    );
    let dir = TempDir::new("smtp-e2e");
    let conf = exim_conf(&dir);
    let rblsmtpd = ours("rblsmtpd");
    let mut env = util::base_env();
    env.push(("DNSCACHEIP".into(), DNS.into()));
    let srv = util::Server::start(
        &util::ours(),
        &["-vRHl0"],
        "127.0.42.51",
        &[
            rblsmtpd.to_str().unwrap(),
            "-r",
            "e2e.test",
            EXIM,
            "-C",
            &conf,
            "-bs",
        ],
        &env,
    );

    // Unlisted: Exim takes the message.
    let o = swaks("127.0.0.1", srv.port, "from the unlisted client");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", show(&o));
    assert!(out.contains("<-  220 mx.test ESMTP Exim"), "{out}");
    assert!(out.contains("<-  250 OK id="), "{out}");
    let q = queued(dir.path());
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(q[0].contains("Subject: from the unlisted client"), "{q:?}");

    // Listed: rblsmtpd answers, with its 451, and Exim never runs.
    let o = swaks("127.0.0.2", srv.port, "from the listed client");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(out.contains("<-  220 rblsmtpd.local"), "{out}");
    assert!(out.contains("<** 451 You are listed in e2e.test"), "{out}");
    assert!(!out.contains("Exim"), "{out}");
    assert_eq!(queued(dir.path()).len(), 1);

    let log = srv.wait_log(|l| l.iter().any(|x| x.starts_with("rblsmtpd: 127.0.0.2 pid ")));
    let line = log
        .iter()
        .find(|x| x.starts_with("rblsmtpd: 127.0.0.2 pid "))
        .unwrap_or_else(|| panic!("no rblsmtpd log line: {log:?}"));
    assert!(line.ends_with(": 451 You are listed in e2e.test"), "{line}");
    assert!(
        !log.iter().any(|x| x.starts_with("rblsmtpd: 127.0.0.1 ")),
        "{log:?}"
    );
}
