//! The parent's live children by pid (with each one's client address and PROXY slot) and
//! its count of live children per client address, in a mapping that children do not
//! inherit (`MADV_DONTFORK`).
//!
//! The parent writes these tables right after every fork (the new child) and at every
//! reap. Kept in heap pages that the newest child still shares copy-on-write, each such
//! write copied a page: a fault in the parent per connection, and a page the child owned
//! until its exec. Outside the child's address space they cost neither. The child never
//! reads them: it is handed its count as a value before the fork.
//!
//! Two open-addressing tables (linear probing, deletion by backward shift), each in a
//! mapping of its own that is replaced by one twice as large when it is half full, up to
//! twice the `-c` limit: sized by the most children the server has had at once, not by
//! its limit.

use std::net::{IpAddr, Ipv6Addr};

use std::ptr::NonNull;
use ucspi::addr::{mapped, unmapped};

/// Most live children tracked: beyond this many at once (only with a `-c` above it) a
/// child is not counted, as if it were alone.
pub const MOST: u64 = 1 << 20;

const MULT: u64 = 0x9e37_79b9_7f4a_7c15;

/// A table key: hashed by a multiply (keys are pids and client addresses, not chosen
/// freely by anyone, and the table never holds more than half its slots).
trait Key: Copy + Eq {
    fn hash(self) -> u64;
}

impl Key for i32 {
    fn hash(self) -> u64 {
        u64::from(self as u32).wrapping_mul(MULT)
    }
}

impl Key for Addr {
    fn hash(self) -> u64 {
        let k = u128::from_be_bytes(self);
        ((k >> 64) as u64 ^ (k as u64).rotate_left(29)).wrapping_mul(MULT)
    }
}

/// An address as IPv6 (IPv4 mapped), as bytes so that a slot is 28 bytes and not the 48
/// that a u128's alignment would make it.
type Addr = [u8; 16];

/// A slot; all zero bytes is an unused one (fresh anonymous pages are zero).
#[repr(C)]
#[derive(Clone, Copy)]
struct Slot<K, V> {
    used: bool,
    key: K,
    val: V,
}

/// Slots in a new table: one page's worth at least.
const FIRST_SLOTS: usize = 128;

struct Table<K, V> {
    slots: NonNull<Slot<K, V>>,
    /// Slots minus one; a power of two minus one.
    mask: usize,
    shift: u32,
    len: usize,
    /// The most slots it may grow to.
    most: usize,
}

impl<K: Key, V: Copy> Table<K, V> {
    /// A table of `n` slots (a power of two) that may grow to `most`, in a fresh mapping
    /// of its own; `None` when the system refuses it.
    fn with_slots(n: usize, most: usize) -> Option<Table<K, V>> {
        let bytes = std::num::NonZeroUsize::new(n * std::mem::size_of::<Slot<K, V>>())?;
        let p = crate::pages::map(bytes, crate::pages::Inherit::No)?;
        Some(Table {
            // Zeroed and page-aligned: n unused slots.
            slots: p.cast(),
            mask: n - 1,
            shift: 64 - n.trailing_zeros(),
            len: 0,
            most,
        })
    }

    /// Moves every entry into a table twice as large and unmaps this one's pages; false
    /// (nothing changed) at the most slots or when the system refuses the mapping.
    #[cold]
    fn grow(&mut self) -> bool {
        let n = self.mask + 1;
        if n >= self.most {
            return false;
        }
        let Some(mut bigger) = Table::with_slots(2 * n, self.most) else {
            return false;
        };
        for i in 0..n {
            let s = self.at(i);
            if s.used {
                let j = bigger.find(s.key);
                bigger.put(j, s);
                bigger.len += 1;
            }
        }
        let old = std::mem::replace(self, bigger);
        // SAFETY: the old table's own mapping, of exactly this size, which nothing
        // points into any more (the parent alone uses it; children never had it).
        let _ = unsafe {
            nix::sys::mman::munmap(old.slots.cast(), n * std::mem::size_of::<Slot<K, V>>())
        };
        true
    }

    fn at(&self, i: usize) -> Slot<K, V> {
        // SAFETY: i is masked into the table, whose slots are valid for its life.
        unsafe { self.slots.as_ptr().add(i & self.mask).read() }
    }

    fn put(&mut self, i: usize, s: Slot<K, V>) {
        // SAFETY: as in `at`; only this table writes its slots.
        unsafe { self.slots.as_ptr().add(i & self.mask).write(s) }
    }

    fn home(&self, k: K) -> usize {
        (k.hash() >> self.shift) as usize
    }

    /// The index of `k`'s slot, or of the unused slot where it would go.
    fn find(&self, k: K) -> usize {
        let mut i = self.home(k);
        loop {
            let s = self.at(i);
            if !s.used || s.key == k {
                return i & self.mask;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn get(&self, k: K) -> Option<V> {
        let s = self.at(self.find(k));
        s.used.then_some(s.val)
    }

    /// Sets `k`'s value to `f(old)`; false (and nothing stored) when `k` is new and the
    /// table is half full and cannot grow.
    fn update(&mut self, k: K, f: impl FnOnce(Option<V>) -> V) -> bool {
        let mut i = self.find(k);
        let mut s = self.at(i);
        if !s.used {
            if self.len > self.mask / 2 {
                if !self.grow() {
                    return false;
                }
                i = self.find(k);
                s = self.at(i);
            }
            self.len += 1;
        }
        let val = f(s.used.then_some(s.val));
        self.put(
            i,
            Slot {
                used: true,
                key: k,
                val,
            },
        );
        true
    }

    fn remove(&mut self, k: K) -> Option<V> {
        let mut i = self.find(k);
        let gone = self.at(i);
        if !gone.used {
            return None;
        }
        // Backward shift: move up each later slot of the run that may sit in the hole.
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let next = self.at(j);
            if !next.used {
                break;
            }
            let home = self.home(next.key) & self.mask;
            // `next` may fill the hole at i unless its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                self.put(i, next);
                i = j;
            }
        }
        self.put(
            i,
            Slot {
                used: false,
                ..gone
            },
        );
        self.len -= 1;
        Some(gone.val)
    }

    fn values(&self) -> impl Iterator<Item = V> + '_ {
        (0..=self.mask).filter_map(|i| {
            let s = self.at(i);
            s.used.then_some(s.val)
        })
    }
}

fn key(ip: IpAddr) -> Addr {
    mapped(ip).octets()
}

fn address(k: Addr) -> IpAddr {
    unmapped(IpAddr::V6(Ipv6Addr::from(k)))
}

/// A live child: its client address (as accepted) and its PROXY slot plus one (0: none).
type Child = (Addr, u32);

pub struct ClientCounts {
    by_pid: Table<i32, Child>,
    by_ip: Table<Addr, u32>,
}

impl ClientCounts {
    /// Room for `most` live children (at most [`MOST`]); `None` when the system refuses
    /// the first mappings.
    pub fn new(most: u64) -> Option<ClientCounts> {
        let last = (2 * most.clamp(1, MOST)).next_power_of_two() as usize;
        let first = last.min(FIRST_SLOTS);
        Some(ClientCounts {
            by_pid: Table::with_slots(first, last)?,
            by_ip: Table::with_slots(first, last)?,
        })
    }

    /// Live children from `ip`.
    pub fn from(&self, ip: IpAddr) -> u64 {
        u64::from(self.by_ip.get(key(ip)).unwrap_or(0))
    }

    /// A child started for a client at `ip`, with its PROXY slot if it has one.
    pub fn started(&mut self, pid: libc::pid_t, ip: IpAddr, slot: Option<u32>) {
        let k = key(ip);
        let slot = slot.map_or(0, |s| s.saturating_add(1));
        if self.by_pid.update(pid, |_| (k, slot)) {
            self.by_ip.update(k, |n| n.unwrap_or(0) + 1);
        }
    }

    /// A child ended: its PROXY slot, if it had one. Unknown pids are ignored.
    pub fn ended(&mut self, pid: libc::pid_t) -> Option<u32> {
        let (k, slot) = self.by_pid.remove(pid)?;
        if let Some(n) = self.by_ip.get(k) {
            if n <= 1 {
                self.by_ip.remove(k);
            } else {
                self.by_ip.update(k, |_| n - 1);
            }
        }
        slot.checked_sub(1)
    }

    /// Each live child's client address as accepted, and its PROXY slot.
    pub fn children(&self) -> impl Iterator<Item = (IpAddr, Option<u32>)> + '_ {
        self.by_pid
            .values()
            .map(|(k, slot)| (address(k), slot.checked_sub(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn counts_like_a_map() {
        // Few slots, so that runs wrap around the end and deletions shift.
        let mut c = ClientCounts::new(8).unwrap();
        let ips: Vec<IpAddr> = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "::ffff:192.0.2.3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut model: HashMap<i32, IpAddr> = HashMap::new();
        let mut seed = 7u64;
        for step in 0..20_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pid = 1 + ((seed >> 33) % 24) as i32;
            if model.contains_key(&pid) || model.len() == 8 {
                let victim = if model.contains_key(&pid) {
                    pid
                } else {
                    *model.keys().next().unwrap()
                };
                let slot = c.ended(victim);
                assert_eq!(slot, Some(victim as u32), "step {step}");
                model.remove(&victim);
            } else {
                let ip = ips[(seed >> 20) as usize % ips.len()];
                c.started(pid, ip, Some(pid as u32));
                model.insert(pid, ip);
            }
            for ip in &ips {
                let want = model.values().filter(|v| key(**v) == key(*ip)).count() as u64;
                assert_eq!(c.from(*ip), want, "step {step} {ip}");
            }
            assert_eq!(c.children().count(), model.len());
        }
        assert_eq!(c.ended(999), None);
    }

    #[test]
    fn slots_are_small() {
        assert_eq!(std::mem::size_of::<Slot<i32, Child>>(), 28);
        assert_eq!(std::mem::size_of::<Slot<Addr, u32>>(), 24);
        for ip in [
            "192.0.2.1",
            "2001:db8::1",
            "::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(address(key(ip)), ip);
        }
    }

    #[test]
    fn grows_to_the_limit_and_keeps_every_entry() {
        let mut c = ClientCounts::new(1000).unwrap();
        assert_eq!(c.by_pid.mask + 1, FIRST_SLOTS);
        let ip = |n: i32| -> IpAddr {
            if n % 3 == 0 {
                format!("2001:db8::{:x}", n % 7).parse().unwrap()
            } else {
                format!("192.0.2.{}", n % 5).parse().unwrap()
            }
        };
        for pid in 1..=1000 {
            c.started(pid, ip(pid), Some(pid as u32));
        }
        assert_eq!(c.by_pid.mask + 1, 2048);
        assert_eq!(c.children().count(), 1000);
        for n in 0..21 {
            let want = (1..=1000).filter(|&p| ip(p) == ip(n)).count() as u64;
            assert_eq!(c.from(ip(n)), want, "{}", ip(n));
        }
        // At the limit's size it grows no further: the 1025th child is not counted.
        for pid in 1001..=1030 {
            c.started(pid, ip(pid), None);
        }
        assert_eq!(c.by_pid.mask + 1, 2048);
        assert_eq!(c.children().count(), 1024);
        for pid in (1..=1030).rev() {
            let slot = c.ended(pid);
            assert_eq!(slot, (pid <= 1000).then_some(pid as u32), "pid {pid}");
        }
        assert_eq!(c.children().count(), 0);
        assert_eq!(c.from(ip(1)), 0);
    }

    #[test]
    fn full_table_counts_nothing_more() {
        let mut c = ClientCounts::new(1).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for pid in 1..=10 {
            c.started(pid, ip, None);
        }
        // Two slots, at most half full plus one: the rest were not counted.
        assert!(c.from(ip) <= 2);
        assert_eq!(c.children().count() as u64, c.from(ip));
        for pid in 1..=10 {
            c.ended(pid);
        }
        assert_eq!(c.from(ip), 0);
        assert_eq!(c.children().count(), 0);
    }

    #[test]
    fn children_do_not_inherit_it() {
        let mut c = ClientCounts::new(4).unwrap();
        c.started(1, "192.0.2.1".parse().unwrap(), None);
        let addr = c.by_pid.slots.as_ptr() as usize;
        // One read of smaps: reading maps first and finding its line in smaps later
        // raced with other tests' mappings merging with this one in between.
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        let mut vmflags = None;
        for l in smaps.lines() {
            let range = l
                .split_once(' ')
                .and_then(|(r, _)| r.split_once('-'))
                .and_then(|(a, b)| {
                    Some((
                        usize::from_str_radix(a, 16).ok()?,
                        usize::from_str_radix(b, 16).ok()?,
                    ))
                });
            if let Some((a, b)) = range {
                inside = (a..b).contains(&addr);
            } else if inside && l.starts_with("VmFlags:") {
                vmflags = Some(l);
                break;
            }
        }
        let vmflags = vmflags.expect("the table's mapping in smaps");
        assert!(vmflags.split_whitespace().any(|f| f == "dc"), "{vmflags}");
    }
}
