//! What the fuzz targets, the differential tests and the benchmarks need
//! from inside the codec, and nothing else uses: the hand-written codec's
//! single-message entry points, the serde + bincode reference it is held
//! to, and one example message of every kind. Not part of the supported
//! API; may change with any release.

use std::net::SocketAddr;

pub use super::codec::{decode_message, encode_message};
pub use super::reference::{decode_message_reference, encode_message_reference};

use super::{
    Ack, Alive, BusHave, BusHead, BusPush, BusSync, BusWant, Bytes, Dead, Election, Join,
    JoinReply, KvDigest, KvEntry, KvPull, KvReset, Left, MemberEntry, Message, Nack, Ping, PingReq,
    Query, QueryReply, Suspect, SyncReply, SyncRequest, UserEvent, Vote, WireState, BUS_BUCKETS,
    BUS_ID_LEN,
};

/// Checks `msg` against the rules the decoder enforces (name, metadata
/// and key lengths, bus rules): what the decoder would say of its bytes
/// after reading them.
pub fn validate(msg: &Message<'_>) -> Result<(), super::WireError> {
    msg.validate()
}

/// One message of every kind with realistic field sizes: seeds for fuzzing
/// corpora, codec benchmarks and round-trip tests.
pub fn example_messages() -> Vec<Message<'static>> {
    let addr: SocketAddr = "10.0.3.17:7946".parse().expect("literal address");
    let addr6: SocketAddr = "[2001:db8::17]:7946".parse().expect("literal address");
    vec![
        Message::Ping(Ping {
            seq: 70_001,
            target: "node-0017",
            hash: [1, 2, 3, 4],
        }),
        Message::PingReq(PingReq {
            seq: 70_002,
            target: "node-0017",
            target_addr: addr6,
            nack: true,
        }),
        Message::Ack(Ack {
            seq: 70_001,
            hash: [5, 6, 7, 8],
        }),
        Message::Nack(Nack { seq: 70_002 }),
        Message::Alive(Alive {
            name: "node-0017",
            addr,
            incarnation: 3,
            meta: Bytes(b"role=web"),
        }),
        Message::Suspect(Suspect {
            name: "node-0017",
            incarnation: 3,
            from: "node-0002",
        }),
        Message::Dead(Dead {
            name: "node-0017",
            incarnation: 3,
            from: "node-0002",
        }),
        Message::Left(Left {
            name: "node-0017",
            incarnation: 4,
        }),
        Message::Join(Join {
            member: Alive {
                name: "node-0099",
                addr: addr6,
                incarnation: 0,
                meta: Bytes(b""),
            },
        }),
        Message::JoinReply(JoinReply {
            known: 1000,
            from: "node-0001",
        }),
        Message::SyncRequest(SyncRequest {
            id: 9,
            from: "node-0002",
            buckets: Bytes(&[0xab; 4 * 32]),
        }),
        Message::SyncReply(SyncReply {
            id: 9,
            mask: 0x8000_0000_0000_0001,
            from: "node-0017",
        }),
        Message::Member(MemberEntry {
            name: "node-0017",
            addr,
            incarnation: 3,
            state: WireState::Suspect,
            meta: Bytes(b"zone=b"),
        }),
        Message::KvEntry(KvEntry {
            node: "node-0017",
            generation: 2,
            base: 41,
            version: 42,
            key: "service.http.port",
            value: Bytes(b"8080"),
            expires_ms: 1_800_000,
            deleted: false,
        }),
        Message::KvDigest(KvDigest {
            node: "node-0017",
            generation: 2,
            heartbeat: 917,
            max_version: 42,
        }),
        Message::KvPull(KvPull {
            reply: false,
            complete: true,
        }),
        Message::KvReset(KvReset {
            node: "node-0017",
            generation: 2,
            floor: 40,
        }),
        Message::UserEvent(UserEvent {
            head: example_head(),
            name: "deploy",
            coalesce: true,
            payload: Bytes(b"v1.2.3"),
        }),
        Message::Query(Query {
            head: example_head(),
            addr,
            name: "uptime",
            filter: Bytes(b"\x00\x09node-0017\x01\x08role=web"),
            payload: Bytes(b"?"),
        }),
        Message::Election(Election {
            head: example_head(),
            topic: "leader",
            min: 3,
            total: 5,
        }),
        Message::Vote(Vote {
            head: example_head(),
            creator: "node-0002",
            election: 7,
            yes: true,
        }),
        Message::QueryReply(QueryReply {
            asker: "node-0002",
            seq: 7,
            from: "node-0017",
            ack: false,
            payload: Bytes(b"up 3 days"),
        }),
        Message::BusPush(BusPush { fanout: 2 }),
        Message::BusHave(BusHave {
            reply_mask: 0x8001,
            ids: Bytes(&[0x5a; 3 * BUS_ID_LEN]),
        }),
        Message::BusWant(BusWant {
            ids: Bytes(&[0xa5; BUS_ID_LEN]),
        }),
        Message::BusSync(BusSync {
            buckets: Bytes(&[0x3c; 4 * BUS_BUCKETS]),
        }),
    ]
}

/// The item head of the bus examples.
fn example_head() -> BusHead<'static> {
    BusHead {
        origin: "node-0002",
        seq: 3_000_000_007,
        lamport: 41,
        at_ms: 1_700_000_000_000,
        ttl_ms: 30_000,
    }
}
