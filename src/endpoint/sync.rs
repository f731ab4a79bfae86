//! Join, anti-entropy, reconnection and forgetting.
//!
//! *Join*: the joiner sends its alive record to the seeds until one answers
//! with a sample of members (one datagram's worth, the joiner's own old
//! record first if the seed has one, so a restarted node refutes at once).
//!
//! *Anti-entropy*: every ping and ack carries the sender's 32-bit membership
//! hash. When a probe shows a peer's hash differs from ours (after merging
//! the datagram's piggybacked updates), we send that peer a sync request
//! with our per-bucket hashes; it answers with the buckets that differ and
//! its entries in them, and we push ours for the same buckets. So a quiet,
//! converged cluster sends no state at all, and a disagreement costs only
//! the buckets it touches. Rate-limited to one start per `sync_interval`.
//!
//! *Reconnection*: every `reconnect_interval` a random failed member gets a
//! sync request. That is how the halves of a healed partition, each holding
//! the other as dead, find each other again: the entries exchanged make
//! each side refute, and the refutations spread.

use std::net::SocketAddr;

use compact_str::CompactString;

use super::Endpoint;
use crate::event::MemberState;
use crate::membership::state::{all_buckets, MemberId, MemberRecord};
use crate::membership::syncs::Reply;
use crate::wire::{self, Message, WireState};
use crate::Time;

/// A join in progress.
#[derive(Debug)]
pub(super) struct Joining {
    pub(super) seeds: Vec<SocketAddr>,
    pub(super) next_retry: Time,
}

fn wire_state(s: MemberState) -> WireState {
    match s {
        MemberState::Alive => WireState::Alive,
        MemberState::Suspect => WireState::Suspect,
        MemberState::Dead => WireState::Dead,
        MemberState::Left => WireState::Left,
    }
}

fn entry(r: &MemberRecord) -> Message<'_> {
    Message::Member(wire::MemberEntry {
        name: &r.name,
        addr: r.addr,
        incarnation: r.incarnation,
        state: wire_state(r.state),
        meta: wire::Bytes(&r.meta),
    })
}

impl Endpoint {
    pub(super) fn send_joins(&mut self, now: Time) {
        let Some(j) = &mut self.joining else { return };
        j.next_retry = now + self.config.join_retry_interval;
        let seeds = j.seeds.clone();
        let rec = self.members.rec(self.me);
        let (name, meta) = (rec.name.clone(), rec.meta.clone());
        let member = wire::Alive {
            name: &name,
            addr: self.addr,
            incarnation: rec.incarnation,
            meta: wire::Bytes(&meta),
        };
        for seed in seeds {
            self.cx()
                .send(seed, &[Message::Join(wire::Join { member })], false);
        }
    }

    /// Answers a join from `joiner` with a sample of members.
    pub(super) fn send_join_reply(&mut self, to: SocketAddr, joiner: &str) {
        let mut b = self.cx().new_builder();
        let known = self.members.live_count() as u32;
        let from = self.config.name.clone();
        self.cx().push_counted(
            &mut b,
            &Message::JoinReply(wire::JoinReply { known, from: &from }),
        );
        let mut first = vec![self.me];
        first.extend(self.members.find(joiner));
        for id in first.into_iter().rev() {
            let msg = entry(self.members.rec(id));
            let before = b.len();
            if b.push(&msg).is_ok() {
                let n = b.len() - before;
                self.cx().count(wire::MessageKind::Member, n);
            }
        }
        // A random run of live members fills the rest.
        let bound = self.members.id_bound();
        if bound > 0 {
            let start = rand::Rng::random_range(&mut self.rng, 0..bound);
            for i in 0..bound {
                let id = ((start + i) % bound) as u32;
                let Some(r) = self.members.get(id) else {
                    continue;
                };
                if id == self.me || r.name == joiner || !r.is_live() {
                    continue;
                }
                let msg = entry(r);
                let before = b.len();
                if b.push(&msg).is_err() {
                    break;
                }
                self.cx().count(wire::MessageKind::Member, b.len() - before);
            }
        }
        self.cx().emit_datagram(to, b);
    }

    /// Starts a sync if a peer was seen to disagree and the rate allows.
    pub(super) fn run_sync(&mut self, now: Time) {
        let expiry = self.config.probe_interval * 2;
        self.syncs.expire(now, expiry);
        let Some(peer) = self.out_of_sync else { return };
        if now < self.next_sync {
            return;
        }
        self.next_sync = now + self.config.sync_interval;
        if self.syncs.full() {
            // Try again next interval; the pending ones expire meanwhile.
            return;
        }
        self.out_of_sync = None;
        self.start_sync(now, peer);
        // The hash covers key/value state too: a digest finds what differs
        // there (and rotates through owners when they do not all fit).
        if self.kv.holds_state() {
            let (kv, _, mut cx) = self.split();
            kv.send_pull(&mut cx, peer, true);
        }
    }

    pub(super) fn start_sync(&mut self, now: Time, peer: SocketAddr) {
        let id = self.syncs.start(now, peer);
        self.out.stats.syncs_started += 1;
        let buckets = self.members.bucket_hashes();
        let name = self.config.name.clone();
        let mut msgs = vec![Message::SyncRequest(wire::SyncRequest {
            id,
            from: &name,
            buckets: wire::Bytes(&buckets),
        })];
        // The state hash covers bus items too: the peer lists its items in
        // the buckets that differ.
        let bus = self.bus.sync_buckets(self.clock.latest(), &self.config);
        if let Some(bus) = &bus {
            msgs.push(Message::BusSync(wire::BusSync {
                buckets: wire::Bytes(bus),
            }));
        }
        self.cx().send(peer, &msgs, false);
    }

    /// Answers a sync request: the differing buckets and our entries in them.
    pub(super) fn answer_sync(&mut self, from: SocketAddr, id: u32, name: &str, buckets: &[u8]) {
        if !self.syncs.answer(from, id, name) {
            self.out.stats.drop("duplicate_sync_request");
            return;
        }
        self.out.stats.syncs_answered += 1;
        let mask = self.members.differing_buckets(buckets);
        self.send_entries(from, mask, Some(id));
    }

    /// Handles a sync reply; returns the bucket mask to push if this is the
    /// first reply to a sync we started.
    pub(super) fn sync_replied(&mut self, from: SocketAddr, id: u32, mask: u64) -> Option<u64> {
        match self.syncs.replied(from, id, mask) {
            Reply::Unexpected => {
                self.out.stats.drop("unexpected_sync_reply");
                None
            }
            Reply::Done => None,
            Reply::Push(mask) => Some(mask & all_buckets(self.config.sync_buckets)),
        }
    }

    /// Sends every entry in the buckets of `mask`, chunked over as many
    /// datagrams as it takes; with `reply_to`, each datagram starts with the
    /// sync reply so that whichever arrives first triggers the push.
    pub(super) fn send_entries(&mut self, to: SocketAddr, mask: u64, reply_to: Option<u32>) {
        let me = self.config.name.clone();
        let reply = reply_to.map(|id| {
            Message::SyncReply(wire::SyncReply {
                id,
                mask,
                from: &me,
            })
        });
        let ids: Vec<MemberId> = if mask == 0 {
            Vec::new()
        } else {
            self.members
                .iter()
                .filter(|(_, r)| self.members.in_buckets(r, mask))
                .map(|(id, _)| id)
                .collect()
        };
        let mut ids = ids.into_iter().peekable();
        loop {
            let mut b = self.cx().new_builder();
            if let Some(r) = &reply {
                self.cx().push_counted(&mut b, r);
            }
            let mut packed = 0;
            while let Some(&id) = ids.peek() {
                let msg = entry(self.members.rec(id));
                let before = b.len();
                if b.push(&msg).is_err() {
                    break;
                }
                let n = b.len() - before;
                self.cx().count(wire::MessageKind::Member, n);
                packed += 1;
                ids.next();
            }
            if packed == 0 && ids.peek().is_some() {
                // Larger than an empty datagram (long name and metadata
                // under a small budget): it cannot be sent this way.
                ids.next();
                self.out.stats.drop("entry_exceeds_datagram");
            }
            self.cx().emit_datagram(to, b);
            if ids.peek().is_none() {
                break;
            }
        }
    }

    /// Who sent the full-state entries arriving from `from` without a
    /// header naming the sender: pushes answer a request we answered, whose
    /// requester named itself. Unknown senders' claims count as our own
    /// (memberlist's rule), which confirms nothing.
    pub(super) fn entries_sender(&self, from: SocketAddr) -> CompactString {
        self.syncs.requester(from).map_or_else(
            || CompactString::from(self.config.name.as_str()),
            CompactString::clone,
        )
    }

    /// Forgets members failed or departed longer than `dead_retention`.
    pub(super) fn reap(&mut self, now: Time) {
        let retention = self.config.dead_retention;
        let mut i = 0;
        while i < self.gone.len() {
            let id = self.gone[i];
            let (gone, expired) = match self.members.get(id) {
                Some(r) if !r.is_live() => (true, now.saturating_since(r.state_since) >= retention),
                _ => (false, false),
            };
            if !gone || expired {
                self.gone.swap_remove(i);
                if expired {
                    self.remove_from_probe_order(id);
                    self.suspicions.end(id);
                    self.kv.forget(&self.members.rec(id).name);
                    self.phi.forget(id);
                    self.members.remove(id);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Sends a sync request to one random failed member.
    pub(super) fn reconnect(&mut self, now: Time) {
        let candidates: Vec<SocketAddr> = self
            .gone
            .iter()
            .filter_map(|&id| self.members.get(id))
            .filter(|r| r.state == MemberState::Dead)
            .map(|r| r.addr)
            .collect();
        if candidates.is_empty() || self.syncs.full() {
            return;
        }
        let peer = candidates[rand::Rng::random_range(&mut self.rng, 0..candidates.len())];
        self.start_sync(now, peer);
    }
}
