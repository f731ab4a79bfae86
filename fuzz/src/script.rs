//! Structure-aware checks: the fuzzer's bytes are read as a script that
//! builds well-formed messages, so mutations explore meaning rather than
//! framing. Plain byte reading (no `arbitrary` derive) keeps these files
//! usable from the main crate's `tests/corpus.rs`.
//!
//! * [`check_structured`]: any message → encode → decode gives it back;
//!   then the encoding, mutated, decodes to something that re-encodes and
//!   decodes stably, or to an error.
//! * [`check_kv_merge`]: scripted key/value traffic from a few peers into
//!   one endpoint; after every datagram the replicas are consistent,
//!   versions never go back within a generation (except through a reset),
//!   and re-applying a datagram settles (replays converge).

use std::net::SocketAddr;
use std::time::Duration;

use vinery::wire::{
    self, fuzzing, Bytes, ClusterTag, DatagramBuilder, Header, KvDigest, KvEntry, KvPull, KvReset,
    Message, MessageKind, WireState,
};
use vinery::{Endpoint, KeyPattern};

use crate::checks::{
    check_output, endpoint_config, fuzz_endpoint, peer_addr, ENDPOINT_NAME, PEERS,
};

/// Reads fuzzer bytes as small decisions; past the end everything is 0.
pub struct Script<'a> {
    bytes: &'a [u8],
}

impl<'a> Script<'a> {
    /// A script over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Script<'a> {
        Script { bytes }
    }

    /// Whether the script is used up.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        u64::from(self.u8()) % n
    }

    /// A 64-bit integer: mostly small, sometimes at varint boundaries or
    /// huge, since those are where encoders break.
    pub fn int(&mut self) -> u64 {
        match self.u8() % 8 {
            0..=3 => u64::from(self.u8()),
            4 => [250, 251, 65_535, 65_536, u64::from(u32::MAX), u64::MAX][self.below(6) as usize],
            5 => u64::from(u16::from_le_bytes([self.u8(), self.u8()])),
            _ => {
                let mut b = [0u8; 8];
                b.iter_mut().for_each(|x| *x = self.u8());
                u64::from_le_bytes(b)
            }
        }
    }

    /// Up to `max` bytes taken from the script.
    pub fn take(&mut self, max: usize) -> &'a [u8] {
        let n = (usize::from(self.u8()) % (max + 1)).min(self.bytes.len());
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        head
    }

    /// A string of up to `max` bytes (invalid UTF-8 is cut at the error).
    pub fn text(&mut self, max: usize) -> &'a str {
        let raw = self.take(max);
        match std::str::from_utf8(raw) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&raw[..e.valid_up_to()]).expect("valid prefix"),
        }
    }

    /// An address, IPv4 or IPv6.
    pub fn addr(&mut self) -> SocketAddr {
        let port = u16::from_le_bytes([self.u8(), self.u8()]);
        if self.u8().is_multiple_of(2) {
            SocketAddr::from(([self.u8(), self.u8(), self.u8(), self.u8()], port))
        } else {
            let mut ip = [0u8; 16];
            ip.iter_mut().for_each(|x| *x = self.u8());
            SocketAddr::from((ip, port))
        }
    }
}

/// One message of any kind, fields from the script (possibly invalid:
/// empty names, tombstones with values… the codec must cope either way).
pub fn message<'a>(s: &mut Script<'a>) -> Message<'a> {
    let kind = MessageKind::ALL[s.below(MessageKind::ALL.len() as u64) as usize];
    let small = |s: &mut Script<'a>| s.int() as u32;
    match kind {
        MessageKind::Ping => Message::Ping(wire::Ping {
            seq: small(s),
            target: s.text(300),
            hash: [s.u8(), s.u8(), s.u8(), s.u8()],
        }),
        MessageKind::PingReq => Message::PingReq(wire::PingReq {
            seq: small(s),
            target: s.text(300),
            target_addr: s.addr(),
            nack: s.u8().is_multiple_of(2),
        }),
        MessageKind::Ack => Message::Ack(wire::Ack {
            seq: small(s),
            hash: [s.u8(), s.u8(), s.u8(), s.u8()],
        }),
        MessageKind::Nack => Message::Nack(wire::Nack { seq: small(s) }),
        MessageKind::Alive | MessageKind::Join => {
            let a = wire::Alive {
                name: s.text(300),
                addr: s.addr(),
                incarnation: small(s),
                meta: Bytes(s.take(600)),
            };
            if kind == MessageKind::Join {
                Message::Join(wire::Join { member: a })
            } else {
                Message::Alive(a)
            }
        }
        MessageKind::Suspect => Message::Suspect(wire::Suspect {
            name: s.text(300),
            incarnation: small(s),
            from: s.text(300),
        }),
        MessageKind::Dead => Message::Dead(wire::Dead {
            name: s.text(300),
            incarnation: small(s),
            from: s.text(300),
        }),
        MessageKind::Left => Message::Left(wire::Left {
            name: s.text(300),
            incarnation: small(s),
        }),
        MessageKind::JoinReply => Message::JoinReply(wire::JoinReply {
            known: small(s),
            from: s.text(300),
        }),
        MessageKind::SyncRequest => Message::SyncRequest(wire::SyncRequest {
            id: small(s),
            from: s.text(300),
            buckets: Bytes(s.take(300)),
        }),
        MessageKind::SyncReply => Message::SyncReply(wire::SyncReply {
            id: small(s),
            mask: s.int(),
            from: s.text(300),
        }),
        MessageKind::Member => Message::Member(wire::MemberEntry {
            name: s.text(300),
            addr: s.addr(),
            incarnation: small(s),
            state: [
                WireState::Alive,
                WireState::Suspect,
                WireState::Dead,
                WireState::Left,
            ][s.below(4) as usize],
            meta: Bytes(s.take(600)),
        }),
        MessageKind::KvEntry => Message::KvEntry(KvEntry {
            node: s.text(300),
            generation: s.int(),
            base: s.int(),
            version: s.int(),
            key: s.text(300),
            value: Bytes(s.take(255)),
            expires_ms: s.int(),
            deleted: s.u8().is_multiple_of(2),
        }),
        MessageKind::KvDigest => Message::KvDigest(KvDigest {
            node: s.text(300),
            generation: s.int(),
            heartbeat: s.int(),
            max_version: s.int(),
        }),
        MessageKind::KvPull => Message::KvPull(KvPull {
            reply: s.u8().is_multiple_of(2),
            complete: s.u8().is_multiple_of(2),
        }),
        MessageKind::KvReset => Message::KvReset(KvReset {
            node: s.text(300),
            generation: s.int(),
            floor: s.int(),
        }),
        MessageKind::UserEvent => Message::UserEvent(wire::UserEvent {
            head: head(s),
            name: s.text(300),
            coalesce: s.u8().is_multiple_of(2),
            payload: Bytes(s.take(600)),
        }),
        MessageKind::Query => Message::Query(wire::Query {
            head: head(s),
            addr: s.addr(),
            name: s.text(300),
            filter: Bytes(s.take(64)),
            payload: Bytes(s.take(600)),
        }),
        MessageKind::Election => Message::Election(wire::Election {
            head: head(s),
            topic: s.text(300),
            min: small(s),
            total: small(s),
        }),
        MessageKind::Vote => Message::Vote(wire::Vote {
            head: head(s),
            creator: s.text(300),
            election: s.int(),
            yes: s.u8().is_multiple_of(2),
        }),
        MessageKind::QueryReply => Message::QueryReply(wire::QueryReply {
            asker: s.text(300),
            seq: s.int(),
            from: s.text(300),
            ack: s.u8().is_multiple_of(2),
            payload: Bytes(s.take(600)),
        }),
        MessageKind::BusPush => Message::BusPush(wire::BusPush { fanout: small(s) }),
        MessageKind::BusHave => Message::BusHave(wire::BusHave {
            reply_mask: s.int(),
            ids: Bytes(s.take(100)),
        }),
        MessageKind::BusWant => Message::BusWant(wire::BusWant {
            ids: Bytes(s.take(100)),
        }),
        MessageKind::BusSync => Message::BusSync(wire::BusSync {
            buckets: Bytes(s.take(100)),
        }),
    }
}

/// A bus item's head, fields from the script.
fn head<'a>(s: &mut Script<'a>) -> wire::BusHead<'a> {
    wire::BusHead {
        origin: s.text(300),
        seq: s.int(),
        lamport: s.int(),
        at_ms: s.int(),
        ttl_ms: s.int(),
    }
}

/// Any message → encode → decode round trip (for valid messages), then a
/// scripted mutation of the encoding must decode to an error or to a
/// message that is itself stable under encode/decode.
pub fn check_structured(data: &[u8]) {
    let mut s = Script::new(data);
    while !s.is_empty() {
        let msg = message(&mut s);
        let bytes = fuzzing::encode_message(&msg);
        match fuzzing::decode_message(&bytes) {
            Ok((back, used)) => {
                assert_eq!(back, msg, "round trip changed the message");
                assert_eq!(used, bytes.len());
            }
            Err(e) => assert_eq!(
                fuzzing::validate(&msg).err(),
                Some(e),
                "a message the encoder wrote failed to decode for a reason other than validation"
            ),
        }
        let mut mutated = bytes.clone();
        match s.below(4) {
            0 if !mutated.is_empty() => {
                let at = s.below(mutated.len() as u64) as usize;
                mutated[at] ^= s.u8() | 1;
            }
            1 => mutated.truncate(s.below(mutated.len() as u64 + 1) as usize),
            2 => {
                let at = s.below(mutated.len() as u64 + 1) as usize;
                mutated.insert(at, s.u8());
            }
            _ => mutated.extend_from_slice(s.take(16)),
        }
        if let Ok((m, used)) = fuzzing::decode_message(&mutated) {
            assert!(used <= mutated.len());
            let again = fuzzing::encode_message(&m);
            assert_eq!(fuzzing::decode_message(&again), Ok((m, again.len())));
        }
    }
}

/// What the key/value part of an endpoint shows: every owner's generation
/// and max version, and every visible key. (Heartbeats are left out: they
/// are evidence of life, taken only at the owner's current generation, so
/// a digest line ahead of an entry that moves the generation counts only
/// the second time round.)
type KvView = (
    Vec<(String, Option<(u64, u64)>)>,
    Vec<(String, String, Vec<u8>, u64)>,
);

fn kv_view(ep: &Endpoint) -> KvView {
    let digests = ep
        .kv_nodes()
        .into_iter()
        .map(|n| (n.to_owned(), ep.kv_digest(n).map(|(g, _, m)| (g, m))))
        .collect();
    let keys = ep
        .scan(&KeyPattern::Any)
        .into_iter()
        .map(|k| {
            (
                k.node.to_owned(),
                k.key.to_owned(),
                k.value.to_vec(),
                k.version,
            )
        })
        .collect();
    (digests, keys)
}

/// Scripted key/value datagrams from [`PEERS`] (and about the endpoint
/// itself, and about strangers) into one endpoint. See the module docs.
pub fn check_kv_merge(data: &[u8]) {
    let (mut ep, mut now) = fuzz_endpoint();
    let config = endpoint_config();
    let header = Header::new(ClusterTag::from_name(&config.cluster_name));
    let nodes = [PEERS[0], PEERS[1], PEERS[2], ENDPOINT_NAME, "stranger"];
    let keys = ["a", "b", "c", "service.port", "d.e"];
    let mut s = Script::new(data);
    let mut seen: Vec<(String, u64, u64)> = Vec::new();
    let mut last_resets = 0;
    for _ in 0..64 {
        if s.is_empty() {
            break;
        }
        let mut b = DatagramBuilder::new(header, config.max_datagram);
        for _ in 0..1 + s.below(8) {
            let node = nodes[s.below(nodes.len() as u64) as usize];
            let generation = 1 + s.below(3);
            let msg = match s.below(8) {
                0..=4 => {
                    let version = 1 + s.below(40);
                    let deleted = s.below(5) == 0;
                    Message::KvEntry(KvEntry {
                        node,
                        generation,
                        base: version.saturating_sub(1 + s.below(3)),
                        version,
                        key: keys[s.below(keys.len() as u64) as usize],
                        value: Bytes(if deleted { b"" } else { s.take(8) }),
                        expires_ms: match s.below(4) {
                            0 => now.as_nanos() / 1_000_000 + s.below(5000),
                            1 => s.int(),
                            _ => 0,
                        },
                        deleted,
                    })
                }
                5 => Message::KvDigest(KvDigest {
                    node,
                    generation,
                    heartbeat: s.int(),
                    max_version: s.below(50),
                }),
                6 => Message::KvPull(KvPull {
                    reply: s.u8().is_multiple_of(2),
                    complete: s.u8().is_multiple_of(2),
                }),
                _ => Message::KvReset(KvReset {
                    node,
                    generation,
                    floor: s.below(50),
                }),
            };
            let _ = b.push(&msg);
        }
        let d = b.finish();
        let from = peer_addr(s.below(PEERS.len() as u64) as usize);
        // Entries out of order within a datagram leave gaps that a second
        // pass may fill, so one pass need not be idempotent; but repeated
        // passes must settle (a reset that kept undoing itself would not).
        let messages =
            1 + wire::Datagram::parse(&d, header.cluster).map_or(0, |dg| dg.messages().count());
        let mut view = None;
        let mut settled = false;
        for _ in 0..=messages {
            ep.handle_packet(now, from, &d)
                .expect("scripted datagrams are valid");
            drain_outputs(&mut ep);
            let next = kv_view(&ep);
            if view.as_ref() == Some(&next) {
                settled = true;
                break;
            }
            view = Some(next);
        }
        assert!(settled, "re-applying a datagram never settles");
        let resets = ep.stats().kv_resets;
        if resets != last_resets {
            // A reset rebuilds an owner from scratch: its versions restart.
            seen.clear();
            last_resets = resets;
        }
        check_consistent(&ep, &mut seen);
        now += Duration::from_millis(u64::from(s.u8()) * 40);
        ep.handle_timeout(now);
        drain_outputs(&mut ep);
    }
}

fn drain_outputs(ep: &mut Endpoint) {
    while let Some(t) = ep.poll_transmit() {
        check_output(ep.config(), &t.data);
    }
    while ep.poll_event().is_some() {}
}

/// Replica consistency, and no going back: within a generation an owner's
/// max version never falls (except through a reset), and generations
/// never fall.
fn check_consistent(ep: &Endpoint, seen: &mut Vec<(String, u64, u64)>) {
    for node in ep.kv_nodes() {
        let (generation, _, max) = ep.kv_digest(node).expect("listed");
        let keys = ep.peer_keys(node);
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "keys sorted and unique"
        );
        for k in keys {
            let e = ep.peer_entry(node, k).expect("a listed key has an entry");
            assert!(
                e.version <= max,
                "{node}/{k} v{} above max {max}",
                e.version
            );
        }
        match seen.iter_mut().find(|(n, _, _)| n == node) {
            Some(prev) => {
                assert!(
                    generation > prev.1 || (generation == prev.1 && max >= prev.2),
                    "{node} went back from ({}, {}) to ({generation}, {max})",
                    prev.1,
                    prev.2
                );
                prev.1 = generation;
                prev.2 = max;
            }
            None => seen.push((node.to_owned(), generation, max)),
        }
    }
}
