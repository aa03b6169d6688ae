//! Directories as vpopmail lays them out: `DOMAINDIR/[H/]user/Maildir/{cur,new,tmp}`,
//! every level owned by the domain's uid and gid with mode 0700. Each step is idempotent,
//! so a run that failed half-way is mended by running it again.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// vpopmail's bigdir characters, in fill order.
const BUCKETS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Entries per directory level before vpopmail opens the next bucket.
const PER_DIR: u64 = 100;

/// The hashed part for the `n`th user of a domain (0-based): none for the first 100, then
/// one-character buckets of 100 each, then two levels, as vpopmail's fill counters do.
pub fn bucket(n: u64) -> String {
    if n < PER_DIR {
        return String::new();
    }
    let k = BUCKETS.len() as u64;
    let i = (n - PER_DIR) / PER_DIR;
    if i < k {
        return (BUCKETS[i as usize] as char).to_string();
    }
    let j = i - k;
    let (a, b) = ((j / k) % k, j % k);
    format!(
        "{}/{}",
        BUCKETS[a as usize] as char, BUCKETS[b as usize] as char
    )
}

/// Makes `dir` (one level) owned by uid:gid, mode 0700; an existing directory is
/// brought to that owner and mode. Returns whether it was created.
pub fn make_dir(dir: &Path, uid: u32, gid: u32) -> Result<bool, String> {
    let created = match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if !dir.is_dir() {
                return Err(format!("{} exists and is not a directory", dir.display()));
            }
            false
        }
        Err(e) => return Err(format!("unable to create {}: {e}", dir.display())),
    };
    let m = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("unable to stat {}: {e}", dir.display()))?;
    if m.uid() != uid || m.gid() != gid {
        std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
            .map_err(|e| format!("unable to chown {}: {e}", dir.display()))?;
    }
    if m.permissions().mode() & 0o7777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("unable to chmod {}: {e}", dir.display()))?;
    }
    Ok(created)
}

/// The domain's directory, owned by the domain; missing parents are made as `mkdir -p`
/// makes them (mode 0755, owned by whoever runs this), so that the domain's uid can
/// reach its directory through them.
pub fn make_domain_dir(dir: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .collect();
    for p in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(0o755).create(p) {
            Ok(()) => std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("unable to chmod {}: {e}", p.display()))?,
            // Made meanwhile by someone else: theirs as they made it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("unable to create {}: {e}", p.display())),
        }
    }
    make_dir(dir, uid, gid).map(drop)
}

/// Makes `domain_dir/[hash/]user/Maildir/{cur,new,tmp}`. Returns the user directory
/// and whether this call created it.
pub fn make_user(
    domain_dir: &Path,
    hashed: &str,
    user: &str,
    uid: u32,
    gid: u32,
) -> Result<(PathBuf, bool), String> {
    let mut d = domain_dir.to_path_buf();
    if !d.is_dir() {
        return Err(format!("domain directory {} is missing", d.display()));
    }
    for part in hashed.split('/').filter(|p| !p.is_empty()) {
        d.push(part);
        make_dir(&d, uid, gid)?;
    }
    d.push(user);
    let created = make_dir(&d, uid, gid)?;
    let md = d.join("Maildir");
    make_dir(&md, uid, gid)?;
    for sub in ["cur", "new", "tmp"] {
        make_dir(&md.join(sub), uid, gid)?;
    }
    Ok((d, created))
}

/// Removes a directory tree; one that is gone already is no error (a re-run after a
/// failure finishes the job).
pub fn remove_tree(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("unable to remove {}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(bucket(0), "");
        assert_eq!(bucket(99), "");
        assert_eq!(bucket(100), "0");
        assert_eq!(bucket(199), "0");
        assert_eq!(bucket(200), "1");
        assert_eq!(bucket(100 + 61 * 100), "z");
        assert_eq!(bucket(100 + 62 * 100), "0/0");
    }
}
