//! Anonymous mappings for state whose place across fork matters: shared with the
//! children ([`Inherit::Shared`], the PROXY client slots) or kept out of them
//! ([`Inherit::No`], what the parent alone writes between forks).

use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::sys::mman::{madvise, mmap_anonymous, MapFlags, MmapAdvise, ProtFlags};

pub enum Inherit {
    /// One copy, written by the parent and its children alike.
    Shared,
    /// Not mapped in children at all (`MADV_DONTFORK`), so a write never copies a page.
    No,
}

/// `len` zeroed, page-aligned bytes, never unmapped (they live as long as the server);
/// `None` when the system refuses.
pub fn map(len: NonZeroUsize, inherit: Inherit) -> Option<NonNull<c_void>> {
    let flags = match inherit {
        Inherit::Shared => MapFlags::MAP_SHARED,
        Inherit::No => MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
    };
    // SAFETY: a fresh anonymous mapping at an address of the system's choosing.
    let p = unsafe {
        mmap_anonymous(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            flags,
        )
    }
    .ok()?;
    if let Inherit::No = inherit {
        // SAFETY: exactly the mapping just made, whose users never hand a pointer into
        // it to a child.
        unsafe { madvise(p, len.get(), MmapAdvise::MADV_DONTFORK) }.ok()?;
    }
    Some(p)
}
