//! Starting the program for a connection the parent admitted itself, without fork.
//!
//! When nothing about a connection has to be learnt in a process of its own (no DNS, no
//! ident, no PROXY header, no banner, and a rules file the parent holds), the parent can
//! decide everything djb's child decides, and all that is left for a child is fds 0 and
//! 1, the signal state and execve. fork would copy the parent's mappings and page tables
//! for that, fault pages on both sides until the exec, and tear the copy down again in
//! it; [`CloneExec::spawn`] instead starts the child in the parent's address space
//! (`CLONE_VM`) on a small stack of its own, where it makes those few system calls and
//! execs. Unlike vfork or posix_spawn the parent does not wait for the exec: it goes
//! back to accept at once.
//!
//! The memory the child reads (its stack, the environment, the argument and path lists)
//! must stay as it is until the child has exec'd or died. The kernel says when: with
//! `CLONE_CHILD_CLEARTID` it zeroes a word of the child's slot as the child lets go of
//! the address space, at execve or exit. A slot is handed out again only once its word
//! is zero, so the parent never waits and never reaps for it.
//!
//! The child runs no code that could touch the parent's state: it does not allocate,
//! and its system calls are made directly ([`raw`]), because libc's wrappers would store
//! a failure in `errno`, which it shares with the parent. Signals are blocked from before
//! the clone until the child has set the defaults, so no handler of the parent's runs on
//! its stack. A failed exec is reported by the child itself, in djb's words, and it
//! exits 111 as a forked child does.

use std::ffi::{c_void, CString};
use std::io;
use std::os::raw::{c_char, c_int};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, Ordering};

use ucspi::env::Env;
use ucspi::msg::Msg;

use crate::pages::{self, Inherit};

/// One slot: the child's plan at its start, its stack below the end.
const SLOT: usize = 16 << 10;

/// Most slots in use at once: more children between clone and exec than this (never
/// seen: a child holds its slot for the few system calls before exec) fall back to fork.
const MAX_SLOTS: u64 = 1024;

/// What a child reads, at the start of its slot.
#[repr(C)]
struct Plan {
    /// The child's thread id while it still uses the slot: written by the kernel at
    /// clone (`CLONE_PARENT_SETTID`), zeroed as the child execs or exits.
    tid: AtomicI32,
    conn: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
    /// The names to try, in djb's `pathexec` order, NULL-terminated.
    paths: *const *const c_char,
    listeners: *const c_int,
    n_listeners: usize,
    /// `PROG: warning: dropping connection, ` (empty under `-q`).
    fail: *const u8,
    fail_len: usize,
}

/// What the parent keeps alive for a slot's child until it lets go of the slot.
struct Keep {
    _env: Env,
    _envp: Vec<*const c_char>,
}

pub struct CloneExec {
    area: NonNull<u8>,
    slots: u32,
    /// Slots handed out so far (those above are untouched pages).
    made: u32,
    free: Vec<u32>,
    busy: Vec<u32>,
    keep: Vec<Option<Keep>>,
    argv: Vec<*const c_char>,
    _names: Vec<CString>,
    paths: Vec<*const c_char>,
    listeners: Vec<c_int>,
    fail: Vec<u8>,
}

impl CloneExec {
    /// For a server of at most `limit` children running `argv` (searched in `path` as
    /// djb's `pathexec` does), whose listeners are `listeners`; `None` where the clone
    /// start is not built (other architectures) or the slots cannot be mapped.
    pub fn new(
        msg: &Msg,
        argv: &[CString],
        path: Option<&[u8]>,
        listeners: Vec<c_int>,
        limit: u64,
    ) -> Option<CloneExec> {
        if !raw::AVAILABLE || argv.is_empty() || raw::under_valgrind() {
            return None;
        }
        let slots = limit.clamp(1, MAX_SLOTS) as u32;
        let len = std::num::NonZeroUsize::new(slots as usize * SLOT)?;
        let area = pages::map(len, Inherit::No)?.cast::<u8>();
        let names = ucspi::exec::search_names(argv[0].as_bytes(), path);
        let mut paths: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        paths.push(std::ptr::null());
        let mut args: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        args.push(std::ptr::null());
        let mut fail = msg.warning_head();
        if !fail.is_empty() {
            fail.extend_from_slice(b"dropping connection, ");
        }
        Some(CloneExec {
            area,
            slots,
            made: 0,
            free: Vec::new(),
            busy: Vec::new(),
            keep: Vec::new(),
            argv: args,
            _names: names,
            paths,
            listeners,
            fail,
        })
    }

    fn plan(&self, slot: u32) -> *mut Plan {
        // SAFETY: slot < self.slots, so the offset stays inside the mapping.
        unsafe { self.area.as_ptr().add(slot as usize * SLOT).cast() }
    }

    /// A slot no child uses: the last freed, else one whose child has exec'd since,
    /// else a new one.
    fn take(&mut self) -> Option<u32> {
        if let Some(s) = self.free.pop() {
            return Some(s);
        }
        let mut i = 0;
        while i < self.busy.len() {
            let s = self.busy[i];
            // SAFETY: a slot handed out holds a Plan.
            if unsafe { &(*self.plan(s)).tid }.load(Ordering::Acquire) == 0 {
                self.busy.swap_remove(i);
                self.free.push(s);
            } else {
                i += 1;
            }
        }
        if let Some(s) = self.free.pop() {
            return Some(s);
        }
        if self.made < self.slots {
            self.made += 1;
            self.keep.push(None);
            return Some(self.made - 1);
        }
        None
    }

    /// Starts the program on `conn` with `base` changed by `overlay`. `None`: no slot
    /// free, fork instead; `Some(Err)`: clone failed, as fork would.
    pub fn spawn(
        &mut self,
        conn: c_int,
        base: &Env,
        overlay: Env,
    ) -> Option<io::Result<libc::pid_t>> {
        let slot = self.take()?;
        let envp = base.envp_with(&overlay).into_ptrs();
        let plan = self.plan(slot);
        // SAFETY: the slot is free (its word is zero: no child reads it), and lies in
        // the mapping; everything it points at lives until the slot is free again (the
        // Keep below, or this struct, which lives as long as the server).
        unsafe {
            plan.write(Plan {
                tid: AtomicI32::new(0),
                conn,
                argv: self.argv.as_ptr(),
                envp: envp.as_ptr(),
                paths: self.paths.as_ptr(),
                listeners: self.listeners.as_ptr(),
                n_listeners: self.listeners.len(),
                fail: self.fail.as_ptr(),
                fail_len: self.fail.len(),
            })
        };
        self.keep[slot as usize] = Some(Keep {
            _env: overlay,
            _envp: envp,
        });
        // SAFETY: the stack's top is the slot's end, 16-aligned (SLOT and the mapping's
        // start are); the flags make a process (no CLONE_THREAD) sharing only memory,
        // whose tid word the kernel sets now and clears at the child's exec or exit.
        let pid = unsafe {
            let all = raw::block_all();
            let top = plan.cast::<u8>().add(SLOT).cast::<c_void>();
            let tid = std::ptr::addr_of_mut!((*plan).tid).cast::<libc::pid_t>();
            let pid = libc::clone(
                child,
                top,
                libc::CLONE_VM
                    | libc::CLONE_PARENT_SETTID
                    | libc::CLONE_CHILD_CLEARTID
                    | libc::SIGCHLD,
                plan.cast(),
                tid,
                std::ptr::null_mut::<c_void>(),
                tid,
            );
            let e = io::Error::last_os_error();
            raw::restore(&all);
            if pid < 0 {
                Err(e)
            } else {
                Ok(pid)
            }
        };
        match pid {
            Ok(_) => self.busy.push(slot),
            Err(_) => self.free.push(slot),
        }
        Some(pid)
    }
}

/// The child: fds 0 and 1, default signals, an empty mask, djb's search of the path
/// (`ucspi::exec::search`, which allocates nothing).
/// Only direct system calls and reads of the plan; never returns.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the slot's Plan, which stays as it is until this process execs or
    // exits (see the module's notes); the pointers in it are valid NULL-terminated
    // arrays and counted buffers.
    unsafe {
        let p = &*(arg as *const Plan);
        let r = if p.conn == 0 {
            raw::call(libc::SYS_fcntl, 0, libc::F_SETFD as usize, 0, 0)
        } else {
            raw::call(libc::SYS_dup3, p.conn as usize, 0, 0, 0)
        };
        let r = if r < 0 {
            r
        } else {
            raw::call(libc::SYS_dup3, 0, 1, 0, 0)
        };
        if r < 0 {
            fail(p, b"unable to set up descriptors", &[], -r as i32);
        }
        if p.conn > 1 {
            raw::call(libc::SYS_close, p.conn as usize, 0, 0, 0);
        }
        for i in 0..p.n_listeners {
            raw::call(libc::SYS_close, *p.listeners.add(i) as usize, 0, 0, 0);
        }
        for sig in crate::server::CHANGED_SIGNALS {
            raw::default_action(sig as c_int);
        }
        raw::unblock_all();
        let mut name = p.paths;
        let names = std::iter::from_fn(|| {
            if (*name).is_null() {
                return None;
            }
            let n = std::ffi::CStr::from_ptr(*name);
            name = name.add(1);
            Some(n)
        });
        let saved = ucspi::exec::search(names, |n| -> Result<(), i32> {
            let r = raw::call(
                libc::SYS_execve,
                n.as_ptr() as usize,
                p.argv as usize,
                p.envp as usize,
                0,
            );
            Err(-r as i32)
        })
        .err()
        .unwrap_or(libc::ENOENT);
        let prog = std::ffi::CStr::from_ptr(*p.argv).to_bytes();
        fail(p, b"unable to run ", prog, saved)
    }
}

/// djb's warning for a dropped connection (`PROG: warning: dropping connection, WHAT:
/// REASON`) in one write, unless `-q`; then 111, as a forked child exits.
///
/// # Safety
/// `p.fail` holds `p.fail_len` bytes.
unsafe fn fail(p: &Plan, what: &[u8], name: &[u8], errno: i32) -> ! {
    if p.fail_len > 0 {
        let why = ucspi::errstr::errno_str(errno).as_bytes();
        let part = |b: *const u8, n: usize| libc::iovec {
            iov_base: b as *mut c_void,
            iov_len: n,
        };
        let iov = [
            part(p.fail, p.fail_len),
            part(what.as_ptr(), what.len()),
            part(name.as_ptr(), name.len()),
            part(b": ".as_ptr(), 2),
            part(why.as_ptr(), why.len()),
            part(b"\n".as_ptr(), 1),
        ];
        raw::call(libc::SYS_writev, 2, iov.as_ptr() as usize, iov.len(), 0);
    }
    raw::exit(ucspi::msg::EXIT_TEMP)
}

/// System calls without libc, which would keep a failure in the `errno` the child shares
/// with the parent. Built for x86_64 and aarch64 Linux; elsewhere [`AVAILABLE`] is false
/// and every connection forks.
mod raw {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub const AVAILABLE: bool = true;
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub const AVAILABLE: bool = false;

    /// The raw result: a value, or minus the errno.
    ///
    /// # Safety
    /// The caller vouches for the call and its arguments.
    #[cfg(target_arch = "x86_64")]
    pub unsafe fn call(n: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
        let r: isize;
        std::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => r,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
        r
    }

    /// # Safety
    /// As above.
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn call(n: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
        let r: isize;
        std::arch::asm!(
            "svc 0",
            in("x8") n,
            inlateout("x0") a as isize => r,
            in("x1") b,
            in("x2") c,
            in("x3") d,
            options(nostack),
        );
        r
    }

    /// # Safety
    /// Never called where [`AVAILABLE`] is false.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub unsafe fn call(_: libc::c_long, _: usize, _: usize, _: usize, _: usize) -> isize {
        -(libc::ENOSYS as isize)
    }

    /// Whether the process runs on Valgrind, which stops a program at a clone that is
    /// neither a fork nor a thread: there every connection forks, so that callgrind and
    /// memcheck still see the whole server. Valgrind's client request asks: natively
    /// the rotations leave the register as it was and the result is the default, 0.
    pub fn under_valgrind() -> bool {
        let request: [u64; 6] = [0x1001, 0, 0, 0, 0, 0];
        let found: u64;
        // SAFETY: rotations by 128 bits in all and a no-op exchange, natively; under
        // Valgrind, a request that only reads `request`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            std::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                inout("rdx") 0u64 => found,
                in("rax") request.as_ptr(),
                inout("rdi") 0u64 => _,
                options(nostack),
            );
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            found = 0;
        }
        let _ = &request;
        found != 0
    }

    /// The kernel's signal set: 64 signals.
    type Set = u64;
    const SET_SIZE: usize = std::mem::size_of::<Set>();

    fn set_mask(new: &Set, old: Option<&mut Set>) {
        let old = old.map_or(0, |o| o as *mut Set as usize);
        // SAFETY: both sets are SET_SIZE bytes, as the call is told.
        unsafe {
            call(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK as usize,
                new as *const Set as usize,
                old,
                SET_SIZE,
            )
        };
    }

    /// Blocks every signal; returns the mask before.
    pub fn block_all() -> Set {
        let mut old = 0;
        set_mask(&Set::MAX, Some(&mut old));
        old
    }

    pub fn restore(old: &Set) {
        set_mask(old, None);
    }

    pub fn unblock_all() {
        set_mask(&0, None);
    }

    /// The kernel's `struct sigaction` on both architectures: handler, flags, restorer,
    /// mask. All zero is SIG_DFL.
    #[repr(C)]
    struct Action {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: Set,
    }

    pub fn default_action(sig: libc::c_int) {
        let a = Action {
            handler: 0,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        // SAFETY: a valid action for a valid signal; the old one is not asked for.
        unsafe {
            call(
                libc::SYS_rt_sigaction,
                sig as usize,
                &a as *const Action as usize,
                0,
                SET_SIZE,
            )
        };
    }

    pub fn exit(code: i32) -> ! {
        loop {
            // SAFETY: exit_group ends this process.
            unsafe { call(libc::SYS_exit_group, code as usize, 0, 0, 0) };
        }
    }
}
