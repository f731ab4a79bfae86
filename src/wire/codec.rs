//! The one place that knows the byte encoding of messages.
//!
//! Messages are serde types encoded with bincode 2 (variable-length integers,
//! little endian) under a single configuration with a byte limit. bincode is
//! no longer maintained upstream, so nothing outside this file names it:
//! changing the format means changing this file and bumping
//! [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION).

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::WireError;

/// Largest UDP payload; no message can claim more than this, so no decode can
/// be talked into reserving more.
const LIMIT: usize = super::MAX_DATAGRAM;

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
