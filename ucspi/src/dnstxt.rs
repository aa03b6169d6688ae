//! TXT lookups (rblsmtpd's `-r`), with djbdns's `dns_txt` result: the character-strings
//! of every TXT record of the answer, concatenated.

use std::io;

use crate::dns::Resolver;

const T_TXT: u16 = 16;

/// The TXT text of `name` (presentation form); empty when there is none.
pub fn txt_of(res: &Resolver, name: &[u8]) -> io::Result<Vec<u8>> {
    let reply = res.query(&crate::dns::from_dot(name)?, T_TXT)?;
    txt_answers(&reply)
}

fn bad() -> io::Error {
    io::Error::from_raw_os_error(libc::EPROTO)
}

fn skip_name(p: &[u8], mut pos: usize) -> io::Result<usize> {
    loop {
        let n = *p.get(pos).ok_or_else(bad)?;
        if n == 0 {
            return Ok(pos + 1);
        }
        if n & 0xc0 == 0xc0 {
            return Ok(pos + 2);
        }
        pos += 1 + usize::from(n);
    }
}

/// The concatenated TXT strings of the answer section of `reply`.
pub fn txt_answers(reply: &[u8]) -> io::Result<Vec<u8>> {
    if reply.len() < 12 {
        return Err(bad());
    }
    let qd = u16::from_be_bytes([reply[4], reply[5]]);
    let an = u16::from_be_bytes([reply[6], reply[7]]);
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(reply, pos)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        pos = skip_name(reply, pos)?;
        let h = reply.get(pos..pos + 10).ok_or_else(bad)?;
        let t = u16::from_be_bytes([h[0], h[1]]);
        let class = u16::from_be_bytes([h[2], h[3]]);
        let len = usize::from(u16::from_be_bytes([h[8], h[9]]));
        pos += 10;
        let data = reply.get(pos..pos + len).ok_or_else(bad)?;
        pos += len;
        if t != T_TXT || class != 1 {
            continue;
        }
        let mut i = 0;
        while i < data.len() {
            let n = usize::from(data[i]);
            let s = data.get(i + 1..i + 1 + n).ok_or_else(bad)?;
            out.extend_from_slice(s);
            i += 1 + n;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenates_strings_and_records() {
        let mut r = vec![0, 1, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
        r.extend_from_slice(b"\x01x\x00\x00\x10\x00\x01");
        for (t, data) in [
            (16u16, &b"\x03abc\x02de"[..]),
            (1, &b"\x7f\x00\x00\x02"[..]),
            (16, &b"\x01f"[..]),
        ] {
            r.extend_from_slice(&[0xc0, 12]);
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 0, 0, 9]);
            r.extend_from_slice(&(data.len() as u16).to_be_bytes());
            r.extend_from_slice(data);
        }
        assert_eq!(txt_answers(&r).unwrap(), b"abcdef");
        r.truncate(r.len() - 1);
        assert!(txt_answers(&r).is_err());
    }
}
