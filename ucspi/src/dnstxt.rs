//! TXT lookups (rblsmtpd's `-r`), with djbdns's `dns_txt` result: the character-strings
//! of every TXT record of the answer, concatenated.

use std::io;

use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

use crate::dns::Resolver;

/// The TXT text of `name` (presentation form); empty when there is none.
pub fn txt_of(res: &Resolver, name: &[u8]) -> io::Result<Vec<u8>> {
    let qname = crate::dns::wire_name(&crate::dns::from_dot(name)?)?;
    Ok(txt_answers(&res.query(qname, RecordType::TXT)?))
}

/// The concatenated TXT strings of the answer records.
pub fn txt_answers(answers: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in answers {
        if let RData::TXT(t) = &r.data {
            if r.dns_class == DNSClass::IN {
                for s in t.txt_data.iter() {
                    out.extend_from_slice(s);
                }
            }
        }
    }
    out
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
        let parse = |r: &[u8]| crate::dns::answers(r, (3, 19)).map(|a| txt_answers(&a));
        assert_eq!(parse(&r).unwrap(), b"abcdef");
        r.truncate(r.len() - 1);
        assert!(parse(&r).is_err());
    }
}
