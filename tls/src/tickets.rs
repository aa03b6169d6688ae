//! Session tickets that every connection of one server can open: the keys are made by the
//! server's parent, which every connection's process is forked from, and rotated there.
//!
//! rustls's own ticketer rotates its key by itself when a ticket is made after the key
//! expired. In a forked server that happens in whichever child comes first, and only in
//! its copy: siblings would make and accept tickets under different keys. Here only the
//! parent rotates ([`TicketKeys::rotate_if_due`], before each fork); a child uses the
//! keys it was forked with.
//!
//! A ticket is `key name (16) | nonce (12) | AES-256-GCM(state) | tag (16)`. The key that
//! was current before the last rotation still opens tickets, so a ticket stays usable for
//! its whole advertised lifetime.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use rustls::server::ProducesTickets;

/// How long a key makes tickets; tickets are advertised for as long.
pub const ROTATION: Duration = Duration::from_secs(6 * 3600);

const NAME_LEN: usize = 16;
/// The largest ticket opened: rustls's session state is a few hundred bytes plus the
/// client's certificate chain when there is one.
const MAX_TICKET: usize = 64 * 1024;

struct Key {
    name: [u8; NAME_LEN],
    key: LessSafeKey,
}

impl Key {
    fn new() -> Option<Key> {
        let mut name = [0u8; NAME_LEN];
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut name).ok()?;
        aws_lc_rs::rand::fill(&mut secret).ok()?;
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &secret).ok()?);
        Some(Key { name, key })
    }
}

struct Keys {
    current: Key,
    previous: Option<Key>,
    next_rotation: Instant,
}

/// The ticket keys of one server; cloned into every connection's configuration.
#[derive(Clone)]
pub struct TicketKeys(Arc<RwLock<Keys>>);

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketKeys")
    }
}

impl TicketKeys {
    /// Fresh keys; `None` if the system gave no randomness.
    pub fn new() -> Option<TicketKeys> {
        Some(TicketKeys(Arc::new(RwLock::new(Keys {
            current: Key::new()?,
            previous: None,
            next_rotation: Instant::now() + ROTATION,
        }))))
    }

    /// In the server's parent: a new current key once the rotation period has passed
    /// (the current one becomes the previous, the previous is dropped).
    pub fn rotate_if_due(&self, now: Instant) {
        let due = self
            .0
            .read()
            .map(|k| now >= k.next_rotation)
            .unwrap_or(false);
        if !due {
            return;
        }
        let Some(fresh) = Key::new() else {
            return;
        };
        if let Ok(mut k) = self.0.write() {
            let old = std::mem::replace(&mut k.current, fresh);
            k.previous = Some(old);
            k.next_rotation = now + ROTATION;
        }
    }
}

impl ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        ROTATION.as_secs() as u32
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.0.read().ok()?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&keys.current.name);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        keys.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&keys.current.name),
                &mut body,
            )
            .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() > MAX_TICKET || ticket.len() < NAME_LEN + NONCE_LEN + 16 {
            return None;
        }
        let (name, rest) = ticket.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let keys = self.0.read().ok()?;
        let key = [Some(&keys.current), keys.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.name == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = sealed.to_vec();
        let plain_len = key
            .key
            .open_in_place(nonce, Aad::from(&key.name), &mut body)
            .ok()?
            .len();
        body.truncate(plain_len);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_seal_rotate() {
        let k = TicketKeys::new().unwrap();
        let t = k.encrypt(b"state").unwrap();
        assert_eq!(k.decrypt(&t).unwrap(), b"state");
        let mut bad = t.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(k.decrypt(&bad).is_none());
        assert!(k.decrypt(&t[..20]).is_none());
        assert!(k.decrypt(&[]).is_none());

        let now = Instant::now();
        k.rotate_if_due(now);
        assert_eq!(k.decrypt(&t).unwrap(), b"state", "not yet due");
        let later = now + ROTATION + Duration::from_secs(1);
        k.rotate_if_due(later);
        assert_eq!(
            k.decrypt(&t).unwrap(),
            b"state",
            "the previous key still opens it"
        );
        let t2 = k.encrypt(b"two").unwrap();
        assert_ne!(t2[..NAME_LEN], t[..NAME_LEN]);
        k.rotate_if_due(later + ROTATION + Duration::from_secs(1));
        assert!(k.decrypt(&t).is_none(), "two rotations later");
        assert_eq!(k.decrypt(&t2).unwrap(), b"two");

        // A copy (what a forked child has) opens what the original made.
        let copy = k.clone();
        let t3 = k.encrypt(b"three").unwrap();
        assert_eq!(copy.decrypt(&t3).unwrap(), b"three");
    }
}
