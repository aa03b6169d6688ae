//! Which service a login is for (vchkpw's rules) and whether the user's flags deny it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Pop,
    Imap,
    Smtp,
    Webmail,
}

use vpopdb::flags_quota::{NO_IMAP, NO_POP, NO_SMTP, NO_WEBMAIL};

impl Service {
    /// The service's name in an app password's scope (one of
    /// `vpopdb::app_passwords::SERVICES`).
    pub fn scope_name(self) -> &'static str {
        match self {
            Service::Pop => "pop",
            Service::Imap => "imap",
            Service::Smtp => "smtp",
            Service::Webmail => "webmail",
        }
    }
}

/// The service and the name vchkpw logs it under (`vchkpw-pop3`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub service: Service,
    pub logname: String,
}

/// vchkpw's detection: Dovecot's `SERVICE` when present, else `TCPLOCALPORT`, else
/// `argv[1]` (`true` means SMTP, `imap` IMAP, anything else POP); a POP or IMAP login from
/// 127.0.0.1 counts as webmail.
pub fn detect(
    dovecot_service: Option<&str>,
    local_port: Option<&str>,
    prog: &[u8],
    remote_ip: &str,
) -> Detected {
    let by_port = |p: &str| -> Option<(Service, &'static str)> {
        Some(match p {
            "25" => (Service::Smtp, "smtp"),
            "465" => (Service::Smtp, "smtps"),
            "587" => (Service::Smtp, "submission"),
            "110" => (Service::Pop, "pop3"),
            "995" => (Service::Pop, "pop3s"),
            "143" => (Service::Imap, "imap"),
            "993" => (Service::Imap, "imaps"),
            _ => return None,
        })
    };
    let from_dovecot = dovecot_service.and_then(|s| match s {
        "imap" | "sieve" | "managesieve" => Some((Service::Imap, "imap")),
        "pop3" => Some((Service::Pop, "pop3")),
        "smtp" | "submission" | "lmtp" => Some((Service::Smtp, "smtp")),
        _ => None,
    });
    let contains = |needle: &[u8]| prog.windows(needle.len()).any(|w| w == needle);
    let guess = if contains(b"true") {
        Service::Smtp
    } else if contains(b"imap") {
        Service::Imap
    } else {
        Service::Pop
    };
    let (service, logname) = if let Some((s, n)) = from_dovecot {
        (s, n.to_string())
    } else {
        match local_port {
            Some(p) => match by_port(p) {
                Some((s, n)) => (s, n.to_string()),
                None => (guess, sanitize_port(p)),
            },
            None => (
                guess,
                match guess {
                    Service::Smtp => "smtp",
                    Service::Imap => "imap",
                    _ => "pop3",
                }
                .to_string(),
            ),
        }
    };
    let service = if matches!(service, Service::Pop | Service::Imap) && remote_ip == "127.0.0.1" {
        Service::Webmail
    } else {
        service
    };
    let logname = if service == Service::Webmail {
        "webmail".to_string()
    } else {
        logname
    };
    Detected {
        service,
        logname: format!("vchkpw-{logname}"),
    }
}

fn sanitize_port(p: &str) -> String {
    p.chars()
        .take(8)
        .map(|c| if c.is_ascii_digit() { c } else { '_' })
        .collect()
}

/// The log text when `flags` deny `service`, as vchkpw words it.
pub fn denied(service: Service, flags: i64) -> Option<&'static str> {
    let (bit, text) = match service {
        Service::Pop => (NO_POP, "pop access denied"),
        Service::Imap => (NO_IMAP, "imap access denied"),
        Service::Smtp => (NO_SMTP, "smtp access denied"),
        Service::Webmail => (NO_WEBMAIL, "webmail access denied"),
    };
    (flags & bit != 0).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_are_app_password_services() {
        let all = [Service::Pop, Service::Imap, Service::Smtp, Service::Webmail];
        let names: Vec<&str> = all.iter().map(|s| s.scope_name()).collect();
        assert_eq!(names, vpopdb::app_passwords::SERVICES);
    }

    #[test]
    fn vchkpw_rules() {
        let d = detect(None, Some("587"), b"/bin/true", "192.0.2.1");
        assert_eq!(
            (d.service, d.logname.as_str()),
            (Service::Smtp, "vchkpw-submission")
        );
        let d = detect(None, Some("110"), b"/bin/true", "192.0.2.1");
        assert_eq!(d.service, Service::Pop);
        let d = detect(None, Some("2525"), b"/bin/true", "192.0.2.1");
        assert_eq!(
            (d.service, d.logname.as_str()),
            (Service::Smtp, "vchkpw-2525")
        );
        let d = detect(None, Some("1143"), b"imapd", "192.0.2.1");
        assert_eq!(d.service, Service::Imap);
        let d = detect(None, None, b"qmail-pop3d", "127.0.0.1");
        assert_eq!(
            (d.service, d.logname.as_str()),
            (Service::Webmail, "vchkpw-webmail")
        );
        let d = detect(Some("imap"), Some("110"), b"x", "192.0.2.1");
        assert_eq!(d.service, Service::Imap);
        assert_eq!(denied(Service::Pop, NO_POP), Some("pop access denied"));
        assert_eq!(denied(Service::Pop, NO_IMAP | NO_SMTP), None);
        assert_eq!(denied(Service::Smtp, NO_SMTP), Some("smtp access denied"));
    }
}
