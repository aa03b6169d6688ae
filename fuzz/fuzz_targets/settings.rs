//! The configuration's parsers on any text: `Settings::apply_file` (the config file), and
//! `target::parse_url` on its `db` value (or on the whole input when it sets none) and
//! `target::parse_vpopmail_mysql` on the whole input. No panic, and no error message
//! shows a password: when the input has a password field (a URL's `user:PASSWORD@`, its
//! `password=` parameter, a vpopmail.mysql line's fourth field) whose text occurs once in
//! it, the errors for the input with that text replaced by a marker do not contain the
//! marker (the password's own text could be part of any message's wording).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpopdb::config::Settings;
use vpopdb::target::{parse_url, parse_vpopmail_mysql};

/// Put in place of a password found in the input: plain characters every field takes.
const MARKER: &str = "Pw7Mark0";

/// The parsers, numbered as [`error_of`] takes them.
const PARSERS: [u8; 3] = [0, 1, 2];

fuzz_target!(|buf: &[u8]| {
    let Ok(text) = std::str::from_utf8(buf) else {
        return;
    };
    if text.contains(MARKER) {
        return;
    }
    for parser in PARSERS {
        let Some((_, passwords)) = error_of(parser, text) else {
            continue;
        };
        for p in &passwords {
            let p = p.as_str();
            // A password that is also another field's text (a user named as it) may be
            // named as that: only one that occurs once is followed.
            if p.is_empty() || text.matches(p).count() != 1 {
                continue;
            }
            let marked = text.replace(p, MARKER);
            if let Some((e, _)) = error_of(parser, &marked) {
                assert!(
                    !e.contains(MARKER),
                    "the error {e:?} shows the password of {marked:?}"
                );
            }
        }
    }
});

/// Parser `parser`'s error on `text` (0: the config file, 1: its `db` URL, or the whole
/// text as a URL, 2: vpopmail.mysql), with the password fields the text had for it; each
/// parser alone, so that following a password reparses only the one that erred.
fn error_of(parser: u8, text: &str) -> Option<(String, Vec<String>)> {
    let mut s = Settings::default();
    let applied = if parser < 2 {
        s.apply_file("checkpassword.conf", text)
    } else {
        Ok(())
    };
    match parser {
        0 => {
            let e = applied.err()?;
            // The URLs of the file: `db` values, and lines that are a URL alone (its
            // `db =` forgotten).
            let mut passwords = Vec::new();
            for line in text.lines().map(str::trim) {
                let url = match line.split_once('=') {
                    Some((k, v)) if k.trim() == "db" => v.trim(),
                    _ => line,
                };
                passwords.extend(url_passwords(url));
            }
            Some((e, passwords))
        }
        1 => {
            let url = match (&applied, &s.db) {
                (Ok(()), Some(db)) => db.trim(),
                _ => text,
            };
            let e = parse_url(url).err()?;
            Some((e, url_passwords(url)))
        }
        _ => {
            let e = parse_vpopmail_mysql(text).err()?;
            let fourth = text
                .lines()
                .filter_map(|l| l.split('|').nth(3))
                .map(str::to_string)
                .collect();
            Some((e, fourth))
        }
    }
}

/// A MySQL or PostgreSQL URL's password fields, split as the parser does: the
/// authority's `user:PASSWORD@`, and `password=` parameters.
fn url_passwords(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(rest) = ["mysql://", "postgres://", "postgresql://"]
        .iter()
        .find_map(|s| url.strip_prefix(s))
    else {
        return out;
    };
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = main.split_once('/').map_or(main, |(a, _)| a);
    if let Some((auth, _)) = authority.rsplit_once('@') {
        if let Some((_, pass)) = auth.split_once(':') {
            out.push(pass.to_string());
        }
    }
    for kv in query.split('&') {
        if let Some(("password", v)) = kv.split_once('=') {
            out.push(v.to_string());
        }
    }
    out
}
