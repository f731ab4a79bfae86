//! The fields of the event-bus messages on the wire (see `codec.rs`, which
//! dispatches on the tag): every bus item starts with its [`BusHead`].

use super::bus::{
    BusHave, BusHead, BusPush, BusSync, BusWant, Election, Query, QueryReply, UserEvent, Vote,
};
use super::codec::{str_len, u32_len, Fields};
use super::primitives::{addr_len, bytes_len, varint_len, Bytes, DoesNotFit, Reader, Writer};
use super::WireError;

impl<'a> Fields<'a> for BusHead<'a> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let origin = r.str()?;
        let seq = r.u64()?;
        let lamport = r.u64()?;
        let at_ms = r.u64()?;
        let ttl_ms = r.u64()?;
        Ok(BusHead {
            origin,
            seq,
            lamport,
            at_ms,
            ttl_ms,
        })
    }
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.str(self.origin)?;
        w.u64(self.seq)?;
        w.u64(self.lamport)?;
        w.u64(self.at_ms)?;
        w.u64(self.ttl_ms)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        str_len(self.origin)
            + varint_len(self.seq)
            + varint_len(self.lamport)
            + varint_len(self.at_ms)
            + varint_len(self.ttl_ms)
    }
}

impl<'a> Fields<'a> for UserEvent<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let head = BusHead::read(r)?;
        let name = r.str()?;
        let coalesce = r.bool()?;
        let payload = Bytes(r.bytes()?);
        Ok(UserEvent {
            head,
            name,
            coalesce,
            payload,
        })
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        self.head.write(w)?;
        w.str(self.name)?;
        w.bool(self.coalesce)?;
        w.bytes(self.payload.0)
    }
    fn len(&self) -> usize {
        self.head.len() + str_len(self.name) + 1 + bytes_len(self.payload.0)
    }
}

impl<'a> Fields<'a> for Query<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let head = BusHead::read(r)?;
        let addr = r.addr()?;
        let name = r.str()?;
        let filter = Bytes(r.bytes()?);
        let payload = Bytes(r.bytes()?);
        Ok(Query {
            head,
            addr,
            name,
            filter,
            payload,
        })
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        self.head.write(w)?;
        w.addr(&self.addr)?;
        w.str(self.name)?;
        w.bytes(self.filter.0)?;
        w.bytes(self.payload.0)
    }
    fn len(&self) -> usize {
        self.head.len()
            + addr_len(&self.addr)
            + str_len(self.name)
            + bytes_len(self.filter.0)
            + bytes_len(self.payload.0)
    }
}

impl<'a> Fields<'a> for Election<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let head = BusHead::read(r)?;
        let topic = r.str()?;
        let min = r.u32()?;
        let total = r.u32()?;
        Ok(Election {
            head,
            topic,
            min,
            total,
        })
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        self.head.write(w)?;
        w.str(self.topic)?;
        w.u32(self.min)?;
        w.u32(self.total)
    }
    fn len(&self) -> usize {
        self.head.len() + str_len(self.topic) + u32_len(self.min) + u32_len(self.total)
    }
}

impl<'a> Fields<'a> for Vote<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let head = BusHead::read(r)?;
        let creator = r.str()?;
        let election = r.u64()?;
        let yes = r.bool()?;
        Ok(Vote {
            head,
            creator,
            election,
            yes,
        })
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        self.head.write(w)?;
        w.str(self.creator)?;
        w.u64(self.election)?;
        w.bool(self.yes)
    }
    fn len(&self) -> usize {
        self.head.len() + str_len(self.creator) + varint_len(self.election) + 1
    }
}

impl<'a> Fields<'a> for QueryReply<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let asker = r.str()?;
        let seq = r.u64()?;
        let from = r.str()?;
        let ack = r.bool()?;
        let payload = Bytes(r.bytes()?);
        Ok(QueryReply {
            asker,
            seq,
            from,
            ack,
            payload,
        })
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.str(self.asker)?;
        w.u64(self.seq)?;
        w.str(self.from)?;
        w.bool(self.ack)?;
        w.bytes(self.payload.0)
    }
    fn len(&self) -> usize {
        str_len(self.asker)
            + varint_len(self.seq)
            + str_len(self.from)
            + 1
            + bytes_len(self.payload.0)
    }
}

impl<'a> Fields<'a> for BusPush {
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        Ok(BusPush { fanout: r.u32()? })
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.u32(self.fanout)
    }
    fn len(&self) -> usize {
        u32_len(self.fanout)
    }
}

impl<'a> Fields<'a> for BusHave<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let reply_mask = r.u64()?;
        let ids = Bytes(r.bytes()?);
        Ok(BusHave { reply_mask, ids })
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.u64(self.reply_mask)?;
        w.bytes(self.ids.0)
    }
    fn len(&self) -> usize {
        varint_len(self.reply_mask) + bytes_len(self.ids.0)
    }
}

impl<'a> Fields<'a> for BusWant<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        Ok(BusWant {
            ids: Bytes(r.bytes()?),
        })
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.bytes(self.ids.0)
    }
    fn len(&self) -> usize {
        bytes_len(self.ids.0)
    }
}

impl<'a> Fields<'a> for BusSync<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        Ok(BusSync {
            buckets: Bytes(r.bytes()?),
        })
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), DoesNotFit> {
        w.bytes(self.buckets.0)
    }
    fn len(&self) -> usize {
        bytes_len(self.buckets.0)
    }
}
