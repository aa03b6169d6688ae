//! Real peers for the sslclient and TLS end-to-end tests: Exim run inetd-style with a
//! private configuration that offers STARTTLS, a UCSPI-TLS SMTP service (Python) for
//! `sslserver -n`, and a UCSPI-TLS SMTP client (Python) for `sslclient -y`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use blackbox::TempDir;

/// Debian's Exim (exim4-daemon-light, built with GnuTLS).
pub const EXIM: &str = "/usr/sbin/exim4";
/// Debian's Python, not whatever `python3` a user's PATH finds first.
pub const PYTHON: &str = "/usr/bin/python3";

/// Panics unless Exim is installed, saying how to install it.
pub fn need_exim() {
    assert!(
        Path::new(EXIM).exists(),
        "exim4 missing: scripts/test.d/20-smtp.sh installs exim4-daemon-light"
    );
}

/// A private Exim configuration in `dir` (spool and log there too): the domain `mx.test`
/// is local, every message is only queued, and with `starttls` STARTTLS is offered with
/// `cert`/`key` (without, Exim speaks plain SMTP, for TLS done by sslserver). Returns the
/// configuration file's path.
pub fn exim_conf(dir: &TempDir, starttls: bool, cert: &Path, key: &Path) -> String {
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
             tls_advertise_hosts = {advertise}\n\
             tls_certificate = {cert}\n\
             tls_privatekey = {key}\n\
             acl_smtp_rcpt = acl_rcpt\n\
             begin acl\n\
             acl_rcpt:\n  accept domains = mx.test\n  deny message = relay not permitted\n\
             begin routers\n\
             begin transports\n",
            spool = spool.display(),
            dir = dir.path().display(),
            cert = cert.display(),
            key = key.display(),
            advertise = if starttls { "*" } else { "" },
        ),
    )
    .unwrap();
    conf.display().to_string()
}

/// Exim's main log so far (empty when there is none yet).
pub fn exim_log(dir: &TempDir) -> String {
    std::fs::read_to_string(dir.join("mainlog")).unwrap_or_default()
}

/// The header files of the messages in Exim's queue.
pub fn queued(dir: &TempDir) -> Vec<String> {
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

/// Writes `text` to `dir/name`; returns its path as a string.
pub fn script(dir: &TempDir, name: &str, text: &str) -> String {
    let p: PathBuf = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A UCSPI-TLS SMTP service for `sslserver -n` (argv[1]: a log file). It starts in
/// plain text on fds 0/1, offers STARTTLS, refuses MAIL before TLS, and on STARTTLS
/// writes `Y` on $SSLCTLFD, reads the variable block and goes on over $SSLREADFD and
/// $SSLWRITEFD; it logs `TLS <protocol> <cipher> SNI=<name>`, the message body and QUIT.
/// Everything is read a byte at a time, so nothing sent after STARTTLS is taken in plain
/// text.
pub const SMTP_SERVICE: &str = r#"
import os, sys
log = open(sys.argv[1], "a")
def note(s):
    log.write(s + "\n"); log.flush()
rfd, wfd = 0, 1
ctl = int(os.environ["SSLCTLFD"])
tls = None
def line():
    b = b""
    while not b.endswith(b"\n"):
        c = os.read(rfd, 1)
        if not c:
            return None
        b += c
    return b.decode("ascii", "replace").rstrip("\r\n")
def say(s):
    b = (s + "\r\n").encode()
    while b:
        b = b[os.write(wfd, b):]
say("220 ucspi-tls.test ESMTP test service")
while True:
    l = line()
    if l is None:
        note("EOF")
        sys.exit(1)
    verb = l.split(" ")[0].upper()
    if verb in ("EHLO", "HELO"):
        say("250-ucspi-tls.test hello " + l[5:])
        say("250 8BITMIME" if tls else "250 STARTTLS")
    elif verb == "STARTTLS" and tls is None:
        say("220 go ahead")
        os.write(ctl, b"Y")
        block = b""
        while not (block == b"\0" or block.endswith(b"\0\0")):
            c = os.read(ctl, 4096)
            if not c:
                note("control EOF")
                sys.exit(2)
            block += c
        tls = dict(e.split("=", 1) for e in block.decode().split("\0") if e)
        rfd, wfd = int(os.environ["SSLREADFD"]), int(os.environ["SSLWRITEFD"])
        note("TLS %s %s SNI=%s" % (tls.get("SSL_PROTOCOL"), tls.get("SSL_CIPHER"),
                                    tls.get("SSL_TLS_SNI", "-")))
    elif verb in ("MAIL", "RCPT") and tls is None:
        say("530 must issue STARTTLS first")
    elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
        say("250 ok")
    elif verb == "DATA":
        say("354 go ahead")
        while True:
            d = line()
            if d is None:
                note("EOF in DATA")
                sys.exit(1)
            if d == ".":
                break
            note("BODY " + d)
        say("250 queued over " + tls["SSL_PROTOCOL"])
    elif verb == "QUIT":
        say("221 ucspi-tls.test bye")
        note("QUIT")
        sys.exit(0)
    else:
        say("502 unknown command")
"#;

/// A UCSPI-TLS SMTP client for `sslclient -y`: reads the greeting from fd 6, sends EHLO
/// and STARTTLS on fd 7, reads the 220, writes `Y` on $SSLCTLFD, reads the variable
/// block, then sends EHLO and QUIT over $SSLWRITEFD and reads the replies from
/// $SSLREADFD. Prints `greeting`, `tls` (protocol and the server certificate's CN),
/// `ehlo` (the reply's lines, `|`-joined) and `quit` lines; exits 3 when the server
/// offers no STARTTLS or refuses it.
pub const STARTTLS_CLIENT: &str = r#"
import os, sys
def line(fd):
    b = b""
    while not b.endswith(b"\n"):
        c = os.read(fd, 1)
        if not c:
            sys.exit("end of file after %r" % b)
        b += c
    return b.decode("ascii", "replace").rstrip("\r\n")
def reply(fd):
    out = []
    while True:
        l = line(fd)
        out.append(l)
        if l[3:4] != "-":
            return out
def send(fd, s):
    b = (s + "\r\n").encode()
    while b:
        b = b[os.write(fd, b):]
print("greeting", reply(6)[0])
send(7, "EHLO client.test")
if not any("STARTTLS" in l for l in reply(6)):
    sys.exit(3)
send(7, "STARTTLS")
r = reply(6)
if not r[0].startswith("220"):
    sys.exit(3)
ctl = int(os.environ["SSLCTLFD"])
os.write(ctl, b"Y")
block = b""
while not (block == b"\0" or block.endswith(b"\0\0")):
    c = os.read(ctl, 4096)
    if not c:
        sys.exit("end of file on SSLCTLFD")
    block += c
v = dict(e.split("=", 1) for e in block.decode().split("\0") if e)
print("tls", v.get("SSL_PROTOCOL"), v.get("SSL_SERVER_S_DN_CN"))
rfd, wfd = int(os.environ["SSLREADFD"]), int(os.environ["SSLWRITEFD"])
send(wfd, "EHLO client.test")
print("ehlo", "|".join(reply(rfd)))
send(wfd, "QUIT")
print("quit", reply(rfd)[0])
"#;
