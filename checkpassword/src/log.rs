//! One line per attempt on stderr (tcpserver's log), in vchkpw's shape so that existing
//! fail2ban filters keep matching: `checkpassword: vchkpw-pop3: password fail
//! alice@example.com:192.0.2.7`. Never a password, digest or challenge.

/// A name as it may appear in a log line: `%` becomes `#` (as vchkpw does) and control
/// or non-ASCII bytes become `?`, so a login cannot forge log lines.
pub fn clean(b: &[u8]) -> String {
    b.iter()
        .take(200)
        .map(|&c| match c {
            b'%' => '#',
            0x21..=0x7e => c as char,
            _ => '?',
        })
        .collect()
}

pub fn attempt(logname: &str, text: &str, user: &[u8], domain: &str, ip: &str) {
    let who = if domain.is_empty() {
        clean(user)
    } else {
        format!("{}@{}", clean(user), clean(domain.as_bytes()))
    };
    let line = format!(
        "checkpassword: {logname}: {text} {who}:{}",
        clean(ip.as_bytes())
    );
    ucspi::msg::write_line(&[line.as_bytes()]);
}

pub fn fatal(text: &str) {
    let line = format!("checkpassword: fatal: {}", clean_text(text));
    ucspi::msg::write_line(&[line.as_bytes()]);
}

pub fn warn(text: &str) {
    let line = format!("checkpassword: warning: {}", clean_text(text));
    ucspi::msg::write_line(&[line.as_bytes()]);
}

fn clean_text(t: &str) -> String {
    t.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_forged_lines() {
        assert_eq!(super::clean(b"a\nb%c d\xff"), "a?b#c?d?");
    }
}
