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
//! The endpoint keeps the member table and SWIM, and routes everything
//! else: `dispatch` hands each decoded message to its owner, `timers` runs
//! the due timers and merges every feature's next deadline, `clock` is
//! where time enters. SWIM itself is `probe` (the failure detector, with
//! phi's veto from `membership/detector.rs`), `merge` (precedence rules,
//! refutation; the suspicion timers are `membership/suspicion.rs`) and
//! `sync` (join, anti-entropy, reconnection, forgetting); `admission` is
//! the keyring API and the call into the gate (`security/gate.rs`:
//! allow-list, plaintext switches, unsealing, replay window). Every feature sends through
//! the shared context (`context.rs`: datagram budget, sealing, the
//! dissemination queue, events, counters). Key/value replication is
//! [`crate::kv`], the event bus [`crate::bus`]; `kv` and `bus` here are
//! only their public calls on the endpoint.

mod admission;
mod bus;
mod clock;
mod dispatch;
mod kv;
pub(crate) mod lifecycle;
mod merge;
mod probe;
mod sync;
mod timers;

use std::collections::VecDeque;
use std::net::SocketAddr;

use compact_str::CompactString;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::broadcast::BroadcastQueue;
use crate::bus::BusState;
use crate::config::{Config, ConfigError};
pub use crate::context::Transmit;
use crate::context::{Ctx, Outbox};
use crate::event::{Event, Member, MemberState};
use crate::hash::{fixed_map, name_hash, FixedMap};
use crate::kv::KvState;
use crate::membership::awareness::Awareness;
use crate::membership::detector::Detectors;
pub use crate::membership::state::MemberCounts;
use crate::membership::state::{MemberId, MemberRecord, MemberTable};
use crate::membership::suspicion::Suspicions;
pub use crate::security::gate::{PacketError, Refusal};
use crate::stats::Stats;
use crate::wire::{self, ClusterTag, Header, Message};
use crate::Time;
pub use lifecycle::ForceLeaveError;

/// How many live members a leaving node tells of its departure directly,
/// besides gossiping it (see [`Endpoint::leave`]).
const LEAVE_FANOUT: usize = 8;

/// One member of a cluster, as a sans-IO state machine. See the module docs.
pub struct Endpoint {
    config: Config,
    cluster: ClusterTag,
    addr: SocketAddr,
    me: MemberId,
    rng: SmallRng,
    members: MemberTable,
    awareness: Awareness,
    /// Phi-accrual detectors: their veto can spare a failed probe.
    phi: Detectors,

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

    /// Running suspicions and their timers (started in merge.rs).
    suspicions: Suspicions,

    // Dissemination.
    next_gossip: Time,

    // Join, anti-entropy, reconnection (sync.rs).
    joining: Option<sync::Joining>,
    out_of_sync: Option<SocketAddr>,
    next_sync: Time,
    /// Syncs started and requests answered (membership/syncs.rs).
    syncs: crate::membership::syncs::SyncBook,
    gone: Vec<MemberId>,
    next_reconnect: Time,

    /// Replicated key/value state.
    kv: KvState,
    /// The event bus, queries and elections.
    bus: BusState,
    /// Keyring and drop-log limiter (security/gate.rs).
    gate: crate::security::gate::Gate,
    /// The latest time given (clock.rs).
    clock: clock::Clock,
    left: bool,
    /// Whether this node yielded its name to an older holder
    /// (membership/conflict.rs).
    name_claim: crate::membership::conflict::NameClaim,
    /// Members the datagram being handled introduced so far (merge.rs).
    introduced: usize,
    /// Datagrams, events and counters on their way out.
    out: Outbox,
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
        // do not probe and gossip in lockstep (they count from the first
        // time given: see clock.rs).
        let next_probe = Time::ZERO + config.probe_interval.mul_f64(rng.random::<f64>());
        let next_gossip = Time::ZERO + config.gossip_interval.mul_f64(rng.random::<f64>());
        let next_reconnect = Time::ZERO + config.reconnect_interval.mul_f64(rng.random::<f64>());
        let queue = BroadcastQueue::new(rng.random());
        let (store_seed, phi_seed, cursor_seed) = (rng.random(), rng.random(), rng.random());
        let kv = KvState::new(
            store_seed,
            cursor_seed,
            config.kv_push_rate,
            config.kv_tombstone_grace,
        );
        let (gate, sealer) = crate::security::gate::Gate::new(&config.keys, &mut rng);
        let next_seq: u32 = rng.random();
        // Seeded from a draw made anyway, so adding the bus changed no
        // other random choice (and no simulation result).
        let bus = BusState::new(u64::from(next_seq) ^ 0x6275_735f_7365_6564);
        Ok(Endpoint {
            bus,
            kv,
            phi: Detectors::new(phi_seed),
            gate,
            awareness: Awareness::new(config.awareness_max_multiplier),
            cluster,
            addr,
            me,
            members,
            probe_order: Vec::new(),
            probe_pos: 0,
            probe: None,
            recent_probes: VecDeque::new(),
            reprobe: None,
            next_probe,
            next_seq,
            relays: fixed_map(rng.random()),
            relay_deadlines: VecDeque::new(),
            suspicions: Suspicions::new(rng.random()),
            next_gossip,
            joining: None,
            out_of_sync: None,
            next_sync: Time::ZERO,
            syncs: crate::membership::syncs::SyncBook::new(rng.random()),
            gone: Vec::new(),
            next_reconnect,
            clock: clock::Clock::default(),
            left: false,
            name_claim: crate::membership::conflict::NameClaim::default(),
            introduced: 0,
            out: Outbox::new(Header::new(cluster), sealer, queue),
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

    /// Members known in each state, this node included: kept as members
    /// change, so reading it costs nothing.
    pub fn member_counts(&self) -> MemberCounts {
        self.members.counts()
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

    /// The phi-accrual suspicion level of `member` at `now` (0 = just
    /// heard from; the default threshold is 8), or `None` if this node has
    /// no evidence of its life yet.
    pub fn phi(&self, member: &str, now: Time) -> Option<f64> {
        let id = self.members.find(member)?;
        self.phi.phi(&self.config, id, now)
    }

    /// Updates waiting to be piggybacked.
    pub fn pending_broadcasts(&self) -> usize {
        self.out.queue.len()
    }

    /// Whether [`Endpoint::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// The 32-bit summary of membership and key/value state carried on
    /// pings and acks: equal hashes mean nothing to exchange.
    pub fn state_hash(&self) -> [u8; 4] {
        let m = self.members.hash32();
        let k = self.kv.hash32();
        let b = self.bus.hash32(self.clock.latest(), &self.config);
        std::array::from_fn(|i| m[i] ^ k[i] ^ b[i])
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.out.stats
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
            r.incarnation = r.incarnation.wrapping_add(1);
        });
        self.broadcast_own_alive();
        self.cx().gossip(now);
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
        let (kv, _, mut cx) = self.split();
        kv.send_pull(&mut cx, peer, true);
    }

    /// Leaves the cluster gracefully: tells up to eight live members at
    /// once, broadcasts `Left` and stops probing. Keep driving the endpoint
    /// until [`Endpoint::leave_finished`] (or a deadline of your own) so
    /// the news gets out.
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
        let mut cx = self.cx();
        let config = cx.config;
        let left = Message::Left(wire::Left {
            name: &config.name,
            incarnation,
        });
        cx.broadcast(&config.name, &left);
        // Gossip alone spends λ·⌈log(n+1)⌉ sends on random members, dead
        // ones and ones that left unbeknown to us included: in a small
        // cluster every send can miss, and the members left behind then
        // declare this node Dead instead of Left. Telling a few live
        // members first-hand makes it certain up to LEAVE_FANOUT + 1 nodes
        // and gives the epidemic that many independent sources beyond.
        for to in cx.sample_live(LEAVE_FANOUT) {
            cx.send(to, &[left], false);
        }
        cx.gossip(now);
    }

    // ------------------------------------------------------------------
    // Driving.

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    // ------------------------------------------------------------------
    // Shared helpers.

    fn next_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    /// The key/value and bus states, and the context they work in.
    fn split(&mut self) -> (&mut KvState, &mut BusState, Ctx<'_>) {
        let Endpoint {
            kv,
            bus,
            config,
            members,
            me,
            addr,
            left,
            rng,
            out,
            clock,
            ..
        } = self;
        let cx = Ctx {
            now: clock.latest(),
            config,
            members,
            me: *me,
            addr: *addr,
            left: *left,
            rng,
            out,
        };
        (kv, bus, cx)
    }

    /// The shared context, for SWIM's own sending.
    fn cx(&mut self) -> Ctx<'_> {
        self.split().2
    }

    /// Evidence that `id` is alive, for its phi detector.
    fn evidence(&mut self, id: MemberId, now: Time) {
        if id != self.me {
            self.phi.evidence(&self.config, id, now);
        }
    }
}

#[cfg(test)]
mod tests;
