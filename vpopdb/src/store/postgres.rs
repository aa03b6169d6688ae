//! PostgreSQL: protocol 3.0 spoken directly, over a unix socket, TCP or TLS on TCP
//! (libpq's `sslmode`, negotiated with an SSLRequest).
//!
//! What a login and the account tool need: trust, password, md5 and
//! SCRAM-SHA-256 authentication (the server's signature checked; over TLS
//! SCRAM-SHA-256-PLUS, bound to the server's certificate, as libpq's
//! `channel_binding=prefer`);
//! the extended query protocol with every value a bound parameter, results in text
//! form; Terminate.
//!
//! Why not the `postgres` crate: it runs a tokio runtime inside each connection, an async
//! runtime in the per-login path, and a PostgreSQL login through it cost 1.5 times a C
//! MariaDB client's.

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::wire::Wire;
use super::{tls, Conn, DbError, Kind, Row, Val};
use crate::target::{PgTarget, SslMode};

const PROTOCOL_3: i32 = 196_608;
/// The SSLRequest: its length, 8, and the code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/// A row or message may not make us hold more than this.
const MAX_MESSAGE: usize = 64 << 20;
/// What one value of a result row holds beyond its bytes on the wire and its column's
/// name (a copy in each row): its slot in the row.
const VALUE_COST: usize = size_of::<(String, Val)>();

const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const NAME: u32 = 19;
const BPCHAR: u32 = 1042;
const VARCHAR: u32 = 1043;

/// SQLSTATE undefined_table.
const UNDEFINED_TABLE: &str = "42P01";

fn server_error(body: &[u8]) -> DbError {
    let (mut code, mut msg) = (String::new(), String::new());
    for f in body.split(|&b| b == 0) {
        match f.split_first() {
            Some((b'C', v)) => code = String::from_utf8_lossy(v).into_owned(),
            Some((b'M', v)) => msg = String::from_utf8_lossy(v).into_owned(),
            _ => {}
        }
    }
    if code == UNDEFINED_TABLE {
        return DbError::NoTable;
    }
    DbError::Other(format!("{msg} ({code})"))
}

fn proto(what: &str) -> DbError {
    DbError::Other(format!("protocol error from the server: {what}"))
}

fn msg(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
}

fn be16(b: &[u8]) -> Result<i16, DbError> {
    b.get(..2)
        .map(|x| i16::from_be_bytes([x[0], x[1]]))
        .ok_or_else(|| proto("short message"))
}

fn be32(b: &[u8]) -> Result<i32, DbError> {
    b.get(..4)
        .map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
        .ok_or_else(|| proto("short message"))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// SCRAM's Hi(): PBKDF2 with HMAC-SHA-256.
fn salted_password(pw: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(pw, &first);
    let mut out = Zeroizing::new(u);
    for _ in 1..iterations {
        u = hmac(pw, &u);
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

/// The client's side of SCRAM-SHA-256 (RFC 5802, 7677), with or without channel
/// binding.
struct Scram {
    nonce: String,
    first_bare: String,
    /// The final message's `c=`: the GS2 header and the channel binding data, in base64.
    binding: String,
}

/// How a SCRAM exchange binds to the channel: its mechanism's name, the GS2 header, and
/// the data that goes with it.
struct Gs2 {
    mechanism: &'static str,
    header: &'static str,
    data: Vec<u8>,
}

impl Gs2 {
    /// `PLUS` over TLS when the server offers it and the certificate's hash is known;
    /// `y` over TLS when it does not offer it (a server that could, and sees this,
    /// knows someone took it out of the list); `n` otherwise.
    fn choose(offered: &[&[u8]], end_point: Option<Vec<u8>>) -> Option<Gs2> {
        let has = |m: &str| offered.contains(&m.as_bytes());
        let plain = |header| {
            has("SCRAM-SHA-256").then_some(Gs2 {
                mechanism: "SCRAM-SHA-256",
                header,
                data: Vec::new(),
            })
        };
        match end_point {
            Some(data) if has("SCRAM-SHA-256-PLUS") => Some(Gs2 {
                mechanism: "SCRAM-SHA-256-PLUS",
                header: "p=tls-server-end-point,,",
                data,
            }),
            Some(_) => plain("y,,"),
            None => plain("n,,"),
        }
    }
}

impl Scram {
    fn new(gs2: &Gs2) -> Result<Scram, DbError> {
        let mut r = [0u8; 18];
        // SAFETY: a writable buffer of the length passed.
        let n = unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) };
        if n != r.len() as isize {
            return Err(DbError::Other("no random bytes for the SCRAM nonce".into()));
        }
        let nonce = b64_encode(&r);
        let mut binding = gs2.header.as_bytes().to_vec();
        binding.extend_from_slice(&gs2.data);
        Ok(Scram {
            first_bare: format!("n=,r={nonce}"),
            nonce,
            binding: b64_encode(&binding),
        })
    }

    /// The client-final message for the server-first one, and the server signature that
    /// the server-final message must carry.
    fn finish(&self, pw: &[u8], server_first: &str) -> Result<(String, [u8; 32]), DbError> {
        let bad = || proto("bad SCRAM message");
        let (mut r, mut s, mut i) = (None, None, None);
        for part in server_first.split(',') {
            match part.split_at_checked(2) {
                Some(("r=", v)) => r = Some(v),
                Some(("s=", v)) => s = Some(v),
                Some(("i=", v)) => i = Some(v),
                _ => {}
            }
        }
        let (r, s, i) = (r.ok_or_else(bad)?, s.ok_or_else(bad)?, i.ok_or_else(bad)?);
        if !r.starts_with(&self.nonce) || r.len() == self.nonce.len() {
            return Err(bad());
        }
        let salt = b64_decode(s).ok_or_else(bad)?;
        let iterations: u32 = i.parse().map_err(|_| bad())?;
        // The server chooses the count: bound it so a rogue one cannot keep us busy.
        if !(1..=1_000_000).contains(&iterations) {
            return Err(bad());
        }
        let salted = salted_password(pw, &salt, iterations);
        let client_key = Zeroizing::new(hmac(&*salted, b"Client Key"));
        let stored_key: [u8; 32] = Sha256::digest(*client_key).into();
        let without_proof = format!("c={},r={r}", self.binding);
        let auth = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = hmac(&stored_key, auth.as_bytes());
        let mut proof = *client_key;
        for (p, x) in proof.iter_mut().zip(signature) {
            *p ^= x;
        }
        let server_key = hmac(&*salted, b"Server Key");
        Ok((
            format!("{without_proof},p={}", b64_encode(&proof)),
            hmac(&server_key, auth.as_bytes()),
        ))
    }
}

pub struct Postgres {
    w: Wire,
}

/// `?` placeholders become `$1`, `$2`, ... (our SQL has no `?` inside literals).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// One statement's Parse, Bind, Describe, Execute and Sync.
fn statement(out: &mut Vec<u8>, sql: &str, params: &[Val]) {
    let mut b = Vec::with_capacity(sql.len() + 16);
    b.push(0);
    b.extend_from_slice(numbered(sql).as_bytes());
    b.push(0);
    b.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for v in params {
        let oid = match v {
            Val::Null => 0,
            Val::Int(_) => INT8,
            Val::Text(_) => TEXT,
        };
        b.extend_from_slice(&oid.to_be_bytes());
    }
    msg(out, b'P', &b);
    b.clear();
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for v in params {
        let text;
        let bytes: Option<&[u8]> = match v {
            Val::Null => None,
            Val::Int(i) => {
                text = i.to_string();
                Some(text.as_bytes())
            }
            Val::Text(t) => Some(t),
        };
        match bytes {
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(x) => {
                b.extend_from_slice(&(x.len() as i32).to_be_bytes());
                b.extend_from_slice(x);
            }
        }
    }
    b.extend_from_slice(&0i16.to_be_bytes());
    msg(out, b'B', &b);
    msg(out, b'D', b"P\0");
    msg(out, b'E', &[0, 0, 0, 0, 0]);
    msg(out, b'S', b"");
}

fn value(oid: u32, v: &[u8]) -> Val {
    match oid {
        INT2 | INT4 | INT8 => std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Val::Null, Val::Int),
        TEXT | VARCHAR | NAME => Val::Text(v.to_vec()),
        // char(n) comes back blank-padded.
        BPCHAR => Val::Text(v.trim_ascii_end().to_vec()),
        // A column we do not read (ids, timestamps of a site's own schema).
        _ => Val::Null,
    }
}

impl Postgres {
    pub fn open(p: &PgTarget) -> Result<Self, DbError> {
        let socket = if p.host.is_empty() {
            // libpq's default: the local socket directory.
            let dirs = ["/var/run/postgresql", "/tmp"];
            let path = dirs
                .iter()
                .map(|d| format!("{d}/.s.PGSQL.{}", p.port))
                .find(|s| std::path::Path::new(s).exists())
                .unwrap_or_else(|| format!("{}/.s.PGSQL.{}", dirs[0], p.port));
            Some(path)
        } else if p.host.starts_with('/') {
            Some(format!("{}/.s.PGSQL.{}", p.host, p.port))
        } else {
            None
        };
        if let Some(path) = socket {
            // libpq ignores sslmode on a unix socket, and so do we.
            let mut c = Postgres {
                w: Wire::unix(&path)?,
            };
            c.startup(p)?;
            return Ok(c);
        }
        match p.tls.mode() {
            // libpq's allow: plain first, TLS (unverified) when that was refused.
            SslMode::Allow => Self::open_tcp(p, SslMode::Disable).or_else(|plain| {
                Self::open_tcp(p, SslMode::Require)
                    .map_err(|e| DbError::Other(format!("{plain}; again with TLS: {e}")))
            }),
            mode => Self::open_tcp(p, mode),
        }
    }

    fn open_tcp(p: &PgTarget, mode: SslMode) -> Result<Self, DbError> {
        Self::over_tcp(Wire::tcp(&p.host, p.port)?, p, mode)
    }

    /// TLS as `mode` asks, then the startup, on a TCP connection already made.
    pub(super) fn over_tcp(w: Wire, p: &PgTarget, mode: SslMode) -> Result<Self, DbError> {
        let mut c = Postgres { w };
        if mode != SslMode::Disable {
            c.negotiate_tls(p, mode)?;
        }
        c.startup(p)?;
        Ok(c)
    }

    /// The SSLRequest and the server's one-byte answer; the handshake after an `S`.
    fn negotiate_tls(&mut self, p: &PgTarget, mode: SslMode) -> Result<(), DbError> {
        let setup = tls::setup(&p.tls, mode, &p.host)?;
        self.w.write_all(&SSL_REQUEST)?;
        let mut a = [0u8; 1];
        self.w.read_exact(&mut a)?;
        match a[0] {
            b'S' => self.w.start_tls(&setup),
            b'N' if mode == SslMode::Prefer => Ok(()),
            b'N' => Err(DbError::Other(format!(
                "the server does not offer TLS (sslmode {})",
                mode.name()
            ))),
            // A server that cannot take us at all says why.
            b'E' => {
                let mut h = [b'E', 0, 0, 0, 0];
                self.w.read_exact(&mut h[1..])?;
                let body = self.body(&h)?;
                Err(server_error(&body))
            }
            _ => Err(proto("bad answer to the TLS request")),
        }
    }

    /// Reads one message: its type and body.
    fn read(&mut self) -> Result<(u8, Vec<u8>), DbError> {
        let mut h = [0u8; 5];
        self.w.read_exact(&mut h)?;
        Ok((h[0], self.body(&h)?))
    }

    /// The body of the message whose type and length are `h`.
    fn body(&mut self, h: &[u8; 5]) -> Result<Vec<u8>, DbError> {
        // The length counts itself: below 4 (negative too) it is no length.
        let n = be32(&h[1..])?
            .checked_sub(4)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| proto("bad length"))?;
        if n > MAX_MESSAGE {
            return Err(proto("message too large"));
        }
        // Not sized by the header before the bytes come: 5 bytes would cost 64 MiB.
        let mut body = Vec::new();
        self.w.read_append(&mut body, n)?;
        Ok(body)
    }

    fn startup(&mut self, p: &PgTarget) -> Result<(), DbError> {
        let mut body = Vec::with_capacity(64);
        body.extend_from_slice(&PROTOCOL_3.to_be_bytes());
        for (k, v) in [
            ("user", p.user.as_str()),
            ("database", p.dbname.as_str()),
            ("client_encoding", "UTF8"),
        ] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        self.w.write_all(&out)?;
        let mut scram = None;
        let end_point = self.w.peer_certificate().and_then(tls::end_point_hash);
        // A server asks for the password once (cleartext, MD5 or the start of SCRAM):
        // one that asks again would have the client answer for as long as it keeps
        // asking, each answer left for it to read or not.
        let mut asked = false;
        loop {
            let (t, body) = self.read()?;
            match t {
                b'E' => return Err(server_error(&body)),
                b'R' => {}
                b'Z' => return Ok(()),
                // Parameter status, backend key, notices.
                _ => continue,
            }
            if matches!(be32(&body)?, 3 | 5 | 10) {
                if asked {
                    return Err(proto("the server asked for the password again"));
                }
                asked = true;
            }
            if let Some(out) = auth_answer(p, &body, &mut scram, end_point.as_deref())? {
                self.w.write_all(&out)?;
            }
        }
    }

    /// Reads one statement's answers up to its ReadyForQuery: rows and the count from the
    /// command tag, or the server's error.
    fn answer(&mut self) -> Result<(Vec<Row>, u64), DbError> {
        let mut cols: Vec<(String, u32)> = Vec::new();
        let mut rows = Vec::new();
        let mut count = 0;
        let mut error = None;
        // What the answer holds, counted against MAX_MESSAGE: the columns, and for each
        // row its bytes and what its values hold beyond them.
        let mut held = 0usize;
        loop {
            let (t, body) = self.read()?;
            match t {
                b'Z' => break,
                b'E' => error = Some(server_error(&body)),
                b'T' => {
                    let n = be16(&body)?.max(0) as usize;
                    let mut b = &body[2..];
                    for _ in 0..n {
                        let end = b.iter().position(|&c| c == 0).ok_or_else(|| proto("T"))?;
                        let name = String::from_utf8_lossy(&b[..end]).into_owned();
                        let f = b.get(end + 1..end + 19).ok_or_else(|| proto("T"))?;
                        let oid = be32(&f[6..])? as u32;
                        held = held.saturating_add(size_of::<(String, u32)>() + name.len());
                        cols.push((name, oid));
                        b = &b[end + 19..];
                    }
                    if held > MAX_MESSAGE {
                        return Err(proto("result too large"));
                    }
                }
                b'D' => {
                    let n = be16(&body)?.max(0) as usize;
                    // The values this row can have: no more than the columns described,
                    // whatever count it announces.
                    let n = n.min(cols.len());
                    held = cols[..n]
                        .iter()
                        .fold(held, |a, (name, _)| {
                            a.saturating_add(VALUE_COST + name.len())
                        })
                        .saturating_add(body.len() + size_of::<Row>());
                    if held > MAX_MESSAGE {
                        return Err(proto("result too large"));
                    }
                    let mut b = &body[2..];
                    let mut row = Vec::with_capacity(n);
                    for (name, oid) in &cols[..n] {
                        let len = be32(b)?;
                        b = &b[4..];
                        let v = if len < 0 {
                            Val::Null
                        } else {
                            let l = len as usize;
                            let x = b.get(..l).ok_or_else(|| proto("D"))?;
                            b = &b[l..];
                            value(*oid, x)
                        };
                        row.push((name.clone(), v));
                    }
                    rows.push(Row(row));
                }
                b'C' => {
                    let tag = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body));
                    count = tag
                        .rsplit(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                }
                // Parse/Bind complete, NoData, notices, parameter status.
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok((rows, count)),
        }
    }

    fn round_trip(&mut self, sql: &str, params: &[Val]) -> Result<(Vec<Row>, u64), DbError> {
        let mut out = Vec::new();
        statement(&mut out, sql, params);
        self.w.write_all(&out)?;
        self.answer()
    }
}

/// SCRAM's state between the server's messages: our side, and the server signature its
/// final message must carry.
type ScramState = Option<(Scram, Option<[u8; 32]>)>;

/// Our answer to one authentication request of the server; none when it wants none.
/// `end_point`: over TLS, the hash of the server's certificate for channel binding.
fn auth_answer(
    p: &PgTarget,
    body: &[u8],
    scram: &mut ScramState,
    end_point: Option<&[u8]>,
) -> Result<Option<Vec<u8>>, DbError> {
    let pw = p.password.as_bytes();
    let code = be32(body)?;
    let data = &body[4..];
    let mut out = Vec::new();
    match code {
        0 => {
            if let Some((_, Some(_))) = scram {
                return Err(proto("SCRAM finished without the server's signature"));
            }
            return Ok(None);
        }
        3 => {
            let mut m = Zeroizing::new(pw.to_vec());
            m.push(0);
            msg(&mut out, b'p', &m);
        }
        5 => {
            let salt = data.get(..4).ok_or_else(|| proto("short md5 salt"))?;
            let mut m = md5_password(pw, p.user.as_bytes(), salt).into_bytes();
            m.push(0);
            msg(&mut out, b'p', &m);
        }
        10 => {
            let offered: Vec<&[u8]> = data.split(|&b| b == 0).collect();
            let Some(gs2) = Gs2::choose(&offered, end_point.map(<[u8]>::to_vec)) else {
                return Err(DbError::Other(
                    "the server offers no SCRAM-SHA-256 this client can use (SCRAM-SHA-256-PLUS \
                     needs TLS and a certificate signed with SHA-256, -384 or -512)"
                        .into(),
                ));
            };
            let s = Scram::new(&gs2)?;
            let first = format!("{}{}", gs2.header, s.first_bare);
            let mut m = format!("{}\0", gs2.mechanism).into_bytes();
            m.extend_from_slice(&(first.len() as i32).to_be_bytes());
            m.extend_from_slice(first.as_bytes());
            msg(&mut out, b'p', &m);
            *scram = Some((s, None));
        }
        11 => {
            let Some((s, expect @ None)) = scram.as_mut() else {
                return Err(proto("SCRAM message out of turn"));
            };
            let server_first = std::str::from_utf8(data).map_err(|_| proto("SCRAM"))?;
            let (fin, sig) = s.finish(pw, server_first)?;
            *expect = Some(sig);
            msg(&mut out, b'p', fin.as_bytes());
        }
        12 => {
            let Some((_, expect)) = scram.as_mut() else {
                return Err(proto("SCRAM message out of turn"));
            };
            let text = std::str::from_utf8(data).map_err(|_| proto("SCRAM"))?;
            let got = text.strip_prefix("v=").and_then(b64_decode);
            if expect.is_none() || got.as_deref() != expect.as_ref().map(|e| &e[..]) {
                return Err(DbError::Other(
                    "the server's SCRAM signature is wrong: not the server we know".into(),
                ));
            }
            *expect = None;
            return Ok(None);
        }
        n => {
            return Err(DbError::Other(format!(
                "unsupported PostgreSQL authentication method {n}"
            )))
        }
    }
    Ok(Some(out))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The md5 method's answer: "md5" + md5hex(md5hex(password + user) + salt).
fn md5_password(pw: &[u8], user: &[u8], salt: &[u8]) -> String {
    let mut inner = Zeroizing::new(pw.to_vec());
    inner.extend_from_slice(user);
    let mut outer = Zeroizing::new(hex(&Md5::digest(&*inner)).into_bytes());
    outer.extend_from_slice(salt);
    format!("md5{}", hex(&Md5::digest(&*outer)))
}

impl Conn for Postgres {
    fn kind(&self) -> Kind {
        Kind::Postgres
    }

    fn run(&mut self, sql: &str, params: &[Val]) -> Result<(Vec<Row>, u64), DbError> {
        self.round_trip(sql, params)
    }

    fn query_batch(&mut self, qs: &[(&str, &[Val])]) -> Vec<Result<Vec<Row>, DbError>> {
        // Each with its own Sync, so that an error in one does not skip the next.
        let mut out = Vec::new();
        for (sql, p) in qs {
            statement(&mut out, sql, p);
        }
        if let Err(e) = self.w.write_all(&out) {
            let e = e.to_string();
            return qs.iter().map(|_| Err(DbError::Other(e.clone()))).collect();
        }
        qs.iter()
            .map(|_| self.answer().map(|(rows, _)| rows))
            .collect()
    }

    fn close(mut self: Box<Self>) {
        let mut out = Vec::new();
        msg(&mut out, b'X', b"");
        let _ = self.w.write_all(&out);
        self.w.close();
    }
}

/// For the fuzz targets (`fuzzing` feature): the client's side of a SCRAM-SHA-256
/// exchange with a nonce of the caller's (a replayed server cannot know a random one),
/// through [`auth_answer`] as the startup runs it.
#[cfg(feature = "fuzzing")]
pub struct FuzzScram {
    p: PgTarget,
    state: ScramState,
}

#[cfg(feature = "fuzzing")]
impl FuzzScram {
    /// After the client-first message with `nonce` (no channel binding): the server-first
    /// message (AuthenticationSASLContinue's data) answered.
    pub fn first(password: &str, nonce: &str, server_first: &[u8]) -> Result<Self, DbError> {
        let p = PgTarget {
            user: "vpopmail".into(),
            password: Zeroizing::new(password.into()),
            ..PgTarget::default()
        };
        let mut state = Some((
            Scram {
                nonce: nonce.into(),
                first_bare: format!("n=,r={nonce}"),
                binding: b64_encode(b"n,,"),
            },
            None,
        ));
        let mut body = 11i32.to_be_bytes().to_vec();
        body.extend_from_slice(server_first);
        auth_answer(&p, &body, &mut state, None)?;
        Ok(FuzzScram { p, state })
    }

    /// The server-final message a server that knows the password sends.
    pub fn expected_final(&self) -> Option<String> {
        let sig = self.state.as_ref()?.1?;
        Some(format!("v={}", b64_encode(&sig)))
    }

    /// The server-final message (AuthenticationSASLFinal's data), then AuthenticationOk:
    /// `Ok` when both are taken.
    pub fn finish(mut self, server_final: &[u8]) -> Result<(), DbError> {
        let mut body = 12i32.to_be_bytes().to_vec();
        body.extend_from_slice(server_final);
        auth_answer(&self.p, &body, &mut self.state, None)?;
        auth_answer(&self.p, &0i32.to_be_bytes(), &mut self.state, None).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{
        measure, pg_startup, server, tls_accept, tls_accept_as, tls_with, ReadWrite,
    };
    use super::*;
    use crate::target::Tls;
    use std::io::Read;
    use std::io::Write;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    #[test]
    fn base64_and_scram() {
        for n in 0..10 {
            let d: Vec<u8> = (0..n).map(|i: u8| i.wrapping_mul(37)).collect();
            assert_eq!(b64_decode(&b64_encode(&d)).unwrap(), d);
        }
        assert_eq!(b64_encode(b"n,,"), "biws");
        // RFC 7677's example exchange (user "user", password "pencil").
        let s = Scram {
            nonce: "rOprNGfwEbeRWgbNEkqO".into(),
            first_bare: "n=user,r=rOprNGfwEbeRWgbNEkqO".into(),
            binding: b64_encode(b"n,,"),
        };
        let (fin, sig) = s
            .finish(
                b"pencil",
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                 s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            fin,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            b64_encode(&sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn md5_answer() {
        // hashlib: "md5" + md5(md5(b"secretalice").hexdigest() + b"\x01\x02\x03\x04").
        assert_eq!(
            md5_password(b"secret", b"alice", &[1, 2, 3, 4]),
            "md598a0412b9c31436fc53776e863350083"
        );
    }

    fn target(port: u16) -> PgTarget {
        PgTarget {
            host: "127.0.0.1".into(),
            port,
            user: "u".into(),
            tls: Tls {
                mode: Some(SslMode::Disable),
                ca: None,
            },
            ..PgTarget::default()
        }
    }

    /// A client on a connection past its startup, to `port` on 127.0.0.1.
    fn connected(port: u16) -> Postgres {
        Postgres {
            w: Wire::tcp("127.0.0.1", port).unwrap(),
        }
    }

    #[test]
    fn length_field_below_four() {
        // The reply to the startup message: a type and a length that does not even cover
        // itself (0x80000000 - 4 overflows an i32).
        for len in [0x8000_0000u32, 0x8000_0001, 0x8000_0002, 0x8000_0003, 0, 3] {
            let port = server(move |mut s| {
                pg_startup(&mut s);
                let mut m = vec![b'R'];
                m.extend_from_slice(&len.to_be_bytes());
                let _ = s.write_all(&m);
            });
            let r = Postgres::open(&target(port)).map(drop);
            assert!(r.is_err(), "{len:#x}");
        }
    }

    #[test]
    fn password_asked_again_is_refused() {
        // Found by fuzzing (postgres_messages): a server that asks for the MD5 password
        // over and over, and reads nothing after the startup message. The client
        // answered each request until the socket's buffer was full, then waited on the
        // write; it must refuse the second request. Also a second SCRAM server-first
        // message, and MD5 after cleartext.
        const MD5: (u32, &[u8]) = (5, b"salt");
        const SCRAM: (u32, &[u8]) = (10, b"SCRAM-SHA-256\0\0");
        let scripts: [&'static [(u32, &[u8])]; 3] =
            [&[MD5; 400], &[(3, b""), MD5], &[SCRAM, SCRAM]];
        for script in scripts {
            let port = server(move |mut s| {
                pg_startup(&mut s);
                let mut out = Vec::new();
                for (code, data) in script {
                    let mut body = code.to_be_bytes().to_vec();
                    body.extend_from_slice(data);
                    msg(&mut out, b'R', &body);
                }
                let _ = s.write_all(&out);
                // Read nothing more, and stay until the client gives up.
                std::thread::sleep(Duration::from_secs(3));
            });
            let mut t = target(port);
            t.password = zeroize::Zeroizing::new("secret".into());
            let start = Instant::now();
            let e = Postgres::open(&t).map(drop).unwrap_err();
            assert!(format!("{e}").contains("password again"), "{e}");
            assert!(start.elapsed() < Duration::from_secs(2));
        }
    }

    #[test]
    fn huge_message_header_then_close() {
        // A message of 64 MiB announced, one byte of it sent.
        let port = server(|mut s| {
            pg_startup(&mut s);
            let _ = s.write_all(&[b'R', 4, 0, 0, 0, 0]);
        });
        let t = target(port);
        let start = Instant::now();
        let (r, used) = measure(|| Postgres::open(&t).map(drop));
        assert!(r.is_err());
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(used.largest <= 128 << 10, "{used:?}");
    }

    #[test]
    fn rows_announcing_many_columns() {
        // No RowDescription, then rows each announcing 32767 values and carrying none.
        let port = server(|mut s| {
            let mut out = Vec::new();
            for _ in 0..200 {
                msg(&mut out, b'D', &[0x7f, 0xff]);
            }
            msg(&mut out, b'Z', b"I");
            let _ = s.write_all(&out);
        });
        let mut c = connected(port);
        let (r, used) = measure(|| c.answer().map(|(rows, _)| rows.len()));
        assert_eq!(r.unwrap(), 200);
        assert!(used.peak < 1 << 20, "{used:?}");
    }

    #[test]
    fn wide_rows_count_what_they_hold() {
        // 1000 columns with names of 1000 bytes, then rows of NULLs: 4 KB each on the
        // wire, but each row holds a copy of every column's name.
        const ROWS: usize = 150;
        let port = server(|mut s| {
            let mut out = Vec::new();
            let mut t = 1000i16.to_be_bytes().to_vec();
            for _ in 0..1000 {
                t.extend_from_slice(&[b'n'; 1000]);
                t.push(0);
                t.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
                t.extend_from_slice(&TEXT.to_be_bytes());
                t.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]);
            }
            msg(&mut out, b'T', &t);
            let mut d = 1000i16.to_be_bytes().to_vec();
            for _ in 0..1000 {
                d.extend_from_slice(&(-1i32).to_be_bytes());
            }
            for _ in 0..ROWS {
                msg(&mut out, b'D', &d);
            }
            msg(&mut out, b'Z', b"I");
            let _ = s.write_all(&out);
        });
        let mut c = connected(port);
        let (r, used) = measure(|| c.answer().map(|(rows, _)| rows.len()));
        assert!(
            used.peak < (MAX_MESSAGE + (8 << 20)) as isize,
            "{used:?} {r:?}"
        );
        assert!(r.is_err(), "{r:?}");
    }

    /// What the server saw: whether an SSLRequest came, and the startup message's
    /// length (none: it did not come).
    #[derive(Debug, PartialEq)]
    struct Seen {
        ssl_request: bool,
        startup: Option<usize>,
    }

    /// A server answering the SSLRequest with `answer` (then TLS with `cert` after an
    /// `S`), then the startup with AuthenticationOk and ReadyForQuery.
    fn tls_server(answer: &'static [u8], cert: &'static str) -> (u16, mpsc::Receiver<Seen>) {
        let (tx, rx) = mpsc::channel();
        let port = server(move |mut s| {
            let mut first = [0u8; 8];
            let mut seen = Seen {
                ssl_request: false,
                startup: None,
            };
            if s.read_exact(&mut first).is_err() {
                let _ = tx.send(seen);
                return;
            }
            seen.ssl_request = first == SSL_REQUEST;
            let mut rest: Box<dyn ReadWrite> = if seen.ssl_request {
                let _ = s.write_all(answer);
                if answer[0] == b'S' {
                    Box::new(tls_accept_as(s, cert))
                } else {
                    Box::new(s)
                }
            } else {
                seen.startup = Some(u32::from_be_bytes(first[..4].try_into().unwrap()) as usize);
                Box::new(s)
            };
            if seen.startup.is_none() {
                let mut h = [0u8; 4];
                if rest.read_exact(&mut h).is_ok() {
                    let n = u32::from_be_bytes(h) as usize;
                    let mut body = vec![0u8; n.saturating_sub(4)];
                    if rest.read_exact(&mut body).is_ok() {
                        seen.startup = Some(n);
                    }
                }
            }
            if seen.startup.is_some() {
                let mut out = Vec::new();
                msg(&mut out, b'R', &[0, 0, 0, 0]);
                msg(&mut out, b'Z', b"I");
                let _ = rest.write_all(&out);
                let _ = rest.flush();
                let _ = rest.read(&mut [0u8; 64]);
            }
            let _ = tx.send(seen);
        });
        (port, rx)
    }

    fn tls_target(port: u16, tls: Tls) -> PgTarget {
        PgTarget {
            tls,
            ..target(port)
        }
    }

    #[test]
    fn tls_verified_and_not() {
        for (cert, mode, ca, ok) in [
            ("server", SslMode::VerifyFull, "ca.pem", true),
            ("server", SslMode::VerifyCa, "ca.pem", true),
            ("server", SslMode::VerifyFull, "wrong-ca.pem", false),
            ("server", SslMode::VerifyCa, "wrong-ca.pem", false),
            // Signed by the CA, for another name: only verify-full minds.
            ("other", SslMode::VerifyFull, "ca.pem", false),
            ("other", SslMode::VerifyCa, "ca.pem", true),
            ("other", SslMode::Prefer, "wrong-ca.pem", true),
        ] {
            let what = format!("{cert} {mode:?} {ca}");
            let (port, rx) = tls_server(b"S", cert);
            let r = Postgres::open(&tls_target(port, tls_with(mode, ca)));
            match r {
                Ok(c) => {
                    assert!(ok, "{what}");
                    Box::new(c).close();
                }
                Err(e) => {
                    assert!(!ok, "{what}: {e}");
                    let e = e.to_string();
                    assert!(e.contains("invalid peer certificate"), "{what}: {e}");
                }
            }
            let seen = rx.recv().unwrap();
            assert!(seen.ssl_request, "{what}");
            // No startup (user name, database) unless the certificate passed.
            assert_eq!(seen.startup.is_some(), ok, "{what}");
        }
    }

    #[test]
    fn a_server_without_tls() {
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            let (port, rx) = tls_server(b"N", "server");
            let e = Postgres::open(&tls_target(port, tls_with(mode, "ca.pem")))
                .map(drop)
                .unwrap_err()
                .to_string();
            assert!(e.contains("does not offer TLS"), "{e}");
            assert_eq!(rx.recv().unwrap().startup, None);
        }
        // prefer (the default) goes on in the clear; disable asks nothing.
        for (tls, asked) in [
            (Tls::default(), true),
            (tls_with(SslMode::Disable, "ca.pem"), false),
        ] {
            let (port, rx) = tls_server(b"N", "server");
            let c = Postgres::open(&tls_target(port, tls)).unwrap();
            Box::new(c).close();
            let seen = rx.recv().unwrap();
            assert_eq!(seen.ssl_request, asked);
            assert!(seen.startup.is_some());
        }
    }

    /// A server over TLS (`tls`) or not that asks for SASL with `mechanisms` and reports
    /// the client's mechanism and the `c=` of its final message (then refuses it).
    fn sasl_server(
        tls: bool,
        mechanisms: &'static [u8],
    ) -> (u16, mpsc::Receiver<(String, String)>) {
        let (tx, rx) = mpsc::channel();
        let port = server(move |mut s| {
            let mut first = [0u8; 8];
            s.read_exact(&mut first).unwrap();
            let mut c: Box<dyn ReadWrite> = if first == SSL_REQUEST {
                s.write_all(if tls { b"S" } else { b"N" }).unwrap();
                if tls {
                    Box::new(tls_accept(s))
                } else {
                    Box::new(s)
                }
            } else {
                Box::new(s)
            };
            let read_msg = |c: &mut Box<dyn ReadWrite>, typed: bool| -> Option<Vec<u8>> {
                let mut h = [0u8; 5];
                let h = if typed { &mut h[..] } else { &mut h[1..] };
                c.read_exact(h).ok()?;
                let n = u32::from_be_bytes(h[h.len() - 4..].try_into().unwrap()) as usize;
                let mut body = vec![0u8; n - 4];
                c.read_exact(&mut body).ok()?;
                Some(body)
            };
            if first == SSL_REQUEST {
                read_msg(&mut c, false).unwrap();
            }
            let mut out = Vec::new();
            let mut r = 10i32.to_be_bytes().to_vec();
            r.extend_from_slice(mechanisms);
            msg(&mut out, b'R', &r);
            c.write_all(&out).unwrap();
            c.flush().unwrap();
            let Some(init) = read_msg(&mut c, true) else {
                let _ = tx.send((String::new(), String::new()));
                return;
            };
            let end = init.iter().position(|&b| b == 0).unwrap();
            let mechanism = String::from_utf8_lossy(&init[..end]).into_owned();
            let client_first = String::from_utf8_lossy(&init[end + 5..]).into_owned();
            let nonce = client_first.rsplit("r=").next().unwrap().to_string();
            let mut r = 11i32.to_be_bytes().to_vec();
            r.extend_from_slice(format!("r={nonce}srv,s=c2FsdA==,i=4096").as_bytes());
            out.clear();
            msg(&mut out, b'R', &r);
            c.write_all(&out).unwrap();
            c.flush().unwrap();
            let fin = read_msg(&mut c, true).unwrap();
            let fin = String::from_utf8_lossy(&fin).into_owned();
            let cb = fin
                .split(',')
                .next()
                .unwrap()
                .trim_start_matches("c=")
                .to_string();
            let _ = tx.send((mechanism, cb));
        });
        (port, rx)
    }

    #[test]
    fn channel_binding() {
        let both: &[u8] = b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0";
        let cert =
            ::tls::files::certificates(&super::super::testutil::testdata("server.pem")).unwrap();
        let mut plus = b"p=tls-server-end-point,,".to_vec();
        plus.extend_from_slice(&Sha256::digest(cert[0].as_ref()));
        for (tls, mechanisms, want_mechanism, want_c) in [
            // Over TLS: bound to the certificate the client saw.
            (true, both, "SCRAM-SHA-256-PLUS", b64_encode(&plus)),
            // Over TLS without PLUS on offer: "y", which a server that could bind
            // takes for a list someone shortened.
            (
                true,
                &b"SCRAM-SHA-256\0\0"[..],
                "SCRAM-SHA-256",
                b64_encode(b"y,,"),
            ),
            // In the clear: no binding.
            (false, both, "SCRAM-SHA-256", b64_encode(b"n,,")),
        ] {
            let (port, rx) = sasl_server(tls, mechanisms);
            let t = tls_target(
                port,
                Tls {
                    mode: Some(SslMode::Prefer),
                    ca: None,
                },
            );
            let t = PgTarget {
                password: Zeroizing::new("pw".into()),
                ..t
            };
            assert!(Postgres::open(&t).is_err());
            let (mechanism, c) = rx.recv().unwrap();
            assert_eq!(
                (mechanism.as_str(), c),
                (want_mechanism, want_c),
                "tls {tls}"
            );
        }
        // PLUS alone in the clear: nothing this client can use.
        let (port, rx) = sasl_server(false, b"SCRAM-SHA-256-PLUS\0\0");
        let e = Postgres::open(&tls_target(port, Tls::default()))
            .map(drop)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no SCRAM-SHA-256 this client can use"), "{e}");
        assert_eq!(rx.recv().unwrap().0, "");
    }

    #[test]
    fn an_error_for_the_ssl_request() {
        // A server that cannot take the connection says so in place of 'S' or 'N'.
        const ERROR: &[u8] = b"E\0\0\0\x1dSFATAL\0C53300\0Mtoo many\0\0";
        let (port, rx) = tls_server(ERROR, "server");
        let e = Postgres::open(&tls_target(port, Tls::default()))
            .map(drop)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "too many (53300)");
        assert_eq!(rx.recv().unwrap().startup, None);
    }

    #[test]
    fn bytes_after_the_s_are_refused() {
        // An 'S' with a plain-text AuthenticationOk and ReadyForQuery behind it, which
        // would otherwise be read as the first answer under TLS.
        const INJECTED: &[u8] = b"SR\0\0\0\x08\0\0\0\0Z\0\0\0\x05I";
        let (port, rx) = tls_server(INJECTED, "server");
        let e = Postgres::open(&tls_target(port, Tls::default()))
            .map(drop)
            .unwrap_err()
            .to_string();
        assert!(e.contains("before the TLS handshake"), "{e}");
        assert_eq!(rx.recv().unwrap().startup, None);
    }

    #[test]
    fn allow_tries_tls_after_a_refusal() {
        // The first connection (plain) is refused; the second asks for TLS.
        let (tx, rx) = mpsc::channel();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            pg_startup(&mut s);
            let mut out = Vec::new();
            msg(
                &mut out,
                b'E',
                b"SFATAL\0C28000\0Mno pg_hba.conf entry, no encryption\0\0",
            );
            let _ = s.write_all(&out);
            drop(s);
            let (mut s, _) = l.accept().unwrap();
            let mut first = [0u8; 8];
            s.read_exact(&mut first).unwrap();
            let _ = tx.send(first == SSL_REQUEST);
            let _ = s.write_all(b"S");
            let mut t = tls_accept(s);
            let mut h = [0u8; 4];
            t.read_exact(&mut h).unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(h) as usize - 4];
            t.read_exact(&mut body).unwrap();
            let mut out = Vec::new();
            msg(&mut out, b'R', &[0, 0, 0, 0]);
            msg(&mut out, b'Z', b"I");
            t.write_all(&out).unwrap();
            t.flush().unwrap();
            let _ = t.read(&mut [0u8; 64]);
        });
        let c = Postgres::open(&tls_target(
            port,
            Tls {
                mode: Some(SslMode::Allow),
                ca: None,
            },
        ))
        .unwrap();
        Box::new(c).close();
        assert!(rx.recv().unwrap());
    }

    #[test]
    fn numbering() {
        assert_eq!(
            numbered("a = ? AND b IN (?, ?)"),
            "a = $1 AND b IN ($2, $3)"
        );
    }
}
