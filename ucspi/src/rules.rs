//! The rules format of djb's tcprules: parsing a source line into cdb records.
//!
//! For every line djb's 0.88 accepts, the records are exactly his: key = the address as
//! written (ranges expanded), data = `D\0` for deny then `+NAME=value\0` per setting.
//! Lines djb rejects get a second chance under the extensions: a CRLF ending, IPv6
//! addresses (ucspi-tcp6's separator: the last `:` before the first `,`), IPv6 CIDR and
//! fefe-style `2001:db8:` prefixes. IPv4 CIDR (`10.0.0.0/8`) is the one extension djb
//! would have accepted as a literal key that could never match; it is encoded instead.

use std::io;

use crate::addr;

/// Why a line was not compiled.
#[derive(Debug)]
pub enum CompileError {
    /// A syntax error: djb's `unable to parse this line`.
    Syntax,
    /// Writing a record failed.
    Io(io::Error),
}

impl From<io::Error> for CompileError {
    fn from(e: io::Error) -> Self {
        CompileError::Io(e)
    }
}

/// The text djb quotes for a bad line: trailing newline, blanks and tabs removed, and
/// (since he prints a C string) cut at the first NUL.
pub fn quoted_line(raw: &[u8]) -> &[u8] {
    let s = strip_djb(raw);
    match s.iter().position(|&c| c == 0) {
        Some(n) => &s[..n],
        None => s,
    }
}

fn strip_djb(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn strip_crlf(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r' | b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses what follows the address separator: `allow` or `deny`, then `,NAME=<d>value<d>`
/// items, into the record data. False on any syntax error.
fn parse_instruction(mut x: &[u8], data: &mut Vec<u8>) -> bool {
    data.clear();
    if x.starts_with(b"deny") {
        data.extend_from_slice(b"D\0");
        x = &x[4..];
    } else if x.starts_with(b"allow") {
        x = &x[5..];
    } else {
        return false;
    }
    while let Some((&first, rest)) = x.split_first() {
        if first != b',' {
            return false;
        }
        let Some(eq) = rest.iter().position(|&c| c == b'=') else {
            return false;
        };
        data.push(b'+');
        data.extend_from_slice(&rest[..=eq]);
        let Some((&delim, value)) = rest[eq + 1..].split_first() else {
            return false;
        };
        let Some(end) = value.iter().position(|&c| c == delim) else {
            return false;
        };
        data.extend_from_slice(&value[..end]);
        data.push(0);
        x = &value[end + 1..];
    }
    true
}

/// djb's `getnum`: the bytes up to the first NUL must all be digits (none means 0).
fn getnum(buf: &[u8]) -> Option<u64> {
    let c = match buf.iter().position(|&c| c == 0) {
        Some(n) => &buf[..n],
        None => buf,
    };
    if !c.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(crate::fmt::scan_ulong(c).0)
}

/// Compiles rules lines; keeps its buffers between lines so a long file costs no
/// allocation per line.
#[derive(Default)]
pub struct Compiler {
    data: Vec<u8>,
    key: Vec<u8>,
}

type Emit<'e> = dyn FnMut(&[u8], &[u8]) -> io::Result<()> + 'e;

impl Compiler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Compiles one input line (as read, with its newline if it had one), handing each
    /// record to `emit` in file order.
    pub fn line(&mut self, raw: &[u8], emit: &mut Emit<'_>) -> Result<(), CompileError> {
        if raw.is_empty() || raw[0] == b'#' || raw[0] == b'\n' {
            return Ok(());
        }
        let s = strip_djb(raw);
        let Some(colon) = s.iter().position(|&c| c == b':') else {
            return Ok(());
        };
        if parse_instruction(&s[colon + 1..], &mut self.data) {
            return self.djb_address(&s[..colon], emit);
        }
        // Beyond djb: only lines he rejects reach this point.
        let s = strip_crlf(s);
        if let Some(colon) = s.iter().position(|&c| c == b':') {
            if parse_instruction(&s[colon + 1..], &mut self.data) {
                return self.djb_address(&s[..colon], emit);
            }
        }
        let first_comma = s.iter().position(|&c| c == b',').unwrap_or(s.len());
        let Some(colon) = s[..first_comma].iter().rposition(|&c| c == b':') else {
            return Err(CompileError::Syntax);
        };
        let address = &s[..colon];
        if !address.contains(&b':') || !parse_instruction(&s[colon + 1..], &mut self.data) {
            return Err(CompileError::Syntax);
        }
        self.v6_address(address, emit)
    }

    fn djb_address(&mut self, address: &[u8], emit: &mut Emit<'_>) -> Result<(), CompileError> {
        if !address.contains(&b'=') && !address.contains(&b'@') {
            if address.contains(&b'/') {
                let net = addr::parse_v4_net(address).ok_or(CompileError::Syntax)?;
                self.key.clear();
                self.key.push(b'_');
                addr::v4_bits(net, &mut self.key);
                return Ok(emit(&self.key, &self.data)?);
            }
            if let Some(dash) = address.iter().position(|&c| c == b'-') {
                return self.range(address, dash, emit);
            }
        }
        Ok(emit(address, &self.data)?)
    }

    /// djb's range expansion: `1.2.3.50-100` and `1.2.50-52.`.
    fn range(
        &mut self,
        address: &[u8],
        dash: usize,
        emit: &mut Emit<'_>,
    ) -> Result<(), CompileError> {
        let left = match address[..dash].iter().rposition(|&c| c == b'.') {
            Some(d) => d + 1,
            None => 0,
        };
        let after = dash + 1;
        let right = after
            + address[after..]
                .iter()
                .position(|&c| c == b'.')
                .unwrap_or(address.len() - after);
        let bot = getnum(&address[left..dash]).ok_or(CompileError::Syntax)?;
        let top = getnum(&address[after..right])
            .ok_or(CompileError::Syntax)?
            .min(255);
        let mut n = bot;
        while n <= top {
            self.key.clear();
            self.key.extend_from_slice(&address[..left]);
            let mut digits = crate::fmt::itoa_buf();
            self.key
                .extend_from_slice(crate::fmt::fmt_u64(&mut digits, n));
            self.key.extend_from_slice(&address[right..]);
            emit(&self.key, &self.data)?;
            n += 1;
        }
        Ok(())
    }

    fn v6_address(&mut self, address: &[u8], emit: &mut Emit<'_>) -> Result<(), CompileError> {
        self.key.clear();
        if address.contains(&b'=') {
            return Err(CompileError::Syntax);
        }
        if let Some(at) = address.iter().position(|&c| c == b'@') {
            let ip = addr::parse_v6(&address[at + 1..]).ok_or(CompileError::Syntax)?;
            self.key.extend_from_slice(&address[..=at]);
            addr::v6_full(ip, &mut self.key);
        } else if address.contains(&b'/') {
            let net = addr::parse_v6_net(address).ok_or(CompileError::Syntax)?;
            self.key.push(b'^');
            addr::v6_bits(net, &mut self.key);
        } else if let Some(ip) = addr::parse_v6(address) {
            addr::v6_full(ip, &mut self.key);
        } else if address.ends_with(b":")
            && address.iter().all(|c| c.is_ascii_hexdigit() || *c == b':')
        {
            // fefe's ucspi-tcp-ipv6 prefix, matched against the client's compressed text.
            self.key.extend_from_slice(address);
        } else {
            return Err(CompileError::Syntax);
        }
        Ok(emit(&self.key, &self.data)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Records = Vec<(Vec<u8>, Vec<u8>)>;

    fn compile(line: &str) -> Result<Records, ()> {
        let mut out = Vec::new();
        let mut c = Compiler::new();
        let mut emit = |k: &[u8], d: &[u8]| {
            out.push((k.to_vec(), d.to_vec()));
            Ok(())
        };
        match c.line(line.as_bytes(), &mut emit) {
            Ok(()) => Ok(out),
            Err(_) => Err(()),
        }
    }

    fn rec(k: &str, d: &str) -> (Vec<u8>, Vec<u8>) {
        (k.as_bytes().to_vec(), d.as_bytes().to_vec())
    }

    #[test]
    fn djb_forms() {
        assert_eq!(
            compile("10.0.0.1:allow,A=\"1\",B='x y'\n").unwrap(),
            vec![rec("10.0.0.1", "+A=1\0+B=x y\0")]
        );
        assert_eq!(
            compile("1.2.3.4:deny").unwrap(),
            vec![rec("1.2.3.4", "D\0")]
        );
        assert_eq!(compile(":allow\n").unwrap(), vec![rec("", "")]);
        assert_eq!(
            compile("=:deny,X=//\n").unwrap(),
            vec![rec("=", "D\0+X=\0")]
        );
        assert_eq!(compile("# comment\n").unwrap(), vec![]);
        assert_eq!(compile("no colon here\n").unwrap(), vec![]);
        assert_eq!(
            compile("1.2.3.4:allow  \t \n").unwrap(),
            vec![rec("1.2.3.4", "")]
        );
        assert_eq!(
            compile(" 1.2.3.4:allow\n").unwrap(),
            vec![rec(" 1.2.3.4", "")]
        );
        assert_eq!(
            compile("x:allow,X=+a:b,c+\n").unwrap(),
            vec![rec("x", "+X=a:b,c\0")]
        );
        assert_eq!(
            compile("joe@=h.example:allow\n").unwrap(),
            vec![rec("joe@=h.example", "")]
        );
    }

    #[test]
    fn ranges() {
        let r = compile("1.2.3.50-52:allow\n").unwrap();
        assert_eq!(
            r,
            vec![
                rec("1.2.3.50", ""),
                rec("1.2.3.51", ""),
                rec("1.2.3.52", "")
            ]
        );
        let r = compile("1.2.254-300.:deny\n").unwrap();
        assert_eq!(r, vec![rec("1.2.254.", "D\0"), rec("1.2.255.", "D\0")]);
        assert_eq!(compile("1.2.3.9-5:allow\n").unwrap(), vec![]);
        assert_eq!(
            compile("-1:allow\n").unwrap(),
            vec![rec("0", ""), rec("1", "")]
        );
        assert!(compile("1.2.3.a-5:allow\n").is_err());
        assert_eq!(compile("=a-b:allow\n").unwrap(), vec![rec("=a-b", "")]);
    }

    #[test]
    fn syntax_errors() {
        for l in [
            "1.2.3.4:allowx",
            "1.2.3.4:permit",
            "1.2.3.4:allow,X",
            "1.2.3.4:allow,X=",
            "1.2.3.4:allow,X=\"a",
            "1:2:allow",
        ] {
            assert!(compile(l).is_err(), "{l}");
        }
    }

    #[test]
    fn extensions() {
        assert_eq!(
            compile("1.2.3.4:allow\r\n").unwrap(),
            vec![rec("1.2.3.4", "")]
        );
        assert_eq!(
            compile("::1:allow,X=\"a:b\"\n").unwrap(),
            vec![rec("0000:0000:0000:0000:0000:0000:0000:0001", "+X=a:b\0")]
        );
        assert_eq!(
            compile("joe@2001:db8::1:deny\n").unwrap(),
            vec![rec("joe@2001:0DB8:0000:0000:0000:0000:0000:0001", "D\0")]
        );
        assert_eq!(
            compile("10.0.0.0/8:deny\n").unwrap(),
            vec![rec("_0000e0g0", "D\0")]
        );
        assert_eq!(
            compile("a000::/4:deny\n").unwrap(),
            vec![rec("^`0a0", "D\0")]
        );
        assert_eq!(
            compile("2001:db8::allow\n").unwrap(),
            vec![rec("2001:db8:", "")]
        );
        assert!(compile("10.0.0.0/33:deny").is_err());
        assert!(compile("10.0.0/8:deny").is_err());
        assert!(compile("::1/0:deny").is_err());
        assert!(compile("zz::1:deny").is_err());
    }
}
