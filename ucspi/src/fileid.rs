//! A file's identity as a server checks it for changes before each connection: device,
//! inode, size, modification and change times. A file replaced by rename (tcprules) gets
//! a new inode; one rewritten in place gets new times.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub type Identity = (u64, u64, u64, i64, i64, i64, i64);

pub fn of_metadata(m: &std::fs::Metadata) -> Identity {
    (
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

/// The identity of the file at `path` (following links), if it can be stat'ed.
pub fn of_path(path: &Path) -> Option<Identity> {
    std::fs::metadata(path).ok().map(|m| of_metadata(&m))
}
