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

fuzz_target!(|buf: &[u8]| {
    let Ok(text) = std::str::from_utf8(buf) else {
        return;
    };
    for (parser, _, passwords) in errors(text) {
        for p in &passwords {
            let p = p.as_str();
            // A password that is also another field's text (a user named as it) may be
            // named as that: only one that occurs once is followed.
            if p.is_empty() || text.matches(p).count() != 1 || text.contains(MARKER) {
                continue;
            }
            let marked = text.replace(p, MARKER);
            for (_, e, _) in errors(&marked).into_iter().filter(|e| e.0 == parser) {
                assert!(
                    !e.contains(MARKER),
                    "the error {e:?} shows the password of {marked:?}"
                );
            }
        }
    }
});

/// Each parser's error on `text` (the parser numbered), with the password fields the text
/// had for it.
fn errors(text: &str) -> Vec<(u8, String, Vec<String>)> {
    let mut out = Vec::new();
    let mut s = Settings::default();
    let applied = s.apply_file("checkpassword.conf", text);
    if let Err(e) = &applied {
        // The URLs of the file: `db` values, and lines that are a URL alone (its `db =`
        // forgotten).
        let mut passwords = Vec::new();
        for line in text.lines().map(str::trim) {
            let url = match line.split_once('=') {
                Some((k, v)) if k.trim() == "db" => v.trim(),
                _ => line,
            };
            passwords.extend(url_passwords(url));
        }
        out.push((0, e.clone(), passwords));
    }
    let url = match (&applied, &s.db) {
        (Ok(()), Some(db)) => db.trim(),
        _ => text,
    };
    if let Err(e) = parse_url(url) {
        out.push((1, e, url_passwords(url)));
    }
    if let Err(e) = parse_vpopmail_mysql(text) {
        let fourth = text
            .lines()
            .filter_map(|l| l.split('|').nth(3))
            .map(str::to_string)
            .collect();
        out.push((2, e, fourth));
    }
    out
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
