//! MariaDB/MySQL: the client/server protocol spoken directly, over a unix socket, TCP,
//! or TLS on TCP (MySQL's `ssl-mode`, started after the server's greeting).
//!
//! Only what a login and the account tool need: the handshake with
//! `mysql_native_password`, `caching_sha2_password` (fast path; full authentication only
//! over TLS or the unix socket, where the server takes the password itself rather than
//! RSA-encrypted) and `mysql_clear_password` (TLS or unix socket only); server-side
//! prepared statements (every value is a bound parameter, never spliced into SQL);
//! binary result rows; `COM_QUIT`.
//!
//! Why not the `mysql` crate: every connection compiled its server-version regexes
//! (3 million instructions, about 1 ms, plus the pages of the regex engine), which made
//! a login slower than a C client's. MariaDB (10.2 and later) also runs a statement
//! prepared in the same write (statement id -1), so each statement here costs one round
//! trip instead of two.

use sha1::Sha1;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::wire::Wire;
use super::{tls, Conn, DbError, Kind, Row, Val};
use crate::target::{MysqlTarget, SslMode};

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_FOUND_ROWS: u32 = 2;
const CLIENT_LONG_FLAG: u32 = 4;
const CLIENT_CONNECT_WITH_DB: u32 = 8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_MULTI_RESULTS: u32 = 0x2_0000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;
const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x20_0000;

const COM_QUIT: u8 = 0x01;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;

const TYPE_NULL: u8 = 6;
const TYPE_LONGLONG: u8 = 8;
const TYPE_VAR_STRING: u8 = 253;
const UNSIGNED_FLAG: u16 = 0x20;

/// ER_NO_SUCH_TABLE
const NO_SUCH_TABLE: u16 = 1146;
/// One result may not make us hold more than this (a rogue or confused server).
const MAX_RESULT: usize = 64 << 20;
/// What one value of a result row holds beyond its bytes on the wire and its column's
/// name (a copy in each row): its slot in the row, and a date's or time's text, longer
/// than the few bytes that carried it.
const VALUE_COST: usize = size_of::<(String, Val)>() + 32;
/// utf8mb4_general_ci
const CHARSET: u8 = 45;

struct Column {
    name: String,
    kind: u8,
    flags: u16,
}

/// What the server's greeting says.
struct Greeting {
    version: String,
    caps: u32,
    scramble: Vec<u8>,
    plugin: Vec<u8>,
}

pub struct Mysql {
    s: Wire,
    seq: u8,
    /// The statement id to execute right after sending its prepare (MariaDB's "last
    /// prepared statement"), when the server has it.
    pipelined: bool,
    /// Statements already prepared on this connection, by SQL text.
    stmts: Vec<(String, u32)>,
}

fn proto(what: &str) -> DbError {
    DbError::Other(format!("protocol error from the server: {what}"))
}

/// A cursor over one packet's payload.
struct Buf<'a>(&'a [u8]);

impl<'a> Buf<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DbError> {
        if self.0.len() < n {
            return Err(proto("short packet"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DbError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DbError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DbError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn uint(&mut self, n: usize) -> Result<u64, DbError> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0, |a, &x| (a << 8) | u64::from(x)))
    }
    fn lenenc(&mut self) -> Result<u64, DbError> {
        match self.u8()? {
            x @ 0..=0xfa => Ok(u64::from(x)),
            0xfc => self.uint(2),
            0xfd => self.uint(3),
            0xfe => self.uint(8),
            _ => Err(proto("bad length")),
        }
    }
    fn lenenc_bytes(&mut self) -> Result<&'a [u8], DbError> {
        let n = self.lenenc()?;
        let n = usize::try_from(n).map_err(|_| proto("bad length"))?;
        self.take(n)
    }
    fn nul_str(&mut self) -> &'a [u8] {
        let n = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        let s = &self.0[..n];
        self.0 = &self.0[(n + 1).min(self.0.len())..];
        s
    }
}

fn put_lenenc(out: &mut Vec<u8>, n: usize) {
    match n {
        0..=0xfa => out.push(n as u8),
        0xfb..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u64).to_le_bytes());
        }
    }
}

/// An ERR packet's text and code.
fn server_error(p: &[u8]) -> DbError {
    let mut b = Buf(&p[1..]);
    let code = b.u16().unwrap_or(0);
    let mut msg = b.0;
    if msg.first() == Some(&b'#') && msg.len() >= 6 {
        msg = &msg[6..];
    }
    if code == NO_SUCH_TABLE {
        return DbError::NoTable;
    }
    DbError::Other(format!("{} ({code})", String::from_utf8_lossy(msg)))
}

fn xor_into(a: &mut [u8], b: &[u8]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

/// H(pw) XOR H(x + y): `mysql_native_password` (SHA-1) hashes scramble + H(H(pw)),
/// `caching_sha2_password` (SHA-256) hashes H(H(pw)) + scramble.
fn scrambled<D: Digest>(pw: &[u8], scramble: &[u8], scramble_first: bool) -> Zeroizing<Vec<u8>> {
    if pw.is_empty() {
        return Zeroizing::new(Vec::new());
    }
    let s = &scramble[..scramble.len().min(20)];
    let h1 = Zeroizing::new(D::digest(pw).to_vec());
    let h2 = Zeroizing::new(D::digest(&*h1).to_vec());
    let mut h = D::new();
    if scramble_first {
        h.update(s);
        h.update(&*h2);
    } else {
        h.update(&*h2);
        h.update(s);
    }
    let mut out = h1;
    xor_into(&mut out, &h.finalize());
    out
}

fn native_password(pw: &[u8], scramble: &[u8]) -> Zeroizing<Vec<u8>> {
    scrambled::<Sha1>(pw, scramble, true)
}

fn sha2_password(pw: &[u8], scramble: &[u8]) -> Zeroizing<Vec<u8>> {
    scrambled::<Sha256>(pw, scramble, false)
}

impl Mysql {
    pub fn open(t: &MysqlTarget) -> Result<Self, DbError> {
        match (&t.socket, t.tls.mode()) {
            // libpq's allow, which MySQL lacks: plain first, TLS (unverified) when the
            // server refused that (require_secure_transport, an account REQUIRE SSL).
            (None, SslMode::Allow) => Self::open_with(t, SslMode::Disable).or_else(|plain| {
                Self::open_with(t, SslMode::Require)
                    .map_err(|e| DbError::Other(format!("{plain}; again with TLS: {e}")))
            }),
            (_, mode) => Self::open_with(t, mode),
        }
    }

    fn open_with(t: &MysqlTarget, mode: SslMode) -> Result<Self, DbError> {
        let s = match &t.socket {
            Some(path) => Wire::unix(path)?,
            None => Wire::tcp(&t.host, t.port)?,
        };
        Self::over(s, t, mode)
    }

    /// The handshake on a connection already made.
    pub(super) fn over(s: Wire, t: &MysqlTarget, mode: SslMode) -> Result<Self, DbError> {
        let mut m = Mysql {
            s,
            seq: 0,
            pipelined: false,
            stmts: Vec::new(),
        };
        m.handshake(t, mode)?;
        Ok(m)
    }

    fn read_packet(&mut self) -> Result<Vec<u8>, DbError> {
        let mut out = Vec::new();
        loop {
            let mut h = [0u8; 4];
            self.s.read_exact(&mut h)?;
            let n = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
            self.seq = h[3].wrapping_add(1);
            if out.len() + n > MAX_RESULT {
                return Err(proto("packet too large"));
            }
            // Not sized by the header before the bytes come: a 4-byte header announcing
            // 16 MiB would cost that much, and a packet's continuations four times that.
            self.s.read_append(&mut out, n)?;
            if n < 0xff_ffff {
                return Ok(out);
            }
        }
    }

    fn send(&mut self, payload: &[u8]) -> Result<(), DbError> {
        let mut out = Vec::with_capacity(payload.len() + 4);
        frame(&mut self.seq, &mut out, payload);
        self.s.write_all(&out)
    }

    /// The server's first packet: its version, capabilities, scramble and the
    /// authentication plugin it offers.
    fn greeting(&mut self) -> Result<Greeting, DbError> {
        let p = self.read_packet()?;
        if p.first() == Some(&0xff) {
            return Err(server_error(&p));
        }
        let mut b = Buf(&p);
        if b.u8()? != 10 {
            return Err(proto("not protocol version 10"));
        }
        let version = String::from_utf8_lossy(b.nul_str()).into_owned();
        b.take(4)?;
        let mut scramble = b.take(8)?.to_vec();
        b.take(1)?;
        let mut caps = u32::from(b.u16()?);
        let mut plugin: &[u8] = b"mysql_native_password";
        if !b.0.is_empty() {
            b.take(3)?;
            caps |= u32::from(b.u16()?) << 16;
            let data_len = usize::from(b.u8()?);
            b.take(10)?;
            if caps & CLIENT_SECURE_CONNECTION != 0 {
                let n = data_len.saturating_sub(8).max(13).min(b.0.len());
                let part = b.take(n)?;
                let part = part.strip_suffix(&[0]).unwrap_or(part);
                scramble.extend_from_slice(part);
            }
            if caps & CLIENT_PLUGIN_AUTH != 0 {
                let name = b.nul_str();
                if !name.is_empty() {
                    plugin = name;
                }
            }
        }
        Ok(Greeting {
            version,
            caps,
            scramble,
            plugin: plugin.to_vec(),
        })
    }

    /// After the greeting, when `mode` asks for it and the server offers it: the short
    /// SSL request (the handshake response's first 32 bytes, CLIENT_SSL set), then TLS,
    /// under which the full response follows as packet 2.
    fn start_tls(
        &mut self,
        t: &MysqlTarget,
        mode: SslMode,
        server_caps: u32,
        ours: &mut u32,
    ) -> Result<(), DbError> {
        if mode == SslMode::Disable || self.s.is_unix() {
            return Ok(());
        }
        if server_caps & CLIENT_SSL == 0 {
            if mode == SslMode::Prefer {
                return Ok(());
            }
            return Err(DbError::Other(format!(
                "the server does not offer TLS (sslmode {})",
                mode.name()
            )));
        }
        let setup = tls::setup(&t.tls, mode, &t.host)?;
        *ours |= CLIENT_SSL;
        let mut req = Vec::with_capacity(32);
        req.extend_from_slice(&ours.to_le_bytes());
        req.extend_from_slice(&(16u32 << 20).to_le_bytes());
        req.push(CHARSET);
        req.extend_from_slice(&[0; 23]);
        self.send(&req)?;
        self.s.start_tls(&setup)
    }

    fn handshake(&mut self, t: &MysqlTarget, mode: SslMode) -> Result<(), DbError> {
        let g = self.greeting()?;
        let need = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION;
        if g.caps & need != need {
            return Err(proto("server too old (no 4.1 protocol)"));
        }
        self.pipelined = mariadb_direct_execute(&g.version);
        let mut ours = CLIENT_LONG_PASSWORD
            | CLIENT_FOUND_ROWS
            | CLIENT_LONG_FLAG
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_MULTI_RESULTS
            | CLIENT_PLUGIN_AUTH
            | CLIENT_PLUGIN_AUTH_LENENC;
        if !t.db.is_empty() {
            ours |= CLIENT_CONNECT_WITH_DB;
        }
        ours &= g.caps | CLIENT_LONG_PASSWORD;
        self.start_tls(t, mode, g.caps, &mut ours)?;
        let private = self.s.is_private();
        let (scramble, plugin) = (g.scramble, String::from_utf8_lossy(&g.plugin).into_owned());
        let (plugin, resp) = match auth_response(&plugin, t.pass.as_bytes(), &scramble, private) {
            Some(r) => (plugin, r),
            // Whatever the server offers first, it switches us to what the account uses.
            None => (
                "mysql_native_password".to_string(),
                native_password(t.pass.as_bytes(), &scramble),
            ),
        };
        let mut out = Zeroizing::new(Vec::with_capacity(128));
        out.extend_from_slice(&ours.to_le_bytes());
        out.extend_from_slice(&(16u32 << 20).to_le_bytes());
        out.push(CHARSET);
        out.extend_from_slice(&[0; 23]);
        out.extend_from_slice(t.user.as_bytes());
        out.push(0);
        if ours & CLIENT_PLUGIN_AUTH_LENENC != 0 {
            put_lenenc(&mut out, resp.len());
        } else {
            out.push(resp.len() as u8);
        }
        out.extend_from_slice(&resp);
        if ours & CLIENT_CONNECT_WITH_DB != 0 {
            out.extend_from_slice(t.db.as_bytes());
            out.push(0);
        }
        if ours & CLIENT_PLUGIN_AUTH != 0 {
            out.extend_from_slice(plugin.as_bytes());
            out.push(0);
        }
        self.send(&out)?;
        self.auth_result(t, plugin, private)
    }

    fn auth_result(
        &mut self,
        t: &MysqlTarget,
        mut plugin: String,
        private: bool,
    ) -> Result<(), DbError> {
        // A server may switch plugins or ask for more; a few exchanges at most.
        for _ in 0..4 {
            let p = self.read_packet()?;
            match p.first() {
                Some(0x00) => return Ok(()),
                Some(0xff) => return Err(server_error(&p)),
                Some(0xfe) => {
                    let mut b = Buf(&p[1..]);
                    plugin = String::from_utf8_lossy(b.nul_str()).into_owned();
                    let scramble = b.0.strip_suffix(&[0]).unwrap_or(b.0);
                    let resp = auth_response(&plugin, t.pass.as_bytes(), scramble, private)
                        .ok_or_else(|| {
                            DbError::Other(format!("unsupported authentication plugin {plugin}"))
                        })?;
                    self.send(&resp)?;
                }
                Some(0x01) if plugin == "caching_sha2_password" => match p.get(1) {
                    // Fast authentication worked; the OK follows.
                    Some(3) => {}
                    Some(4) if private => {
                        let mut pw = Zeroizing::new(t.pass.as_bytes().to_vec());
                        pw.push(0);
                        self.send(&pw)?;
                    }
                    _ => {
                        return Err(DbError::Other(
                            "caching_sha2_password wants a full authentication, which needs \
                             TLS or the unix socket (sslmode disable, or a server without TLS)"
                                .into(),
                        ))
                    }
                },
                _ => return Err(proto("unexpected packet during authentication")),
            }
        }
        Err(proto("authentication did not finish"))
    }

    /// Appends a statement's packets to `out`: its execute, behind its prepare when it is
    /// new on this connection (then the execute names "the last prepared statement", which
    /// only MariaDB understands). Returns whether a prepare was sent.
    fn push_statement(&mut self, out: &mut Vec<u8>, sql: &str, params: &[Val]) -> bool {
        if let Some(&(_, id)) = self.stmts.iter().find(|(s, _)| s == sql) {
            self.seq = 0;
            frame(&mut self.seq, out, &execute_payload(id, params));
            return false;
        }
        let mut prep = Vec::with_capacity(sql.len() + 1);
        prep.push(COM_STMT_PREPARE);
        prep.extend_from_slice(sql.as_bytes());
        self.seq = 0;
        frame(&mut self.seq, out, &prep);
        self.seq = 0;
        frame(&mut self.seq, out, &execute_payload(u32::MAX, params));
        true
    }

    /// Reads the answers to what [`Self::push_statement`] sent.
    fn answer(&mut self, sql: &str, prepared: bool) -> Result<(Vec<Row>, u64), DbError> {
        if prepared {
            match self.prepare_result() {
                Ok(id) => self.stmts.push((sql.to_string(), id)),
                Err(e) => {
                    // The execute is answered whatever became of its prepare.
                    let _ = self.read_packet();
                    return Err(e);
                }
            }
        }
        self.result()
    }

    fn cached(&self, sql: &str) -> bool {
        self.stmts.iter().any(|(s, _)| s == sql)
    }

    /// Reads COM_STMT_PREPARE's answer: the id, after skipping the parameter and column
    /// definitions (a result's columns come again with each execute).
    fn prepare_result(&mut self) -> Result<u32, DbError> {
        let p = self.read_packet()?;
        match p.first() {
            Some(0x00) => {}
            Some(0xff) => return Err(server_error(&p)),
            _ => return Err(proto("bad prepare answer")),
        }
        let mut b = Buf(&p[1..]);
        let id = b.u32()?;
        let cols = b.u16()?;
        let params = b.u16()?;
        for n in [params, cols] {
            if n > 0 {
                for _ in 0..n {
                    self.read_packet()?;
                }
                self.read_eof()?;
            }
        }
        Ok(id)
    }

    fn read_eof(&mut self) -> Result<(), DbError> {
        let p = self.read_packet()?;
        if p.first() == Some(&0xfe) && p.len() < 9 {
            Ok(())
        } else {
            Err(proto("expected EOF"))
        }
    }

    /// Reads an execute's answer: rows, or the count of changed rows.
    fn result(&mut self) -> Result<(Vec<Row>, u64), DbError> {
        let p = self.read_packet()?;
        match p.first() {
            Some(0x00) => {
                let mut b = Buf(&p[1..]);
                return Ok((Vec::new(), b.lenenc()?));
            }
            Some(0xff) => return Err(server_error(&p)),
            _ => {}
        }
        let n = usize::try_from(Buf(&p).lenenc()?).map_err(|_| proto("bad column count"))?;
        if n == 0 || n > 4096 {
            return Err(proto("bad column count"));
        }
        // What the result holds, counted against MAX_RESULT: the columns, then for each row
        // its bytes and what its values hold beyond them.
        let mut held = 0usize;
        // Room for a few columns only: their count is a number, not yet columns.
        let mut cols = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let p = self.read_packet()?;
            held = held.saturating_add(p.len() + size_of::<Column>());
            if held > MAX_RESULT {
                return Err(proto("result too large"));
            }
            let mut b = Buf(&p);
            for _ in 0..4 {
                b.lenenc_bytes()?;
            }
            let name = String::from_utf8_lossy(b.lenenc_bytes()?).into_owned();
            b.lenenc_bytes()?;
            b.lenenc()?;
            b.u16()?;
            b.u32()?;
            let kind = b.u8()?;
            let flags = b.u16()?;
            cols.push(Column { name, kind, flags });
        }
        self.read_eof()?;
        let per_row = cols.iter().fold(size_of::<Row>(), |a, c| {
            a.saturating_add(VALUE_COST + c.name.len())
        });
        let mut rows = Vec::new();
        loop {
            let p = self.read_packet()?;
            match p.first() {
                Some(0xfe) if p.len() < 9 => break,
                Some(0xff) => return Err(server_error(&p)),
                Some(0x00) => {}
                _ => return Err(proto("bad row")),
            }
            held = held.saturating_add(p.len()).saturating_add(per_row);
            if held > MAX_RESULT {
                return Err(proto("result too large"));
            }
            rows.push(binary_row(&p[1..], &cols)?);
        }
        Ok((rows, 0))
    }

    fn round_trip(&mut self, sql: &str, params: &[Val]) -> Result<(Vec<Row>, u64), DbError> {
        let mut out = Vec::new();
        if self.pipelined || self.cached(sql) {
            let prepared = self.push_statement(&mut out, sql, params);
            self.s.write_all(&out)?;
            return self.answer(sql, prepared);
        }
        // MySQL: the prepare's answer carries the id the execute needs.
        let mut prep = Vec::with_capacity(sql.len() + 1);
        prep.push(COM_STMT_PREPARE);
        prep.extend_from_slice(sql.as_bytes());
        self.seq = 0;
        frame(&mut self.seq, &mut out, &prep);
        self.s.write_all(&out)?;
        let id = self.prepare_result()?;
        self.stmts.push((sql.to_string(), id));
        out.clear();
        self.seq = 0;
        frame(&mut self.seq, &mut out, &execute_payload(id, params));
        self.s.write_all(&out)?;
        self.result()
    }
}

/// Frames `payload` as packets into `out`, numbering them from `seq`: pieces of
/// 0xffffff bytes, then a shorter (possibly empty) last one.
fn frame(seq: &mut u8, out: &mut Vec<u8>, payload: &[u8]) {
    let mut rest = payload;
    loop {
        let n = rest.len().min(0xff_ffff);
        out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        out.push(*seq);
        *seq = seq.wrapping_add(1);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        if n < 0xff_ffff {
            return;
        }
    }
}

/// MariaDB 10.2 and later execute "the last prepared statement" (id -1), which lets a
/// prepare and its execute go in one write. The server's version string says
/// `5.5.5-10.11.6-MariaDB...` (the `5.5.5-` prefix for old clients) or `10.11.6-MariaDB`.
fn mariadb_direct_execute(version: &str) -> bool {
    if !version.contains("MariaDB") {
        return false;
    }
    let v = version.strip_prefix("5.5.5-").unwrap_or(version);
    let mut it = v.split(['.', '-']).map(|x| x.parse::<u32>().unwrap_or(0));
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (major, minor) >= (10, 2)
}

/// The answer to `plugin`'s challenge; `private`: over TLS or the unix socket.
fn auth_response(
    plugin: &str,
    pw: &[u8],
    scramble: &[u8],
    private: bool,
) -> Option<Zeroizing<Vec<u8>>> {
    match plugin {
        "mysql_native_password" => Some(native_password(pw, scramble)),
        "caching_sha2_password" => Some(sha2_password(pw, scramble)),
        // The password itself: only where nobody else can read it.
        "mysql_clear_password" if private => {
            let mut v = Zeroizing::new(pw.to_vec());
            v.push(0);
            Some(v)
        }
        _ => None,
    }
}

fn execute_payload(id: u32, params: &[Val]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(64));
    out.push(COM_STMT_EXECUTE);
    out.extend_from_slice(&id.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&1u32.to_le_bytes());
    if params.is_empty() {
        return out;
    }
    let mut nulls = vec![0u8; params.len().div_ceil(8)];
    for (i, v) in params.iter().enumerate() {
        if *v == Val::Null {
            nulls[i / 8] |= 1 << (i % 8);
        }
    }
    out.extend_from_slice(&nulls);
    out.push(1);
    for v in params {
        let t = match v {
            Val::Null => TYPE_NULL,
            Val::Int(_) => TYPE_LONGLONG,
            Val::Text(_) => TYPE_VAR_STRING,
        };
        out.extend_from_slice(&[t, 0]);
    }
    for v in params {
        match v {
            Val::Null => {}
            Val::Int(i) => out.extend_from_slice(&i.to_le_bytes()),
            Val::Text(t) => {
                put_lenenc(&mut out, t.len());
                out.extend_from_slice(t);
            }
        }
    }
    out
}

fn binary_row(p: &[u8], cols: &[Column]) -> Result<Row, DbError> {
    let mut b = Buf(p);
    let nulls = b.take((cols.len() + 9) / 8)?;
    let mut row = Vec::with_capacity(cols.len());
    for (i, c) in cols.iter().enumerate() {
        let bit = i + 2;
        if nulls[bit / 8] & (1 << (bit % 8)) != 0 {
            row.push((c.name.clone(), Val::Null));
            continue;
        }
        let unsigned = c.flags & UNSIGNED_FLAG != 0;
        let int = |b: &mut Buf, n: usize| -> Result<Val, DbError> {
            let u = b.uint(n)?;
            let bits = 8 * n as u32;
            Ok(Val::Int(if unsigned || bits == 64 {
                u as i64
            } else {
                // Sign-extend.
                ((u << (64 - bits)) as i64) >> (64 - bits)
            }))
        };
        let v = match c.kind {
            1 => int(&mut b, 1)?,
            2 | 13 => int(&mut b, 2)?,
            3 | 9 => int(&mut b, 4)?,
            8 => int(&mut b, 8)?,
            4 => Val::Int(f32::from_le_bytes(b.take(4)?.try_into().expect("4 bytes")) as i64),
            5 => Val::Int(f64::from_le_bytes(b.take(8)?.try_into().expect("8 bytes")) as i64),
            6 => Val::Null,
            7 | 10 | 12 => {
                let n = usize::from(b.u8()?);
                Val::Text(datetime(b.take(n)?).into_bytes())
            }
            11 => {
                let n = usize::from(b.u8()?);
                Val::Text(time(b.take(n)?).into_bytes())
            }
            _ => Val::Text(b.lenenc_bytes()?.to_vec()),
        };
        row.push((c.name.clone(), v));
    }
    Ok(Row(row))
}

fn datetime(d: &[u8]) -> String {
    let mut b = Buf(d);
    let y = b.u16().unwrap_or(0);
    let mo = b.u8().unwrap_or(0);
    let da = b.u8().unwrap_or(0);
    if d.len() < 7 {
        return format!("{y:04}-{mo:02}-{da:02}");
    }
    let (h, mi, s) = (
        b.u8().unwrap_or(0),
        b.u8().unwrap_or(0),
        b.u8().unwrap_or(0),
    );
    format!("{y:04}-{mo:02}-{da:02} {h:02}:{mi:02}:{s:02}")
}

fn time(d: &[u8]) -> String {
    if d.len() < 8 {
        return "00:00:00".into();
    }
    let neg = d[0] == 1;
    // In 64 bits: u32::MAX days of 24 hours and 255 more hours fit, with room to spare.
    let days = u64::from(u32::from_le_bytes([d[1], d[2], d[3], d[4]]));
    let h = days * 24 + u64::from(d[5]);
    format!(
        "{}{h:02}:{:02}:{:02}",
        if neg { "-" } else { "" },
        d[6],
        d[7]
    )
}

impl Conn for Mysql {
    fn kind(&self) -> Kind {
        Kind::Mysql
    }

    fn run(&mut self, sql: &str, params: &[Val]) -> Result<(Vec<Row>, u64), DbError> {
        self.round_trip(sql, params)
    }

    fn query_batch(&mut self, qs: &[(&str, &[Val])]) -> Vec<Result<Vec<Row>, DbError>> {
        if !(self.pipelined || qs.iter().all(|(sql, _)| self.cached(sql))) {
            return qs.iter().map(|(sql, p)| self.query(sql, p)).collect();
        }
        // Every statement in one write, one round trip for them all.
        let mut out = Vec::new();
        let prepared: Vec<bool> = qs
            .iter()
            .map(|(sql, p)| self.push_statement(&mut out, sql, p))
            .collect();
        if let Err(e) = self.s.write_all(&out) {
            let e = e.to_string();
            return qs.iter().map(|_| Err(DbError::Other(e.clone()))).collect();
        }
        qs.iter()
            .zip(prepared)
            .map(|((sql, _), p)| self.answer(sql, p).map(|(rows, _)| rows))
            .collect()
    }

    fn close(mut self: Box<Self>) {
        // COM_QUIT; the server frees the statements with the connection.
        self.seq = 0;
        let _ = self.send(&[COM_QUIT]);
        self.s.close();
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{measure, server, tls_accept, tls_with, ReadWrite};
    use super::*;
    use crate::target::Tls;
    use std::io::Read;
    use std::io::Write;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    #[test]
    fn native_password_vector() {
        // The server stores SHA1(SHA1(pw)); check the response against it the way the
        // server does: SHA1(scramble + stored) XOR response = SHA1(pw).
        let scramble = b"01234567890123456789";
        let r = native_password(b"secret", scramble);
        let stored: [u8; 20] = Sha1::digest(Sha1::digest(b"secret")).into();
        let mut h = Sha1::new();
        h.update(scramble);
        h.update(stored);
        let mut x: [u8; 20] = h.finalize().into();
        xor_into(&mut x, &r);
        assert_eq!(x, <[u8; 20]>::from(Sha1::digest(b"secret")));
        assert!(native_password(b"", scramble).is_empty());
        // caching_sha2_password's fast path: the server keeps SHA256(SHA256(pw)) and
        // checks SHA256(stored + scramble) XOR response = SHA256(pw).
        let r = sha2_password(b"secret", scramble);
        let stored: [u8; 32] = Sha256::digest(Sha256::digest(b"secret")).into();
        let mut h = Sha256::new();
        h.update(stored);
        h.update(scramble);
        let mut x: [u8; 32] = h.finalize().into();
        xor_into(&mut x, &r);
        assert_eq!(x, <[u8; 32]>::from(Sha256::digest(b"secret")));
    }

    #[test]
    fn lengths_and_rows() {
        for n in [0usize, 250, 251, 65535, 65536, 1 << 24] {
            let mut v = Vec::new();
            put_lenenc(&mut v, n);
            assert_eq!(Buf(&v).lenenc().unwrap(), n as u64);
        }
        let cols = [
            Column {
                name: "a".into(),
                kind: 3,
                flags: 0,
            },
            Column {
                name: "b".into(),
                kind: 253,
                flags: 0,
            },
            Column {
                name: "c".into(),
                kind: 8,
                flags: 0,
            },
        ];
        // c is NULL: bit 2 + 2 = 4.
        let mut p = vec![0x10];
        p.extend_from_slice(&(-5i32).to_le_bytes());
        p.extend_from_slice(&[3, b'x', b'y', b'z']);
        let r = binary_row(&p, &cols).unwrap();
        assert_eq!(r.get("a"), Some(&Val::Int(-5)));
        assert_eq!(r.get("b"), Some(&Val::text("xyz")));
        assert_eq!(r.get("c"), Some(&Val::Null));
        assert!(binary_row(&[0], &cols).is_err());
    }

    #[test]
    fn framing() {
        let mut seq = 0;
        let mut out = Vec::new();
        frame(&mut seq, &mut out, b"");
        assert_eq!((out.as_slice(), seq), (&[0u8, 0, 0, 0][..], 1));
        // A payload of exactly one full packet needs an empty one after it.
        let big = vec![7u8; 0xff_ffff];
        out.clear();
        frame(&mut seq, &mut out, &big);
        assert_eq!(out.len(), 4 + 0xff_ffff + 4);
        assert_eq!(&out[..4], &[0xff, 0xff, 0xff, 1]);
        assert_eq!(&out[4 + 0xff_ffff..], &[0, 0, 0, 2]);
        assert_eq!(seq, 3);
    }

    #[test]
    fn time_of_many_days() {
        // days * 24 no longer fits in 32 bits from 178,956,971 days on.
        let cols = [Column {
            name: "t".into(),
            kind: 11,
            flags: 0,
        }];
        let row = |neg: u8, days: u32, h: u8| {
            let mut p = vec![0, 8, neg];
            p.extend_from_slice(&days.to_le_bytes());
            p.extend_from_slice(&[h, 2, 3]);
            binary_row(&p, &cols).unwrap().get("t").cloned()
        };
        assert_eq!(row(0, 178_956_971, 1), Some(Val::text("4294967305:02:03")));
        assert_eq!(
            row(1, u32::MAX, 255),
            Some(Val::text("-103079215335:02:03"))
        );
        assert_eq!(row(0, 1, 2), Some(Val::text("26:02:03")));
    }

    /// A client on a connection past its handshake, to `port` on 127.0.0.1.
    fn connected(port: u16) -> Mysql {
        Mysql {
            s: Wire::tcp("127.0.0.1", port).unwrap(),
            seq: 0,
            pipelined: false,
            stmts: Vec::new(),
        }
    }

    /// One packet (or several, for a long payload) as the server sends it.
    fn packet(out: &mut Vec<u8>, payload: &[u8]) {
        let mut seq = 1;
        frame(&mut seq, out, payload);
    }

    #[test]
    fn huge_packet_header_then_close() {
        // The greeting's header announces 16 MiB - 1; one byte follows, then the end.
        let port = server(|mut s| {
            let _ = s.write_all(&[0xff, 0xff, 0xff, 0, 10]);
        });
        let t = MysqlTarget {
            host: "127.0.0.1".into(),
            port,
            socket: None,
            user: "u".into(),
            pass: Zeroizing::new(String::new()),
            db: String::new(),
            tls: Tls::default(),
        };
        let start = Instant::now();
        let (r, used) = measure(|| Mysql::open(&t).map(drop));
        assert!(r.is_err());
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(used.largest <= 128 << 10, "{used:?}");
    }

    #[test]
    fn column_count_then_close() {
        // 4096 columns announced, none sent.
        let port = server(|mut s| {
            let mut out = Vec::new();
            packet(&mut out, &[0xfc, 0x00, 0x10]);
            let _ = s.write_all(&out);
        });
        let mut m = connected(port);
        let (r, used) = measure(|| m.result().map(drop));
        assert!(r.is_err());
        assert!(used.largest < 64 << 10, "{used:?}");
    }

    #[test]
    fn wide_rows_count_what_they_hold() {
        // 4096 columns, then rows of NULLs: 514 bytes each on the wire, but each row holds
        // a slot and a copy of the column's name for every column.
        const ROWS: usize = 600;
        let port = server(|mut s| {
            let mut out = Vec::new();
            packet(&mut out, &[0xfc, 0x00, 0x10]);
            let mut col = Vec::new();
            for f in ["def", "", "", "", "a", ""] {
                put_lenenc(&mut col, f.len());
                col.extend_from_slice(f.as_bytes());
            }
            col.push(0x0c);
            col.extend_from_slice(&[45, 0, 0, 0, 0, 0, TYPE_VAR_STRING, 0, 0, 0, 0, 0]);
            for _ in 0..4096 {
                packet(&mut out, &col);
            }
            packet(&mut out, &[0xfe, 0, 0, 2, 0]);
            let mut row = vec![0u8];
            row.resize(1 + (4096 + 9) / 8, 0xff);
            for _ in 0..ROWS {
                packet(&mut out, &row);
            }
            packet(&mut out, &[0xfe, 0, 0, 2, 0]);
            let _ = s.write_all(&out);
        });
        let mut m = connected(port);
        let (r, used) = measure(|| m.result().map(|(rows, _)| rows.len()));
        assert!(
            used.peak < (MAX_RESULT + (8 << 20)) as isize,
            "{used:?} {r:?}"
        );
        assert!(r.is_err(), "{r:?}");
    }

    /// A MariaDB-like greeting offering `plugin`, with CLIENT_SSL when `tls`.
    fn greeting_packet(plugin: &str, tls: bool) -> Vec<u8> {
        let caps = CLIENT_LONG_PASSWORD
            | CLIENT_PROTOCOL_41
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH
            | CLIENT_PLUGIN_AUTH_LENENC
            | CLIENT_CONNECT_WITH_DB
            | if tls { CLIENT_SSL } else { 0 };
        let mut g = vec![10];
        g.extend_from_slice(b"8.0.36\0");
        g.extend_from_slice(&7u32.to_le_bytes());
        g.extend_from_slice(b"abcdefgh\0");
        g.extend_from_slice(&(caps as u16).to_le_bytes());
        g.push(CHARSET);
        g.extend_from_slice(&[2, 0]);
        g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0; 10]);
        g.extend_from_slice(b"ijklmnopqrst\0");
        g.extend_from_slice(plugin.as_bytes());
        g.push(0);
        let mut out = Vec::new();
        let mut seq = 0;
        frame(&mut seq, &mut out, &g);
        out
    }

    /// One packet read by the server: its sequence id and payload.
    fn server_read(s: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
        let mut h = [0u8; 4];
        s.read_exact(&mut h)?;
        let n = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
        let mut p = vec![0u8; n];
        s.read_exact(&mut p)?;
        Ok((h[3], p))
    }

    fn server_send(s: &mut impl Write, seq: u8, payload: &[u8]) {
        let mut out = Vec::new();
        let mut seq = seq;
        frame(&mut seq, &mut out, payload);
        let _ = s.write_all(&out);
        let _ = s.flush();
    }

    fn target(port: u16, tls: Tls) -> MysqlTarget {
        MysqlTarget {
            host: "127.0.0.1".into(),
            port,
            socket: None,
            user: "vpopmail".into(),
            pass: Zeroizing::new("secret".into()),
            db: "vpopmail".into(),
            tls,
        }
    }

    /// What the server saw of a caching_sha2_password login: the SSL request's sequence
    /// id, the response's, and what came after its "full authentication" (0x04) or
    /// "fast authentication worked" (0x03) answer.
    #[derive(Debug, Default, PartialEq)]
    struct Seen {
        ssl_request: Option<u8>,
        response: Option<u8>,
        after: Option<Vec<u8>>,
    }

    /// A caching_sha2_password server, over TLS when the client asks, that answers the
    /// response with `step` (3 or 4) and, at 4, reads the password and accepts.
    fn sha2_server(tls: bool, step: u8) -> (u16, mpsc::Receiver<Seen>) {
        let (tx, rx) = mpsc::channel();
        let port = server(move |mut s| {
            let mut seen = Seen::default();
            let _ = s.write_all(&greeting_packet("caching_sha2_password", tls));
            let Ok((seq, p)) = server_read(&mut s) else {
                let _ = tx.send(seen);
                return;
            };
            let mut rest: Box<dyn ReadWrite> = if p.len() == 32 {
                let caps = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
                assert_ne!(caps & CLIENT_SSL, 0);
                seen.ssl_request = Some(seq);
                let mut t = tls_accept(s);
                let Ok((seq, _)) = server_read(&mut t) else {
                    let _ = tx.send(seen);
                    return;
                };
                seen.response = Some(seq);
                Box::new(t)
            } else {
                seen.response = Some(seq);
                Box::new(s)
            };
            server_send(
                &mut rest,
                2 + u8::from(seen.ssl_request.is_some()),
                &[1, step],
            );
            let ok = [0u8, 0, 0, 2, 0, 0, 0];
            if step == 4 {
                if let Ok((_, p)) = server_read(&mut rest) {
                    seen.after = Some(p);
                    server_send(&mut rest, 5, &ok);
                }
            } else {
                server_send(&mut rest, 4, &ok);
            }
            // Until the client is done with its side.
            let _ = rest.read(&mut [0u8; 64]);
            let _ = tx.send(seen);
        });
        (port, rx)
    }

    #[test]
    fn caching_sha2_full_authentication_over_tls() {
        let (port, rx) = sha2_server(true, 4);
        let t = target(port, tls_with(SslMode::VerifyFull, "ca.pem"));
        Box::new(Mysql::open(&t).unwrap()).close();
        let seen = rx.recv().unwrap();
        // SSL request 1, the response 2 under TLS, then the password itself.
        assert_eq!(seen.ssl_request, Some(1));
        assert_eq!(seen.response, Some(2));
        assert_eq!(seen.after.as_deref(), Some(&b"secret\0"[..]));
    }

    #[test]
    fn caching_sha2_fast_authentication_over_tls() {
        let (port, rx) = sha2_server(true, 3);
        let t = target(port, tls_with(SslMode::Require, "wrong-ca.pem"));
        // REQUIRED with a CA file verifies the chain: the wrong CA is refused...
        let e = Mysql::open(&t).map(drop).unwrap_err().to_string();
        assert!(e.contains("invalid peer certificate"), "{e}");
        let seen = rx.recv().unwrap();
        assert_eq!((seen.ssl_request, seen.response), (Some(1), None));
        // ...and without one it does not verify.
        let (port, rx) = sha2_server(true, 3);
        let t = target(
            port,
            Tls {
                mode: Some(SslMode::Require),
                ca: None,
            },
        );
        Box::new(Mysql::open(&t).unwrap()).close();
        assert_eq!(rx.recv().unwrap().after, None);
    }

    #[test]
    fn caching_sha2_full_authentication_refused_in_clear() {
        // No TLS offered, preferred: plain, and the server's request for the password
        // itself is refused rather than answered (or the RSA key fetched).
        let (port, rx) = sha2_server(false, 4);
        let t = target(port, Tls::default());
        let e = Mysql::open(&t).map(drop).unwrap_err().to_string();
        assert!(e.contains("full authentication"), "{e}");
        let seen = rx.recv().unwrap();
        assert_eq!((seen.ssl_request, seen.response), (None, Some(1)));
        assert_eq!(seen.after, None);
    }

    #[test]
    fn required_tls_from_a_server_without_it() {
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            let (port, rx) = sha2_server(false, 3);
            let t = target(port, tls_with(mode, "ca.pem"));
            let e = Mysql::open(&t).map(drop).unwrap_err().to_string();
            assert!(e.contains("does not offer TLS"), "{e}");
            // Nothing sent: no user name, no scrambled password.
            assert_eq!(rx.recv().unwrap(), Seen::default());
        }
        // Disabled: plain even when the server offers TLS.
        let (port, rx) = sha2_server(true, 3);
        let t = target(port, tls_with(SslMode::Disable, "ca.pem"));
        Box::new(Mysql::open(&t).unwrap()).close();
        assert_eq!(rx.recv().unwrap().ssl_request, None);
    }

    #[test]
    fn bytes_after_the_greeting_are_refused() {
        // The greeting offers TLS and an OK packet follows it in the clear: under TLS
        // it would pass for the server's answer to the login.
        let (tx, rx) = mpsc::channel();
        let port = server(move |mut s| {
            let mut out = greeting_packet("mysql_native_password", true);
            out.extend_from_slice(&[7, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0]);
            let _ = s.write_all(&out);
            let _ = tx.send(server_read(&mut s).ok());
        });
        let e = Mysql::open(&target(port, Tls::default()))
            .map(drop)
            .unwrap_err()
            .to_string();
        assert!(e.contains("before the TLS handshake"), "{e}");
        // The SSL request went out (it carries no secret); nothing after it.
        let (seq, p) = rx.recv().unwrap().expect("the SSL request");
        assert_eq!((seq, p.len()), (1, 32));
    }

    #[test]
    fn verification_against_the_wrong_ca() {
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let (port, rx) = sha2_server(true, 3);
            let t = target(port, tls_with(mode, "wrong-ca.pem"));
            let e = Mysql::open(&t).map(drop).unwrap_err().to_string();
            assert!(e.contains("TLS handshake failed"), "{e}");
            assert!(e.contains("UnknownIssuer"), "{e}");
            let seen = rx.recv().unwrap();
            assert_eq!((seen.ssl_request, seen.response), (Some(1), None));
        }
    }

    #[test]
    fn versions() {
        assert!(mariadb_direct_execute("5.5.5-10.11.19-MariaDB-0+deb12u1"));
        assert!(mariadb_direct_execute("10.2.1-MariaDB"));
        assert!(!mariadb_direct_execute("5.5.5-10.1.48-MariaDB"));
        assert!(!mariadb_direct_execute("8.0.36"));
    }
}
