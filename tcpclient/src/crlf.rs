//! The line-ending filters of addcr, delcr, fixcrio and mconnect-io as byte-at-a-time
//! state machines, so that chunk boundaries never change the output.

/// addcr: CR before every LF (so CRLF becomes CRCRLF, as djb's does).
pub fn add_cr(input: &[u8], out: &mut Vec<u8>) {
    for &c in input {
        if c == b'\n' {
            out.push(b'\r');
        }
        out.push(c);
    }
}

/// delcr: a CR right before LF is dropped; any other CR is kept, also one at the very end
/// of the input (written by [`DelCr::finish`]).
#[derive(Debug, Default)]
pub struct DelCr {
    pending_cr: bool,
}

impl DelCr {
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &c in input {
            if self.pending_cr && c != b'\n' {
                out.push(b'\r');
            }
            self.pending_cr = c == b'\r';
            if !self.pending_cr {
                out.push(c);
            }
        }
    }

    /// End of input: a CR held back is written after all.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

/// fixcrio's direction filter: CR before LF only where it is missing.
#[derive(Debug, Default)]
pub struct FixCr {
    last: u8,
}

impl FixCr {
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &c in input {
            if c == b'\n' && self.last != b'\r' {
                out.push(b'\r');
            }
            out.push(c);
            self.last = c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn del(chunks: &[&[u8]]) -> Vec<u8> {
        let mut d = DelCr::default();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out);
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn delcr_cases() {
        assert_eq!(del(&[b"x\r\r\ny\r"]), b"x\r\ny\r");
        assert_eq!(del(&[b"a\r", b"\nb"]), b"a\nb");
        assert_eq!(del(&[b"\r\r", b"x"]), b"\r\rx");
    }

    #[test]
    fn addcr_and_fixcr() {
        let mut o = Vec::new();
        add_cr(b"x\r\ny\n", &mut o);
        assert_eq!(o, b"x\r\r\ny\r\n");
        let mut f = FixCr::default();
        let mut o = Vec::new();
        f.feed(b"a\nb\r", &mut o);
        f.feed(b"\nc\n", &mut o);
        assert_eq!(o, b"a\r\nb\r\nc\r\n");
    }
}
