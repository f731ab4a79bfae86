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

/// Bytes of a string field.
#[inline(always)]
pub(super) fn str_len(s: &str) -> usize {
    bytes_len(s.as_bytes())
}

/// Bytes of a `u32` varint field.
#[inline(always)]
pub(super) fn u32_len(v: u32) -> usize {
    varint_len(v.into())
}

impl<'a> Reader<'a> {
    /// The next message, tag first, validated. Leaves `rest` after it, or
    /// empty after an error.
    #[inline(always)]
    pub(super) fn message(&mut self) -> Result<Message<'a>, WireError> {
        let msg = self.any_message();
        if msg.is_err() {
            self.rest = &[];
        }
        msg
    }

    #[inline(always)]
    fn any_message(&mut self) -> Result<Message<'a>, WireError> {
        let tag = self.tag()?;
        let kind = *MessageKind::ALL
            .get(usize::from(tag))
            .ok_or(WireError::Malformed)?;
        // Validated in each arm, where the kind is known: only its checks
        // run, on fields still in registers.
        Ok(match kind {
            MessageKind::Ping => Message::Ping(self.valid(Ping::validate)?),
            MessageKind::PingReq => Message::PingReq(self.valid(PingReq::validate)?),
            MessageKind::Ack => Message::Ack(Ack::read(self)?),
            MessageKind::Nack => Message::Nack(Nack::read(self)?),
            MessageKind::Alive => Message::Alive(self.valid(Alive::validate)?),
            MessageKind::Suspect => Message::Suspect(self.valid(Suspect::validate)?),
            MessageKind::Dead => Message::Dead(self.valid(Dead::validate)?),
            MessageKind::Left => Message::Left(self.valid(Left::validate)?),
            MessageKind::Join => Message::Join(Join {
                member: self.valid(Alive::validate)?,
            }),
            MessageKind::JoinReply => Message::JoinReply(self.valid(JoinReply::validate)?),
            MessageKind::SyncRequest => Message::SyncRequest(self.valid(SyncRequest::validate)?),
            MessageKind::SyncReply => Message::SyncReply(self.valid(SyncReply::validate)?),
            MessageKind::Member => Message::Member(self.valid(MemberEntry::validate)?),
            MessageKind::KvEntry => Message::KvEntry(self.valid(KvEntry::validate)?),
            MessageKind::KvDigest => Message::KvDigest(self.valid(KvDigest::validate)?),
            MessageKind::KvPull => Message::KvPull(KvPull::read(self)?),
            MessageKind::KvReset => Message::KvReset(self.valid(KvReset::validate)?),
            bus => return self.bus_message(bus),
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

impl<'a> Fields<'a> for Ping<'a> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let seq = r.u32()?;
        let target = r.str()?;
        let hash = r.hash()?;
        Ok(Ping { seq, target, hash })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.u32(self.seq)?;
        w.str(self.target)?;
        w.put(self.hash)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        u32_len(self.seq) + str_len(self.target) + 4
    }
}

impl<'a> Fields<'a> for PingReq<'a> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let seq = r.u32()?;
        let target = r.str()?;
        let target_addr = r.addr()?;
        let nack = r.bool()?;
        Ok(PingReq {
            seq,
            target,
            target_addr,
            nack,
        })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.u32(self.seq)?;
        w.str(self.target)?;
        w.addr(&self.target_addr)?;
        w.bool(self.nack)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        u32_len(self.seq) + str_len(self.target) + addr_len(&self.target_addr) + 1
    }
}

impl<'a> Fields<'a> for Ack {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let seq = r.u32()?;
        let hash = r.hash()?;
        Ok(Ack { seq, hash })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.u32(self.seq)?;
        w.put(self.hash)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        u32_len(self.seq) + 4
    }
}

impl<'a> Fields<'a> for Nack {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        Ok(Nack { seq: r.u32()? })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.u32(self.seq)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        u32_len(self.seq)
    }
}

/// Also the fields of [`Join`] (its one field, the joiner's record).
impl<'a> Fields<'a> for Alive<'a> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let name = r.str()?;
        let addr = r.addr()?;
        let incarnation = r.u32()?;
        let meta = Bytes(r.bytes()?);
        Ok(Alive {
            name,
            addr,
            incarnation,
            meta,
        })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.str(self.name)?;
        w.addr(&self.addr)?;
        w.u32(self.incarnation)?;
        w.bytes(self.meta.0)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        str_len(self.name)
            + addr_len(&self.addr)
            + u32_len(self.incarnation)
            + bytes_len(self.meta.0)
    }
}

/// `Suspect` and `Dead` have the same fields: (name, incarnation, from).
macro_rules! accusation_fields {
    ($kind:ident) => {
        impl<'a> Fields<'a> for $kind<'a> {
            #[inline(always)]
            fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
                let name = r.str()?;
                let incarnation = r.u32()?;
                let from = r.str()?;
                Ok($kind {
                    name,
                    incarnation,
                    from,
                })
            }
            #[inline(always)]
            fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
                w.str(self.name)?;
                w.u32(self.incarnation)?;
                w.str(self.from)
            }
            #[inline(always)]
            fn len(&self) -> usize {
                str_len(self.name) + u32_len(self.incarnation) + str_len(self.from)
            }
        }
    };
}
accusation_fields!(Suspect);
accusation_fields!(Dead);

impl<'a> Fields<'a> for Left<'a> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let name = r.str()?;
        let incarnation = r.u32()?;
        Ok(Left { name, incarnation })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.str(self.name)?;
        w.u32(self.incarnation)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        str_len(self.name) + u32_len(self.incarnation)
    }
}

impl<'a> Fields<'a> for JoinReply<'a> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let known = r.u32()?;
        let from = r.str()?;
        Ok(JoinReply { known, from })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.u32(self.known)?;
        w.str(self.from)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        u32_len(self.known) + str_len(self.from)
    }
}

impl<'a> Fields<'a> for SyncRequest<'a> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let id = r.u32()?;
        let from = r.str()?;
        let buckets = Bytes(r.bytes()?);
        Ok(SyncRequest { id, from, buckets })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.u32(self.id)?;
        w.str(self.from)?;
        w.bytes(self.buckets.0)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        u32_len(self.id) + str_len(self.from) + bytes_len(self.buckets.0)
    }
}

impl<'a> Fields<'a> for SyncReply<'a> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let id = r.u32()?;
        let mask = r.u64()?;
        let from = r.str()?;
        Ok(SyncReply { id, mask, from })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.u32(self.id)?;
        w.u64(self.mask)?;
        w.str(self.from)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        u32_len(self.id) + varint_len(self.mask) + str_len(self.from)
    }
}

impl<'a> Fields<'a> for MemberEntry<'a> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let name = r.str()?;
        let addr = r.addr()?;
        let incarnation = r.u32()?;
        let state = match r.u32()? {
            0 => WireState::Alive,
            1 => WireState::Suspect,
            2 => WireState::Dead,
            3 => WireState::Left,
            _ => return Err(WireError::Malformed),
        };
        let meta = Bytes(r.bytes()?);
        Ok(MemberEntry {
            name,
            addr,
            incarnation,
            state,
            meta,
        })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.str(self.name)?;
        w.addr(&self.addr)?;
        w.u32(self.incarnation)?;
        // The variant's index, a one-byte varint.
        w.u8(self.state as u8)?;
        w.bytes(self.meta.0)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        str_len(self.name)
            + addr_len(&self.addr)
            + u32_len(self.incarnation)
            + 1
            + bytes_len(self.meta.0)
    }
}

impl<'a> Fields<'a> for KvEntry<'a> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let node = r.str()?;
        let generation = r.u64()?;
        let base = r.u64()?;
        let version = r.u64()?;
        let key = r.str()?;
        let value = Bytes(r.bytes()?);
        let expires_ms = r.u64()?;
        let deleted = r.bool()?;
        Ok(KvEntry {
            node,
            generation,
            base,
            version,
            key,
            value,
            expires_ms,
            deleted,
        })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.str(self.node)?;
        w.u64(self.generation)?;
        w.u64(self.base)?;
        w.u64(self.version)?;
        w.str(self.key)?;
        w.bytes(self.value.0)?;
        w.u64(self.expires_ms)?;
        w.bool(self.deleted)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        str_len(self.node)
            + varint_len(self.generation)
            + varint_len(self.base)
            + varint_len(self.version)
            + str_len(self.key)
            + bytes_len(self.value.0)
            + varint_len(self.expires_ms)
            + 1
    }
}

impl<'a> Fields<'a> for KvDigest<'a> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let node = r.str()?;
        let generation = r.u64()?;
        let heartbeat = r.u64()?;
        let max_version = r.u64()?;
        Ok(KvDigest {
            node,
            generation,
            heartbeat,
            max_version,
        })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.str(self.node)?;
        w.u64(self.generation)?;
        w.u64(self.heartbeat)?;
        w.u64(self.max_version)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        str_len(self.node)
            + varint_len(self.generation)
            + varint_len(self.heartbeat)
            + varint_len(self.max_version)
    }
}

impl<'a> Fields<'a> for KvPull {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let reply = r.bool()?;
        let complete = r.bool()?;
        Ok(KvPull { reply, complete })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.bool(self.reply)?;
        w.bool(self.complete)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        2
    }
}

impl<'a> Fields<'a> for KvReset<'a> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let node = r.str()?;
        let generation = r.u64()?;
        let floor = r.u64()?;
        Ok(KvReset {
            node,
            generation,
            floor,
        })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.str(self.node)?;
        w.u64(self.generation)?;
        w.u64(self.floor)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        str_len(self.node) + varint_len(self.generation) + varint_len(self.floor)
    }
}
