//! The reference the production codec is checked against: the message
//! types' serde derives encoded by bincode 2 under one configuration
//! (little endian, variable-length integers, a 65 507-byte limit).
//!
//! The protocol never runs this code. The differential tests and the fuzz
//! targets (through `wire::fuzzing`) compare the hand-written codec with it
//! on every input, so a change to the format shows up as a disagreement
//! here; bincode is no longer maintained upstream, so nothing outside the
//! wire module names it. A change of format means changing the codec, this
//! file to match, and [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION).

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::{Deserialize, Serialize};

use super::message::{Message, MessageKind};
#[cfg(test)]
use super::primitives::DoesNotFit;
use super::primitives::LIMIT;
use super::WireError;

const CONFIG: Configuration<LittleEndian, Varint, Limit<LIMIT>> =
    bincode::config::standard().with_limit::<LIMIT>();

/// Encodes `value` at the start of `dst`, returning the bytes written.
#[cfg(test)]
pub(super) fn encode_into<T: Serialize>(value: &T, dst: &mut [u8]) -> Result<usize, DoesNotFit> {
    bincode::serde::encode_into_slice(value, dst, CONFIG).map_err(|_| DoesNotFit)
}

/// Encodes `value` into a fresh vector (used for broadcasts, which are encoded
/// once and then copied into many datagrams).
pub(super) fn encode_to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    // Our message types only fail to encode past the size limit, which their
    // decode-side validation keeps them far below; an empty vector is then
    // the safe answer (it will never be sent).
    bincode::serde::encode_to_vec(value, CONFIG).unwrap_or_default()
}

/// Decodes one value from the start of `src`, borrowing strings and byte
/// strings from it, and returns it with the number of bytes consumed.
pub(super) fn decode_from<'a, T: Deserialize<'a>>(src: &'a [u8]) -> Result<(T, usize), WireError> {
    bincode::serde::borrow_decode_from_slice(src, CONFIG).map_err(|e| match e {
        bincode::error::DecodeError::UnexpectedEnd { .. } => WireError::Truncated,
        bincode::error::DecodeError::LimitExceeded => WireError::TooLarge,
        _ => WireError::Malformed,
    })
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

/// [`decode_message`](super::fuzzing::decode_message) through serde and
/// bincode only: the reference the hand-written decoder is held to by the
/// differential tests and fuzz checks. Slower; not used by the protocol.
pub fn decode_message_reference(bytes: &[u8]) -> Result<(Message<'_>, usize), WireError> {
    let (&tag, body) = bytes.split_first().ok_or(WireError::Truncated)?;
    let (msg, used) = decode_body_reference(tag, body)?;
    msg.validate()?;
    Ok((msg, used + 1))
}

/// Decodes the body of a message of kind `tag` with bincode, returning it
/// and the body bytes used (not validated).
fn decode_body_reference(tag: u8, body: &[u8]) -> Result<(Message<'_>, usize), WireError> {
    // The tag is one varint byte (< 251); dispatching on it here and
    // decoding the variant's struct directly skips serde's enum machinery,
    // which cost as much as the fields themselves. Same bytes on the wire.
    fn body_of<'a, T: serde::Deserialize<'a>>(
        body: &'a [u8],
        wrap: fn(T) -> Message<'a>,
    ) -> Result<(Message<'a>, usize), WireError> {
        let (v, used) = decode_from::<T>(body)?;
        Ok((wrap(v), used))
    }
    match MessageKind::ALL.get(usize::from(tag)) {
        Some(MessageKind::Ping) => body_of(body, Message::Ping),
        Some(MessageKind::PingReq) => body_of(body, Message::PingReq),
        Some(MessageKind::Ack) => body_of(body, Message::Ack),
        Some(MessageKind::Nack) => body_of(body, Message::Nack),
        Some(MessageKind::Alive) => body_of(body, Message::Alive),
        Some(MessageKind::Suspect) => body_of(body, Message::Suspect),
        Some(MessageKind::Dead) => body_of(body, Message::Dead),
        Some(MessageKind::Left) => body_of(body, Message::Left),
        Some(MessageKind::Join) => body_of(body, Message::Join),
        Some(MessageKind::JoinReply) => body_of(body, Message::JoinReply),
        Some(MessageKind::SyncRequest) => body_of(body, Message::SyncRequest),
        Some(MessageKind::SyncReply) => body_of(body, Message::SyncReply),
        Some(MessageKind::Member) => body_of(body, Message::Member),
        Some(MessageKind::KvEntry) => body_of(body, Message::KvEntry),
        Some(MessageKind::KvDigest) => body_of(body, Message::KvDigest),
        Some(MessageKind::KvPull) => body_of(body, Message::KvPull),
        Some(MessageKind::KvReset) => body_of(body, Message::KvReset),
        Some(MessageKind::UserEvent) => body_of(body, Message::UserEvent),
        Some(MessageKind::Query) => body_of(body, Message::Query),
        Some(MessageKind::Election) => body_of(body, Message::Election),
        Some(MessageKind::Vote) => body_of(body, Message::Vote),
        Some(MessageKind::QueryReply) => body_of(body, Message::QueryReply),
        Some(MessageKind::BusPush) => body_of(body, Message::BusPush),
        Some(MessageKind::BusHave) => body_of(body, Message::BusHave),
        Some(MessageKind::BusWant) => body_of(body, Message::BusWant),
        Some(MessageKind::BusSync) => body_of(body, Message::BusSync),
        None => Err(WireError::Malformed),
    }
}

/// [`encode_message`](super::fuzzing::encode_message) through serde and
/// bincode only: the reference for the differential tests and fuzz checks.
pub fn encode_message_reference(msg: &Message<'_>) -> Vec<u8> {
    encode_to_vec(msg)
}
