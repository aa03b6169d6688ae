//! Looking a client up in a rules cdb, in djb's order with ucspi-tcp6's IPv6 and CIDR
//! steps slotted in where ucspi-tcp6 puts them:
//!
//! 1. `info@ip` (info known; for IPv6 the full form, then the text as given)
//! 2. `info@=host` (info and host known)
//! 3. `ip` (IPv6: full form, then the text as given, which fefe's tcprules stores)
//! 4. `=host`
//! 5. prefixes of the ip text, longest first, ending in `.` (IPv6 also `:`)
//! 6. CIDR bit strings, longest first (`_` IPv4, `^` IPv6)
//! 7. `=` + each suffix of host that starts with a dot, longest first
//! 8. `=` (host known)
//! 9. the empty key
//!
//! The first key present decides; its data is returned untouched.

use std::io;

use crate::addr;
use crate::cdb::{self, Cdb};

/// What is known about the client.
#[derive(Clone, Copy, Debug)]
pub struct Client<'a> {
    /// The address text as tcpserver sets `TCPREMOTEIP` (dotted quad, or compressed IPv6).
    pub ip: &'a [u8],
    pub host: Option<&'a [u8]>,
    pub info: Option<&'a [u8]>,
}

/// Finds the rule for `client`. On success `key` holds the key that matched (or is empty
/// for no match, which djb treats as allow with no settings).
pub fn lookup<'c>(
    db: &Cdb<'c>,
    client: &Client<'_>,
    key: &mut Vec<u8>,
) -> io::Result<Option<&'c [u8]>> {
    let ip = client.ip;
    let v6 = if ip.contains(&b':') {
        addr::parse_v6(ip)
    } else {
        None
    };
    let probe = |key: &[u8]| db.find(key);

    macro_rules! try_key {
        ($($part:expr),*) => {{
            key.clear();
            $(key.extend_from_slice($part);)*
            if let Some(d) = probe(key)? {
                return Ok(Some(d));
            }
        }};
    }

    let mut full = Vec::new();
    if let Some(v) = v6 {
        addr::v6_full(v, &mut full);
    }

    if let Some(info) = client.info {
        if v6.is_some() {
            try_key!(info, b"@", &full);
        }
        try_key!(info, b"@", ip);
        if let Some(host) = client.host {
            try_key!(info, b"@=", host);
        }
    }
    if v6.is_some() {
        try_key!(&full);
    }
    try_key!(ip);
    if let Some(host) = client.host {
        try_key!(b"=", host);
    }
    for n in (1..=ip.len()).rev() {
        let c = ip[n - 1];
        if c == b'.' || (v6.is_some() && c == b':') {
            try_key!(&ip[..n]);
        }
    }
    if let Some(d) = cidr(db, ip, v6, key)? {
        return Ok(Some(d));
    }
    if let Some(host) = client.host {
        for (i, &c) in host.iter().enumerate() {
            if c == b'.' {
                try_key!(b"=", &host[i..]);
            }
        }
        try_key!(b"=");
    }
    try_key!(b"");
    key.clear();
    Ok(None)
}

/// Step 6. The keys of all prefix lengths share their start, so their hashes are built in
/// one pass and each probe costs a table lookup, not a hash of up to 129 bytes.
fn cidr<'c>(
    db: &Cdb<'c>,
    ip: &[u8],
    v6: Option<std::net::Ipv6Addr>,
    key: &mut Vec<u8>,
) -> io::Result<Option<&'c [u8]>> {
    key.clear();
    if let Some(v) = v6 {
        key.push(b'^');
        addr::v6_bits(v.into(), key);
    } else if let Some(v) = addr::parse_v4_strict(ip) {
        key.push(b'_');
        addr::v4_bits(v.into(), key);
    } else {
        return Ok(None);
    }
    let mut hashes = [0u32; 129];
    let mut h = cdb::hash(&key[..1]);
    for (i, &c) in key[1..].iter().enumerate() {
        h = (h.wrapping_shl(5).wrapping_add(h)) ^ u32::from(c);
        hashes[i + 1] = h;
    }
    for n in (1..key.len()).rev() {
        if let Some(d) = db.find_hashed(&key[..=n], hashes[n])? {
            key.truncate(n + 1);
            return Ok(Some(d));
        }
    }
    Ok(None)
}

/// One item of a rule's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// `D`: deny the connection.
    Deny,
    /// `+NAME=value` as stored, without the `+` (tcprulescheck prints it whole; tcpserver
    /// sets it only when it holds an `=`).
    Set(&'a [u8]),
}

/// The items of a rule's data in stored order; unknown items and a last item without
/// its NUL are skipped, as djb's readers do.
pub fn items(mut data: &[u8]) -> impl Iterator<Item = Item<'_>> {
    std::iter::from_fn(move || loop {
        let end = data.iter().position(|&c| c == 0)?;
        let item = &data[..end];
        data = &data[end + 1..];
        match item.first() {
            Some(b'D') => return Some(Item::Deny),
            Some(b'+') => return Some(Item::Set(&item[1..])),
            _ => continue,
        }
    })
}

/// Splits a `Set` item into name and value the way tcpserver does (at the first `=`).
pub fn split_setting(item: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = item.iter().position(|&c| c == b'=')?;
    Some((&item[..eq], &item[eq + 1..]))
}
