//! A deterministic discrete-event network simulator driving many
//! [`Endpoint`]s in virtual time.
//!
//! The simulator is the project's main test harness and its measuring
//! instrument: every figure in `DESIGN.md` §5 comes from [`scenario`]. It is
//! public so that users can model their own cluster sizes and settings.
//!
//! # Model
//!
//! * Time is virtual ([`Time`], nanoseconds from the start of the run). Work
//!   takes no virtual time: a node answers a packet at the instant it
//!   arrives.
//! * Every node is an unmodified [`Endpoint`] at a synthetic IPv4 address
//!   (`10.a.b.c:7946`, from its index), seeded from the simulation seed and
//!   its index, so the same seed and the same calls give the same run.
//! * The network ([`NetworkConfig`]) delays each datagram by a base latency
//!   plus exponential jitter (which reorders packets), loses and duplicates
//!   them at random, drops them between partitions, and can be overridden
//!   per directed link ([`LinkConfig`]).
//! * Faults: [`Sim::crash`] (a crashed node neither runs nor receives),
//!   [`Sim::restart`] (a fresh endpoint with the same name and address),
//!   [`Sim::pause`] (a stalled process: packets queue up and timers wait,
//!   then the backlog is handled at once), [`Sim::set_slow`] (a CPU-starved
//!   process: every datagram and timer is handled late, in order; see
//!   [`SlowConfig`]), [`Sim::partition`] / [`Sim::heal`], [`Sim::set_loss`],
//!   [`Sim::set_link`].
//!
//! # Event loop
//!
//! One binary heap holds packet deliveries and node timers, ordered by
//! (time, sequence number). After every call into an endpoint the
//! simulator drains its transmits (routing each through the network model)
//! and its events, then re-arms the node's timer from
//! [`Endpoint::poll_timeout`]: a heap entry is pushed only when the deadline
//! changed, and entries that no longer match are skipped when popped. Each
//! event costs O(log heap) plus the endpoint's own work; nothing is O(N).
//!
//! Every transmit and every endpoint event is folded into a running FNV-1a
//! [`Sim::trace_hash`], which two runs can compare to prove they were the
//! same.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use vinery::sim::{NetworkConfig, Sim};
//! use vinery::Config;
//!
//! let mut sim = Sim::new(7, NetworkConfig::default());
//! let nodes: Vec<_> = (0..5).map(|_| sim.add_node(Config::lan())).collect();
//! for &n in &nodes[1..] {
//!     sim.join(n, &[nodes[0]]);
//! }
//! let at = sim.wait_until(Duration::from_millis(100), Duration::from_secs(30), |s| s.converged());
//! assert!(at.is_some(), "five nodes converge within 30 virtual seconds");
//! sim.crash(nodes[4]);
//! sim.run_for(Duration::from_secs(60));
//! assert!(sim.everyone_sees(nodes[4], vinery::MemberState::Dead));
//! ```

mod network;
pub mod scenario;
mod slow;
mod trace;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{Config, ConfigError, Endpoint, Event, MemberState, Time, Transmit};

pub use network::{LinkConfig, NetworkConfig};
pub use slow::SlowConfig;

use network::check_probability;
use trace::{mix, Fnv};

/// The UDP port of every simulated node.
pub const SIM_PORT: u16 = 7946;

/// An endpoint deadline still due right after the endpoint ran its timers
/// is run again at once (as a real event loop would re-poll), up to
/// [`MAX_IMMEDIATE_RERUNS`] times in a row; after that it is retried this
/// much later, so that a deadline stuck in the past cannot freeze virtual
/// time. Each such wake-up is counted in [`SimStats::timer_spins`].
pub const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// How many times in a row a still-due timer is re-run at the same instant
/// before it is pushed back by [`TIMER_RESOLUTION`].
pub const MAX_IMMEDIATE_RERUNS: u8 = 3;

/// A simulated node: its index in the order of [`Sim::add_node`] calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The node's index, from 0.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// Whether a node is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStatus {
    /// Running normally.
    Up,
    /// Stalled until the given time: packets to it queue up, timers wait.
    Paused {
        /// When it resumes.
        until: Time,
    },
    /// Stopped: packets to it are dropped and its timers do not run.
    Crashed,
}

/// The kind of an [`Event`], for filtering the event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// [`Event::MemberJoined`].
    Joined,
    /// [`Event::MemberRecovered`].
    Recovered,
    /// [`Event::MemberSuspect`].
    Suspect,
    /// [`Event::MemberFailed`].
    Failed,
    /// [`Event::MemberLeft`].
    Left,
    /// [`Event::MemberUpdated`].
    Updated,
    /// [`Event::KeyUpdated`].
    KeyUpdated,
    /// [`Event::KeyDeleted`].
    KeyDeleted,
    /// [`Event::KeyExpired`].
    KeyExpired,
    /// Any event of the event bus, queries or elections. The event log
    /// records membership events only; watch these with [`Sim::on_event`].
    Bus,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 10] = [
        EventKind::Joined,
        EventKind::Recovered,
        EventKind::Suspect,
        EventKind::Failed,
        EventKind::Left,
        EventKind::Updated,
        EventKind::KeyUpdated,
        EventKind::KeyDeleted,
        EventKind::KeyExpired,
        EventKind::Bus,
    ];

    /// The kind of `event`.
    pub fn of(event: &Event) -> EventKind {
        match event {
            Event::MemberJoined(_) => EventKind::Joined,
            Event::MemberRecovered(_) => EventKind::Recovered,
            Event::MemberSuspect(_) => EventKind::Suspect,
            Event::MemberFailed(_) => EventKind::Failed,
            Event::MemberLeft(_) => EventKind::Left,
            Event::MemberUpdated(_) => EventKind::Updated,
            Event::KeyUpdated { .. } => EventKind::KeyUpdated,
            Event::KeyDeleted { .. } => EventKind::KeyDeleted,
            Event::KeyExpired { .. } => EventKind::KeyExpired,
            _ => EventKind::Bus,
        }
    }

    fn bit(self) -> u16 {
        1 << self as u8
    }
}

/// One endpoint event, as recorded by the event log
/// ([`Sim::log_events`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedEvent {
    /// When it happened.
    pub time: Time,
    /// The node that emitted it.
    pub node: NodeId,
    /// What happened.
    pub kind: EventKind,
    /// The node it is about, if its name is a simulated node's.
    pub member: Option<NodeId>,
    /// The member's incarnation in the event.
    pub incarnation: u32,
    /// The member's state in the event.
    pub state: MemberState,
}

/// One datagram handled by a node, as recorded by the packet log
/// ([`Sim::log_packets`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketRecord {
    /// When the sender sent it.
    pub sent: Time,
    /// When it reached the receiver.
    pub arrived: Time,
    /// When the receiver handled it (later than `arrived` if it was
    /// paused or slow).
    pub handled: Time,
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// Payload length in bytes.
    pub len: usize,
}

/// Simulator-level counters: what the network did with the datagrams.
/// Per-node traffic is in each endpoint's [`Stats`](crate::Stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Datagrams sent by all nodes.
    pub packets_sent: u64,
    /// Bytes sent by all nodes.
    pub bytes_sent: u64,
    /// The largest datagram any node sent (checks packing budgets).
    pub largest_datagram: usize,
    /// Datagrams handed to a node (including the duplicates).
    pub packets_delivered: u64,
    /// Datagrams lost at random (network or link loss).
    pub dropped_loss: u64,
    /// Datagrams dropped because sender and receiver were in different
    /// partitions.
    pub dropped_partition: u64,
    /// Datagrams that reached a crashed node (or were queued at a paused
    /// node that then crashed).
    pub dropped_crashed: u64,
    /// Datagrams to an address that is no simulated node.
    pub dropped_unroutable: u64,
    /// Extra copies delivered by random duplication.
    pub duplicated: u64,
    /// Datagrams that arrived at a paused node and were queued.
    pub buffered_paused: u64,
    /// Datagrams and timers a slow node ([`Sim::set_slow`]) handled late.
    pub slowed: u64,
    /// Datagrams the receiving endpoint rejected (its
    /// [`Endpoint::handle_packet`] returned an error).
    pub rejected: u64,
    /// Endpoint events emitted.
    pub events: u64,
    /// Node timers run.
    pub timer_fires: u64,
    /// Datagrams in flight (sent, not yet delivered or dropped) right now.
    pub in_flight: u64,
    /// Payload bytes in flight right now.
    pub in_flight_bytes: u64,
    /// The most payload bytes ever in flight at once (the simulator's own
    /// main memory cost).
    pub peak_in_flight_bytes: u64,
    /// Times an endpoint's next deadline was already due right after it ran
    /// its timers (see [`TIMER_RESOLUTION`]). Non-zero means the endpoint
    /// would wake up again at once in a real event loop, or spin.
    pub timer_spins: u64,
}

type EventHook = Box<dyn FnMut(Time, NodeId, &Event) + Send>;

struct Arrival {
    arrived: Time,
    sent: Time,
    from: u32,
    data: Vec<u8>,
}

struct Node {
    ep: Endpoint,
    config: Config,
    addr: SocketAddr,
    status: NodeStatus,
    /// The deadline a live heap entry stands for; `None` when unarmed.
    timer: Option<Time>,
    backlog: Vec<Arrival>,
    restarts: u32,
    dirty: bool,
    /// Consecutive timer runs that left a deadline still due.
    spin_streak: u8,
    /// How late it handles its input, if it is slow.
    slow: Option<SlowConfig>,
    /// When a slow node handles its latest input: the next one is handled
    /// no earlier, so inputs keep their order.
    slow_busy_until: Time,
    /// A slow node's timer fell due and waits in the heap to be handled
    /// (as [`Action::Late`] without an arrival); until then the timer is
    /// not re-armed, since whatever falls due meanwhile is handled by it.
    timer_late: bool,
}

enum Action {
    Deliver {
        to: u32,
        from: u32,
        sent: Time,
        data: Vec<u8>,
    },
    Timer {
        node: u32,
    },
    Resume {
        node: u32,
    },
    /// A slow node handles a datagram that reached it earlier (`Some`), or
    /// its timer that fell due earlier (`None`). `life` is the node's
    /// restart count when it became ready: a restart discards it.
    Late {
        node: u32,
        life: u32,
        arrival: Option<Arrival>,
    },
}

struct Entry {
    at: Time,
    seq: u64,
    action: Action,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` pops the earliest entry first.
    fn cmp(&self, other: &Entry) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The simulator. See the module docs.
pub struct Sim {
    seed: u64,
    now: Time,
    net: NetworkConfig,
    rng: SmallRng,
    nodes: Vec<Node>,
    /// Partition group of each node; only read while `partitioned`.
    groups: Vec<u32>,
    partitioned: bool,
    links: HashMap<(u32, u32), LinkConfig>,
    names: HashMap<String, u32>,
    heap: BinaryHeap<Entry>,
    next_seq: u64,
    dirty: Vec<u32>,
    crashed: usize,
    trace: Fnv,
    stats: SimStats,
    log_mask: u16,
    event_log: Vec<LoggedEvent>,
    log_packets: bool,
    packet_log: Vec<PacketRecord>,
    hook: Option<EventHook>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("net", &self.net)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// An empty simulation at time zero. `seed` drives the network's
    /// randomness and every endpoint's seed.
    ///
    /// # Panics
    ///
    /// If `net.loss` or `net.duplicate` is not a probability.
    pub fn new(seed: u64, net: NetworkConfig) -> Sim {
        check_probability("loss", net.loss);
        check_probability("duplicate", net.duplicate);
        Sim {
            seed,
            now: Time::ZERO,
            net,
            rng: SmallRng::seed_from_u64(mix(seed ^ 0x5157_5f4e_4554)),
            nodes: Vec::new(),
            groups: Vec::new(),
            partitioned: false,
            links: HashMap::new(),
            names: HashMap::new(),
            heap: BinaryHeap::new(),
            next_seq: 0,
            dirty: Vec::new(),
            crashed: 0,
            trace: Fnv::default(),
            stats: SimStats::default(),
            log_mask: 0,
            event_log: Vec::new(),
            log_packets: false,
            packet_log: Vec::new(),
            hook: None,
        }
    }

    // ------------------------------------------------------------------
    // Building.

    /// Adds a node running `config` and returns its id. An empty
    /// `config.name` is replaced by `node-<index>`. The node does nothing
    /// until it is told to [`Sim::join`] (or is joined by others).
    ///
    /// # Panics
    ///
    /// If the config is invalid (see [`Sim::try_add_node`]) or the name is
    /// already taken.
    pub fn add_node(&mut self, config: Config) -> NodeId {
        match self.try_add_node(config) {
            Ok(id) => id,
            Err(e) => panic!("Sim::add_node: {e}"),
        }
    }

    /// Adds a node, or says why its config is invalid.
    ///
    /// # Panics
    ///
    /// If the name is already another node's, or there are 2^24 nodes.
    pub fn try_add_node(&mut self, mut config: Config) -> Result<NodeId, ConfigError> {
        let index = self.nodes.len() as u32;
        assert!(index < 1 << 24, "at most 2^24 simulated nodes");
        if config.name.is_empty() {
            config.name = format!("node-{index}");
        }
        assert!(
            !self.names.contains_key(&config.name),
            "node name {:?} is already taken",
            config.name
        );
        let addr = node_addr(index);
        let ep = Endpoint::new(config.clone(), addr, self.endpoint_seed(index, 0))?;
        self.names.insert(config.name.clone(), index);
        self.nodes.push(Node {
            ep,
            config,
            addr,
            status: NodeStatus::Up,
            timer: None,
            backlog: Vec::new(),
            restarts: 0,
            dirty: false,
            spin_streak: 0,
            slow: None,
            slow_busy_until: Time::ZERO,
            timer_late: false,
        });
        self.groups.push(0);
        self.rearm(index, false);
        Ok(NodeId(index))
    }

    /// Adds `n` nodes, each running `config` with the name `node-<index>`.
    pub fn add_nodes(&mut self, n: usize, config: &Config) -> Vec<NodeId> {
        (0..n)
            .map(|_| {
                let mut c = config.clone();
                c.name.clear();
                self.add_node(c)
            })
            .collect()
    }

    fn endpoint_seed(&self, index: u32, restarts: u32) -> u64 {
        mix(mix(self.seed ^ 0x454e_4450_4f49_4e54) ^ (u64::from(index) << 20) ^ u64::from(restarts))
    }

    // ------------------------------------------------------------------
    // Queries.

    /// The seed the simulation was created with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The current virtual time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Number of nodes ever added (crashed ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added yet.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node's id, in order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len() as u32).map(NodeId)
    }

    /// The ids of the nodes that are not crashed (paused ones included).
    pub fn running(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes()
            .filter(|&n| self.nodes[n.index()].status != NodeStatus::Crashed)
    }

    /// The endpoints of the nodes that are not crashed.
    fn running_endpoints(&self) -> impl Iterator<Item = &Endpoint> + '_ {
        self.nodes
            .iter()
            .filter(|n| n.status != NodeStatus::Crashed)
            .map(|n| &n.ep)
    }

    /// Number of nodes that are not crashed.
    pub fn running_count(&self) -> usize {
        self.nodes.len() - self.crashed
    }

    /// The address of node `n`.
    pub fn addr(&self, n: NodeId) -> SocketAddr {
        self.nodes[n.index()].addr
    }

    /// The name of node `n`.
    pub fn name(&self, n: NodeId) -> &str {
        &self.nodes[n.index()].config.name
    }

    /// The node at `addr`, if any.
    pub fn node_at(&self, addr: SocketAddr) -> Option<NodeId> {
        self.lookup(addr).map(NodeId)
    }

    /// The node named `name`, if any.
    pub fn node_named(&self, name: &str) -> Option<NodeId> {
        self.names.get(name).copied().map(NodeId)
    }

    /// Whether node `n` is up, paused or crashed.
    pub fn status(&self, n: NodeId) -> NodeStatus {
        self.nodes[n.index()].status
    }

    /// How late node `n` handles its input, if it is slow
    /// ([`Sim::set_slow`]).
    pub fn slow(&self, n: NodeId) -> Option<SlowConfig> {
        self.nodes[n.index()].slow
    }

    /// How many times node `n` was restarted.
    pub fn restarts(&self, n: NodeId) -> u32 {
        self.nodes[n.index()].restarts
    }

    /// Node `n`'s endpoint (after a restart, the new one).
    pub fn endpoint(&self, n: NodeId) -> &Endpoint {
        &self.nodes[n.index()].ep
    }

    /// Node `n`'s endpoint, to call its local API (`leave`, …). Pass
    /// [`Sim::now`] as the time. What it sends and emits is picked up at
    /// the start of the next `run_*` call; prefer [`Sim::with_endpoint`],
    /// which picks it up at once.
    pub fn endpoint_mut(&mut self, n: NodeId) -> &mut Endpoint {
        let node = &mut self.nodes[n.index()];
        if !node.dirty {
            node.dirty = true;
            self.dirty.push(n.0);
        }
        &mut node.ep
    }

    /// Calls `f` with node `n`'s endpoint and the current time, then routes
    /// what it sent and records what it emitted.
    pub fn with_endpoint<R>(&mut self, n: NodeId, f: impl FnOnce(&mut Endpoint, Time) -> R) -> R {
        let now = self.now;
        let out = f(&mut self.nodes[n.index()].ep, now);
        self.settle_call(n.0);
        out
    }

    /// Whether every running node lists exactly [`Sim::running_count`]
    /// members as live (alive or suspect): the "every node lists all N"
    /// test of the join scenario.
    pub fn full_view(&self) -> bool {
        let expect = self.running_count();
        self.running_endpoints().all(|ep| ep.num_live() == expect)
    }

    /// The smallest number of live members any running node lists (how far
    /// from [`Sim::full_view`] the cluster is), or `None` with no running
    /// node.
    pub fn min_live_view(&self) -> Option<usize> {
        self.running_endpoints().map(Endpoint::num_live).min()
    }

    /// Updates waiting to be piggybacked, summed over running nodes.
    pub fn pending_broadcasts(&self) -> usize {
        self.running_endpoints()
            .map(Endpoint::pending_broadcasts)
            .sum()
    }

    /// Whether every running node lists exactly the running nodes as live
    /// and all of them agree (same membership hash): [`Sim::full_view`]
    /// plus agreement on every incarnation.
    pub fn converged(&self) -> bool {
        let expect = self.running_count();
        let mut hash = None;
        self.running_endpoints().all(|ep| {
            let h = ep.membership_hash();
            ep.num_live() == expect && *hash.get_or_insert(h) == h
        })
    }

    /// Whether every running node other than `member` holds `member` in
    /// `state`.
    pub fn everyone_sees(&self, member: NodeId, state: MemberState) -> bool {
        let name = self.name(member);
        self.running().filter(|&n| n != member).all(|n| {
            self.endpoint(n)
                .member(name)
                .is_some_and(|m| m.state == state)
        })
    }

    /// Network-level counters.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// The running FNV-1a hash over every transmit (time, sender, receiver,
    /// length) and every endpoint event (time, node, kind, member name,
    /// incarnation, state) so far. Two runs with the same seed and calls
    /// have the same hash.
    pub fn trace_hash(&self) -> u64 {
        self.trace.finish()
    }

    /// The network's current behaviour.
    pub fn network(&self) -> &NetworkConfig {
        &self.net
    }

    // ------------------------------------------------------------------
    // Observing.

    /// Records the events of the given kinds in the event log (an empty
    /// slice switches it off). Entries already logged stay.
    pub fn log_events(&mut self, kinds: &[EventKind]) {
        self.log_mask = kinds.iter().fold(0, |m, k| m | k.bit());
    }

    /// The events logged so far.
    pub fn event_log(&self) -> &[LoggedEvent] {
        &self.event_log
    }

    /// Takes the events logged so far, leaving the log empty.
    pub fn take_event_log(&mut self) -> Vec<LoggedEvent> {
        std::mem::take(&mut self.event_log)
    }

    /// Calls `hook` with every event any node emits, as it happens.
    pub fn on_event(&mut self, hook: impl FnMut(Time, NodeId, &Event) + Send + 'static) {
        self.hook = Some(Box::new(hook));
    }

    /// Removes the hook set by [`Sim::on_event`].
    pub fn clear_event_hook(&mut self) {
        self.hook = None;
    }

    /// Switches the packet log (every datagram handled) on or off.
    pub fn log_packets(&mut self, on: bool) {
        self.log_packets = on;
    }

    /// The datagrams logged so far, in the order they were handled.
    pub fn packet_log(&self) -> &[PacketRecord] {
        &self.packet_log
    }

    /// Takes the packet log, leaving it empty.
    pub fn take_packet_log(&mut self) -> Vec<PacketRecord> {
        std::mem::take(&mut self.packet_log)
    }

    // ------------------------------------------------------------------
    // Driving.

    /// Makes node `n` join through `seeds` (their addresses; `n` itself is
    /// skipped) at the current time.
    pub fn join(&mut self, n: NodeId, seeds: &[NodeId]) {
        let addrs: Vec<SocketAddr> = seeds.iter().map(|&s| self.addr(s)).collect();
        self.with_endpoint(n, |ep, now| ep.join(now, &addrs));
    }

    /// Runs every event up to and including time `t`, then sets the clock
    /// to `t` (if it is later than now).
    pub fn run_until(&mut self, t: Time) {
        self.flush_dirty();
        while let Some(top) = self.heap.peek() {
            if top.at > t {
                break;
            }
            let entry = self.heap.pop().expect("peeked");
            self.now = entry.at;
            self.dispatch(entry);
        }
        self.now = self.now.max(t);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs until `pred` holds, checking it now and then every `step` of
    /// virtual time, for at most `timeout`. Returns the first time it was
    /// seen to hold, or `None` if it never did (the clock is then at the
    /// deadline).
    ///
    /// # Panics
    ///
    /// If `step` is zero.
    pub fn wait_until(
        &mut self,
        step: Duration,
        timeout: Duration,
        mut pred: impl FnMut(&Sim) -> bool,
    ) -> Option<Time> {
        assert!(!step.is_zero(), "wait_until needs a positive step");
        let deadline = self.now + timeout;
        loop {
            self.flush_dirty();
            if pred(self) {
                return Some(self.now);
            }
            if self.now >= deadline {
                return None;
            }
            let next = (self.now + step).min(deadline);
            self.run_until(next);
        }
    }

    /// Joins every node of `nodes` but the first through the first, then
    /// runs until every running node lists all ([`Sim::full_view`]), for at
    /// most `timeout`: the usual start of a scenario. Returns when the view
    /// was full, or `None` if it never was.
    pub fn join_all(&mut self, nodes: &[NodeId], timeout: Duration) -> Option<Time> {
        if let Some((&seed, rest)) = nodes.split_first() {
            for &x in rest {
                self.join(x, &[seed]);
            }
        }
        self.wait_until(Duration::from_millis(100), timeout, Sim::full_view)
    }

    /// Sends `data` from node `from` to node `to` through the network
    /// model, as if `from`'s endpoint had sent it (for tests of the
    /// network, or to inject crafted datagrams).
    pub fn send_raw(&mut self, from: NodeId, to: NodeId, data: Vec<u8>) {
        let to = self.addr(to);
        self.route(from.0, Transmit { to, data });
    }

    // ------------------------------------------------------------------
    // Faults.

    /// Crashes node `n`: from now on it runs no timers and every datagram
    /// that reaches it is dropped (datagrams it already sent are still
    /// delivered). No effect on a crashed node.
    pub fn crash(&mut self, n: NodeId) {
        let node = &mut self.nodes[n.index()];
        if node.status == NodeStatus::Crashed {
            return;
        }
        node.status = NodeStatus::Crashed;
        node.timer = None;
        node.timer_late = false;
        node.slow_busy_until = Time::ZERO;
        self.stats.dropped_crashed += node.backlog.len() as u64;
        node.backlog = Vec::new();
        self.crashed += 1;
    }

    /// Replaces node `n` (crashed or not) by a fresh endpoint with the same
    /// config, name and address and a new seed, which joins through
    /// `seeds` at once.
    pub fn restart(&mut self, n: NodeId, seeds: &[NodeId]) {
        self.crash(n);
        let i = n.0;
        let restarts = self.nodes[n.index()].restarts + 1;
        let seed = self.endpoint_seed(i, restarts);
        let node = &mut self.nodes[n.index()];
        node.ep = Endpoint::new(node.config.clone(), node.addr, seed)
            .expect("the config was valid when the node was added");
        node.restarts = restarts;
        node.spin_streak = 0;
        node.status = NodeStatus::Up;
        node.timer = None;
        self.crashed -= 1;
        self.rearm(i, false);
        self.join(n, seeds);
    }

    /// Stalls node `n` for `d`, as a CPU-starved or GC-paused process:
    /// datagrams reaching it are queued and its timers wait. When `d` has
    /// passed it handles the queued datagrams in arrival order, all at the
    /// resume time, then runs its due timers. Pausing a paused node
    /// extends the pause to whichever end is later; a crashed node cannot
    /// be paused (no effect).
    pub fn pause(&mut self, n: NodeId, d: Duration) {
        self.flush_dirty();
        let until = self.now + d;
        let node = &mut self.nodes[n.index()];
        let until = match node.status {
            NodeStatus::Crashed => return,
            NodeStatus::Paused { until: old } if old >= until => return,
            _ => until,
        };
        node.status = NodeStatus::Paused { until };
        node.timer = None;
        self.push(until, Action::Resume { node: n.0 });
    }

    /// Makes node `n` slow (`Some`) or normal again (`None`), as a
    /// CPU-starved process: from now on every datagram that reaches it and
    /// every timer of its endpoint is handled `delay ± jitter` late, in the
    /// order they became ready (see [`SlowConfig`]). Input that became ready
    /// before the change keeps its handling time. Slowness belongs to the
    /// host, so it survives [`Sim::restart`].
    pub fn set_slow(&mut self, n: NodeId, slow: Option<SlowConfig>) {
        self.flush_dirty();
        self.nodes[n.index()].slow = slow;
    }

    /// Splits the network: datagrams between nodes of different groups are
    /// dropped. Nodes not listed in any group form one more group together.
    /// Replaces any previous partition.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        self.groups.iter_mut().for_each(|g| *g = 0);
        for (gi, group) in groups.iter().enumerate() {
            for n in group {
                self.groups[n.index()] = gi as u32 + 1;
            }
        }
        self.partitioned = true;
    }

    /// Removes the partition.
    pub fn heal(&mut self) {
        self.partitioned = false;
        self.groups.iter_mut().for_each(|g| *g = 0);
    }

    /// Whether nodes `a` and `b` can currently reach each other (same
    /// partition group).
    pub fn connected(&self, a: NodeId, b: NodeId) -> bool {
        !self.partitioned || self.groups[a.index()] == self.groups[b.index()]
    }

    /// Sets the network-wide loss probability.
    ///
    /// # Panics
    ///
    /// If `p` is not in `0.0..=1.0`.
    pub fn set_loss(&mut self, p: f64) {
        check_probability("loss", p);
        self.net.loss = p;
    }

    /// Replaces the whole network behaviour (links set with
    /// [`Sim::set_link`] keep their overrides).
    ///
    /// # Panics
    ///
    /// If a probability is out of range.
    pub fn set_network(&mut self, net: NetworkConfig) {
        check_probability("loss", net.loss);
        check_probability("duplicate", net.duplicate);
        self.net = net;
    }

    /// Overrides latency, jitter and loss for datagrams from `a` to `b`
    /// (one direction).
    ///
    /// # Panics
    ///
    /// If `link.loss` is not a probability.
    pub fn set_link(&mut self, a: NodeId, b: NodeId, link: LinkConfig) {
        check_probability("loss", link.loss);
        self.links.insert((a.0, b.0), link);
    }

    /// Removes the override of the link from `a` to `b`.
    pub fn clear_link(&mut self, a: NodeId, b: NodeId) {
        self.links.remove(&(a.0, b.0));
    }

    // ------------------------------------------------------------------
    // The loop.

    fn push(&mut self, at: Time, action: Action) {
        if let Action::Deliver { data, .. } = &action {
            let s = &mut self.stats;
            s.in_flight += 1;
            s.in_flight_bytes += data.len() as u64;
            s.peak_in_flight_bytes = s.peak_in_flight_bytes.max(s.in_flight_bytes);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { at, seq, action });
    }

    fn dispatch(&mut self, entry: Entry) {
        let now = entry.at;
        match entry.action {
            Action::Deliver {
                to,
                from,
                sent,
                data,
            } => {
                self.stats.in_flight -= 1;
                self.stats.in_flight_bytes -= data.len() as u64;
                let arrival = Arrival {
                    arrived: now,
                    sent,
                    from,
                    data,
                };
                let node = &self.nodes[to as usize];
                if node.status == NodeStatus::Up && node.slow.is_some() {
                    self.handle_late(to, Some(arrival));
                } else {
                    self.deliver(to, arrival);
                }
            }
            Action::Timer { node: i } => {
                let node = &mut self.nodes[i as usize];
                if node.timer != Some(now) || node.status != NodeStatus::Up {
                    return;
                }
                node.timer = None;
                if node.slow.is_some() {
                    node.timer_late = true;
                    self.handle_late(i, None);
                } else {
                    self.run_timers(i);
                }
            }
            Action::Late {
                node: i,
                life,
                arrival,
            } => {
                let node = &mut self.nodes[i as usize];
                if node.restarts != life || node.status == NodeStatus::Crashed {
                    // Ready in a previous life, or the node died first.
                    self.stats.dropped_crashed += u64::from(arrival.is_some());
                    return;
                }
                match arrival {
                    Some(a) => self.deliver(i, a),
                    None => {
                        node.timer_late = false;
                        // A paused node runs its due timers when it resumes.
                        if node.status == NodeStatus::Up {
                            self.run_timers(i);
                        }
                    }
                }
            }
            Action::Resume { node: i } => {
                let node = &mut self.nodes[i as usize];
                if node.status != (NodeStatus::Paused { until: now }) {
                    return;
                }
                node.status = NodeStatus::Up;
                let backlog = std::mem::take(&mut node.backlog);
                for a in backlog {
                    self.handle_packet(i, a.from, a.sent, a.arrived, &a.data);
                    self.drain(i);
                }
                let node = &mut self.nodes[i as usize];
                let ran = node.ep.poll_timeout().is_some_and(|t| t <= now);
                if ran {
                    node.ep.handle_timeout(now);
                    self.stats.timer_fires += 1;
                    self.drain(i);
                }
                self.rearm(i, ran);
            }
        }
    }

    /// Hands a datagram to node `to` now: handled if it is up, queued if it
    /// is paused, dropped if it crashed.
    fn deliver(&mut self, to: u32, a: Arrival) {
        let node = &mut self.nodes[to as usize];
        match node.status {
            NodeStatus::Crashed => self.stats.dropped_crashed += 1,
            NodeStatus::Paused { .. } => {
                self.stats.buffered_paused += 1;
                node.backlog.push(a);
            }
            NodeStatus::Up => {
                self.handle_packet(to, a.from, a.sent, a.arrived, &a.data);
                self.drain(to);
                self.rearm(to, false);
            }
        }
    }

    /// Runs node `i`'s due timers now.
    fn run_timers(&mut self, i: u32) {
        self.nodes[i as usize].ep.handle_timeout(self.now);
        self.stats.timer_fires += 1;
        self.drain(i);
        self.rearm(i, true);
    }

    /// Schedules slow node `i` to handle `arrival` (or its timer, `None`)
    /// one lateness draw from now, and never before its previous input.
    fn handle_late(&mut self, i: u32, arrival: Option<Arrival>) {
        let node = &self.nodes[i as usize];
        let slow = node.slow.expect("only slow nodes handle input late");
        let (busy, life) = (node.slow_busy_until, node.restarts);
        let late = Time::from_nanos(self.now.as_nanos() + slow.draw_nanos(&mut self.rng));
        // Equal times keep push order in the heap: first ready, first
        // handled.
        let at = late.max(busy);
        self.nodes[i as usize].slow_busy_until = at;
        self.stats.slowed += 1;
        self.push(
            at,
            Action::Late {
                node: i,
                life,
                arrival,
            },
        );
    }

    fn handle_packet(&mut self, to: u32, from: u32, sent: Time, arrived: Time, data: &[u8]) {
        let now = self.now;
        let from_addr = self.nodes[from as usize].addr;
        self.stats.packets_delivered += 1;
        if self.nodes[to as usize]
            .ep
            .handle_packet(now, from_addr, data)
            .is_err()
        {
            self.stats.rejected += 1;
        }
        if self.log_packets {
            self.packet_log.push(PacketRecord {
                sent,
                arrived,
                handled: now,
                from: NodeId(from),
                to: NodeId(to),
                len: data.len(),
            });
        }
    }

    /// Routes everything node `i` sent and records everything it emitted.
    fn drain(&mut self, i: u32) {
        while let Some(tx) = self.nodes[i as usize].ep.poll_transmit() {
            self.route(i, tx);
        }
        while let Some(ev) = self.nodes[i as usize].ep.poll_event() {
            self.observe(i, &ev);
        }
    }

    /// Arms node `i`'s timer from its endpoint's next deadline. `ran_timers`
    /// says the endpoint just ran its timers at `now`, so a deadline still
    /// due is a spin.
    fn rearm(&mut self, i: u32, ran_timers: bool) {
        let now = self.now;
        let node = &mut self.nodes[i as usize];
        // A late timer run is pending: it handles whatever falls due before
        // it, since a slow node handles nothing earlier anyway.
        if node.status != NodeStatus::Up || node.timer_late {
            return;
        }
        let Some(mut t) = node.ep.poll_timeout() else {
            node.timer = None;
            return;
        };
        if t <= now {
            if ran_timers {
                self.stats.timer_spins += 1;
                if node.spin_streak < MAX_IMMEDIATE_RERUNS {
                    node.spin_streak += 1;
                    t = now;
                } else {
                    t = now + TIMER_RESOLUTION;
                }
            } else {
                t = now;
            }
        } else if ran_timers {
            node.spin_streak = 0;
        }
        if node.timer != Some(t) {
            node.timer = Some(t);
            self.push(t, Action::Timer { node: i });
        }
    }

    /// After a call into node `i` from outside the loop.
    fn settle_call(&mut self, i: u32) {
        match self.nodes[i as usize].status {
            NodeStatus::Crashed => {
                // A crashed node's output goes nowhere.
                let ep = &mut self.nodes[i as usize].ep;
                while ep.poll_transmit().is_some() {}
                while ep.poll_event().is_some() {}
            }
            _ => {
                self.drain(i);
                self.rearm(i, false);
            }
        }
    }

    fn flush_dirty(&mut self) {
        while let Some(i) = self.dirty.pop() {
            self.nodes[i as usize].dirty = false;
            self.settle_call(i);
        }
    }

    fn lookup(&self, addr: SocketAddr) -> Option<u32> {
        let IpAddr::V4(ip) = addr.ip() else {
            return None;
        };
        let [a, b, c, d] = ip.octets();
        if a != 10 || addr.port() != SIM_PORT {
            return None;
        }
        let index = u32::from(b) << 16 | u32::from(c) << 8 | u32::from(d);
        ((index as usize) < self.nodes.len()).then_some(index)
    }

    fn route(&mut self, from: u32, tx: Transmit) {
        let now = self.now;
        let len = tx.data.len();
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += len as u64;
        self.stats.largest_datagram = self.stats.largest_datagram.max(len);
        let to = self.lookup(tx.to);
        self.trace.u8(b'T');
        self.trace.u64(now.as_nanos());
        self.trace.u32(from);
        self.trace.u32(to.unwrap_or(u32::MAX));
        self.trace.u32(len as u32);
        let Some(to) = to else {
            self.stats.dropped_unroutable += 1;
            return;
        };
        if self.partitioned && self.groups[from as usize] != self.groups[to as usize] {
            self.stats.dropped_partition += 1;
            return;
        }
        let link = if self.links.is_empty() {
            self.net.link()
        } else {
            self.links
                .get(&(from, to))
                .copied()
                .unwrap_or_else(|| self.net.link())
        };
        if link.lost(&mut self.rng) {
            self.stats.dropped_loss += 1;
            return;
        }
        let duplicate = (self.net.duplicate > 0.0 && self.rng.random::<f64>() < self.net.duplicate)
            .then(|| tx.data.clone());
        self.stats.duplicated += u64::from(duplicate.is_some());
        for data in std::iter::once(tx.data).chain(duplicate) {
            // Each copy gets its own delay, so a duplicate may overtake.
            let at = Time::from_nanos(now.as_nanos() + link.delay_nanos(&mut self.rng));
            self.push(
                at,
                Action::Deliver {
                    to,
                    from,
                    sent: now,
                    data,
                },
            );
        }
    }

    fn observe(&mut self, i: u32, ev: &Event) {
        self.stats.events += 1;
        let kind = EventKind::of(ev);
        let t = &mut self.trace;
        t.u8(b'E');
        t.u64(self.now.as_nanos());
        t.u32(i);
        t.u8(kind as u8);
        t.bytes(ev.node().as_bytes());
        let Some(m) = ev.member() else {
            // Key events: the trace covers them; the event log is for
            // membership (key events reach `on_event` hooks).
            if let Event::KeyUpdated { key, version, .. }
            | Event::KeyDeleted { key, version, .. }
            | Event::KeyExpired { key, version, .. } = ev
            {
                t.bytes(key.as_bytes());
                t.u64(*version);
            }
            if let Some(hook) = &mut self.hook {
                hook(self.now, NodeId(i), ev);
            }
            return;
        };
        t.u32(m.incarnation);
        t.u8(m.state as u8);
        if self.log_mask & kind.bit() != 0 {
            self.event_log.push(LoggedEvent {
                time: self.now,
                node: NodeId(i),
                kind,
                member: self.names.get(m.name.as_str()).copied().map(NodeId),
                incarnation: m.incarnation,
                state: m.state,
            });
        }
        if let Some(hook) = &mut self.hook {
            hook(self.now, NodeId(i), ev);
        }
    }
}

/// The synthetic address of the node with index `i`:
/// `10.(i>>16).(i>>8).(i&255):7946`.
pub fn node_addr(i: u32) -> SocketAddr {
    let [_, b, c, d] = i.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, b, c, d)), SIM_PORT)
}
