//! The messages of the protocol.
//!
//! Every message borrows its strings and byte strings from the datagram it
//! was decoded from, so decoding allocates nothing. The order of the variants
//! of [`Message`] is the wire tag: append, never reorder.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::bus::{
    BusHave, BusPush, BusSync, BusWant, Election, Query, QueryReply, UserEvent, Vote,
};
use super::limits::{check_name, MAX_KEY_LEN, MAX_META_LEN, MAX_SYNC_BUCKETS};
use super::primitives::Bytes;
use super::WireError;

/// A 32-bit summary of a node's membership view, carried on probes so that
/// two nodes find out they disagree without exchanging any state.
pub type StateHash = [u8; 4];

/// Liveness state of a member as carried in full-state entries.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WireState {
    /// Believed reachable.
    Alive,
    /// Suspected failed; may still refute.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left on purpose.
    Left,
}

/// Direct probe: "are you `target`? answer with an ack of `seq`".
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ping<'a> {
    /// Sequence number the ack must echo.
    pub seq: u32,
    /// Name the sender believes lives at this address; a node with another
    /// name does not answer (the address was reused).
    pub target: &'a str,
    /// The sender's membership hash (anti-entropy trigger).
    pub hash: StateHash,
}

/// Indirect probe: "ping `target` for me and forward its ack".
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingReq<'a> {
    /// Sequence number the forwarded ack (or nack) must carry.
    pub seq: u32,
    /// Name of the member to probe.
    pub target: &'a str,
    /// Address of the member to probe.
    #[serde(with = "super::reference::socket_addr")]
    pub target_addr: SocketAddr,
    /// Whether the requester wants a nack if the target does not answer
    /// (Lifeguard: missing nacks reveal the requester's own trouble).
    pub nack: bool,
}

/// Answer to a ping, or a forwarded answer to a ping-req.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The sequence number being acknowledged.
    pub seq: u32,
    /// The sender's membership hash.
    pub hash: StateHash,
}

/// A relay's report that the target of a ping-req did not answer in time.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nack {
    /// The sequence number of the ping-req.
    pub seq: u32,
}

/// "`name` is alive at `addr` with this incarnation".
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alive<'a> {
    /// Member name.
    pub name: &'a str,
    /// Address to reach it at (its advertise address).
    #[serde(with = "super::reference::socket_addr")]
    pub addr: SocketAddr,
    /// Incarnation; only the member itself raises it.
    pub incarnation: u32,
    /// Application metadata (tags).
    #[serde(borrow)]
    pub meta: Bytes<'a>,
}

/// "`from` suspects `name` at this incarnation".
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suspect<'a> {
    /// Suspected member.
    pub name: &'a str,
    /// Incarnation the suspicion is about.
    pub incarnation: u32,
    /// Who suspects it (Lifeguard counts independent confirmations).
    pub from: &'a str,
}

/// "`from` declared `name` dead at this incarnation".
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dead<'a> {
    /// Failed member.
    pub name: &'a str,
    /// Incarnation it was declared dead at.
    pub incarnation: u32,
    /// Who declared it.
    pub from: &'a str,
}

/// "`name` left the cluster on purpose".
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Left<'a> {
    /// Departed member.
    pub name: &'a str,
    /// Its incarnation when it left.
    pub incarnation: u32,
}

/// Sent to a seed: the joiner's own alive record, asking for a member sample.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Join<'a> {
    /// The joiner's record.
    #[serde(borrow)]
    pub member: Alive<'a>,
}

/// The seed's answer to a join; [`Message::Member`] entries follow it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinReply<'a> {
    /// How many members the seed knows (alive or suspect), itself included.
    pub known: u32,
    /// The seed's name: the entries that follow are its claims.
    pub from: &'a str,
}

/// Anti-entropy, step 1: the requester's per-bucket membership hashes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRequest<'a> {
    /// Identifies this exchange.
    pub id: u32,
    /// The requester's name: the entries it pushes later are its claims.
    pub from: &'a str,
    /// Bucket hashes, 4 bytes each, little endian; a power of two of them.
    #[serde(borrow)]
    pub buckets: Bytes<'a>,
}

/// Anti-entropy, step 2: the buckets that differ. Begins every datagram of
/// the responder's entries, so whichever arrives first starts step 3.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncReply<'a> {
    /// The exchange being answered.
    pub id: u32,
    /// Bit i set: bucket i differs (0 means the views agree).
    pub mask: u64,
    /// The responder's name: the entries that follow are its claims.
    pub from: &'a str,
}

/// One member's full record, as sent in join replies and syncs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberEntry<'a> {
    /// Member name.
    pub name: &'a str,
    /// Its address.
    #[serde(with = "super::reference::socket_addr")]
    pub addr: SocketAddr,
    /// Its incarnation.
    pub incarnation: u32,
    /// Its state as the sender sees it.
    pub state: WireState,
    /// Its metadata.
    #[serde(borrow)]
    pub meta: Bytes<'a>,
}

/// One key/value write of `node`, as pushed after a write and as sent in
/// scuttlebutt deltas.
///
/// `base` makes a truncated or reordered delta safe: the receiver applies the
/// entry only if it already holds every version of `node` up to `base` (the
/// sender's previous existing version), so it never claims a version range
/// with a hole in it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvEntry<'a> {
    /// Owner of the key.
    pub node: &'a str,
    /// The owner's generation (rises when it restarts).
    pub generation: u64,
    /// Apply only if holding every version of `node` up to this one.
    pub base: u64,
    /// The version of this write (per owner, rising).
    pub version: u64,
    /// The key.
    pub key: &'a str,
    /// The value (empty for a tombstone).
    #[serde(borrow)]
    pub value: Bytes<'a>,
    /// Absolute expiry in milliseconds since the time origin; 0 for none.
    pub expires_ms: u64,
    /// A tombstone: the key was deleted (or expired at its owner).
    pub deleted: bool,
}

/// One line of a scuttlebutt digest: what the sender holds of `node`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvDigest<'a> {
    /// The owner.
    pub node: &'a str,
    /// Its generation as the sender knows it.
    pub generation: u64,
    /// Its heartbeat as the sender knows it (evidence of life).
    pub heartbeat: u64,
    /// The highest version of it the sender holds.
    pub max_version: u64,
}

/// Begins a scuttlebutt digest: the [`KvDigest`] messages of this datagram
/// list what the sender holds; the receiver answers with entries the sender
/// lacks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvPull {
    /// This digest is itself an answer: send entries, but no digest back.
    pub reply: bool,
    /// The digest lists every node the sender knows, so nodes it omits are
    /// ones it lacks entirely.
    pub complete: bool,
}

/// "Forget what you hold of `node`; its entries follow from scratch." Sent
/// to a peer that is behind the sender's garbage-collection horizon, whose
/// state may hold keys whose tombstones are already gone.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvReset<'a> {
    /// The owner.
    pub node: &'a str,
    /// Its generation.
    pub generation: u64,
    /// Versions up to this one may have lost tombstones; a receiver already
    /// holding past it ignores the reset (so a replayed reset is harmless).
    pub floor: u64,
}

/// One message inside a datagram. A datagram carries one or more, packed
/// back to back after the header.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is documented by the struct it wraps
pub enum Message<'a> {
    #[serde(borrow)]
    Ping(Ping<'a>),
    #[serde(borrow)]
    PingReq(PingReq<'a>),
    Ack(Ack),
    Nack(Nack),
    #[serde(borrow)]
    Alive(Alive<'a>),
    #[serde(borrow)]
    Suspect(Suspect<'a>),
    #[serde(borrow)]
    Dead(Dead<'a>),
    #[serde(borrow)]
    Left(Left<'a>),
    #[serde(borrow)]
    Join(Join<'a>),
    #[serde(borrow)]
    JoinReply(JoinReply<'a>),
    #[serde(borrow)]
    SyncRequest(SyncRequest<'a>),
    #[serde(borrow)]
    SyncReply(SyncReply<'a>),
    #[serde(borrow)]
    Member(MemberEntry<'a>),
    #[serde(borrow)]
    KvEntry(KvEntry<'a>),
    #[serde(borrow)]
    KvDigest(KvDigest<'a>),
    KvPull(KvPull),
    #[serde(borrow)]
    KvReset(KvReset<'a>),
    #[serde(borrow)]
    UserEvent(UserEvent<'a>),
    #[serde(borrow)]
    Query(Query<'a>),
    #[serde(borrow)]
    Election(Election<'a>),
    #[serde(borrow)]
    Vote(Vote<'a>),
    #[serde(borrow)]
    QueryReply(QueryReply<'a>),
    BusPush(BusPush),
    #[serde(borrow)]
    BusHave(BusHave<'a>),
    #[serde(borrow)]
    BusWant(BusWant<'a>),
    #[serde(borrow)]
    BusSync(BusSync<'a>),
}

/// The kinds of message, for statistics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum MessageKind {
    Ping,
    PingReq,
    Ack,
    Nack,
    Alive,
    Suspect,
    Dead,
    Left,
    Join,
    JoinReply,
    SyncRequest,
    SyncReply,
    Member,
    KvEntry,
    KvDigest,
    KvPull,
    KvReset,
    UserEvent,
    Query,
    Election,
    Vote,
    QueryReply,
    BusPush,
    BusHave,
    BusWant,
    BusSync,
}

impl MessageKind {
    /// Every kind, in wire-tag order.
    pub const ALL: [MessageKind; 26] = [
        MessageKind::Ping,
        MessageKind::PingReq,
        MessageKind::Ack,
        MessageKind::Nack,
        MessageKind::Alive,
        MessageKind::Suspect,
        MessageKind::Dead,
        MessageKind::Left,
        MessageKind::Join,
        MessageKind::JoinReply,
        MessageKind::SyncRequest,
        MessageKind::SyncReply,
        MessageKind::Member,
        MessageKind::KvEntry,
        MessageKind::KvDigest,
        MessageKind::KvPull,
        MessageKind::KvReset,
        MessageKind::UserEvent,
        MessageKind::Query,
        MessageKind::Election,
        MessageKind::Vote,
        MessageKind::QueryReply,
        MessageKind::BusPush,
        MessageKind::BusHave,
        MessageKind::BusWant,
        MessageKind::BusSync,
    ];

    /// A short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            MessageKind::Ping => "ping",
            MessageKind::PingReq => "ping_req",
            MessageKind::Ack => "ack",
            MessageKind::Nack => "nack",
            MessageKind::Alive => "alive",
            MessageKind::Suspect => "suspect",
            MessageKind::Dead => "dead",
            MessageKind::Left => "left",
            MessageKind::Join => "join",
            MessageKind::JoinReply => "join_reply",
            MessageKind::SyncRequest => "sync_request",
            MessageKind::SyncReply => "sync_reply",
            MessageKind::Member => "member",
            MessageKind::KvEntry => "kv_entry",
            MessageKind::KvDigest => "kv_digest",
            MessageKind::KvPull => "kv_pull",
            MessageKind::KvReset => "kv_reset",
            MessageKind::UserEvent => "user_event",
            MessageKind::Query => "query",
            MessageKind::Election => "election",
            MessageKind::Vote => "vote",
            MessageKind::QueryReply => "query_reply",
            MessageKind::BusPush => "bus_push",
            MessageKind::BusHave => "bus_have",
            MessageKind::BusWant => "bus_want",
            MessageKind::BusSync => "bus_sync",
        }
    }
}

fn check_meta(meta: Bytes<'_>) -> Result<(), WireError> {
    if meta.0.len() > MAX_META_LEN {
        return Err(WireError::BadMeta);
    }
    Ok(())
}

// The limits serde cannot express, one method per message struct, called
// by the decoder right after it reads the struct.

impl Ping<'_> {
    #[inline(always)]
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.target)
    }
}

impl PingReq<'_> {
    #[inline(always)]
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.target)
    }
}

impl Alive<'_> {
    #[inline(always)]
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.name)?;
        check_meta(self.meta)
    }
}

impl Suspect<'_> {
    #[inline(always)]
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.name)?;
        check_name(self.from)
    }
}

impl Dead<'_> {
    #[inline(always)]
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.name)?;
        check_name(self.from)
    }
}

impl Left<'_> {
    #[inline(always)]
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.name)
    }
}

impl JoinReply<'_> {
    #[inline(always)]
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.from)
    }
}

impl SyncRequest<'_> {
    #[inline(always)]
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.from)?;
        let n = self.buckets.0.len() / 4;
        if !self.buckets.0.len().is_multiple_of(4) || !n.is_power_of_two() || n > MAX_SYNC_BUCKETS {
            return Err(WireError::BadBuckets);
        }
        Ok(())
    }
}

impl SyncReply<'_> {
    #[inline(always)]
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.from)
    }
}

impl MemberEntry<'_> {
    #[inline(always)]
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.name)?;
        check_meta(self.meta)
    }
}

impl KvEntry<'_> {
    #[inline(always)]
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.node)?;
        if self.key.is_empty() || self.key.len() > MAX_KEY_LEN {
            return Err(WireError::BadKey);
        }
        if self.version <= self.base || (self.deleted && !self.value.0.is_empty()) {
            return Err(WireError::BadVersion);
        }
        Ok(())
    }
}

impl KvDigest<'_> {
    #[inline(always)]
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.node)
    }
}

impl KvReset<'_> {
    #[inline(always)]
    pub(super) fn validate(&self) -> Result<(), WireError> {
        check_name(self.node)
    }
}

impl<'a> Message<'a> {
    /// This message's kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Ping(_) => MessageKind::Ping,
            Message::PingReq(_) => MessageKind::PingReq,
            Message::Ack(_) => MessageKind::Ack,
            Message::Nack(_) => MessageKind::Nack,
            Message::Alive(_) => MessageKind::Alive,
            Message::Suspect(_) => MessageKind::Suspect,
            Message::Dead(_) => MessageKind::Dead,
            Message::Left(_) => MessageKind::Left,
            Message::Join(_) => MessageKind::Join,
            Message::JoinReply(_) => MessageKind::JoinReply,
            Message::SyncRequest(_) => MessageKind::SyncRequest,
            Message::SyncReply(_) => MessageKind::SyncReply,
            Message::Member(_) => MessageKind::Member,
            Message::KvEntry(_) => MessageKind::KvEntry,
            Message::KvDigest(_) => MessageKind::KvDigest,
            Message::KvPull(_) => MessageKind::KvPull,
            Message::KvReset(_) => MessageKind::KvReset,
            Message::UserEvent(_) => MessageKind::UserEvent,
            Message::Query(_) => MessageKind::Query,
            Message::Election(_) => MessageKind::Election,
            Message::Vote(_) => MessageKind::Vote,
            Message::QueryReply(_) => MessageKind::QueryReply,
            Message::BusPush(_) => MessageKind::BusPush,
            Message::BusHave(_) => MessageKind::BusHave,
            Message::BusWant(_) => MessageKind::BusWant,
            Message::BusSync(_) => MessageKind::BusSync,
        }
    }

    /// Checks the limits serde cannot express: name and metadata lengths,
    /// bucket counts, bus rules. The decoder checks each struct as it reads
    /// it; this is for messages decoded otherwise (the reference decoder).
    pub(crate) fn validate(&self) -> Result<(), WireError> {
        match self {
            Message::Ping(m) => m.validate(),
            Message::PingReq(m) => m.validate(),
            Message::Ack(_) | Message::Nack(_) | Message::KvPull(_) => Ok(()),
            Message::Alive(m) | Message::Join(Join { member: m }) => m.validate(),
            Message::Suspect(m) => m.validate(),
            Message::Dead(m) => m.validate(),
            Message::Left(m) => m.validate(),
            Message::JoinReply(m) => m.validate(),
            Message::SyncRequest(m) => m.validate(),
            Message::SyncReply(m) => m.validate(),
            Message::Member(m) => m.validate(),
            Message::KvEntry(m) => m.validate(),
            Message::KvDigest(m) => m.validate(),
            Message::KvReset(m) => m.validate(),
            Message::UserEvent(m) => m.validate(),
            Message::Query(m) => m.validate(),
            Message::Election(m) => m.validate(),
            Message::Vote(m) => m.validate(),
            Message::QueryReply(m) => m.validate(),
            Message::BusPush(m) => m.validate(),
            Message::BusHave(m) => m.validate(),
            Message::BusWant(m) => m.validate(),
            Message::BusSync(m) => m.validate(),
        }
    }
}
