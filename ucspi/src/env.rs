//! The environment handed to a ucspi program: the TCP* variables (set, or removed when
//! unknown, never left stale) and rules settings on top. Entries are kept NUL-terminated
//! so that `envp` is a list of pointers into them (see [`crate::exec`]).

use std::net::SocketAddr;
use std::os::raw::c_char;
use std::os::unix::ffi::OsStrExt;

use crate::addr::{ip_text, is_v6};
use crate::exec::CStrArray;
use crate::fmt::{fmt_u64, itoa_buf};

/// An environment being built for execve: `NAME=value\0` entries in order (an overlay's
/// removals as `NAME\0`). Every entry ends in a NUL, which is what lets [`Env::envp`]
/// and [`Env::envp_with`] hand out a [`CStrArray`] of pointers into them.
#[derive(Clone, Debug, Default)]
pub struct Env {
    entries: Vec<Vec<u8>>,
    /// An overlay records removals as `NAME\0` entries, to be applied to a base.
    overlay: bool,
    /// Per entry, its name length and a 6-bit signature (see [`Env::index`]); empty or
    /// stale after a change.
    index: Vec<(usize, u8)>,
}

fn signature(name: &[u8]) -> u8 {
    (name
        .len()
        .wrapping_mul(31)
        .wrapping_add(usize::from(name.first().copied().unwrap_or(0)))
        % 64) as u8
}

impl Env {
    /// The current process environment.
    pub fn from_process() -> Env {
        let entries = std::env::vars_os()
            .map(|(k, v)| {
                let mut e = Vec::with_capacity(k.len() + v.len() + 2);
                e.extend_from_slice(k.as_bytes());
                e.push(b'=');
                e.extend_from_slice(v.as_bytes());
                e.push(0);
                e
            })
            .collect();
        let mut e = Env {
            entries,
            overlay: false,
            index: Vec::new(),
        };
        e.index();
        e
    }

    /// Precomputes name lengths and signatures so that [`Env::envp_with`] can pass over
    /// most entries with one bit test (call again after changes; a base built once in a
    /// server's parent is indexed once).
    pub fn index(&mut self) {
        self.index = self
            .entries
            .iter()
            .map(|e| {
                let n = Self::name_of(e);
                (n.len(), signature(n))
            })
            .collect();
    }

    /// An empty set of changes to apply to a base environment with [`Env::envp_with`];
    /// a forked child fills one instead of copying the whole environment.
    pub fn overlay() -> Env {
        Env {
            entries: Vec::with_capacity(16),
            overlay: true,
            index: Vec::new(),
        }
    }

    fn name_of(e: &[u8]) -> &[u8] {
        let end = e
            .iter()
            .position(|&c| c == b'=' || c == 0)
            .unwrap_or(e.len());
        &e[..end]
    }

    /// Whether entry `e` (`NAME=value\0` or an overlay's `NAME\0`) is named `name`,
    /// without scanning the whole entry.
    fn named(e: &[u8], name: &[u8]) -> bool {
        matches!(e.get(name.len()), Some(b'=') | Some(0)) && e.starts_with(name)
    }

    /// Removes every entry named `name`.
    pub fn unset(&mut self, name: &[u8]) {
        self.index.clear();
        self.entries.retain(|e| !Self::named(e, name));
        if self.overlay {
            let mut e = Vec::with_capacity(name.len() + 1);
            e.extend_from_slice(name);
            e.push(0);
            self.entries.push(e);
        }
    }

    fn remove(&mut self, name: &[u8]) {
        self.index.clear();
        self.entries.retain(|e| !Self::named(e, name));
    }

    /// Sets `name` to `value`, replacing earlier entries of that name.
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        self.remove(name);
        let mut e = Vec::with_capacity(name.len() + value.len() + 2);
        e.extend_from_slice(name);
        e.push(b'=');
        e.extend_from_slice(value);
        e.push(0);
        self.entries.push(e);
    }

    /// Sets `name` when `value` is known, else removes it (djb's `env(name, 0)`).
    pub fn set_opt(&mut self, name: &[u8], value: Option<&[u8]>) {
        match value {
            Some(v) => self.set(name, v),
            None => self.unset(name),
        }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.entries
            .iter()
            .rev()
            .find(|e| Self::named(e, name))
            .filter(|e| e.get(name.len()) == Some(&b'='))
            .map(|e| &e[name.len() + 1..e.len() - 1])
    }

    /// The envp for execve: the entries of `self` that `overlay` does not name, then the
    /// variables `overlay` sets.
    pub fn envp_with<'a>(&'a self, overlay: &'a Env) -> CStrArray<'a> {
        let mut v: Vec<*const c_char> =
            Vec::with_capacity(self.entries.len() + overlay.entries.len() + 1);
        let names: Vec<&[u8]> = overlay.entries.iter().map(|o| Self::name_of(o)).collect();
        let mut sigs: u64 = 0;
        for n in &names {
            sigs |= 1 << signature(n);
        }
        let indexed = self.index.len() == self.entries.len();
        for (i, e) in self.entries.iter().enumerate() {
            let replaced = if indexed {
                let (len, sig) = self.index[i];
                sigs & (1 << sig) != 0 && names.iter().any(|n| n.len() == len && e.starts_with(n))
            } else {
                names.iter().any(|n| Self::named(e, n))
            };
            if !replaced {
                v.push(e.as_ptr().cast());
            }
        }
        for o in &overlay.entries {
            if o.contains(&b'=') {
                v.push(o.as_ptr().cast());
            }
        }
        CStrArray::of_terminated(v)
    }

    /// The envp for execve.
    pub fn envp(&self) -> CStrArray<'_> {
        let mut v: Vec<*const c_char> = Vec::with_capacity(self.entries.len() + 1);
        v.extend(self.entries.iter().map(|e| e.as_ptr().cast::<c_char>()));
        CStrArray::of_terminated(v)
    }

    /// Entries without their NULs (removals of an overlay left out).
    pub fn entries(&self) -> impl Iterator<Item = &[u8]> {
        self.entries
            .iter()
            .filter(|e| e.contains(&b'='))
            .map(|e| &e[..e.len() - 1])
    }
}

/// What is known about one connection.
#[derive(Clone, Copy, Debug)]
pub struct Connection<'a> {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub local_host: Option<&'a [u8]>,
    pub remote_host: Option<&'a [u8]>,
    pub remote_info: Option<&'a [u8]>,
}

const TCP_VARS: [&[u8]; 7] = [
    b"TCPLOCALIP",
    b"TCPLOCALPORT",
    b"TCPLOCALHOST",
    b"TCPREMOTEIP",
    b"TCPREMOTEPORT",
    b"TCPREMOTEHOST",
    b"TCPREMOTEINFO",
];

/// Sets one family of names (in [`TCP_VARS`] order) from `c`.
fn set_group(env: &mut Env, names: &[&[u8]; 7], c: &Connection<'_>, scratch: &mut Vec<u8>) {
    let mut b = itoa_buf();
    scratch.clear();
    ip_text(c.local.ip(), scratch);
    env.set(names[0], scratch);
    env.set(names[1], fmt_u64(&mut b, u64::from(c.local.port())));
    env.set_opt(names[2], c.local_host);
    scratch.clear();
    ip_text(c.remote.ip(), scratch);
    env.set(names[3], scratch);
    env.set(names[4], fmt_u64(&mut b, u64::from(c.remote.port())));
    env.set_opt(names[5], c.remote_host);
    env.set_opt(names[6], c.remote_info);
}

const SSL_VARS: [&[u8]; 7] = [
    b"SSLLOCALIP",
    b"SSLLOCALPORT",
    b"SSLLOCALHOST",
    b"SSLREMOTEIP",
    b"SSLREMOTEPORT",
    b"SSLREMOTEHOST",
    b"SSLREMOTEINFO",
];

/// Sets ucspi-ssl's `SSL*` copies of the connection variables (the same values as the
/// `TCP*` ones; ucspi-ssl has no IPv6 variants of them).
pub fn set_ssl_vars(env: &mut Env, c: &Connection<'_>, scratch: &mut Vec<u8>) {
    set_group(env, &SSL_VARS, c, scratch);
}

/// Removes every `TCP*` and `TCP6*` variable [`set_tcp_vars`] sets (sslserver's `-E`,
/// which sets none of them, leaves none stale).
pub fn unset_tcp_vars(env: &mut Env) {
    for n in TCP_VARS.iter().chain(TCP6_VARS.iter()) {
        env.unset(n);
    }
}

const TCP6_VARS: [&[u8]; 8] = [
    b"TCP6LOCALIP",
    b"TCP6LOCALPORT",
    b"TCP6LOCALHOST",
    b"TCP6REMOTEIP",
    b"TCP6REMOTEPORT",
    b"TCP6REMOTEHOST",
    b"TCP6REMOTEINFO",
    b"TCP6INTERFACE",
];

/// Sets the ucspi-tcp variables for `c`. IPv4 peers get djb's set (`PROTO=TCP`,
/// `TCPLOCALIP`, ...; unknown names and info removed); IPv6 peers get `PROTO=TCP6`, the
/// same `TCP*` variables (compressed addresses) and their `TCP6*` copies, as the IPv6
/// forks set them, plus `TCP6INTERFACE` for a scoped (link-local) peer. Stale `TCP6*`
/// variables are removed for IPv4 peers.
pub fn set_tcp_vars(env: &mut Env, c: &Connection<'_>, scratch: &mut Vec<u8>) {
    let v6 = is_v6(&c.remote);
    env.set(b"PROTO", if v6 { b"TCP6" } else { b"TCP" });
    set_group(env, &TCP_VARS, c, scratch);
    if !v6 {
        for n in TCP6_VARS {
            env.unset(n);
        }
        return;
    }
    let tcp6: &[&[u8]; 7] = TCP6_VARS[..7].try_into().expect("seven names");
    set_group(env, tcp6, c, scratch);
    let scope = match c.remote {
        SocketAddr::V6(a) => a.scope_id(),
        SocketAddr::V4(_) => 0,
    };
    // An interface that went away meanwhile leaves the variable unset, not stale.
    let name = (scope != 0)
        .then(|| nix::net::if_::if_indextoname(scope).ok())
        .flatten();
    env.set_opt(b"TCP6INTERFACE", name.as_ref().map(|n| n.to_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_unset_get() {
        let mut e = Env::default();
        e.set(b"A", b"1");
        e.set(b"B", b"2");
        e.set(b"A", b"3");
        e.set_opt(b"B", None);
        assert_eq!(e.get(b"A"), Some(&b"3"[..]));
        assert_eq!(e.get(b"B"), None);
        assert_eq!(e.entries().collect::<Vec<_>>(), vec![&b"A=3"[..]]);
        assert_eq!(e.envp().as_ptrs().len(), 2);
    }

    #[test]
    fn overlays() {
        let mut base = Env::default();
        base.set(b"KEEP", b"1");
        base.set(b"GONE", b"2");
        base.set(b"CHANGED", b"3");
        let mut o = Env::overlay();
        o.unset(b"GONE");
        o.set(b"CHANGED", b"x");
        o.set(b"NEW", b"y");
        o.set(b"NEW", b"z");
        assert_eq!(o.get(b"GONE"), None);
        let e = base.envp_with(&o);
        let p = e.as_ptrs();
        let got: Vec<&[u8]> = p[..p.len() - 1]
            .iter()
            // SAFETY: the pointers point at NUL-terminated entries of base and o.
            .map(|&c| unsafe { std::ffi::CStr::from_ptr(c) }.to_bytes())
            .collect();
        assert_eq!(got, [&b"KEEP=1"[..], b"CHANGED=x", b"NEW=z"]);
        assert!(p.last().unwrap().is_null());
        let before = p.to_vec();
        base.index();
        assert_eq!(base.envp_with(&o).as_ptrs(), &before[..]);
    }

    #[test]
    fn tcp_vars_v4_and_v6() {
        let mut e = Env::default();
        e.set(b"TCPREMOTEHOST", b"stale");
        e.set(b"TCP6REMOTEIP", b"stale");
        let mut s = Vec::new();
        let c = Connection {
            local: "127.0.0.1:25".parse().unwrap(),
            remote: "[::ffff:127.0.0.2]:4000".parse().unwrap(),
            local_host: Some(b"0"),
            remote_host: None,
            remote_info: Some(b""),
        };
        set_tcp_vars(&mut e, &c, &mut s);
        assert_eq!(e.get(b"PROTO"), Some(&b"TCP"[..]));
        assert_eq!(e.get(b"TCPREMOTEIP"), Some(&b"127.0.0.2"[..]));
        assert_eq!(e.get(b"TCPREMOTEPORT"), Some(&b"4000"[..]));
        assert_eq!(e.get(b"TCPREMOTEHOST"), None);
        assert_eq!(e.get(b"TCPREMOTEINFO"), Some(&b""[..]));
        assert_eq!(e.get(b"TCP6REMOTEIP"), None);
        let c6 = Connection {
            local: "[::1]:25".parse().unwrap(),
            remote: "[::1]:4000".parse().unwrap(),
            ..c
        };
        set_tcp_vars(&mut e, &c6, &mut s);
        assert_eq!(e.get(b"PROTO"), Some(&b"TCP6"[..]));
        assert_eq!(e.get(b"TCPREMOTEIP"), Some(&b"::1"[..]));
        assert_eq!(e.get(b"TCP6REMOTEIP"), Some(&b"::1"[..]));
        assert_eq!(e.get(b"TCP6LOCALHOST"), Some(&b"0"[..]));
    }
}
