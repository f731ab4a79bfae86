//! Where messages are dispatched: a received datagram is admitted (see
//! `security/gate.rs`), decoded whole, and each message handed to its
//! owner: SWIM's probe, merge and sync here, key/value messages to [`crate::kv`], bus
//! messages to [`crate::bus`]. Answers wait until every message of the
//! datagram is merged, so they carry the state it produced.

use std::net::SocketAddr;

use compact_str::CompactString;

use super::merge::Via;
use super::Endpoint;
use crate::bus::AfterBus;
use crate::security::gate::PacketError;
use crate::wire::{self, Datagram, Message};
use crate::Time;

/// Work a datagram asks for that must wait until all its messages are
/// merged, so answers carry the state they produced.
#[derive(Default)]
struct AfterPacket {
    ack: Option<u32>,
    peer_hash: Option<wire::StateHash>,
    join_reply: Option<CompactString>,
    push: Option<u64>,
    /// Whose claims the full-state entries of this datagram are.
    entries_from: Option<CompactString>,
    /// A key/value digest to answer, with its lines.
    kv_pull: Option<wire::KvPull>,
    kv_digests: Vec<(CompactString, u64, u64)>,
    bus: AfterBus,
}

impl Endpoint {
    /// Handles one received datagram. A datagram is decoded whole before any
    /// of it is applied: if any message is bad, the datagram is dropped,
    /// counted under the error's name, and no state changes.
    pub fn handle_packet(
        &mut self,
        now: Time,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), PacketError> {
        self.out.stats.packets_in += 1;
        self.out.stats.bytes_in += bytes.len() as u64;
        let plain = match self.admit(now, from, bytes) {
            Ok(p) => p,
            Err(e) => {
                self.drop_datagram(now, from, e);
                return Err(e);
            }
        };
        let mut msgs = Vec::new();
        let decoded = Datagram::parse(&plain, self.cluster).and_then(|d| d.decode_all(&mut msgs));
        if let Err(e) = decoded {
            self.drop_datagram(now, from, e.into());
            return Err(e.into());
        }
        self.observe_time(now);
        // Expiries due by now happen before what this datagram says: an
        // owner's expiry tombstone arriving a moment before the replica's
        // own timer must not hide the `KeyExpired` the replica owes.
        let (kv, _, mut cx) = self.split();
        kv.run_timers(&mut cx, now);
        if self.left {
            self.out.stats.drop("after_leave");
            return Ok(());
        }
        self.introduced = 0;
        let mut after = AfterPacket::default();
        for msg in &msgs {
            self.out.stats.messages_in.add(msg.kind(), 1);
            self.dispatch(now, from, msg, &mut after);
        }
        self.finish_packet(from, after);
        Ok(())
    }

    fn dispatch(
        &mut self,
        now: Time,
        from: SocketAddr,
        msg: &Message<'_>,
        after: &mut AfterPacket,
    ) {
        match *msg {
            Message::Ping(p) => {
                if p.target == self.config.name {
                    after.ack = Some(p.seq);
                    after.peer_hash = Some(p.hash);
                } else {
                    self.out.stats.drop("misdirected_ping");
                }
            }
            Message::PingReq(r) => self.handle_ping_req(now, from, r),
            Message::Ack(a) => {
                after.peer_hash = Some(a.hash);
                self.handle_ack(now, a.seq);
            }
            Message::Nack(n) => self.handle_nack(now, n.seq),
            Message::Alive(a) => self.apply_alive(now, a, Via::Gossip),
            Message::Suspect(s) => self.apply_suspect(now, s.name, s.incarnation, s.from),
            Message::Dead(d) => self.apply_dead(now, d.name, d.incarnation, d.from),
            Message::Left(l) => self.apply_left(now, l.name, l.incarnation, Via::Gossip),
            Message::Join(j) => {
                self.apply_alive(now, j.member, Via::Gossip);
                after.join_reply = Some(CompactString::from(j.member.name));
            }
            Message::JoinReply(r) => {
                self.joining = None;
                after.entries_from = Some(CompactString::from(r.from));
            }
            Message::SyncRequest(s) => self.answer_sync(from, s.id, s.from, s.buckets.0),
            Message::SyncReply(r) => {
                after.entries_from = Some(CompactString::from(r.from));
                if let Some(mask) = self.sync_replied(from, r.id, r.mask) {
                    after.push = Some(mask);
                }
            }
            Message::Member(m) => {
                if after.entries_from.is_none() {
                    after.entries_from = Some(self.entries_sender(from));
                }
                let claimant = after.entries_from.clone().unwrap_or_default();
                self.merge_entry(now, m, &claimant);
            }
            Message::KvEntry(e) => {
                let (kv, _, mut cx) = self.split();
                kv.handle_entry(&mut cx, now, &e);
            }
            Message::KvDigest(d) => {
                let (kv, _, mut cx) = self.split();
                if kv.handle_digest(&mut cx, now, &d) {
                    if let Some(id) = self.members.find(d.node) {
                        self.evidence(id, now);
                    }
                }
                if after.kv_pull.is_some() {
                    after.kv_digests.push((
                        CompactString::from(d.node),
                        d.generation,
                        d.max_version,
                    ));
                }
            }
            Message::KvPull(p) => after.kv_pull = Some(p),
            Message::KvReset(r) => {
                let (kv, _, mut cx) = self.split();
                kv.handle_reset(&mut cx, &r);
            }
            Message::UserEvent(_)
            | Message::Query(_)
            | Message::Election(_)
            | Message::Vote(_)
            | Message::QueryReply(_)
            | Message::BusPush(_)
            | Message::BusHave(_)
            | Message::BusWant(_)
            | Message::BusSync(_) => {
                let (_, bus, mut cx) = self.split();
                bus.handle(&mut cx, now, msg, &mut after.bus);
            }
        }
    }

    fn finish_packet(&mut self, from: SocketAddr, after: AfterPacket) {
        let (kv, _, mut cx) = self.split();
        kv.finish_resets(&mut cx);
        if let Some(seq) = after.ack {
            let ack = Message::Ack(wire::Ack {
                seq,
                hash: self.state_hash(),
            });
            self.cx().send(from, &[ack], true);
        }
        if let Some(name) = after.join_reply {
            self.send_join_reply(from, &name);
            let (_, bus, mut cx) = self.split();
            bus.list_items(&mut cx, from);
        }
        if let Some(mask) = after.push {
            self.send_entries(from, mask, None);
        }
        let (kv, bus, mut cx) = self.split();
        if let Some(pull) = after.kv_pull {
            kv.answer_pull(&mut cx, from, pull, &after.kv_digests);
        }
        bus.finish(&mut cx, from, after.bus);
        if let Some(theirs) = after.peer_hash {
            if theirs != self.state_hash() {
                self.out_of_sync = Some(from);
            }
        }
    }
}
