//! Each live child's client address, in memory shared between the parent and its
//! children: used when a PROXY header can name the client, which only the child learns.
//!
//! The parent counts connections per address at accept time, but behind a load balancer
//! every connection comes from the balancer. The parent gives each child a slot before
//! it forks (and remembers it beside the child's pid); the child writes its client's
//! address there once it knows it (the header's, or its peer's) and counts the live slots
//! holding the same address; the parent frees the slot when it reaps the child. A slot is three words: a state written last (with
//! release ordering) and the address as an IPv6 address (IPv4 mapped).

use std::net::{IpAddr, Ipv6Addr};

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use ucspi::addr::{mapped, unmapped};

/// Most slots: beyond this many children at once, the extra ones count as if alone.
pub const MOST: u64 = 1 << 16;

const WORDS: usize = 3;

pub struct ClientSlots {
    words: NonNull<AtomicU64>,
    len: usize,
    free: Vec<u32>,
}

fn key(ip: IpAddr) -> u128 {
    u128::from(mapped(ip))
}

impl ClientSlots {
    /// `n` slots (at most [`MOST`]) in an anonymous shared mapping; `None` if the system
    /// refuses the mapping.
    pub fn new(n: u64) -> Option<ClientSlots> {
        let len = n.clamp(1, MOST) as usize;
        let bytes = std::num::NonZeroUsize::new(len * WORDS * 8)?;
        let p = crate::pages::map(bytes, crate::pages::Inherit::Shared)?;
        Some(ClientSlots {
            words: p.cast(),
            len,
            free: (0..len as u32).rev().collect(),
        })
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.len * WORDS);
        // SAFETY: within the mapping (checked above), which is zeroed memory that
        // AtomicU64 may view, aligned to a page.
        unsafe { &*self.words.as_ptr().add(i) }
    }

    /// A free slot for the next child (`None` when all are taken).
    pub fn take(&mut self) -> Option<u32> {
        self.free.pop()
    }

    /// Frees `slot`: its child ended, or was never forked.
    pub fn free(&mut self, slot: u32) {
        self.word(slot as usize * WORDS).store(0, Ordering::Release);
        self.free.push(slot);
    }

    /// In the child: records `ip` in `slot` and returns how many live slots hold `ip`,
    /// this one included.
    pub fn claim(&self, slot: u32, ip: IpAddr) -> u64 {
        let k = key(ip);
        let base = slot as usize * WORDS;
        self.word(base + 1)
            .store((k >> 64) as u64, Ordering::Relaxed);
        self.word(base + 2).store(k as u64, Ordering::Relaxed);
        self.word(base).store(1, Ordering::Release);
        self.count(k)
    }

    fn count(&self, k: u128) -> u64 {
        (0..self.len).filter(|&i| self.get(i) == Some(k)).count() as u64
    }

    fn get(&self, i: usize) -> Option<u128> {
        let base = i * WORDS;
        if self.word(base).load(Ordering::Acquire) == 0 {
            return None;
        }
        let hi = self.word(base + 1).load(Ordering::Relaxed);
        let lo = self.word(base + 2).load(Ordering::Relaxed);
        Some((u128::from(hi) << 64) | u128::from(lo))
    }

    /// The address in `slot`, once its child has written it.
    pub fn address_of(&self, slot: u32) -> Option<IpAddr> {
        let k = self.get(slot as usize)?;
        Some(unmapped(IpAddr::V6(Ipv6Addr::from(k))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_frees() {
        let mut s = ClientSlots::new(3).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let (x, y, z) = (s.take().unwrap(), s.take().unwrap(), s.take().unwrap());
        assert_eq!(s.take(), None);
        assert_eq!(s.claim(x, a), 1);
        assert_eq!(s.claim(y, b), 1);
        // The mapped form is the same client.
        assert_eq!(s.claim(z, "::ffff:192.0.2.1".parse().unwrap()), 2);
        assert_eq!(s.address_of(z), Some(a));
        s.free(x);
        assert_eq!(s.address_of(x), None);
        let w = s.take().unwrap();
        assert_eq!(s.claim(w, a), 2);
    }
}
