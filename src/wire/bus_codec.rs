//! The fields of the event-bus messages on the wire (see `codec.rs`, which
//! dispatches on the tag): every bus item starts with its [`BusHead`].

use super::bus::{
    BusHave, BusHead, BusPush, BusSync, BusWant, Election, Query, QueryReply, UserEvent, Vote,
};
use super::codec::{message_fields, Fields};
use super::primitives::{DoesNotFit, Reader, Writer};
use super::WireError;

message_fields! {
    BusHead<'a> { origin, seq, lamport, at_ms, ttl_ms }
    UserEvent<'a> { head, name, coalesce, payload }
    Query<'a> { head, addr, name, filter, payload }
    Election<'a> { head, topic, min, total }
    Vote<'a> { head, creator, election, yes }
    QueryReply<'a> { asker, seq, from, ack, payload }
    BusPush { fanout }
    BusHave<'a> { reply_mask, ids }
    BusWant<'a> { ids }
    BusSync<'a> { buckets }
}
