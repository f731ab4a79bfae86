//! The production codec: every message kind read and written by hand from
//! the primitives of `primitives.rs`, and the dispatch on the tag. The
//! membership and key/value kinds are here, the bus kinds in
//! `bus_codec.rs`.
//!
//! Why by hand: through serde and bincode, decoding a membership update
//! cost about 100 ns, most of it in bincode's serde adapter, against a
//! 30 ns budget for encode + decode. The bytes are the ones bincode writes
//! for the serde types (`reference.rs`); the differential tests and fuzz
//! targets hold every kind to that.
//!
//! Each message is its tag (one byte: the kind's position in
//! [`MessageKind::ALL`]) and then its fields in declaration order, which
//! [`Fields`] spells out once per struct for reading, writing and sizing.

use super::bus::{
    BusHave, BusPush, BusSync, BusWant, Election, Query, QueryReply, UserEvent, Vote,
};
use super::message::{
    Ack, Alive, Dead, Join, JoinReply, KvDigest, KvEntry, KvPull, KvReset, Left, MemberEntry,
    Message, MessageKind, Nack, Ping, PingReq, Suspect, SyncReply, SyncRequest, WireState,
};
use std::net::SocketAddr;

use super::primitives::{
    addr_len, bytes_len, varint_len, Bytes, DoesNotFit, Reader, Utf8Seen, Writer,
};
use super::WireError;

/// A message struct's fields on the wire, in declaration order (which
/// decides which error wins on a bad input, as in bincode).
pub(super) trait Fields<'a>: Sized {
    /// Reads the fields (not validated).
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError>;
    /// Writes the fields.
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit>;
    /// Bytes [`Fields::write`] writes.
    fn len(&self) -> usize;
}

impl<'a> Reader<'a> {
    /// The next message, tag first, validated. Leaves `rest` after it, or
    /// empty after an error.
    #[inline(always)]
    pub(super) fn message(&mut self) -> Result<Message<'a>, WireError> {
        self.message_into(|msg| msg)
    }

    /// Reads the next message like [`Reader::message`] and hands it to
    /// `sink`, in the arm of its kind. Why: a message returned by value is
    /// written field by field into a temporary and then copied whole
    /// (`Message` is as large as its largest variant), a store-forwarding
    /// stall per message; a sink that pushes to a vector writes only the
    /// fields of the kind read, straight into the vector's slot.
    #[inline(always)]
    pub(super) fn message_into<R>(
        &mut self,
        sink: impl FnOnce(Message<'a>) -> R,
    ) -> Result<R, WireError> {
        let out = self.any_message(sink);
        if out.is_err() {
            self.rest = &[];
        }
        out
    }

    #[inline(always)]
    fn any_message<R>(&mut self, sink: impl FnOnce(Message<'a>) -> R) -> Result<R, WireError> {
        let tag = self.tag()?;
        let kind = *MessageKind::ALL
            .get(usize::from(tag))
            .ok_or(WireError::Malformed)?;
        // Validated in each arm, where the kind is known: only its checks
        // run, on fields still in registers. The sink is called in each arm
        // too, so only that kind's variant is built, where the sink puts it.
        Ok(match kind {
            MessageKind::Ping => sink(Message::Ping(self.valid(Ping::validate)?)),
            MessageKind::PingReq => sink(Message::PingReq(self.valid(PingReq::validate)?)),
            MessageKind::Ack => sink(Message::Ack(Ack::read(self)?)),
            MessageKind::Nack => sink(Message::Nack(Nack::read(self)?)),
            MessageKind::Alive => sink(Message::Alive(self.valid(Alive::validate)?)),
            MessageKind::Suspect => sink(Message::Suspect(self.valid(Suspect::validate)?)),
            MessageKind::Dead => sink(Message::Dead(self.valid(Dead::validate)?)),
            MessageKind::Left => sink(Message::Left(self.valid(Left::validate)?)),
            MessageKind::Join => sink(Message::Join(Join {
                member: self.valid(Alive::validate)?,
            })),
            MessageKind::JoinReply => sink(Message::JoinReply(self.valid(JoinReply::validate)?)),
            MessageKind::SyncRequest => {
                sink(Message::SyncRequest(self.valid(SyncRequest::validate)?))
            }
            MessageKind::SyncReply => sink(Message::SyncReply(self.valid(SyncReply::validate)?)),
            MessageKind::Member => sink(Message::Member(self.valid(MemberEntry::validate)?)),
            MessageKind::KvEntry => sink(Message::KvEntry(self.valid(KvEntry::validate)?)),
            MessageKind::KvDigest => sink(Message::KvDigest(self.valid(KvDigest::validate)?)),
            MessageKind::KvPull => sink(Message::KvPull(KvPull::read(self)?)),
            MessageKind::KvReset => sink(Message::KvReset(self.valid(KvReset::validate)?)),
            bus => return self.bus_message(bus).map(sink),
        })
    }

    /// The bus kinds, out of line: few per datagram, and inlined they made
    /// every decoded message cost more (the compiler keeps each field of
    /// every variant the decoder may return in its own register or stack
    /// slot, and moves them all).
    #[inline(never)]
    fn bus_message(&mut self, kind: MessageKind) -> Result<Message<'a>, WireError> {
        Ok(match kind {
            MessageKind::UserEvent => Message::UserEvent(self.valid(UserEvent::validate)?),
            MessageKind::Query => Message::Query(self.valid(Query::validate)?),
            MessageKind::Election => Message::Election(self.valid(Election::validate)?),
            MessageKind::Vote => Message::Vote(self.valid(Vote::validate)?),
            MessageKind::QueryReply => Message::QueryReply(self.valid(QueryReply::validate)?),
            MessageKind::BusPush => Message::BusPush(self.valid(BusPush::validate)?),
            MessageKind::BusHave => Message::BusHave(self.valid(BusHave::validate)?),
            MessageKind::BusWant => Message::BusWant(self.valid(BusWant::validate)?),
            MessageKind::BusSync => Message::BusSync(self.valid(BusSync::validate)?),
            // Not a bus kind: the caller decodes those itself.
            _ => return Err(WireError::Malformed),
        })
    }

    /// Reads a `T` and checks it with `validate`.
    #[inline(always)]
    fn valid<T: Fields<'a>>(
        &mut self,
        validate: fn(&T) -> Result<(), WireError>,
    ) -> Result<T, WireError> {
        let v = T::read(self)?;
        validate(&v)?;
        Ok(v)
    }
}

impl Writer<'_> {
    /// Writes `msg`, tag first.
    #[inline(always)]
    pub(super) fn message(&mut self, msg: &Message<'_>) -> Result<(), DoesNotFit> {
        self.u8(msg.kind() as u8)?;
        match msg {
            Message::Ping(m) => m.write(self),
            Message::PingReq(m) => m.write(self),
            Message::Ack(m) => m.write(self),
            Message::Nack(m) => m.write(self),
            Message::Alive(m) | Message::Join(Join { member: m }) => m.write(self),
            Message::Suspect(m) => m.write(self),
            Message::Dead(m) => m.write(self),
            Message::Left(m) => m.write(self),
            Message::JoinReply(m) => m.write(self),
            Message::SyncRequest(m) => m.write(self),
            Message::SyncReply(m) => m.write(self),
            Message::Member(m) => m.write(self),
            Message::KvEntry(m) => m.write(self),
            Message::KvDigest(m) => m.write(self),
            Message::KvPull(m) => m.write(self),
            Message::KvReset(m) => m.write(self),
            Message::UserEvent(m) => m.write(self),
            Message::Query(m) => m.write(self),
            Message::Election(m) => m.write(self),
            Message::Vote(m) => m.write(self),
            Message::QueryReply(m) => m.write(self),
            Message::BusPush(m) => m.write(self),
            Message::BusHave(m) => m.write(self),
            Message::BusWant(m) => m.write(self),
            Message::BusSync(m) => m.write(self),
        }
    }
}

/// Decodes and validates one message from the start of `bytes`, returning
/// it and the number of bytes it took.
#[inline]
pub fn decode_message(bytes: &[u8]) -> Result<(Message<'_>, usize), WireError> {
    // Alone, each string is validated by itself: scanning ahead would be
    // wasted on bytes that are not decoded with this call's state.
    let mut r = Reader::new(bytes, Utf8Seen::new(false));
    let msg = r.message()?;
    Ok((msg, bytes.len() - r.rest.len()))
}

/// Encodes one message into a new vector of exactly its length (for
/// broadcasts, encoded once and copied into many datagrams).
pub fn encode_message(msg: &Message<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; encoded_len(msg)];
    let written = encode_into(msg, &mut buf);
    // `encoded_len` is exact (the differential tests check it), so the
    // message fills the vector.
    debug_assert_eq!(written, Ok(buf.len()));
    buf
}

/// The exact length of `msg`'s encoding, tag included.
#[inline]
pub(super) fn encoded_len(msg: &Message<'_>) -> usize {
    // The tag: one varint byte while there are fewer than 251 kinds.
    1 + match msg {
        Message::Ping(m) => m.len(),
        Message::PingReq(m) => m.len(),
        Message::Ack(m) => m.len(),
        Message::Nack(m) => m.len(),
        Message::Alive(m) | Message::Join(Join { member: m }) => m.len(),
        Message::Suspect(m) => m.len(),
        Message::Dead(m) => m.len(),
        Message::Left(m) => m.len(),
        Message::JoinReply(m) => m.len(),
        Message::SyncRequest(m) => m.len(),
        Message::SyncReply(m) => m.len(),
        Message::Member(m) => m.len(),
        Message::KvEntry(m) => m.len(),
        Message::KvDigest(m) => m.len(),
        Message::KvPull(m) => m.len(),
        Message::KvReset(m) => m.len(),
        Message::UserEvent(m) => m.len(),
        Message::Query(m) => m.len(),
        Message::Election(m) => m.len(),
        Message::Vote(m) => m.len(),
        Message::QueryReply(m) => m.len(),
        Message::BusPush(m) => m.len(),
        Message::BusHave(m) => m.len(),
        Message::BusWant(m) => m.len(),
        Message::BusSync(m) => m.len(),
    }
}

/// Encodes `msg` at the start of `dst`, returning the bytes written, or
/// [`DoesNotFit`] when it is longer than `dst`.
#[inline]
pub(super) fn encode_into(msg: &Message<'_>, dst: &mut [u8]) -> Result<usize, DoesNotFit> {
    let len = dst.len();
    let mut w = Writer { rest: dst };
    w.message(msg)?;
    Ok(len - w.rest.len())
}

// The primitives, as fields.

impl<'a> Fields<'a> for u32 {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        r.u32()
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.u32(*self)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        varint_len((*self).into())
    }
}

impl<'a> Fields<'a> for u64 {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        r.u64()
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.u64(*self)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        varint_len(*self)
    }
}

impl<'a> Fields<'a> for bool {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        r.bool()
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.bool(*self)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        1
    }
}

impl<'a> Fields<'a> for &'a str {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        r.str()
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.str(self)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        bytes_len(self.as_bytes())
    }
}

impl<'a> Fields<'a> for Bytes<'a> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        r.bytes().map(Bytes)
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.bytes(self.0)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        bytes_len(self.0)
    }
}

impl<'a> Fields<'a> for SocketAddr {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        r.addr()
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.addr(self)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        addr_len(self)
    }
}

/// A membership hash: 4 raw bytes.
impl<'a> Fields<'a> for [u8; 4] {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        r.hash()
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.put(*self)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        4
    }
}

/// The variant's index, a varint `u32`.
impl<'a> Fields<'a> for WireState {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        match r.u32()? {
            0 => Ok(WireState::Alive),
            1 => Ok(WireState::Suspect),
            2 => Ok(WireState::Dead),
            3 => Ok(WireState::Left),
            _ => Err(WireError::Malformed),
        }
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.u8(*self as u8)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        1
    }
}

/// Implements [`Fields`] for message structs from the list of their
/// fields in declaration order: each field is read, written and sized as
/// its type is, so the order is written once for all three.
macro_rules! message_fields {
    ($($ty:ident $(<$lt:lifetime>)? { $($field:ident),+ $(,)? })+) => {$(
        impl<'a> Fields<'a> for $ty $(<$lt>)? {
            #[inline(always)]
            fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
                $(let $field = Fields::read(r)?;)+
                Ok($ty { $($field),+ })
            }
            #[inline(always)]
            fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
                $(Fields::write(&self.$field, w)?;)+
                Ok(())
            }
            #[inline(always)]
            fn len(&self) -> usize {
                // (Not `self.field.len()`: `str::len` would be called.)
                0 $(+ Fields::len(&self.$field))+
            }
        }
    )+};
}
pub(super) use message_fields;

message_fields! {
    Ping<'a> { seq, target, hash }
    PingReq<'a> { seq, target, target_addr, nack }
    Ack { seq, hash }
    Nack { seq }
    // Also the fields of `Join` (its one field, the joiner's record).
    Alive<'a> { name, addr, incarnation, meta }
    Suspect<'a> { name, incarnation, from }
    Dead<'a> { name, incarnation, from }
    Left<'a> { name, incarnation }
    JoinReply<'a> { known, from }
    SyncRequest<'a> { id, from, buckets }
    SyncReply<'a> { id, mask, from }
    MemberEntry<'a> { name, addr, incarnation, state, meta }
    KvEntry<'a> { node, generation, base, version, key, value, expires_ms, deleted }
    KvDigest<'a> { node, generation, heartbeat, max_version }
    KvPull { reply, complete }
    KvReset<'a> { node, generation, floor }
}
