//! The sans-IO protocol state machine.
//!
//! An [`Endpoint`] is one member. It is driven from outside:
//! [`Endpoint::handle_packet`] for every datagram received,
//! [`Endpoint::handle_timeout`] whenever [`Endpoint::poll_timeout`]'s time
//! has come, and drained through [`Endpoint::poll_transmit`] and
//! [`Endpoint::poll_event`]. It holds no socket, thread or clock, and its
//! only randomness is a generator seeded at construction, so a run is a pure
//! function of its inputs.
//!
//! The concerns live in submodules: `probe` (SWIM's failure detector),
//! `merge` (precedence rules, refutation, suspicion timers), `sync` (join,
//! anti-entropy, reconnection, forgetting), `kv` (replicated state),
//! `bus`, `query` and `election` (the event bus).

mod bus;
mod election;
mod kv;
pub(crate) mod lifecycle;
mod merge;
mod probe;
mod query;
mod secure;
mod sync;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;

use compact_str::CompactString;
use hashbrown::HashMap;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::broadcast::{retransmit_limit, BroadcastQueue};
use crate::config::{Config, ConfigError};
use crate::event::{Event, Member, MemberState};
use crate::membership::awareness::Awareness;
use crate::membership::state::{name_hash, MemberId, MemberRecord, MemberTable};
use crate::membership::suspicion::SuspicionTimer;
use crate::stats::Stats;
use crate::wire::{self, ClusterTag, Datagram, DatagramBuilder, Header, Message, WireError};
use crate::Time;
use merge::Via;

/// A datagram the endpoint wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The whole UDP payload (header included).
    pub data: Vec<u8>,
}

type FixedMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// One member of a cluster, as a sans-IO state machine. See the module docs.
pub struct Endpoint {
    config: Config,
    cluster: ClusterTag,
    header: Header,
    addr: SocketAddr,
    me: MemberId,
    rng: SmallRng,
    members: MemberTable,
    awareness: Awareness,
    queue: BroadcastQueue,

    // Probing (probe.rs).
    probe_order: Vec<MemberId>,
    probe_pos: usize,
    probe: Option<probe::Probe>,
    /// Recent probes' sequence numbers and targets (late acks are evidence).
    recent_probes: VecDeque<(u32, MemberId)>,
    /// A member whose failed probe phi vetoed: probed again next.
    reprobe: Option<MemberId>,
    next_probe: Time,
    next_seq: u32,
    relays: FixedMap<u32, probe::Relay>,
    relay_deadlines: VecDeque<(Time, u32)>,

    // Suspicion (merge.rs).
    suspicions: FixedMap<MemberId, SuspicionTimer>,
    suspicion_deadlines: BinaryHeap<Reverse<(Time, MemberId)>>,

    // Dissemination.
    next_gossip: Time,

    // Join, anti-entropy, reconnection (sync.rs).
    joining: Option<sync::Joining>,
    out_of_sync: Option<SocketAddr>,
    next_sync: Time,
    syncs: Vec<sync::PendingSync>,
    next_sync_id: u32,
    answered: VecDeque<(SocketAddr, u32, CompactString)>,
    gone: Vec<MemberId>,
    next_reconnect: Time,

    // Replicated key/value state and phi detectors (kv.rs).
    kv: kv::KvState,
    // Allow-list, keyring and sealing (secure.rs).
    gate: secure::Gate,
    // Event bus, queries and elections (bus.rs, query.rs, election.rs).
    bus: bus::BusState,

    /// Whether a time was seen yet (first deadlines count from it).
    clock_started: bool,
    left: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
}

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
    bus: bus::AfterBus,
}

impl Endpoint {
    /// A new member named `config.name`, reachable at `addr` (its advertise
    /// address), with every random choice drawn from `seed`.
    pub fn new(config: Config, addr: SocketAddr, seed: u64) -> Result<Endpoint, ConfigError> {
        config.validate()?;
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut members = MemberTable::new(config.sync_buckets, rng.random());
        let me = members.insert(MemberRecord {
            name: CompactString::from(config.name.as_str()),
            addr,
            incarnation: 0,
            state: MemberState::Alive,
            state_since: Time::ZERO,
            meta: config.meta.clone().into_boxed_slice(),
            name_hash: name_hash(&config.name),
        });
        let cluster = ClusterTag::from_name(&config.cluster_name);
        // Spread first deadlines over one period so nodes started together
        // do not probe and gossip in lockstep.
        let next_probe = Time::ZERO + config.probe_interval.mul_f64(rng.random::<f64>());
        let next_gossip = Time::ZERO + config.gossip_interval.mul_f64(rng.random::<f64>());
        let next_reconnect = Time::ZERO + config.reconnect_interval.mul_f64(rng.random::<f64>());
        let queue = BroadcastQueue::new(rng.random());
        let kv = kv::KvState::new(
            [rng.random(), rng.random(), rng.random()],
            config.kv_push_rate,
        );
        let gate = secure::Gate::new(&config.keys, rng.random(), rng.random(), rng.random());
        let next_seq: u32 = rng.random();
        // Seeded from a draw made anyway, so adding the bus changed no
        // other random choice (and no simulation result).
        let bus = bus::BusState::new(u64::from(next_seq) ^ 0x6275_735f_7365_6564);
        Ok(Endpoint {
            bus,
            kv,
            gate,
            awareness: Awareness::new(config.awareness_max_multiplier),
            cluster,
            header: Header::new(cluster),
            addr,
            me,
            members,
            queue,
            probe_order: Vec::new(),
            probe_pos: 0,
            probe: None,
            recent_probes: VecDeque::new(),
            reprobe: None,
            next_probe,
            next_seq,
            relays: FixedMap::with_hasher(foldhash::fast::FixedState::with_seed(rng.random())),
            relay_deadlines: VecDeque::new(),
            suspicions: FixedMap::with_hasher(foldhash::fast::FixedState::with_seed(rng.random())),
            suspicion_deadlines: BinaryHeap::new(),
            next_gossip,
            joining: None,
            out_of_sync: None,
            next_sync: Time::ZERO,
            syncs: Vec::new(),
            next_sync_id: rng.random(),
            answered: VecDeque::new(),
            gone: Vec::new(),
            next_reconnect,
            clock_started: false,
            left: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            rng,
            config,
        })
    }

    // ------------------------------------------------------------------
    // Queries.

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The address this node advertises.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every member known, in any state, this node included.
    pub fn members(&self) -> Vec<Member> {
        self.members.iter().map(|(_, r)| r.to_member()).collect()
    }

    /// One member by name.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.members
            .find(name)
            .map(|id| self.members.rec(id).to_member())
    }

    /// This node's own record.
    pub fn local_member(&self) -> Member {
        self.members.rec(self.me).to_member()
    }

    /// Members alive or suspect, this node included: the cluster size as
    /// this node sees it.
    pub fn num_live(&self) -> usize {
        self.members.live_count()
    }

    /// Members known in any state, this node included.
    pub fn num_known(&self) -> usize {
        self.members.len()
    }

    /// The 32-bit membership hash carried on probes; two nodes with the same
    /// live members at the same incarnations have the same hash.
    pub fn membership_hash(&self) -> u32 {
        u32::from_le_bytes(self.members.hash32())
    }

    /// Lifeguard's local health score (0 is healthy; probes are slowed by
    /// `score + 1`).
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// Updates waiting to be piggybacked.
    pub fn pending_broadcasts(&self) -> usize {
        self.queue.len()
    }

    /// Whether [`Endpoint::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// The 32-bit summary of membership and key/value state carried on
    /// pings and acks: equal hashes mean nothing to exchange.
    pub fn state_hash(&self) -> [u8; 4] {
        let m = self.members.hash32();
        let k = self.kv.store.hash32();
        let b = self.bus_hash();
        std::array::from_fn(|i| m[i] ^ k[i] ^ b[i])
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    // ------------------------------------------------------------------
    // Local calls.

    /// Starts joining through `seeds` (addresses of any members; this
    /// node's own address is skipped). Resolving host names to addresses
    /// is the caller's job, since the endpoint does no I/O. A join is resent every
    /// `join_retry_interval` until some member answers, so seeds may start
    /// later than the joiner.
    pub fn join(&mut self, now: Time, seeds: &[SocketAddr]) {
        self.observe_time(now);
        let seeds: Vec<SocketAddr> = seeds.iter().copied().filter(|s| *s != self.addr).collect();
        if seeds.is_empty() || self.left {
            return;
        }
        self.joining = Some(sync::Joining {
            seeds,
            next_retry: now,
        });
        self.send_joins(now);
    }

    /// Replaces this node's metadata (tags) and tells the cluster at once:
    /// the incarnation rises (only a member may raise its own), the new
    /// alive record is gossiped right away, and every peer reports
    /// [`Event::MemberUpdated`]. Metadata longer than
    /// [`wire::MAX_META_LEN`] bytes is refused, changing nothing.
    pub fn set_meta(&mut self, now: Time, meta: &[u8]) -> Result<(), ConfigError> {
        self.observe_time(now);
        crate::config::check_meta(meta)?;
        if self.left || *self.members.rec(self.me).meta == *meta {
            return Ok(());
        }
        self.config.meta = meta.to_vec();
        self.members.update(self.me, |r| {
            r.meta = meta.into();
            r.incarnation = r.incarnation.saturating_add(1);
        });
        self.broadcast_own_alive();
        self.gossip(now);
        Ok(())
    }

    /// Starts anti-entropy with `peer` now, without waiting for a probe to
    /// reveal a difference: a membership sync and a key/value digest (for
    /// operators who want a node caught up at once, and for benchmarks).
    pub fn sync_with(&mut self, now: Time, peer: SocketAddr) {
        self.observe_time(now);
        if self.left || peer == self.addr {
            return;
        }
        self.start_sync(now, peer);
        self.send_pull(peer, true);
    }

    /// Leaves the cluster gracefully: broadcasts `Left` and stops probing.
    /// Keep driving the endpoint until [`Endpoint::pending_broadcasts`] is
    /// zero (or a deadline passes) so the news gets out.
    pub fn leave(&mut self, now: Time) {
        self.observe_time(now);
        if self.left {
            return;
        }
        self.left = true;
        self.probe = None;
        self.joining = None;
        let incarnation = self.members.rec(self.me).incarnation;
        self.members.update(self.me, |r| {
            r.state = MemberState::Left;
            r.state_since = now;
        });
        let name = self.config.name.clone();
        self.broadcast(
            &name,
            &Message::Left(wire::Left {
                name: &name,
                incarnation,
            }),
        );
        self.gossip(now);
    }

    // ------------------------------------------------------------------
    // Driving.

    /// Handles one received datagram. A datagram is decoded whole before any
    /// of it is applied: if any message is bad, the datagram is dropped,
    /// counted under the error's name, and no state changes.
    pub fn handle_packet(
        &mut self,
        now: Time,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), WireError> {
        self.stats.packets_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
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
            self.drop_datagram(now, from, e);
            return Err(e);
        }
        self.observe_time(now);
        // Expiries due by now happen before what this datagram says: an
        // owner's expiry tombstone arriving a moment before the replica's
        // own timer must not hide the `KeyExpired` the replica owes.
        self.run_kv_timers(now);
        if self.left {
            self.stats.drop("after_leave");
            return Ok(());
        }
        let mut after = AfterPacket::default();
        for msg in &msgs {
            self.stats.messages_in.add(msg.kind(), 1);
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
                    self.stats.drop("misdirected_ping");
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
            Message::KvEntry(e) => self.handle_kv_entry(now, &e),
            Message::KvDigest(d) => {
                self.handle_kv_digest(now, &d);
                if after.kv_pull.is_some() {
                    after.kv_digests.push((
                        CompactString::from(d.node),
                        d.generation,
                        d.max_version,
                    ));
                }
            }
            Message::KvPull(p) => after.kv_pull = Some(p),
            Message::KvReset(r) => self.handle_kv_reset(&r),
            Message::UserEvent(_)
            | Message::Query(_)
            | Message::Election(_)
            | Message::Vote(_)
            | Message::QueryReply(_)
            | Message::BusPush(_)
            | Message::BusHave(_)
            | Message::BusWant(_)
            | Message::BusSync(_) => self.handle_bus(now, msg, &mut after.bus),
        }
    }

    fn finish_packet(&mut self, from: SocketAddr, after: AfterPacket) {
        self.finish_resets();
        if let Some(seq) = after.ack {
            let ack = Message::Ack(wire::Ack {
                seq,
                hash: self.state_hash(),
            });
            self.send(from, &[ack], true);
        }
        if let Some(name) = after.join_reply {
            self.send_join_reply(from, &name);
            self.list_bus_items(from);
        }
        if let Some(mask) = after.push {
            self.send_entries(from, mask, None);
        }
        if let Some(pull) = after.kv_pull {
            self.answer_pull(from, pull, &after.kv_digests);
        }
        self.finish_bus(from, after.bus);
        if let Some(theirs) = after.peer_hash {
            if theirs != self.state_hash() {
                self.out_of_sync = Some(from);
            }
        }
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        self.run_kv_timers(now);
        self.run_bus_timers(now);
        if !self.left {
            self.run_probe(now);
        }
        self.expire_relays(now);
        // After probing: a failed probe can confirm a suspicion and pull its
        // deadline into the past.
        self.expire_suspicions(now);
        if now >= self.next_gossip {
            self.kv_gossip_tick(now);
            self.bus_gossip_tick(now);
            if !self.queue.is_empty() {
                self.gossip(now);
            }
            self.next_gossip = now + self.config.gossip_interval;
        }
        if self.left {
            return;
        }
        self.run_sync(now);
        if let Some(j) = &self.joining {
            if self.members.live_count() > 1 {
                self.joining = None;
            } else if now >= j.next_retry {
                self.send_joins(now);
            }
        }
        if now >= self.next_reconnect {
            self.next_reconnect = now + self.config.reconnect_interval;
            self.reap(now);
            self.reconnect(now);
        }
    }

    /// The next time [`Endpoint::handle_timeout`] has work, if any. A quiet
    /// cluster asks only for its probe timer: gossip, sync and reconnect
    /// timers are armed only while they have something to do.
    pub fn poll_timeout(&self) -> Option<Time> {
        let mut next: Option<Time> = None;
        let mut consider = |t: Time| next = Some(next.map_or(t, |n: Time| n.min(t)));
        if !self.left {
            match &self.probe {
                Some(p) if !p.acked && !p.indirect_sent => consider(p.timeout_at),
                Some(p) => consider(p.deadline),
                None => consider(self.next_probe),
            }
            if self.out_of_sync.is_some() {
                consider(self.next_sync);
            }
            if let Some(j) = &self.joining {
                consider(j.next_retry);
            }
            if !self.gone.is_empty() {
                consider(self.next_reconnect);
            }
        }
        if let Some((t, _)) = self.relay_deadlines.front() {
            consider(*t);
        }
        if let Some(Reverse((t, _))) = self.suspicion_deadlines.peek() {
            consider(*t);
        }
        if !self.queue.is_empty() || self.kv.wants_gossip(self.kv.now) || self.bus.wants_gossip() {
            consider(self.next_gossip);
        }
        if let Some(t) = self.kv.next_timer() {
            consider(t);
        }
        if let Some(t) = self.bus.next_timer() {
            consider(t);
        }
        next
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ------------------------------------------------------------------
    // Shared helpers.

    fn next_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    fn emit(&mut self, make: fn(Member) -> Event, id: MemberId) {
        let member = self.members.rec(id).to_member();
        self.events.push_back(make(member));
    }

    /// Queues an update about `subject` for dissemination.
    fn broadcast(&mut self, subject: &str, msg: &Message<'_>) {
        self.broadcast_encoded(subject, wire::encode_message(msg));
    }

    fn broadcast_encoded(&mut self, subject: &str, payload: Vec<u8>) {
        let evicted = self
            .queue
            .push(subject, payload, self.config.max_queued_broadcasts);
        for _ in 0..evicted {
            self.stats.drop("broadcast_queue_full");
        }
    }

    fn new_builder(&self) -> DatagramBuilder {
        DatagramBuilder::new(self.header, self.message_budget())
    }

    /// Sends `msgs` to `to` in one datagram, topped up with pending updates
    /// if `piggyback`.
    fn send(&mut self, to: SocketAddr, msgs: &[Message<'_>], piggyback: bool) {
        let mut b = self.new_builder();
        for m in msgs {
            let before = b.len();
            if b.push(m).is_ok() {
                self.count_out(m.kind(), b.len() - before);
            }
        }
        if piggyback {
            self.piggyback(&mut b);
        }
        self.emit_datagram(to, b);
    }

    fn piggyback(&mut self, b: &mut DatagramBuilder) {
        if self.queue.is_empty() {
            return;
        }
        let limit = retransmit_limit(self.config.retransmit_mult, self.members.live_count());
        let filled = self.queue.fill(b, limit);
        for (kind, bytes) in filled.bytes {
            self.count_out(kind, bytes);
        }
    }

    fn count_out(&mut self, kind: wire::MessageKind, bytes: usize) {
        self.stats.messages_out.add(kind, 1);
        self.stats.message_bytes_out.add(kind, bytes as u64);
    }

    fn emit_datagram(&mut self, to: SocketAddr, b: DatagramBuilder) {
        if b.is_empty() {
            return;
        }
        let data = self.seal(b.finish());
        self.stats.packets_out += 1;
        self.stats.bytes_out += data.len() as u64;
        self.transmits.push_back(Transmit { to, data });
    }

    /// Up to `k` distinct members other than this node for which `eligible`
    /// holds, chosen at random. Samples slots directly when the table is
    /// large, so a gossip tick costs O(k), not O(n).
    fn sample_members(
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
                if ok(id, &self.members, self.me) && !chosen.contains(&id) {
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
            .filter(|&id| ok(id, &self.members, self.me) && !chosen.contains(&id))
            .collect();
        while chosen.len() < k && !all.is_empty() {
            let i = self.rng.random_range(0..all.len());
            chosen.push(all.swap_remove(i));
        }
        chosen
    }

    /// A gossip tick: pending updates to `gossip_nodes` random members
    /// (live ones, and recently failed ones so they can learn of it and
    /// refute).
    fn gossip(&mut self, now: Time) {
        let to_dead = self.config.gossip_to_dead_time;
        let targets = self.sample_members(self.config.gossip_nodes, |_, r| {
            r.is_live()
                || (r.state == MemberState::Dead && now.saturating_since(r.state_since) < to_dead)
        });
        for id in targets {
            if self.queue.is_empty() {
                break;
            }
            let to = self.members.rec(id).addr;
            let mut b = self.new_builder();
            self.piggyback(&mut b);
            self.emit_datagram(to, b);
        }
    }
}

#[cfg(test)]
mod tests;
