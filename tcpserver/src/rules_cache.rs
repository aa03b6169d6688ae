//! The rules file, read by the parent and shared with children through fork.
//!
//! djb opens the cdb afresh in every child, so a new file (tcprules renames it into
//! place) applies to the next connection. A child that maps the file anew takes a page
//! fault for every probe into it, and the lookup probes up to ~40 keys (prefixes and
//! CIDR steps). Instead the parent stats the file before every fork and re-reads it when
//! its identity (device, inode, size, times) changed; the child reads the parent's copy
//! without faults. The semantics stay djb's: every connection sees the file as it was at
//! accept time. Files above [`MAX_CACHED`] (where copying page tables at fork would cost
//! more than faults) and any file the parent cannot read are left to the child, which
//! opens them itself and reports errors with djb's warning.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ucspi::fileid::{of_metadata as identity, Identity};

/// Largest rules file kept in the parent.
pub const MAX_CACHED: u64 = 1 << 20;

/// What a rule says to trust a peer's PROXY header (see `child::proxy_trust`).
pub const PROXY_SETTING: &[u8] = b"PROXY_PROTOCOL";

#[derive(Default)]
pub struct RulesCache {
    /// The file last read, whether or not its bytes were kept.
    id: Option<Identity>,
    cached: bool,
    bytes: Vec<u8>,
    /// Whether any rule may name [`PROXY_SETTING`]: only then does a child look its peer
    /// up by address before reading anything.
    proxy: bool,
}

impl RulesCache {
    /// Brings the copy up to date with the file at `p`.
    pub fn refresh(&mut self, p: &Path) {
        let Ok(meta) = std::fs::metadata(p) else {
            // No file: no rule trusts anyone.
            self.id = None;
            self.cached = false;
            self.proxy = false;
            return;
        };
        let id = identity(&meta);
        if self.id == Some(id) {
            return;
        }
        self.id = None;
        self.cached = false;
        // Until the file is read here, the child must look for itself.
        self.proxy = true;
        self.bytes.clear();
        if !meta.is_file() {
            return;
        }
        let Ok(mut f) = std::fs::File::open(p) else {
            return;
        };
        if f.read_to_end(&mut self.bytes).is_err() {
            self.bytes.clear();
            return;
        }
        // Use what was read only if it is the file that was stat'ed, unchanged meanwhile.
        if let Ok(m) = f.metadata() {
            if identity(&m) == id && self.bytes.len() as u64 == m.size() {
                self.proxy = self
                    .bytes
                    .windows(PROXY_SETTING.len())
                    .any(|w| w == PROXY_SETTING);
                self.id = Some(id);
                self.cached = m.size() <= MAX_CACHED;
            }
        }
        if !self.cached {
            self.bytes = Vec::new();
        }
        self.bytes.shrink_to_fit();
    }

    /// The current bytes, if the copy is valid.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.cached.then_some(&self.bytes[..])
    }

    /// Whether some rule of the current file may trust a PROXY header; true when the
    /// file exists but could not be read here, so that the child looks for itself.
    pub fn may_trust_proxy(&self) -> bool {
        self.proxy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_replacement_and_removal() {
        let dir = std::env::temp_dir().join(format!("rules-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("r.cdb");
        let path = f.clone();
        let mut c = RulesCache::default();
        c.refresh(&path);
        assert_eq!(c.bytes(), None);
        std::fs::write(&f, b"one").unwrap();
        c.refresh(&path);
        assert_eq!(c.bytes(), Some(&b"one"[..]));
        let tmp = dir.join("r.tmp");
        std::fs::write(&tmp, b"two!").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        c.refresh(&path);
        assert_eq!(c.bytes(), Some(&b"two!"[..]));
        assert!(!c.may_trust_proxy());
        std::fs::write(&tmp, b"..PROXY_PROTOCOL=v2..").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        c.refresh(&path);
        assert!(c.may_trust_proxy());
        std::fs::write(&tmp, b"two!").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        c.refresh(&path);
        std::fs::remove_file(&f).unwrap();
        c.refresh(&path);
        assert_eq!(c.bytes(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
