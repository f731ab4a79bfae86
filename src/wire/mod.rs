//! The wire format: one UDP datagram is a fixed header followed by one or
//! more [`Message`]s packed back to back (`docs/PROTOCOL.md` §2 describes
//! the bytes).
//!
//! Files: `primitives.rs` reads and writes the primitives (varints,
//! strings, addresses); `codec.rs` and `bus_codec.rs` every message kind
//! from them, the one codec the protocol uses; `message.rs` and `bus.rs`
//! hold the message types and their rules, `limits.rs` the bounds they
//! share. `reference.rs` is the definition the codec is checked against
//! (the types' serde derives through bincode), used only by the
//! differential tests and, through [`fuzzing`], the fuzz targets.
//!
//! ```text
//! 0      2       3      4              8
//! +------+-------+------+--------------+---------------------------+
//! | "vn" | vers. | flags| cluster tag  | message | message | ...   |
//! +------+-------+------+--------------+---------------------------+
//! ```
//!
//! The header is fixed-size and hand-written so that a datagram of another
//! cluster or protocol version is rejected before a single message byte is
//! decoded. Every builder packs to a byte budget and never exceeds it.

pub mod budget;
mod bus;
mod bus_codec;
mod codec;
#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod message;
mod primitives;
mod reference;

pub(crate) use bus::{bus_ids, FilterEntries, FilterEntry};
pub use bus::{
    BusHave, BusHead, BusPush, BusSync, BusWant, Election, Query, QueryReply, UserEvent, Vote,
};
#[cfg(test)]
pub(crate) use codec::decode_message;
pub(crate) use codec::encode_message;
pub use limits::{
    BUS_BUCKETS, BUS_ID_LEN, MAX_BUS_FANOUT, MAX_EVENT_NAME_LEN, MAX_KEY_LEN, MAX_META_LEN,
    MAX_NAME_LEN, MAX_SYNC_BUCKETS,
};
pub use message::{
    Ack, Alive, Dead, Join, JoinReply, KvDigest, KvEntry, KvPull, KvReset, Left, MemberEntry,
    Message, MessageKind, Nack, Ping, PingReq, StateHash, Suspect, SyncReply, SyncRequest,
    WireState,
};
pub use primitives::{Bytes, DoesNotFit};

use primitives::{Reader, Utf8Seen};

use std::fmt;

/// First two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"vn";
/// Version of the format; a datagram with another version is dropped.
pub const PROTOCOL_VERSION: u8 = 3;
/// Bytes taken by the header.
pub const HEADER_LEN: usize = 8;
/// Smallest datagram budget a node may be configured with.
pub const MIN_DATAGRAM: usize = 512;
/// Largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;
/// Default budget: safe under the common 1500-byte MTU with IP/UDP headers
/// and tunnel overhead.
pub const DEFAULT_DATAGRAM: usize = 1400;

/// Header flag: the messages are sealed with the cluster's key (see
/// `security::seal`); the header itself stays readable.
pub const FLAG_ENCRYPTED: u8 = 1;

/// The header flag bits this version understands.
const KNOWN_FLAGS: u8 = FLAG_ENCRYPTED;

/// Why a datagram or message was rejected. Decoding never panics; every bad
/// input ends in one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// Shorter than the header.
    TooShort,
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// Another protocol version.
    UnsupportedVersion(u8),
    /// Flag bits this version does not know.
    UnknownFlags(u8),
    /// Belongs to another cluster.
    WrongCluster,
    /// Longer than [`MAX_DATAGRAM`].
    Oversized,
    /// The header is fine but carries no message.
    Empty,
    /// A message ends past the end of the datagram.
    Truncated,
    /// A length field claims more than a datagram can hold.
    TooLarge,
    /// Bytes that are not a message (unknown tag, bad UTF-8, bad integer).
    Malformed,
    /// A member name that is empty or longer than [`MAX_NAME_LEN`].
    BadName,
    /// Metadata longer than [`MAX_META_LEN`].
    BadMeta,
    /// A sync request whose bucket list is not a power of two of 4-byte hashes.
    BadBuckets,
    /// A key/value entry whose key is empty or longer than [`MAX_KEY_LEN`].
    BadKey,
    /// A key/value entry whose version is not above its base, or a tombstone
    /// carrying a value.
    BadVersion,
    /// An event-bus message breaking a rule: an empty or over-long name or
    /// topic, a zero lifetime, a bad query filter, a quorum outside
    /// `1..=total`, an id list that is not whole 8-byte ids, an ack with a
    /// payload.
    BadBus,
    /// Sealed, and there is no key to open it (a node without keys, or the
    /// plain decoder, which only reads opened datagrams).
    NoKey,
    /// Sealed, and no installed key opens it (wrong key, or tampered).
    WrongKey,
}

impl WireError {
    /// A short snake_case name (statistics keys, logs).
    pub fn name(self) -> &'static str {
        match self {
            WireError::TooShort => "too_short",
            WireError::BadMagic => "bad_magic",
            WireError::UnsupportedVersion(_) => "unsupported_version",
            WireError::UnknownFlags(_) => "unknown_flags",
            WireError::WrongCluster => "wrong_cluster",
            WireError::Oversized => "oversized",
            WireError::Empty => "empty",
            WireError::Truncated => "truncated",
            WireError::TooLarge => "too_large",
            WireError::Malformed => "malformed",
            WireError::BadName => "bad_name",
            WireError::BadMeta => "bad_meta",
            WireError::BadBuckets => "bad_buckets",
            WireError::BadKey => "bad_key",
            WireError::BadVersion => "bad_version",
            WireError::NoKey => "encrypted_without_key",
            WireError::WrongKey => "wrong_key",
            WireError::BadBus => "bad_bus",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            WireError::UnknownFlags(b) => write!(f, "unknown header flags {b:#04x}"),
            other => f.write_str(other.name()),
        }
    }
}

impl std::error::Error for WireError {}

/// A 32-bit tag derived from the cluster name, carried in every header so
/// that clusters sharing a network never mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClusterTag(pub u32);

impl ClusterTag {
    /// The tag of a cluster name (FNV-1a, stable across versions and hosts).
    pub fn from_name(name: &str) -> ClusterTag {
        let mut h: u32 = 0x811c_9dc5;
        for b in name.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        ClusterTag(h)
    }
}

/// The fixed datagram header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Protocol version.
    pub version: u8,
    /// Flag bits.
    pub flags: u8,
    /// Cluster tag.
    pub cluster: ClusterTag,
}

impl Header {
    /// The header this version writes for `cluster`.
    pub fn new(cluster: ClusterTag) -> Header {
        Header {
            version: PROTOCOL_VERSION,
            flags: 0,
            cluster,
        }
    }

    /// The header's bytes.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let c = self.cluster.0.to_le_bytes();
        [
            MAGIC[0],
            MAGIC[1],
            self.version,
            self.flags,
            c[0],
            c[1],
            c[2],
            c[3],
        ]
    }

    /// Reads and checks the header, returning it and the message bytes.
    /// Checks run cheapest first; nothing past the header is looked at.
    pub fn parse(bytes: &[u8]) -> Result<(Header, &[u8]), WireError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(WireError::Oversized);
        }
        let Some((head, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(WireError::TooShort);
        };
        if head[0..2] != MAGIC {
            return Err(WireError::BadMagic);
        }
        if head[2] != PROTOCOL_VERSION {
            return Err(WireError::UnsupportedVersion(head[2]));
        }
        if head[3] & !KNOWN_FLAGS != 0 {
            return Err(WireError::UnknownFlags(head[3]));
        }
        let cluster = ClusterTag(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        Ok((
            Header {
                version: head[2],
                flags: head[3],
                cluster,
            },
            body,
        ))
    }
}

/// A received datagram whose header has been checked.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    /// Its header.
    pub header: Header,
    body: &'a [u8],
}

impl<'a> Datagram<'a> {
    /// Checks the header (including the cluster tag) and the presence of at
    /// least one message. Messages are decoded lazily by [`Datagram::messages`].
    pub fn parse(bytes: &'a [u8], cluster: ClusterTag) -> Result<Datagram<'a>, WireError> {
        let (header, body) = Header::parse(bytes)?;
        if header.cluster != cluster {
            return Err(WireError::WrongCluster);
        }
        if header.flags & FLAG_ENCRYPTED != 0 {
            // Ciphertext, not messages: the endpoint opens it first.
            return Err(WireError::NoKey);
        }
        if body.is_empty() {
            return Err(WireError::Empty);
        }
        Ok(Datagram { header, body })
    }

    /// The messages, in order. Iteration stops after the first error, which
    /// it yields; each step consumes at least one byte, so it ends quickly.
    pub fn messages(&self) -> Messages<'a> {
        Messages {
            reader: Reader::new(self.body, Utf8Seen::new(true)),
        }
    }

    /// Decodes every message, failing on the first bad one. Used where a
    /// datagram must be accepted or rejected whole, leaving state untouched.
    pub fn decode_all(&self, out: &mut Vec<Message<'a>>) -> Result<(), WireError> {
        out.clear();
        let mut reader = Reader::new(self.body, Utf8Seen::new(true));
        while !reader.rest.is_empty() {
            // Pushed from inside the decoder, not returned and then pushed:
            // see `Reader::message_into`.
            reader.message_into(|msg| out.push(msg))?;
        }
        Ok(())
    }
}

/// Iterator over the messages of a [`Datagram`].
#[derive(Clone, Debug)]
pub struct Messages<'a> {
    /// The bytes after the last message read, and the UTF-8 validated so
    /// far (one run serves the strings of many messages).
    reader: Reader<'a>,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, WireError>;

    // Inlined so the decoded message is built where it is used instead of
    // being copied up the call chain (measured: a large share of decode).
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.reader.rest.is_empty() {
            return None;
        }
        // (A failed read leaves nothing to read: iteration ends after it.)
        Some(self.reader.message())
    }
}

/// Packs messages into one datagram, never exceeding its budget.
#[derive(Debug)]
pub struct DatagramBuilder {
    buf: Vec<u8>,
    len: usize,
    messages: usize,
}

impl DatagramBuilder {
    /// An empty datagram with `header`, limited to `budget` bytes in all
    /// (header included). `budget` is clamped to
    /// [`HEADER_LEN`]..=[`MAX_DATAGRAM`].
    pub fn new(header: Header, budget: usize) -> DatagramBuilder {
        let budget = budget.clamp(HEADER_LEN, MAX_DATAGRAM);
        let mut buf = vec![0u8; budget];
        buf[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        DatagramBuilder {
            buf,
            len: HEADER_LEN,
            messages: 0,
        }
    }

    /// Appends `msg` if it fits; otherwise leaves the datagram unchanged.
    // An inline hint lets callers in other crates (the benchmark) compile
    // it with their loop: packing a full datagram measured 20-35% faster.
    #[inline]
    pub fn push(&mut self, msg: &Message<'_>) -> Result<(), DoesNotFit> {
        // Straight into the datagram: no intermediate buffer.
        let n = codec::encode_into(msg, &mut self.buf[self.len..])?;
        self.len += n;
        self.messages += 1;
        Ok(())
    }

    /// Appends an already-encoded message if it fits.
    pub fn push_encoded(&mut self, encoded: &[u8]) -> Result<(), DoesNotFit> {
        let end = self.len + encoded.len();
        if encoded.is_empty() || end > self.buf.len() {
            return Err(DoesNotFit);
        }
        self.buf[self.len..end].copy_from_slice(encoded);
        self.len = end;
        self.messages += 1;
        Ok(())
    }

    /// Bytes still free.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Bytes used so far, header included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no message has been added.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Number of messages added.
    pub fn message_count(&self) -> usize {
        self.messages
    }

    /// The finished datagram.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.truncate(self.len);
        self.buf
    }
}

#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;
