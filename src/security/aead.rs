//! The AES-256-GCM implementation behind [`Sealer`](super::Sealer): two
//! interchangeable backends producing the same bytes (AES-GCM is one
//! standard; each backend is tested against the standard's vectors, and
//! `.ci/run` tests both).
//!
//! * Feature `ring` (default): `ring`'s assembly AES-GCM (from
//!   BoringSSL), which picks AES-NI/VAES and carry-less multiplication at
//!   run time. It seals + opens a 1400-byte datagram in 0.73 µs on the
//!   project's machine, against 1.64 µs for RustCrypto's `aes-gcm` 0.11 in
//!   the same run: only ring meets the 1 µs target (`aes-gcm` gets
//!   near it only when built with `-C target-cpu=native`, which makes
//!   binaries that crash on older CPUs). Figures: `docs/PERFORMANCE.md`,
//!   "Sealing".
//! * Without it: RustCrypto's `aes-gcm`, pure Rust, no C toolchain needed
//!   (the fuzz targets build this way, so the fuzzer sees all the code).
//!
//! Nodes built either way talk to each other.

/// Bytes of a nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of an authentication tag.
pub const TAG_LEN: usize = 16;

/// The name of the backend this build seals with, for logs and benches.
pub const BACKEND: &str = if cfg!(feature = "ring") {
    "ring"
} else {
    "rustcrypto"
};

type Nonce = [u8; NONCE_LEN];
type Tag = [u8; TAG_LEN];

/// One key's expanded schedule: the backend's AES-256-GCM key.
pub struct Cipher(backend::Key);

impl Cipher {
    /// Expands `key` once; every datagram under it reuses the schedule.
    pub fn new(key: &[u8; 32]) -> Cipher {
        Cipher(backend::expand(key))
    }

    /// Encrypts `buf` in place, authenticating `aad` too; the tag.
    pub fn seal(&self, nonce: Nonce, aad: &[u8], buf: &mut [u8]) -> Tag {
        backend::seal(&self.0, &nonce, aad, buf)
    }

    /// Decrypts `ciphertext` into `out` (same length) if `tag`
    /// authenticates it and `aad`; false otherwise (`out` is then
    /// garbage).
    pub fn open(
        &self,
        nonce: &Nonce,
        aad: &[u8],
        ciphertext: &[u8],
        tag: &Tag,
        out: &mut [u8],
    ) -> bool {
        if out.len() != ciphertext.len() {
            return false;
        }
        out.copy_from_slice(ciphertext);
        backend::open(&self.0, nonce, aad, tag, out)
    }
}

#[cfg(not(feature = "ring"))]
mod backend {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    pub use aes_gcm::Aes256Gcm as Key;

    use super::{Nonce, Tag};

    pub fn expand(key: &[u8; 32]) -> Key {
        Key::new(key.into())
    }

    pub fn seal(key: &Key, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Tag {
        key.encrypt_inout_detached(nonce.into(), aad, buf.into())
            .expect("a datagram is far below AES-GCM's message limit")
            .into()
    }

    pub fn open(key: &Key, nonce: &Nonce, aad: &[u8], tag: &Tag, buf: &mut [u8]) -> bool {
        key.decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into())
            .is_ok()
    }
}

/// `LessSafeKey` because nonces come from the Sealer (random prefix +
/// counter), which is the uniqueness its name asks the caller to
/// guarantee.
#[cfg(feature = "ring")]
mod backend {
    pub use ring::aead::LessSafeKey as Key;
    use ring::aead::{self, Aad, UnboundKey, AES_256_GCM};

    use super::{Nonce, Tag};

    pub fn expand(key: &[u8; 32]) -> Key {
        Key::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key is valid"))
    }

    pub fn seal(key: &Key, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Tag {
        let nonce = aead::Nonce::assume_unique_for_key(*nonce);
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), buf)
            .expect("a datagram is far below AES-GCM's message limit");
        tag.as_ref().try_into().expect("AES-GCM tags are 16 bytes")
    }

    pub fn open(key: &Key, nonce: &Nonce, aad: &[u8], tag: &Tag, buf: &mut [u8]) -> bool {
        let nonce = aead::Nonce::assume_unique_for_key(*nonce);
        key.open_in_place_separate_tag(nonce, Aad::from(aad), aead::Tag::from(*tag), buf, 0..)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NIST's AES-256-GCM test case 16 (GCM spec, McGrew & Viega): both
    /// backends must produce exactly the standard's bytes.
    #[test]
    fn matches_the_standard_test_vector() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect()
        };
        let key: [u8; 32] = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
            .try_into()
            .expect("32 bytes");
        let nonce: [u8; 12] = hex("cafebabefacedbaddecaf888").try_into().expect("12");
        let plain = hex(concat!(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72",
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
        ));
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let cipher = hex(concat!(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa",
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        ));
        let tag: [u8; 16] = hex("76fc6ece0f4e1768cddf8853bb2d551b")
            .try_into()
            .expect("16");

        let c = Cipher::new(&key);
        let mut buf = plain.clone();
        assert_eq!(c.seal(nonce, &aad, &mut buf), tag, "{BACKEND}");
        assert_eq!(buf, cipher, "{BACKEND}");
        let mut out = vec![0; cipher.len()];
        assert!(c.open(&nonce, &aad, &cipher, &tag, &mut out));
        assert_eq!(out, plain);
        let mut bad = tag;
        bad[0] ^= 1;
        assert!(!c.open(&nonce, &aad, &cipher, &bad, &mut out));
        assert!(!c.open(&nonce, &aad, &cipher, &tag, &mut out[1..]));
    }

    /// With ring built in, RustCrypto's `aes-gcm` is still a dependency:
    /// the two must agree byte for byte on every length and open each
    /// other's output (mixed clusters depend on it).
    #[cfg(feature = "ring")]
    #[test]
    fn ring_and_rustcrypto_agree() {
        use aes_gcm::aead::{AeadInOut, KeyInit};
        use rand::{Rng, SeedableRng};

        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        for len in (0..1500).step_by(7) {
            let key: [u8; 32] = rng.random();
            let nonce: [u8; 12] = rng.random();
            let aad: Vec<u8> = (0..len % 17).map(|_| rng.random()).collect();
            let plain: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let reference = aes_gcm::Aes256Gcm::new((&key).into());
            let mut expected = plain.clone();
            let tag = reference
                .encrypt_inout_detached(&nonce.into(), &aad, expected.as_mut_slice().into())
                .expect("seals");
            let ours = Cipher::new(&key);
            let mut sealed = plain.clone();
            assert_eq!(ours.seal(nonce, &aad, &mut sealed), <[u8; 16]>::from(tag));
            assert_eq!(sealed, expected, "length {len}");
            let mut opened = vec![0; len];
            assert!(ours.open(&nonce, &aad, &expected, &tag.into(), &mut opened));
            assert_eq!(opened, plain);
        }
    }
}
