//! tcprules and tcprulescheck against Debian's (djb's 0.88): same cdb bytes, same
//! messages, same exit codes, same lookups; plus the extensions and the robustness checks.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use blackbox::{djb, fefe, ours, run, show, TempDir};

/// A small deterministic generator, so a failing case can be reproduced from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// Runs a tcprules binary on `input` in `dir`, writing `dir/NAME.cdb` via `dir/NAME.tmp`.
fn tcprules(bin: &Path, dir: &TempDir, name: &str, input: &[u8]) -> Output {
    let cdb = dir.join(&format!("{name}.cdb"));
    let tmp = dir.join(&format!("{name}.tmp"));
    run(bin, &[cdb.as_os_str(), tmp.as_os_str()], &[], input)
}

fn first_line(b: &[u8]) -> &[u8] {
    b.split(|&c| c == b'\n').next().unwrap_or(b"")
}

/// Compiles `input` with djb's and ours and requires the same outcome: exit code, first
/// stderr line, and (on success) the same cdb bytes.
fn same_as_djb(input: &[u8]) {
    let dir = TempDir::new("rules");
    let d = tcprules(&djb("tcprules"), &dir, "djb", input);
    let o = tcprules(&ours("tcprules"), &dir, "ours", input);
    let ctx = || {
        format!(
            "input:\n{}\n--- djb:\n{}\n--- ours:\n{}",
            String::from_utf8_lossy(input),
            show(&d),
            show(&o)
        )
    };
    assert_eq!(d.status.code(), o.status.code(), "{}", ctx());
    let dl = String::from_utf8_lossy(first_line(&d.stderr)).replace("djb.", "X.");
    let ol = String::from_utf8_lossy(first_line(&o.stderr)).replace("ours.", "X.");
    assert_eq!(dl, ol, "{}", ctx());
    if d.status.success() {
        let db = std::fs::read(dir.join("djb.cdb")).unwrap();
        let ob = std::fs::read(dir.join("ours.cdb")).unwrap();
        assert!(db == ob, "cdb bytes differ\n{}", ctx());
    }
}

const EVERY_FORM: &str = "# every form of djb's 0.88 syntax
# comments and blank lines

10.0.0.1:allow,A=\"1\",B='x y'
1.2.3.4:deny
1.2.3.4:allow,SHADOWED=\"the first line wins\"
1.2.3.:allow,PREFIX3=\"y\"
1.2.:deny
1.:allow
1.2.3:allow
1.2.3.50-100:allow,RELAYCLIENT=\"\"
1.2.50-52.:deny
10.0-5.:allow,RANGE=/yes/
9.9.9.300-200:allow
-3:allow
7.7.7.-2:allow
8.8.8.250-999:allow,CAP=\"capped at 255\"
=host.example.com:allow,HOST=\"exact\"
=.example.com:deny
=.com:allow,TLD=+c+
=:allow,NAMED=\"any name\"
joe@1.2.3.4:allow,USER=\"joe\"
joe@=host.example.com:deny
bob@1.2.3.5-6:allow
 1.2.3.9:allow,LEADING=\"space kept\"
1.2.3.10:allow   \t \t
line without a colon is ignored
127.:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\",X=+a:b+,Y=,y,
:allow,DEFAULT=\"1\",DEFAULT=\"dup\",EMPTY=\"\"
:deny,AFTERDENY=\"stored\"
";

#[test]
fn every_form_is_byte_identical() {
    same_as_djb(EVERY_FORM.as_bytes());
    same_as_djb(b"");
    same_as_djb(b"\n\n# only comments\n");
    same_as_djb(b"1.2.3.4:allow");
    same_as_djb(b"1.2.3.4:allow\n\n:deny");
    same_as_djb(b"a\x00b:allow,N\x00=\"v\x00\"\n");
    same_as_djb(b"\xff\xfe:allow,\xe9=\"\xe9\"\n");
}

#[test]
fn syntax_errors_match_djb_and_keep_the_old_cdb() {
    let bad = [
        "1.2.3.4:allowx",
        "1.2.3.4:permit",
        "1.2.3.4:Allow",
        "1.2.3.4: allow",
        "1.2.3.4:allow,X",
        "1.2.3.4:allow,X=",
        "1.2.3.4:allow,X=\"unterminated",
        "1.2.3.4:allow X=\"1\"",
        "1.2.3.4:allow,X=\"1\"junk",
        "1.2.3.4:allow # comment",
        "1.2.3.a-5:allow",
        "1.2.3.1-b:allow",
        "1.2.3.4:allow\r",
        "1.2.3.4:allow \x00 junk",
    ];
    for b in bad {
        let dir = TempDir::new("bad");
        let good = b"1.2.3.4:deny\n:allow\n";
        for (bin, name) in [(djb("tcprules"), "djb"), (ours("tcprules"), "ours")] {
            assert!(tcprules(&bin, &dir, name, good).status.success());
        }
        let before = std::fs::read(dir.join("djb.cdb")).unwrap();
        let input = format!("# ok\n1.2.3.5:allow\n{b}\n:deny\n");
        if !b.ends_with('\r') {
            same_as_djb(input.as_bytes());
        }
        for (bin, name) in [(djb("tcprules"), "djb"), (ours("tcprules"), "ours")] {
            let o = tcprules(&bin, &dir, name, input.as_bytes());
            // CR lines are our extension: djb rejects them, ours accepts them.
            if name == "ours" && b.ends_with('\r') {
                assert!(o.status.success(), "{}", show(&o));
                continue;
            }
            assert_eq!(o.status.code(), Some(100), "{name} {b:?}: {}", show(&o));
            assert_eq!(
                std::fs::read(dir.join(&format!("{name}.cdb"))).unwrap(),
                before,
                "{name} changed the cdb"
            );
        }
    }
}

#[test]
fn ours_names_the_bad_line_number() {
    let dir = TempDir::new("lineno");
    let o = tcprules(
        &ours("tcprules"),
        &dir,
        "o",
        b"1.2.3.4:allow\n\n# c\nbad:line\n",
    );
    assert_eq!(o.status.code(), Some(100));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err, "tcprules: fatal: unable to parse this line: bad:line\ntcprules: fatal: that is line 4 of the input\n");
}

#[test]
fn usage_and_io_errors_match_djb() {
    let dir = TempDir::new("io");
    let cases: Vec<Vec<std::ffi::OsString>> = vec![
        vec![],
        vec!["only.cdb".into()],
        vec![
            dir.join("x.cdb").into(),
            dir.join("no/such/dir/x.tmp").into(),
        ],
        vec![
            dir.join("no/such/dir/x.cdb").into(),
            dir.join("x.tmp").into(),
        ],
        vec![dir.join("x.cdb").into(), "/dev/full".into()],
    ];
    for args in cases {
        let a: Vec<&OsStr> = args.iter().map(|s| s.as_os_str()).collect();
        let d = run(&djb("tcprules"), &a, &[], b":allow\n");
        let o = run(&ours("tcprules"), &a, &[], b":allow\n");
        assert_eq!(
            d.status.code(),
            o.status.code(),
            "{args:?}\n{}\n{}",
            show(&d),
            show(&o)
        );
        assert_eq!(d.stderr, o.stderr, "{args:?}\n{}\n{}", show(&d), show(&o));
    }
    // stdin that cannot be read: a directory.
    for bin in [djb("tcprules"), ours("tcprules")] {
        let o = Command::new(&bin)
            .args([dir.join("y.cdb"), dir.join("y.tmp")])
            .stdin(std::fs::File::open("/").unwrap())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(111));
        assert_eq!(
            o.stderr,
            b"tcprules: fatal: unable to read input: is a directory\n"
        );
    }
    for bin in [djb("tcprulescheck"), ours("tcprulescheck")] {
        let o = run(&bin, &[], &[], b"");
        assert_eq!(
            (o.status.code(), &o.stderr[..]),
            (
                Some(100),
                &b"tcprulescheck: usage: tcprulescheck rules.cdb\n"[..]
            )
        );
        let o = run(&bin, &[OsStr::new("--")], &[], b"");
        assert_eq!(
            (o.status.code(), &o.stderr[..]),
            (
                Some(111),
                &b"tcprulescheck: fatal: unable to read --: file does not exist\n"[..]
            )
        );
    }
}

/// A generated rules file of `n` lines: every form, ranges, prefixes, settings, duplicates.
fn generated(seed: u64, n: usize) -> Vec<u8> {
    let mut r = Rng(seed);
    let mut out = Vec::with_capacity(n * 40);
    let words = [
        "a",
        "b",
        "RELAYCLIENT",
        "RBLSMTPD",
        "QMAILQUEUE",
        "X_Y",
        "N1",
    ];
    let delims = [b'"', b'\'', b'/', b'+', b'%', b'|'];
    let hosts = [
        "mail.example.com",
        ".example.com",
        ".com",
        "a.b.c.d",
        "",
        ".org",
    ];
    for i in 0..n {
        let a = r.below(256);
        let b = r.below(256);
        let c = r.below(256);
        let d = r.below(256);
        let addr = match r.below(14) {
            0 => format!("{a}.{b}.{c}.{d}"),
            1 => format!("{a}.{b}.{c}."),
            2 => format!("{a}.{b}."),
            3 => format!("{a}."),
            4 => format!("{a}.{b}.{c}.{}-{}", r.below(200), r.below(300)),
            5 => format!("{a}.{b}.{}-{}.", r.below(250), r.below(260)),
            6 => format!("={}", r.pick(&hosts)),
            7 => format!("u{}@{a}.{b}.{c}.{d}", r.below(5)),
            8 => format!("u{}@={}", r.below(5), r.pick(&hosts)),
            9 => String::new(),
            10 => format!("# comment {i}"),
            11 => String::new(),
            12 => format!("10.{}.{}.{}", r.below(4), r.below(4), r.below(4)),
            _ => format!("{a}.{b}.{c}.{d}"),
        };
        if addr.starts_with('#') {
            out.extend_from_slice(addr.as_bytes());
            out.push(b'\n');
            continue;
        }
        if r.below(30) == 0 {
            out.push(b'\n');
            continue;
        }
        out.extend_from_slice(addr.as_bytes());
        out.extend_from_slice(if r.below(4) == 0 { b":deny" } else { b":allow" });
        for _ in 0..r.below(4) {
            let dl = *r.pick(&delims);
            out.push(b',');
            out.extend_from_slice(r.pick(&words).as_bytes());
            out.push(b'=');
            out.push(dl);
            out.extend_from_slice(format!("v{}:{}", r.below(1000), i).as_bytes());
            out.push(dl);
        }
        if r.below(10) == 0 {
            out.extend_from_slice(b" \t ");
        }
        if i + 1 < n || r.below(2) == 0 {
            out.push(b'\n');
        }
    }
    out
}

#[test]
fn generated_100k_lines_are_byte_identical() {
    same_as_djb(&generated(0x9e3779b97f4a7c15, 100_000));
}

#[test]
fn random_single_lines_agree_with_djb() {
    // Lines from a small alphabet hit every parser branch; djb's verdict decides. Where
    // djb accepts, the bytes must be his; where he rejects, ours may accept only an
    // extension (an address with ':' or a CR ending) and must reject everything else.
    let alphabet: &[u8] = b"0123456789.-=@:,\"'/ \tadlnowy#\rx";
    let mut r = Rng(42);
    let dir = TempDir::new("random");
    let mut accepted = 0;
    for case in 0..400 {
        let len = 1 + r.below(24) as usize;
        let mut line: Vec<u8> = (0..len).map(|_| *r.pick(alphabet)).collect();
        // Bias towards well-formed instructions so acceptance is common.
        if r.below(2) == 0 {
            let at = r.below(line.len() as u64) as usize;
            line.splice(
                at..at,
                if r.below(2) == 0 {
                    b":allow".to_vec()
                } else {
                    b":deny,X=\"1\"".to_vec()
                },
            );
        }
        line.push(b'\n');
        let d = tcprules(&djb("tcprules"), &dir, &format!("d{case}"), &line);
        let o = tcprules(&ours("tcprules"), &dir, &format!("o{case}"), &line);
        let text = String::from_utf8_lossy(&line);
        let address = line.split(|&c| c == b':').next().unwrap();
        if d.status.success() && !address.contains(&b'/') {
            accepted += 1;
            assert!(o.status.success(), "{text:?}: {}", show(&o));
            let db = std::fs::read(dir.join(&format!("d{case}.cdb"))).unwrap();
            let ob = std::fs::read(dir.join(&format!("o{case}.cdb"))).unwrap();
            assert_eq!(db, ob, "{text:?}");
        } else if !d.status.success() {
            let extension =
                line.contains(&b'\r') || line.iter().filter(|&&c| c == b':').count() > 1;
            if !extension {
                assert_eq!(o.status.code(), Some(100), "{text:?}: {}", show(&o));
                assert_eq!(first_line(&d.stderr), first_line(&o.stderr), "{text:?}");
            }
        }
    }
    assert!(
        accepted > 50,
        "only {accepted} lines accepted: the generator is too weak"
    );
}

#[test]
fn crlf_files_compile_like_lf_files() {
    let dir = TempDir::new("crlf");
    let lf = EVERY_FORM.as_bytes();
    let crlf = EVERY_FORM.replace('\n', "\r\n");
    assert!(tcprules(&djb("tcprules"), &dir, "d", lf).status.success());
    let o = tcprules(&ours("tcprules"), &dir, "o", crlf.as_bytes());
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        std::fs::read(dir.join("d.cdb")).unwrap(),
        std::fs::read(dir.join("o.cdb")).unwrap()
    );
}

/// Runs tcprulescheck with the client in the environment.
fn check(
    bin: &Path,
    cdb: &Path,
    ip: Option<&str>,
    host: Option<&str>,
    info: Option<&str>,
) -> Output {
    let mut env: Vec<(&str, &OsStr)> = Vec::new();
    if let Some(v) = ip {
        env.push(("TCPREMOTEIP", OsStr::new(v)));
    }
    if let Some(v) = host {
        env.push(("TCPREMOTEHOST", OsStr::new(v)));
    }
    if let Some(v) = info {
        env.push(("TCPREMOTEINFO", OsStr::new(v)));
    }
    run(bin, &[cdb.as_os_str()], &env, b"")
}

#[test]
fn tcprulescheck_agrees_with_djb_on_random_clients() {
    let dir = TempDir::new("check");
    assert!(
        tcprules(&djb("tcprules"), &dir, "djb", EVERY_FORM.as_bytes())
            .status
            .success()
    );
    assert!(
        tcprules(&ours("tcprules"), &dir, "ours", EVERY_FORM.as_bytes())
            .status
            .success()
    );
    let ips = [
        "1.2.3.4",
        "1.2.3.5",
        "1.2.3.6",
        "1.2.3.9",
        " 1.2.3.9",
        "1.2.3.10",
        "1.2.3.77",
        "1.2.51.1",
        "1.2.9.9",
        "1.9.9.9",
        "10.0.0.1",
        "10.3.1.1",
        "10.6.0.0",
        "127.0.0.1",
        "8.8.8.255",
        "9.9.9.250",
        "0",
        "1",
        "2",
        "7.7.7.1",
        "",
        "0.0.0.0",
        "1.2.3",
        "1.2.3.",
        "x.y",
    ];
    let hosts = [
        "host.example.com",
        "a.example.com",
        "example.com",
        "b.com",
        "org",
        "",
        "x.y.z",
    ];
    let infos = ["joe", "bob", "", "eve"];
    let mut r = Rng(7);
    let mut n_rules = std::collections::BTreeSet::new();
    for _ in 0..600 {
        let ip = if r.below(20) == 0 {
            None
        } else if r.below(4) == 0 {
            Some(format!(
                "{}.{}.{}.{}",
                r.below(12),
                r.below(12),
                r.below(60),
                r.below(120)
            ))
        } else {
            Some(r.pick(&ips).to_string())
        };
        let host = (r.below(2) == 0).then(|| r.pick(&hosts).to_string());
        let info = (r.below(3) == 0).then(|| r.pick(&infos).to_string());
        let mut outs = Vec::new();
        for bin in [djb("tcprulescheck"), ours("tcprulescheck")] {
            for cdb in ["djb.cdb", "ours.cdb"] {
                let o = check(
                    &bin,
                    &dir.join(cdb),
                    ip.as_deref(),
                    host.as_deref(),
                    info.as_deref(),
                );
                assert_eq!(o.status.code(), Some(0), "{}", show(&o));
                outs.push(o.stdout);
            }
        }
        assert!(
            outs.iter().all(|o| *o == outs[0]),
            "{ip:?} {host:?} {info:?}: {:?}",
            outs.iter()
                .map(|o| String::from_utf8_lossy(o).into_owned())
                .collect::<Vec<_>>()
        );
        n_rules.insert(first_line(&outs[0]).to_vec());
    }
    assert!(
        n_rules.len() > 15,
        "the clients exercised only {} rules",
        n_rules.len()
    );
}

#[test]
fn ipv6_and_cidr_rules() {
    let dir = TempDir::new("v6");
    let rules = "::1:allow,LOOP=\"v6\"
2001:db8::1:deny
2001:DB8:0:0:0:0:0:2:allow,SPELLING=\"any\"
joe@2001:db8::3:allow,INFO=\"joe\"
2001:db8:abcd::/48:allow,NET48=\"y\"
2001:db8::/32:allow,NET32=\"y\",URL=\"http://x:8080/\"
10.0.0.0/8:allow,TEN=\"y\"
10.1.0.0/16:deny
192.168.1.128/25:allow,HALF=\"upper\"
192.168.1.:allow,CLASS=\"c\"
:allow,DEFAULT=\"1\"
";
    let o = tcprules(&ours("tcprules"), &dir, "r", rules.as_bytes());
    assert!(o.status.success(), "{}", show(&o));
    let cdb = dir.join("r.cdb");
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("::1", None, "rule 0000:0000:0000:0000:0000:0000:0000:0001:\nset environment variable LOOP=v6\nallow connection\n"),
        ("2001:db8::1", None, "rule 2001:0DB8:0000:0000:0000:0000:0000:0001:\ndeny connection\n"),
        ("2001:db8::2", None, "rule 2001:0DB8:0000:0000:0000:0000:0000:0002:\nset environment variable SPELLING=any\nallow connection\n"),
        ("2001:db8::3", Some("joe"), "rule joe@2001:0DB8:0000:0000:0000:0000:0000:0003:\nset environment variable INFO=joe\nallow connection\n"),
        ("2001:db8:abcd:1::9", None, "set environment variable NET48=y\n"),
        ("2001:db8:ffff::9", None, "set environment variable NET32=y\nset environment variable URL=http://x:8080/\n"),
        ("2001:db9::1", None, "set environment variable DEFAULT=1\n"),
        ("10.2.3.4", None, "set environment variable TEN=y\n"),
        ("10.1.3.4", None, "deny connection\n"),
        ("192.168.1.200", None, "rule 192.168.1.:\nset environment variable CLASS=c\n"),
        ("192.168.2.200", None, "set environment variable DEFAULT=1\n"),
    ];
    for (ip, info, want) in cases {
        let o = check(&ours("tcprulescheck"), &cdb, Some(ip), None, *info);
        let got = String::from_utf8_lossy(&o.stdout);
        assert!(got.contains(want), "{ip}: got {got:?}, want {want:?}");
    }
    // The class-style prefix (step 5) comes before CIDR (step 6), as in ucspi-tcp6.
    let o = check(
        &ours("tcprulescheck"),
        &cdb,
        Some("192.168.1.129"),
        None,
        None,
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("CLASS=c"));
}

#[test]
fn ipv6_cdbs_from_fefes_tcprules_still_match() {
    // fefe's tcprules stores IPv6 keys as written and spins on some bad lines: bound it.
    let dir = TempDir::new("fefe");
    let rules = "::1:allow,A=\"loop\"
2001:db8::1:deny
2001:db8::allow,P=\"prefix\"
joe@::1:allow,J=\"j\"
1.2.3.:allow,Q=\"q\"
=.example.com:allow,H=\"h\"
:allow,DEF=\"1\"
";
    let o = tcprules(&fefe("tcprules"), &dir, "f", rules.as_bytes());
    assert!(o.status.success(), "{}", show(&o));
    let cdb = dir.join("f.cdb");
    for ip in [
        "::1",
        "2001:db8::1",
        "2001:db8::5",
        "2001:db8:0:1::5",
        "1.2.3.4",
        "2001:db9::1",
        "fe80::1",
    ] {
        for (host, info) in [
            (None, None),
            (Some("a.example.com"), None),
            (None, Some("joe")),
        ] {
            let f = check(&fefe("tcprulescheck"), &cdb, Some(ip), host, info);
            let o = check(&ours("tcprulescheck"), &cdb, Some(ip), host, info);
            assert_eq!(
                f.stdout,
                o.stdout,
                "{ip} {host:?} {info:?}\n{}\n{}",
                show(&f),
                show(&o)
            );
        }
    }
}

#[test]
fn bad_line_deep_in_a_large_file_keeps_the_old_cdb() {
    let dir = TempDir::new("deep");
    assert!(
        tcprules(&ours("tcprules"), &dir, "r", b"1.2.3.4:deny\n:allow\n")
            .status
            .success()
    );
    let before = std::fs::read(dir.join("r.cdb")).unwrap();
    let mut input = generated(1, 49_999);
    if input.last() != Some(&b'\n') {
        input.push(b'\n');
    }
    input.extend_from_slice(b"1.2.3.4:allow,BROKEN=\"\n");
    input.extend_from_slice(&generated(2, 10_000));
    let o = tcprules(&ours("tcprules"), &dir, "r", &input);
    assert_eq!(o.status.code(), Some(100), "{}", show(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "tcprules: fatal: unable to parse this line: 1.2.3.4:allow,BROKEN=\"\ntcprules: fatal: that is line 50000 of the input\n"
    );
    assert_eq!(std::fs::read(dir.join("r.cdb")).unwrap(), before);
}

#[test]
fn sigkill_at_random_moments_never_damages_the_old_cdb() {
    let dir = TempDir::new("kill");
    assert!(
        tcprules(&ours("tcprules"), &dir, "r", EVERY_FORM.as_bytes())
            .status
            .success()
    );
    let before = std::fs::read(dir.join("r.cdb")).unwrap();
    let input_path = dir.join("big.txt");
    std::fs::write(&input_path, generated(3, 100_000)).unwrap();
    // How long a full run takes here, to spread the kills over it.
    let t = std::time::Instant::now();
    let o = Command::new(ours("tcprules"))
        .args([dir.join("probe.cdb"), dir.join("probe.tmp")])
        .stdin(std::fs::File::open(&input_path).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success());
    let full = t.elapsed().as_micros().max(1000) as u64;
    let mut r = Rng(99);
    let mut killed_midway = 0;
    for _ in 0..100 {
        let mut child = Command::new(ours("tcprules"))
            .args([dir.join("r.cdb"), dir.join("r.tmp")])
            .stdin(std::fs::File::open(&input_path).unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(r.below(full * 9 / 10)));
        if child.try_wait().unwrap().is_none() {
            killed_midway += 1;
        }
        child.kill().unwrap_or(());
        let status = child.wait().unwrap();
        let now = std::fs::read(dir.join("r.cdb")).unwrap();
        if status.success() {
            // It finished before the kill: then the cdb is the new one, complete.
            assert_eq!(now, std::fs::read(dir.join("probe.cdb")).unwrap());
            std::fs::write(dir.join("r.cdb"), &before).unwrap();
        } else {
            assert_eq!(now, before, "a killed tcprules changed rules.cdb");
        }
    }
    assert!(
        killed_midway >= 80,
        "only {killed_midway} of 100 kills landed mid-run"
    );
}

#[test]
fn corrupt_cdbs_are_errors_never_crashes() {
    let dir = TempDir::new("corrupt");
    assert!(
        tcprules(&ours("tcprules"), &dir, "r", EVERY_FORM.as_bytes())
            .status
            .success()
    );
    let good = std::fs::read(dir.join("r.cdb")).unwrap();
    let bad = dir.join("bad.cdb");
    let mut r = Rng(5);
    let mut errors = 0;
    for i in 0..200 {
        let mut b = good.clone();
        match i % 3 {
            0 => b.truncate(r.below(good.len() as u64) as usize),
            1 => {
                for _ in 0..8 {
                    let at = r.below(b.len() as u64) as usize;
                    b[at] = r.next() as u8;
                }
            }
            _ => b = (0..r.below(5000)).map(|_| r.next() as u8).collect(),
        }
        std::fs::write(&bad, &b).unwrap();
        let o = check(
            &ours("tcprulescheck"),
            &bad,
            Some("1.2.3.77"),
            Some("a.example.com"),
            Some("joe"),
        );
        match o.status.code() {
            Some(0) => {}
            Some(111) => {
                errors += 1;
                assert_eq!(
                    o.stderr,
                    format!(
                        "tcprulescheck: fatal: unable to read {}: protocol error\n",
                        bad.display()
                    )
                    .as_bytes()
                );
            }
            other => panic!("exit {other:?} on corrupt cdb: {}", show(&o)),
        }
    }
    assert!(
        errors > 50,
        "only {errors} of 200 corrupt files were reported"
    );
    // Empty and short files: the same error, in the same words, as djb's.
    for len in [0, 1, 100, 2047] {
        std::fs::write(&bad, &good[..len]).unwrap();
        let d = check(&djb("tcprulescheck"), &bad, Some("1.2.3.4"), None, None);
        let o = check(&ours("tcprulescheck"), &bad, Some("1.2.3.4"), None, None);
        assert_eq!(
            (d.status.code(), &d.stdout, &d.stderr),
            (o.status.code(), &o.stdout, &o.stderr),
            "{len} bytes"
        );
    }
}

#[test]
fn cidr_lines_differ_from_djb_on_purpose() {
    // djb stores `10.0.0.0/8` as a literal key no client address can equal; ours encodes
    // the prefix (ucspi-tcp6's `_` bit string), so it matches the network.
    let dir = TempDir::new("cidr-diff");
    let rules = b"10.0.0.0/8:allow,NET=\"ten\"\n:allow,DEFAULT=\"1\"\n";
    assert!(tcprules(&djb("tcprules"), &dir, "d", rules)
        .status
        .success());
    assert!(tcprules(&ours("tcprules"), &dir, "o", rules)
        .status
        .success());
    let d = check(
        &djb("tcprulescheck"),
        &dir.join("d.cdb"),
        Some("10.1.2.3"),
        None,
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&d.stdout),
        "rule :\nset environment variable DEFAULT=1\nallow connection\n"
    );
    let d = check(
        &djb("tcprulescheck"),
        &dir.join("d.cdb"),
        Some("10.0.0.0/8"),
        None,
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&d.stdout),
        "rule 10.0.0.0/8:\nset environment variable NET=ten\nallow connection\n"
    );
    let o = check(
        &ours("tcprulescheck"),
        &dir.join("o.cdb"),
        Some("10.1.2.3"),
        None,
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "rule _0000e0g0:\nset environment variable NET=ten\nallow connection\n"
    );
    // An address with `/` that is not a valid CIDR: djb keeps the literal, ours refuses
    // the line with djb's own message rather than store a key that never matches.
    for bad in ["10.0.0.0/33", "10.0.0/8", "10.0.0.0/", "a/8"] {
        let line = format!("{bad}:deny\n");
        assert!(
            tcprules(&djb("tcprules"), &dir, "d", line.as_bytes())
                .status
                .success(),
            "{bad}"
        );
        let o = tcprules(&ours("tcprules"), &dir, "o", line.as_bytes());
        assert_eq!(o.status.code(), Some(100), "{bad}: {}", show(&o));
        assert_eq!(
            first_line(&o.stderr),
            format!("tcprules: fatal: unable to parse this line: {bad}:deny").as_bytes()
        );
    }
}
