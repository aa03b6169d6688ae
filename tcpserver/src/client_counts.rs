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
//! Two open-addressing tables (linear probing, deletion by backward shift) of fixed size,
//! twice the most live children they must hold: they never grow, so the parent never
//! reallocates in its loop, and only the pages a busy server reaches are ever backed.

use std::net::{IpAddr, Ipv6Addr};
use std::ptr::NonNull;

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

impl Key for u128 {
    fn hash(self) -> u64 {
        ((self >> 64) as u64 ^ (self as u64).rotate_left(29)).wrapping_mul(MULT)
    }
}

/// A slot; all zero bytes is an unused one (fresh anonymous pages are zero).
#[repr(C)]
#[derive(Clone, Copy)]
struct Slot<K, V> {
    used: bool,
    key: K,
    val: V,
}

struct Table<K, V> {
    slots: NonNull<Slot<K, V>>,
    /// Slots minus one; a power of two minus one.
    mask: usize,
    shift: u32,
    len: usize,
}

impl<K: Key, V: Copy> Table<K, V> {
    /// # Safety
    /// `slots` points to `mask + 1` zeroed slots that live as long as the table.
    unsafe fn over(slots: NonNull<Slot<K, V>>, mask: usize) -> Table<K, V> {
        Table {
            slots,
            mask,
            shift: 64 - (mask + 1).trailing_zeros(),
            len: 0,
        }
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
    /// table is half full.
    fn update(&mut self, k: K, f: impl FnOnce(Option<V>) -> V) -> bool {
        let i = self.find(k);
        let s = self.at(i);
        if !s.used {
            if self.len > self.mask / 2 {
                return false;
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

fn key(ip: IpAddr) -> u128 {
    u128::from(match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    })
}

fn address(k: u128) -> IpAddr {
    let a = Ipv6Addr::from(k);
    match a.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(a),
    }
}

/// A live child: its client address (as accepted) and its PROXY slot plus one (0: none).
type Child = (u128, u32);

pub struct ClientCounts {
    by_pid: Table<i32, Child>,
    by_ip: Table<u128, u64>,
}

impl ClientCounts {
    /// Room for `most` live children (at most [`MOST`]); `None` when the system refuses
    /// the mapping.
    pub fn new(most: u64) -> Option<ClientCounts> {
        let slots = (2 * most.clamp(1, MOST)).next_power_of_two() as usize;
        let pid_bytes = slots * std::mem::size_of::<Slot<i32, Child>>();
        let ip_bytes = slots * std::mem::size_of::<Slot<u128, u64>>();
        let len = std::num::NonZeroUsize::new(pid_bytes + ip_bytes)?;
        let p = crate::pages::map(len, crate::pages::Inherit::No)?;
        let base = p.as_ptr().cast::<u8>();
        // SAFETY: both regions lie in the zeroed mapping, are aligned (the mapping is
        // page-aligned, the first region's size a multiple of 16) and do not overlap.
        unsafe {
            Some(ClientCounts {
                by_pid: Table::over(NonNull::new(base.cast())?, slots - 1),
                by_ip: Table::over(NonNull::new(base.add(pid_bytes).cast())?, slots - 1),
            })
        }
    }

    /// Live children from `ip`.
    pub fn from(&self, ip: IpAddr) -> u64 {
        self.by_ip.get(key(ip)).unwrap_or(0)
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
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let line = maps
            .lines()
            .find(|l| {
                let (a, b) = l.split_once(' ').unwrap().0.split_once('-').unwrap();
                let (a, b) = (
                    usize::from_str_radix(a, 16).unwrap(),
                    usize::from_str_radix(b, 16).unwrap(),
                );
                (a..b).contains(&addr)
            })
            .unwrap()
            .to_string();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let after = smaps.split(&line).nth(1).unwrap();
        let vmflags = after.lines().find(|l| l.starts_with("VmFlags:")).unwrap();
        assert!(vmflags.split_whitespace().any(|f| f == "dc"), "{vmflags}");
    }
}
