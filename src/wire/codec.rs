//! The definition of the byte encoding of messages.
//!
//! Messages are serde types encoded with bincode 2 (variable-length integers,
//! little endian) under a single configuration with a byte limit. That is
//! the format: `fast.rs` reads and writes the same bytes by hand for speed,
//! and is tested against this file (the reference), never the other way
//! round. bincode is no longer maintained upstream, so nothing outside the
//! wire module names it: changing the format means changing this file (and
//! `fast.rs` to match) and bumping
//! [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION).

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::WireError;

/// Largest UDP payload; no message can claim more than this, so no decode can
/// be talked into reserving more.
pub(super) const LIMIT: usize = super::MAX_DATAGRAM;

const CONFIG: Configuration<LittleEndian, Varint, Limit<LIMIT>> =
    bincode::config::standard().with_limit::<LIMIT>();

/// The destination slice was too small: the message does not fit the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoesNotFit;

/// Encodes `value` at the start of `dst`, returning the bytes written.
pub(crate) fn encode_into<T: Serialize>(value: &T, dst: &mut [u8]) -> Result<usize, DoesNotFit> {
    bincode::serde::encode_into_slice(value, dst, CONFIG).map_err(|_| DoesNotFit)
}

/// Encodes `value` into a fresh vector (used for broadcasts, which are encoded
/// once and then copied into many datagrams).
pub(crate) fn encode_to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    // Our message types only fail to encode past the size limit, which their
    // decode-side validation keeps them far below; an empty vector is then
    // the safe answer (it will never be sent).
    bincode::serde::encode_to_vec(value, CONFIG).unwrap_or_default()
}

/// Decodes one value from the start of `src`, borrowing strings and byte
/// strings from it, and returns it with the number of bytes consumed.
pub(crate) fn decode_from<'a, T: Deserialize<'a>>(src: &'a [u8]) -> Result<(T, usize), WireError> {
    bincode::serde::borrow_decode_from_slice(src, CONFIG).map_err(|e| match e {
        bincode::error::DecodeError::UnexpectedEnd { .. } => WireError::Truncated,
        bincode::error::DecodeError::LimitExceeded => WireError::TooLarge,
        _ => WireError::Malformed,
    })
}

/// A byte string borrowed from the datagram.
///
/// serde encodes `&[u8]` as a sequence, element by element; this wrapper
/// encodes it as one length-prefixed run (the same bytes on the wire, several
/// times faster) and decodes it without copying.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Bytes<'a>(pub &'a [u8]);

impl std::fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.0.len())
    }
}

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BorrowedBytes;
        impl<'de> serde::de::Visitor<'de> for BorrowedBytes {
            type Value = Bytes<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a borrowed byte string")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<Self::Value, E> {
                Ok(Bytes(v))
            }
        }
        deserializer.deserialize_bytes(BorrowedBytes)
    }
}

/// Socket addresses as one length-prefixed byte string: 4 address bytes and
/// a little-endian port (6 bytes) for IPv4, 16 + 2 (18 bytes) for IPv6.
///
/// serde's own `SocketAddr` goes through an enum, a tuple and a visitor per
/// octet, which made it most of the cost of decoding a membership update;
/// this is one bounds check and a copy. Used as
/// `#[serde(with = "codec::socket_addr")]` on address fields.
pub(crate) mod socket_addr {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(addr: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        match addr {
            SocketAddr::V4(a) => {
                let mut b = [0u8; 6];
                b[..4].copy_from_slice(&a.ip().octets());
                b[4..].copy_from_slice(&a.port().to_le_bytes());
                s.serialize_bytes(&b)
            }
            SocketAddr::V6(a) => {
                let mut b = [0u8; 18];
                b[..16].copy_from_slice(&a.ip().octets());
                b[16..].copy_from_slice(&a.port().to_le_bytes());
                s.serialize_bytes(&b)
            }
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        struct Packed;
        impl serde::de::Visitor<'_> for Packed {
            type Value = SocketAddr;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("6 or 18 bytes of packed socket address")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<SocketAddr, E> {
                match v.len() {
                    6 => {
                        let ip: [u8; 4] = v[..4].try_into().expect("length checked");
                        Ok(SocketAddr::from((
                            Ipv4Addr::from(ip),
                            u16::from_le_bytes([v[4], v[5]]),
                        )))
                    }
                    18 => {
                        let ip: [u8; 16] = v[..16].try_into().expect("length checked");
                        Ok(SocketAddr::from((
                            Ipv6Addr::from(ip),
                            u16::from_le_bytes([v[16], v[17]]),
                        )))
                    }
                    n => Err(E::invalid_length(n, &self)),
                }
            }
        }
        d.deserialize_bytes(Packed)
    }
}
