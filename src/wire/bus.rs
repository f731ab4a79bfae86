//! The messages of the event bus, queries and elections (wire version 3):
//! the four kinds of *bus item* (user event, query, election, vote), the
//! direct query reply, and the dissemination messages that move items
//! around (push marker, id digests, pulls, bucket sync).
//!
//! Kept apart from `message.rs` so that the bus is one concern in one file;
//! the variants of [`Message`](super::Message) wrap these structs (this file
//! does not depend on `message.rs`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::limits::{
    check_name, BUS_BUCKETS, BUS_ID_LEN, MAX_BUS_FANOUT, MAX_EVENT_NAME_LEN, MAX_NAME_LEN,
};
use super::primitives::Bytes;
use super::WireError;

/// What every bus item starts with: who made it, its place in that node's
/// sequence (the pair identifies the item), its Lamport time, and its
/// lifetime in milliseconds of the origin's clock.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusHead<'a> {
    /// The node that made the item.
    pub origin: &'a str,
    /// The origin's sequence number (rising, one sequence for all kinds).
    pub seq: u64,
    /// The origin's Lamport clock when it made the item.
    pub lamport: u64,
    /// When it was made (milliseconds since the time origin).
    pub at_ms: u64,
    /// How long it lives after `at_ms`, in milliseconds (at least 1).
    pub ttl_ms: u64,
}

/// A user event: `name` and `payload`, delivered once to every other node
/// while it lives.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserEvent<'a> {
    /// Identity, clock and lifetime.
    #[serde(borrow)]
    pub head: BusHead<'a>,
    /// The event's name (what subscriptions match).
    pub name: &'a str,
    /// Deliver only the latest event of this name within a receiver's
    /// coalescing window.
    pub coalesce: bool,
    /// The application's bytes.
    #[serde(borrow)]
    pub payload: Bytes<'a>,
}

/// A query: matching nodes answer the asker at `addr` directly.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query<'a> {
    /// Identity (the asker is the origin), clock and lifetime (the timeout).
    #[serde(borrow)]
    pub head: BusHead<'a>,
    /// Where acks and responses go.
    #[serde(with = "super::reference::socket_addr")]
    pub addr: SocketAddr,
    /// The query's name.
    pub name: &'a str,
    /// Which nodes answer (empty: every node): entries of a kind byte (0: a
    /// node name, 1: `key=glob` on a tag), a length byte and that many
    /// bytes of UTF-8.
    #[serde(borrow)]
    pub filter: Bytes<'a>,
    /// The application's bytes.
    #[serde(borrow)]
    pub payload: Bytes<'a>,
}

/// An election on `topic`: the origin (its creator) is told when `min` yes
/// votes are counted before the item expires.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Election<'a> {
    /// Identity (the creator is the origin), clock and lifetime (the expiry).
    #[serde(borrow)]
    pub head: BusHead<'a>,
    /// What is being decided.
    pub topic: &'a str,
    /// Yes votes needed (1..=`total`).
    pub min: u32,
    /// The electorate's size as the creator declares it.
    pub total: u32,
}

/// One node's vote (its origin is the voter) in the election `creator`
/// made with sequence number `election`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote<'a> {
    /// Identity (the voter is the origin), clock and lifetime (up to the
    /// election's expiry).
    #[serde(borrow)]
    pub head: BusHead<'a>,
    /// The election's creator.
    pub creator: &'a str,
    /// The election's sequence number at its creator.
    pub election: u64,
    /// Yes or no.
    pub yes: bool,
}

/// An answer to a query, sent straight to the asker: an ack (delivery,
/// no payload) or a response.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryReply<'a> {
    /// The asker (the query's origin).
    pub asker: &'a str,
    /// The query's sequence number at the asker.
    pub seq: u64,
    /// The answering node.
    pub from: &'a str,
    /// An ack rather than a response.
    pub ack: bool,
    /// The response's bytes (empty for an ack).
    #[serde(borrow)]
    pub payload: Bytes<'a>,
}

/// Heads a datagram of items pushed eagerly: a receiver forwards the items
/// it did not have to `fanout` random members (at most its own configured
/// fanout), with the same marker. Items arriving without it (answers to
/// pulls) are not forwarded.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusPush {
    /// Members each receiver forwards new items to (0: none).
    /// (A varint rather than a byte: one byte on the wire all the same.)
    pub fanout: u32,
}

/// "I hold these items": ids of [`BUS_ID_LEN`] bytes each. A receiver pulls
/// those it lacks with a [`BusWant`]. A non-zero `reply_mask` makes this
/// the answer to a [`BusSync`], listing every item of the sender in those
/// buckets, and asks for the receiver's own list of them in return.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusHave<'a> {
    /// Buckets listed in full, for which the sender wants the receiver's
    /// list back (0: an announcement, nothing to answer).
    pub reply_mask: u64,
    /// Item ids, little endian.
    #[serde(borrow)]
    pub ids: Bytes<'a>,
}

/// "Send me these items": ids of [`BUS_ID_LEN`] bytes each, at least one.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusWant<'a> {
    /// Item ids, little endian.
    #[serde(borrow)]
    pub ids: Bytes<'a>,
}

/// The sender's bus-hash buckets (4 bytes each, [`BUS_BUCKETS`] of them, or
/// none when it holds no settled item); the receiver lists its items in the
/// buckets that differ.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusSync<'a> {
    /// Bucket hashes, little endian.
    #[serde(borrow)]
    pub buckets: Bytes<'a>,
}

/// One condition of a query filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FilterEntry<'a> {
    /// A node named this may answer (node conditions are alternatives).
    Node(&'a str),
    /// The node must have tag `key` with a value matching the glob
    /// `pattern` (tag conditions must all hold).
    Tag {
        /// The tag's key.
        key: &'a str,
        /// A glob over the tag's value (`*`, `?`).
        pattern: &'a str,
    },
}

/// Filter entry kind byte: a node name.
const FILTER_NODE: u8 = 0;
/// Filter entry kind byte: `key=pattern`.
const FILTER_TAG: u8 = 1;

impl FilterEntry<'_> {
    /// Appends this entry's encoding (`kind`, `len`, `len` bytes) to
    /// `out`; `None` if a part is empty or too long for one entry.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Option<()> {
        let (kind, len) = match self {
            FilterEntry::Node(n) => (FILTER_NODE, n.len()),
            FilterEntry::Tag { key, pattern } => (FILTER_TAG, key.len() + 1 + pattern.len()),
        };
        let ok = match self {
            FilterEntry::Node(n) => !n.is_empty() && n.len() <= MAX_NAME_LEN,
            FilterEntry::Tag { key, .. } => !key.is_empty() && !key.contains('='),
        };
        if !ok || len > usize::from(u8::MAX) {
            return None;
        }
        out.push(kind);
        out.push(len as u8);
        match self {
            FilterEntry::Node(n) => out.extend_from_slice(n.as_bytes()),
            FilterEntry::Tag { key, pattern } => {
                out.extend_from_slice(key.as_bytes());
                out.push(b'=');
                out.extend_from_slice(pattern.as_bytes());
            }
        }
        Some(())
    }
}

/// The entries of an encoded query filter: each is a kind byte (0 node,
/// 1 tag), a length byte and that many bytes of UTF-8 (a node name, or
/// `key=pattern` with a non-empty key). Stops after the first error, which
/// it yields.
#[derive(Clone, Debug)]
pub(crate) struct FilterEntries<'a> {
    rest: &'a [u8],
}

impl<'a> FilterEntries<'a> {
    /// The entries of `filter`.
    pub(crate) fn new(filter: &'a [u8]) -> FilterEntries<'a> {
        FilterEntries { rest: filter }
    }
}

impl<'a> Iterator for FilterEntries<'a> {
    type Item = Result<FilterEntry<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, rest) = self.rest.split_first()?;
        let entry = (|| {
            let (&len, rest) = rest.split_first().ok_or(WireError::Truncated)?;
            let len = usize::from(len);
            if rest.len() < len {
                return Err(WireError::Truncated);
            }
            let (text, rest) = rest.split_at(len);
            let text = std::str::from_utf8(text).map_err(|_| WireError::Malformed)?;
            let entry = match kind {
                FILTER_NODE if !text.is_empty() => FilterEntry::Node(text),
                FILTER_TAG => match text.split_once('=') {
                    Some((key, pattern)) if !key.is_empty() => FilterEntry::Tag { key, pattern },
                    _ => return Err(WireError::BadBus),
                },
                _ => return Err(WireError::BadBus),
            };
            Ok((entry, rest))
        })();
        match entry {
            Ok((e, rest)) => {
                self.rest = rest;
                Some(Ok(e))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

fn check(ok: bool) -> Result<(), WireError> {
    if ok {
        Ok(())
    } else {
        Err(WireError::BadBus)
    }
}

fn check_event_name(name: &str) -> Result<(), WireError> {
    check(!name.is_empty() && name.len() <= MAX_EVENT_NAME_LEN)
}

fn check_ids(ids: Bytes<'_>) -> Result<(), WireError> {
    check(ids.0.len().is_multiple_of(BUS_ID_LEN))
}

impl BusHead<'_> {
    fn validate(&self) -> Result<(), WireError> {
        check_name(self.origin)?;
        check(self.ttl_ms > 0)
    }
}

impl UserEvent<'_> {
    pub(super) fn validate(&self) -> Result<(), WireError> {
        self.head.validate()?;
        check_event_name(self.name)
    }
}

impl Query<'_> {
    pub(super) fn validate(&self) -> Result<(), WireError> {
        self.head.validate()?;
        check_event_name(self.name)?;
        FilterEntries::new(self.filter.0).try_for_each(|e| e.map(drop))
    }
}

impl Election<'_> {
    pub(super) fn validate(&self) -> Result<(), WireError> {
        self.head.validate()?;
        check_event_name(self.topic)?;
        check(self.min >= 1 && self.min <= self.total)
    }
}

impl Vote<'_> {
    pub(super) fn validate(&self) -> Result<(), WireError> {
        self.head.validate()?;
        check_name(self.creator)
    }
}

impl QueryReply<'_> {
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.asker)?;
        check_name(self.from)?;
        check(!self.ack || self.payload.0.is_empty())
    }
}

impl BusPush {
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check(self.fanout <= u32::from(MAX_BUS_FANOUT))
    }
}

impl BusHave<'_> {
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_ids(self.ids)?;
        check(self.reply_mask >> BUS_BUCKETS == 0)
    }
}

impl BusWant<'_> {
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_ids(self.ids)?;
        check(!self.ids.0.is_empty())
    }
}

impl BusSync<'_> {
    pub(super) fn validate(&self) -> Result<(), WireError> {
        let n = self.buckets.0.len();
        check(n == 0 || n == 4 * BUS_BUCKETS)
    }
}

/// The 8-byte ids of a [`BusHave`] or [`BusWant`] list (validated lists
/// hold whole ids only).
pub(crate) fn bus_ids(ids: Bytes<'_>) -> impl Iterator<Item = u64> + '_ {
    ids.0
        .chunks_exact(BUS_ID_LEN)
        .map(|c| u64::from_le_bytes(c.try_into().expect("chunks are 8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_round_trip_and_bad_ones_are_refused() {
        let entries = [
            FilterEntry::Node("node-1"),
            FilterEntry::Tag {
                key: "role",
                pattern: "web*",
            },
            FilterEntry::Tag {
                key: "zone",
                pattern: "",
            },
        ];
        let mut bytes = Vec::new();
        for e in &entries {
            e.encode(&mut bytes).unwrap();
        }
        let back: Vec<FilterEntry<'_>> = FilterEntries::new(&bytes).map(Result::unwrap).collect();
        assert_eq!(back, entries);
        assert!(FilterEntry::Node("").encode(&mut Vec::new()).is_none());
        let no_key = FilterEntry::Tag {
            key: "",
            pattern: "x",
        };
        assert!(no_key.encode(&mut Vec::new()).is_none());
        for bad in [
            &[2u8, 1, b'x'][..],
            &[0, 0],
            &[1, 3, b'a', b'b', b'c'],
            &[0, 5, b'a'],
        ] {
            let r: Result<Vec<_>, _> = FilterEntries::new(bad).collect();
            assert!(r.is_err(), "{bad:?}");
        }
    }
}
