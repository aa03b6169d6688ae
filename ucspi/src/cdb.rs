//! Reading djb's constant database format. Writing goes through the `cdb2` crate's
//! `CDBMake`, a straight port of djb's cdb_make that lays records and tables out the same
//! way. Reading is our own: every offset in the file is untrusted, so each read is
//! bounds-checked with 64-bit arithmetic and a corrupt file yields an error, never a
//! panic, an over-read or a lookup that spins for billions of slots.

use std::fs::File;
use std::io;
use std::path::Path;

/// A cdb as bytes in memory (usually a read-only mapping of the file).
#[derive(Clone, Copy, Debug)]
pub struct Cdb<'a> {
    data: &'a [u8],
}

/// The format error djb's cdb code reports as EPROTO ("protocol error").
pub fn corrupt() -> io::Error {
    io::Error::from_raw_os_error(libc::EPROTO)
}

/// djb's cdb hash: h = 5381; h = (h << 5) + h ^ c.
pub fn hash(key: &[u8]) -> u32 {
    let mut h: u32 = 5381;
    for &c in key {
        h = (h.wrapping_shl(5).wrapping_add(h)) ^ u32::from(c);
    }
    h
}

impl<'a> Cdb<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cdb { data }
    }

    fn read(&self, pos: u64, len: u64) -> io::Result<&'a [u8]> {
        let end = pos.checked_add(len).ok_or_else(corrupt)?;
        if end > self.data.len() as u64 {
            return Err(corrupt());
        }
        Ok(&self.data[pos as usize..end as usize])
    }

    fn pair(&self, pos: u64) -> io::Result<(u32, u32)> {
        let b = self.read(pos, 8)?;
        Ok((
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        ))
    }

    /// The data of the first record whose key is `key`, as djb's `cdb_find`.
    pub fn find(&self, key: &[u8]) -> io::Result<Option<&'a [u8]>> {
        self.find_hashed(key, hash(key))
    }

    /// [`find`](Self::find) for a caller that already has `hash(key)`.
    pub fn find_hashed(&self, key: &[u8], h: u32) -> io::Result<Option<&'a [u8]>> {
        let (hpos, hslots) = self.pair(u64::from((h << 3) & 2047))?;
        if hslots == 0 {
            return Ok(None);
        }
        let (hpos, hslots) = (u64::from(hpos), u64::from(hslots));
        let table_end = hpos + hslots * 8;
        if table_end > self.data.len() as u64 {
            return Err(corrupt());
        }
        let mut kpos = hpos + (u64::from(h >> 8) % hslots) * 8;
        for _ in 0..hslots {
            let (slot_hash, pos) = self.pair(kpos)?;
            if pos == 0 {
                return Ok(None);
            }
            kpos += 8;
            if kpos == table_end {
                kpos = hpos;
            }
            if slot_hash == h {
                let pos = u64::from(pos);
                let (klen, dlen) = self.pair(pos)?;
                if klen as usize == key.len() && self.read(pos + 8, u64::from(klen))? == key {
                    return self
                        .read(pos + 8 + u64::from(klen), u64::from(dlen))
                        .map(Some);
                }
            }
        }
        Ok(None)
    }
}

/// An opened cdb file: a read-only mapping, or the bytes read in where mapping is not
/// possible (an empty file, a pipe).
pub enum CdbFile {
    Map(memmap2::Mmap),
    Bytes(Vec<u8>),
}

impl CdbFile {
    pub fn open(path: &Path) -> io::Result<CdbFile> {
        Self::from_file(File::open(path)?)
    }

    pub fn from_file(file: File) -> io::Result<CdbFile> {
        let meta = file.metadata()?;
        if meta.is_file() && meta.len() == 0 {
            // djb's cdb_init tries mmap, which fails with EINVAL on an empty file, and his
            // lookup then reports that errno: keep his wording.
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        if meta.is_file() && meta.len() > 0 && meta.len() <= u64::from(u32::MAX) {
            // SAFETY: the mapping is read-only and tcprules replaces rules files by rename,
            // never rewriting one in place, so the mapped bytes do not change under us.
            if let Ok(m) = unsafe { memmap2::Mmap::map(&file) } {
                return Ok(CdbFile::Map(m));
            }
        }
        let mut v = Vec::new();
        io::Read::read_to_end(&mut &file, &mut v)?;
        Ok(CdbFile::Bytes(v))
    }

    pub fn cdb(&self) -> Cdb<'_> {
        match self {
            CdbFile::Map(m) => Cdb::new(m),
            CdbFile::Bytes(v) => Cdb::new(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(records: &[(&[u8], &[u8])]) -> Vec<u8> {
        let dir = std::env::temp_dir().join(format!(
            "ucspi-cdb-test-{}-{}",
            std::process::id(),
            hash(records[0].0)
        ));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&dir)
            .unwrap();
        let mut m = cdb2::CDBMake::new(f).unwrap();
        for (k, v) in records {
            m.add(k, v).unwrap();
        }
        m.finish().unwrap();
        let bytes = std::fs::read(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        bytes
    }

    #[test]
    fn finds_first_of_duplicates() {
        let b = build(&[(b"one", b"1"), (b"two", b"2"), (b"one", b"first-dup")]);
        let c = Cdb::new(&b);
        assert_eq!(c.find(b"one").unwrap(), Some(&b"1"[..]));
        assert_eq!(c.find(b"two").unwrap(), Some(&b"2"[..]));
        assert_eq!(c.find(b"three").unwrap(), None);
        assert_eq!(c.find(b"").unwrap(), None);
    }

    #[test]
    fn short_files_are_errors() {
        assert!(Cdb::new(b"").find(b"x").is_err());
        assert!(Cdb::new(&[0u8; 100]).find(b"x").is_err());
        // A valid empty cdb is 2048 zero bytes: nothing found, no error.
        assert_eq!(Cdb::new(&[0u8; 2048]).find(b"x").unwrap(), None);
    }

    #[test]
    fn hash_is_djbs() {
        assert_eq!(hash(b""), 5381);
        assert_eq!(hash(b"a"), (5381u32 * 33) ^ 97);
    }
}
