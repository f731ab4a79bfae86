//! What every feature of the endpoint shares: the time, the
//! configuration, the member table, the random generator, and the way out
//! (datagrams, events, counters, the dissemination queue).
//!
//! The [`Endpoint`](crate::Endpoint) owns all of it and lends it, as one
//! [`Ctx`], to the feature a message or timer is for (key/value
//! replication, the event bus); a feature changes its own state and speaks
//! only through the context.

use std::collections::VecDeque;
use std::net::SocketAddr;

use rand::rngs::SmallRng;
use rand::Rng;

use crate::broadcast::{retransmit_limit, BroadcastQueue};
use crate::config::Config;
use crate::event::{Event, Member, MemberState};
use crate::membership::state::{MemberId, MemberRecord, MemberTable};
use crate::security::seal::Sealer;
use crate::stats::Stats;
use crate::wire::{self, DatagramBuilder, Header, Message, MessageKind};
use crate::Time;

/// A datagram the endpoint wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The whole UDP payload (header included).
    pub data: Vec<u8>,
}

/// Everything that leaves the endpoint, and the counters of it.
pub(crate) struct Outbox {
    pub(crate) header: Header,
    /// Seals outgoing datagrams (and opens incoming ones, for the gate).
    pub(crate) sealer: Sealer,
    /// Updates waiting to be piggybacked.
    pub(crate) queue: BroadcastQueue,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) stats: Stats,
}

impl Outbox {
    pub(crate) fn new(header: Header, sealer: Sealer, queue: BroadcastQueue) -> Outbox {
        Outbox {
            header,
            sealer,
            queue,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }
}

/// The shared machinery, borrowed from the endpoint for one call into a
/// feature.
pub(crate) struct Ctx<'a> {
    /// The latest time the endpoint was given.
    pub(crate) now: Time,
    pub(crate) config: &'a Config,
    pub(crate) members: &'a MemberTable,
    /// This node in `members`.
    pub(crate) me: MemberId,
    /// The address this node advertises.
    pub(crate) addr: SocketAddr,
    /// Whether this node left the cluster.
    pub(crate) left: bool,
    pub(crate) rng: &'a mut SmallRng,
    pub(crate) out: &'a mut Outbox,
}

impl Ctx<'_> {
    /// This node's name.
    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether outgoing datagrams are sealed.
    pub(crate) fn sealing(&self) -> bool {
        sealing(self.config, &self.out.sealer)
    }

    /// Bytes one datagram built now may hold (see [`wire::budget`]).
    pub(crate) fn budget(&self) -> usize {
        wire::budget::datagram_budget(self.config.max_datagram, self.sealing())
    }

    /// An empty datagram within the budget.
    pub(crate) fn new_builder(&self) -> DatagramBuilder {
        DatagramBuilder::new(self.out.header, self.budget())
    }

    /// Counts one drop for `reason`.
    pub(crate) fn drop(&mut self, reason: &'static str) {
        self.out.stats.drop(reason);
    }

    /// Raises `event`.
    pub(crate) fn event(&mut self, event: Event) {
        self.out.events.push_back(event);
    }

    /// Raises the event `make` of member `id`.
    pub(crate) fn member_event(&mut self, make: fn(Member) -> Event, id: MemberId) {
        let member = self.members.rec(id).to_member();
        self.out.events.push_back(make(member));
    }

    /// Counts one message of `kind`, `bytes` long, sent.
    pub(crate) fn count(&mut self, kind: MessageKind, bytes: usize) {
        self.out.stats.messages_out.add(kind, 1);
        self.out.stats.message_bytes_out.add(kind, bytes as u64);
    }

    /// Adds `msg` to `b` if it fits, counted.
    pub(crate) fn push_counted(&mut self, b: &mut DatagramBuilder, msg: &Message<'_>) {
        let before = b.len();
        if b.push(msg).is_ok() {
            self.count(msg.kind(), b.len() - before);
        }
    }

    /// Queues an update about `subject` for dissemination.
    pub(crate) fn broadcast(&mut self, subject: &str, msg: &Message<'_>) {
        self.broadcast_encoded(subject, wire::encode_message(msg));
    }

    /// Queues an encoded update about `subject`, replacing an older one
    /// about it; evictions to stay within `max_queued_broadcasts` are
    /// counted.
    pub(crate) fn broadcast_encoded(&mut self, subject: &str, payload: Vec<u8>) {
        let evicted = self
            .out
            .queue
            .push(subject, payload, self.config.max_queued_broadcasts);
        for _ in 0..evicted {
            self.drop("broadcast_queue_full");
        }
    }

    /// Sends `msgs` to `to` in one datagram, topped up with pending updates
    /// if `piggyback`.
    pub(crate) fn send(&mut self, to: SocketAddr, msgs: &[Message<'_>], piggyback: bool) {
        let mut b = self.new_builder();
        for m in msgs {
            self.push_counted(&mut b, m);
        }
        if piggyback {
            self.piggyback(&mut b);
        }
        self.emit_datagram(to, b);
    }

    /// Fills `b` with pending updates, least sent first.
    pub(crate) fn piggyback(&mut self, b: &mut DatagramBuilder) {
        if self.out.queue.is_empty() {
            return;
        }
        let limit = retransmit_limit(self.config.retransmit_mult, self.members.live_count());
        let filled = self.out.queue.fill(b, limit);
        for (kind, bytes) in filled.bytes {
            self.count(kind, bytes);
        }
    }

    /// Seals (if this node seals) and sends `b` to `to`, unless it is
    /// empty. Returns whether a datagram left.
    pub(crate) fn emit_datagram(&mut self, to: SocketAddr, b: DatagramBuilder) -> bool {
        if b.is_empty() {
            return false;
        }
        let plain = b.finish();
        let data = if self.sealing() {
            self.out.sealer.seal(&plain, self.now.as_millis())
        } else {
            plain
        };
        self.out.stats.packets_out += 1;
        self.out.stats.bytes_out += data.len() as u64;
        self.out.transmits.push_back(Transmit { to, data });
        true
    }

    /// Up to `k` distinct members other than this node for which `eligible`
    /// holds, chosen at random. Samples slots directly when the table is
    /// large, so a gossip tick costs O(k), not O(n).
    pub(crate) fn sample_members(
        &mut self,
        k: usize,
        eligible: impl Fn(MemberId, &MemberRecord) -> bool,
    ) -> Vec<MemberId> {
        let mut chosen: Vec<MemberId> = Vec::with_capacity(k);
        if k == 0 {
            return chosen;
        }
        let bound = self.members.id_bound();
        let ok = |id: MemberId, members: &MemberTable, me: MemberId| {
            id != me && members.get(id).is_some_and(|r| eligible(id, r))
        };
        if bound > 8 * k {
            for _ in 0..8 * k {
                let id = self.rng.random_range(0..bound) as MemberId;
                if ok(id, self.members, self.me) && !chosen.contains(&id) {
                    chosen.push(id);
                    if chosen.len() == k {
                        return chosen;
                    }
                }
            }
        }
        // Few members, or few eligible: scan, then pick at random.
        let mut all: Vec<MemberId> = self
            .members
            .iter()
            .map(|(id, _)| id)
            .filter(|&id| ok(id, self.members, self.me) && !chosen.contains(&id))
            .collect();
        while chosen.len() < k && !all.is_empty() {
            let i = self.rng.random_range(0..all.len());
            chosen.push(all.swap_remove(i));
        }
        chosen
    }

    /// The addresses of up to `k` random live members.
    pub(crate) fn sample_live(&mut self, k: usize) -> Vec<SocketAddr> {
        let ids = self.sample_members(k, |_, r| r.is_live());
        ids.iter().map(|&id| self.members.rec(id).addr).collect()
    }

    /// A gossip tick: pending updates to `gossip_nodes` random members
    /// (live ones, and recently failed ones so they can learn of it and
    /// refute).
    pub(crate) fn gossip(&mut self, now: Time) {
        let to_dead = self.config.gossip_to_dead_time;
        let targets = self.sample_members(self.config.gossip_nodes, |_, r| {
            r.is_live()
                || (r.state == MemberState::Dead && now.saturating_since(r.state_since) < to_dead)
        });
        for id in targets {
            if self.out.queue.is_empty() {
                break;
            }
            let to = self.members.rec(id).addr;
            let mut b = self.new_builder();
            self.piggyback(&mut b);
            self.emit_datagram(to, b);
        }
    }
}

/// Whether a node with `config` and `sealer` seals what it sends.
pub(crate) fn sealing(config: &Config, sealer: &Sealer) -> bool {
    sealer.can_seal() && !config.send_plaintext
}
