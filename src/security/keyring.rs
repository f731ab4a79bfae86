//! Pre-shared keys: the ring a node accepts, and the primary it seals with.
//!
//! Rotation without downtime (as memberlist's keyring): install the new key
//! everywhere (each node now accepts both), make it primary everywhere
//! (each node sends with it; the others already accept it), then remove
//! the old one.

use std::fmt;

use base64::Engine;

/// A 256-bit AES key. Its `Debug` form shows a fingerprint, never the key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Key bytes.
    pub const LEN: usize = 32;

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey(bytes)
    }

    /// A key from standard base64 (44 characters, as `vinery keygen`
    /// prints; serf and memberlist keys of 32 bytes read the same).
    pub fn from_base64(text: &str) -> Result<SecretKey, KeyError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::NotBase64)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| KeyError::WrongLength(b.len()))?;
        Ok(SecretKey(bytes))
    }

    /// The key in standard base64.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short, non-secret identifier (FNV-1a of the key, 8 hex digits) for
    /// logs and `vinery keys --list`.
    pub fn fingerprint(&self) -> String {
        let mut h: u32 = 0x811c_9dc5;
        for b in self.0 {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        format!("{h:08x}")
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.fingerprint())
    }
}

/// Why a key or a keyring change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Not standard base64.
    NotBase64,
    /// Not 32 bytes long.
    WrongLength(usize),
    /// The key is not in the ring.
    NotInstalled,
    /// The primary key cannot be removed (make another one primary first).
    RemovePrimary,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NotBase64 => f.write_str("key: not standard base64"),
            KeyError::WrongLength(n) => write!(f, "key: {n} bytes, expected 32"),
            KeyError::NotInstalled => f.write_str("key: not installed in the keyring"),
            KeyError::RemovePrimary => {
                f.write_str("key: is the primary key; use another key first, then remove it")
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// The keys a node accepts; the first is the primary it seals with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<SecretKey>,
}

impl Keyring {
    /// A ring with `primary` as its only key.
    pub fn new(primary: SecretKey) -> Keyring {
        Keyring {
            keys: vec![primary],
        }
    }

    /// A ring of `keys`, the first primary (empty: no encryption).
    pub fn from_keys(keys: Vec<SecretKey>) -> Keyring {
        let mut ring = Keyring::default();
        for k in keys {
            ring.install(k);
        }
        ring
    }

    /// Whether the ring has no key (encryption off).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The primary key.
    pub fn primary(&self) -> Option<&SecretKey> {
        self.keys.first()
    }

    /// Every key, the primary first.
    pub fn keys(&self) -> &[SecretKey] {
        &self.keys
    }

    /// Adds `key` (accepted from now on; the first key becomes primary).
    /// Installing a key twice changes nothing.
    pub fn install(&mut self, key: SecretKey) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// Makes the installed `key` the primary.
    pub fn use_key(&mut self, key: &SecretKey) -> Result<(), KeyError> {
        let at = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or(KeyError::NotInstalled)?;
        let k = self.keys.remove(at);
        self.keys.insert(0, k);
        Ok(())
    }

    /// Removes `key`, which must not be the primary.
    pub fn remove(&mut self, key: &SecretKey) -> Result<(), KeyError> {
        let at = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or(KeyError::NotInstalled)?;
        if at == 0 {
            return Err(KeyError::RemovePrimary);
        }
        self.keys.remove(at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SecretKey {
        SecretKey::from_bytes([b; 32])
    }

    #[test]
    fn base64_round_trips_and_bad_keys_are_named() {
        let k = key(7);
        assert_eq!(k.to_base64().len(), 44);
        assert_eq!(SecretKey::from_base64(&k.to_base64()), Ok(k.clone()));
        assert_eq!(
            SecretKey::from_base64("not base64!"),
            Err(KeyError::NotBase64)
        );
        assert_eq!(
            SecretKey::from_base64("AAAA"),
            Err(KeyError::WrongLength(3))
        );
        assert!(!format!("{k:?}").contains(&k.to_base64()));
    }

    #[test]
    fn rotation_steps() {
        let mut ring = Keyring::new(key(1));
        ring.install(key(2));
        ring.install(key(2));
        assert_eq!(ring.keys(), &[key(1), key(2)]);
        assert_eq!(ring.remove(&key(1)), Err(KeyError::RemovePrimary));
        ring.use_key(&key(2)).unwrap();
        assert_eq!(ring.primary(), Some(&key(2)));
        ring.remove(&key(1)).unwrap();
        assert_eq!(ring.keys(), &[key(2)]);
        assert_eq!(ring.use_key(&key(3)), Err(KeyError::NotInstalled));
        assert_eq!(ring.remove(&key(3)), Err(KeyError::NotInstalled));
    }
}
