//! The per-connection child's allocations, in pages of their own.
//!
//! After fork the child shares the parent's heap copy-on-write. Its few dozen small
//! allocations (the environment's entries, argv, envp) would be served from chunks the
//! parent freed during start-up, scattered over the heap, and every page the child writes
//! there is copied. Under [`ChildAlloc`], the binary's global allocator, a child that has
//! called [`enter`] takes its memory from an arena the parent [`reserve`]d and never
//! wrote: the pages the child touches there are new zero pages, not copies, and the rest
//! of the heap stays shared. Nothing is freed there (the child execs or exits soon); what
//! does not fit goes to the system allocator, as does everything in the parent.
//!
//! The arena's state is thread-local: in the TLS block, beside the thread's control
//! block, which fork already makes the child write.
//!
//! The other way round, what the parent writes after every fork and no child reads (its
//! `-v` status line's buffer) is allocated inside [`parent_own`], from a page that
//! children do not inherit (`MADV_DONTFORK`): written in a heap page that the newest child
//! still shares, each line copied that page.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Room for the child's usual allocations many times over: only the pages it touches
/// are ever backed.
const ARENA_BYTES: usize = 64 * 1024;

/// Page-aligned, so that the system allocator's chunk headers (which the parent writes)
/// share no page with it.
const ARENA_ALIGN: usize = 4096;

/// The parent's arena (0: none).
static RESERVED: AtomicUsize = AtomicUsize::new(0);

/// The parent's own page (0: none yet) and the bytes of it handed out.
static OWN: AtomicUsize = AtomicUsize::new(0);
static OWN_USED: AtomicUsize = AtomicUsize::new(0);
const OWN_BYTES: usize = 4096;

thread_local! {
    /// Inside [`parent_own`]: allocations come from the parent's own page.
    static OWN_NOW: Cell<bool> = const { Cell::new(false) };
    /// In a child that entered: the arena's start (0: the system allocator serves).
    static BASE: Cell<usize> = const { Cell::new(0) };
    /// Bytes of the arena handed out.
    static USED: Cell<usize> = const { Cell::new(0) };
}

/// Runs `make` with its allocations (up to a page in all, the rest as usual) in a page
/// that children do not inherit: for what the parent alone writes between forks, and no
/// child touches. Outside the tcpserver binary (another global allocator) `make` just
/// runs.
pub fn parent_own<T>(make: impl FnOnce() -> T) -> T {
    if OWN.load(Ordering::Relaxed) == 0 {
        // No pointer into the page goes to a child (the caller's promise).
        let len = std::num::NonZeroUsize::new(OWN_BYTES).unwrap();
        if let Some(p) = crate::pages::map(len, crate::pages::Inherit::No) {
            OWN.store(p.as_ptr() as usize, Ordering::Relaxed);
        }
    }
    OWN_NOW.set(true);
    let t = make();
    OWN_NOW.set(false);
    t
}

#[inline]
fn in_own(p: *mut u8) -> bool {
    let base = OWN.load(Ordering::Relaxed);
    base != 0 && (base..base + OWN_BYTES).contains(&(p as usize))
}

/// A block of the parent's own page, inside [`parent_own`]; else null.
#[cold]
fn own_bump(layout: Layout) -> *mut u8 {
    let base = OWN.load(Ordering::Relaxed);
    if base == 0 {
        return std::ptr::null_mut();
    }
    let used = OWN_USED.load(Ordering::Relaxed);
    let Some(start) = (base + used).checked_next_multiple_of(layout.align()) else {
        return std::ptr::null_mut();
    };
    match start.checked_add(layout.size()) {
        Some(end) if end <= base + OWN_BYTES => {
            OWN_USED.store(end - base, Ordering::Relaxed);
            start as *mut u8
        }
        _ => std::ptr::null_mut(),
    }
}

/// In the parent, once before it forks: the arena its children will allocate from.
pub fn reserve() {
    if RESERVED.load(Ordering::Relaxed) != 0 {
        return;
    }
    // SAFETY: a valid, non-zero layout; the block is never freed.
    let p = unsafe { System.alloc(Layout::from_size_align(ARENA_BYTES, ARENA_ALIGN).unwrap()) };
    RESERVED.store(p as usize, Ordering::Relaxed);
}

/// First thing in a child: its allocations come from the arena from now on (when its
/// parent reserved one).
pub fn enter() {
    BASE.set(RESERVED.load(Ordering::Relaxed));
    USED.set(0);
}

/// The global allocator of the tcpserver binary: the system's, or the arena in a child.
pub struct ChildAlloc;

#[inline]
fn in_arena(p: *mut u8) -> bool {
    let base = BASE.get();
    base != 0 && (base..base + ARENA_BYTES).contains(&(p as usize))
}

/// A fresh block of the arena, or null (no arena here, or it does not fit).
#[inline]
fn bump(layout: Layout) -> *mut u8 {
    let base = BASE.get();
    if base == 0 {
        return std::ptr::null_mut();
    }
    let used = USED.get();
    let start = match (base + used).checked_next_multiple_of(layout.align()) {
        Some(a) => a - base,
        None => return std::ptr::null_mut(),
    };
    match start.checked_add(layout.size()) {
        Some(end) if end <= ARENA_BYTES => {
            USED.set(end);
            (base + start) as *mut u8
        }
        _ => std::ptr::null_mut(),
    }
}

// SAFETY: blocks of the arena are disjoint (one thread: the child), aligned as asked,
// and never reused; all other blocks are the system allocator's, and returned to it.
unsafe impl GlobalAlloc for ChildAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = bump(layout);
        if !p.is_null() {
            return p;
        }
        if OWN_NOW.get() {
            let p = own_bump(layout);
            if !p.is_null() {
                return p;
            }
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = bump(layout);
        if !p.is_null() {
            // SAFETY: a fresh block of layout.size() bytes. (The parent may have
            // reserved a reused chunk, so it is not known to be zero.)
            unsafe { std::ptr::write_bytes(p, 0, layout.size()) };
            return p;
        }
        // SAFETY: as in alloc.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !in_arena(ptr) && !in_own(ptr) {
            // SAFETY: not the arena's, so the system allocator's, with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if BASE.get() == 0 && !in_own(ptr) {
            // SAFETY: the system allocator's block, as the caller describes it.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees that the new layout is valid.
        let new =
            unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least the smaller size, and are distinct.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
