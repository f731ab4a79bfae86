//! A deterministic discrete-event network simulator driving many
//! [`Endpoint`]s in virtual time.
//!
//! The simulator is the project's main test harness and its measuring
//! instrument: every figure in `docs/PERFORMANCE.md` comes from
//! [`scenario`]. It is public so that users can model their own cluster
//! sizes and settings.
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
//! # Files
//!
//! This file holds the [`Sim`] itself: building it, querying it, the
//! observation switches and the calls that drive time. The rest is split by
//! what a reader looks for:
//!
//! | file | holds |
//! |------|-------|
//! | `node.rs` | [`NodeId`], [`NodeStatus`], a node's state, the address scheme |
//! | `schedule.rs` | the event queue and the timer re-arm policy |
//! | `event_loop.rs` | the loop: delivery, timers, routing through the network |
//! | `faults.rs` | crashes, restarts, pauses, slowness, partitions, loss, links |
//! | `network.rs` | the network model ([`NetworkConfig`], [`LinkConfig`]) |
//! | `slow.rs` | the slowness model ([`SlowConfig`]) |
//! | `observe.rs` | the trace hash, the event and packet logs, the event hook |
//! | `trace.rs` | the FNV-1a hasher and the seed mixer |
//! | `stats.rs` | [`SimStats`] |
//! | `timeline.rs` | [`Timeline`]: samples over time, for plots |
//! | `writes.rs` | sustained writes and the tracking of their spread |
//! | `scenario/` | the standard scenarios and their harness |
//! | `script/` | fault scripts: scenarios written as data, and their runner |
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

mod event_loop;
mod faults;
mod network;
mod node;
mod observe;
pub mod scenario;
mod schedule;
pub mod script;
mod slow;
mod stats;
mod timeline;
mod trace;
mod writes;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::{Config, ConfigError, Endpoint, Event, EventKind, MemberState, Time, Transmit};

pub use network::{LinkConfig, NetworkConfig};
pub use node::{node_addr, NodeId, NodeStatus, SIM_PORT};
pub use observe::{LoggedEvent, PacketRecord};
pub use schedule::{MAX_IMMEDIATE_RERUNS, TIMER_RESOLUTION};
pub use slow::SlowConfig;
pub use stats::SimStats;
pub use timeline::{Sample, Timeline};

use network::check_probability;
use node::{node_index, Node};
use observe::Observer;
use schedule::Schedule;
use trace::mix;

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
    schedule: Schedule,
    /// Nodes called from outside the loop since the last flush.
    dirty: Vec<u32>,
    crashed: usize,
    stats: SimStats,
    observer: Observer,
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
            schedule: Schedule::default(),
            dirty: Vec::new(),
            crashed: 0,
            stats: SimStats::default(),
            observer: Observer::default(),
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
        self.nodes.push(Node::new(ep, config, addr));
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
        node_index(addr, self.nodes.len()).map(NodeId)
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
        self.observer.trace_hash()
    }

    /// The network's current behaviour.
    pub fn network(&self) -> &NetworkConfig {
        &self.net
    }

    // ------------------------------------------------------------------
    // Observing.

    /// Records the membership events of the given kinds in the event log
    /// (an empty slice switches it off; key and event-bus kinds are never
    /// logged: watch them with [`Sim::on_event`]). Entries already logged
    /// stay.
    pub fn log_events(&mut self, kinds: &[EventKind]) {
        self.observer.log_events(kinds);
    }

    /// The events logged so far.
    pub fn event_log(&self) -> &[LoggedEvent] {
        self.observer.event_log()
    }

    /// Takes the events logged so far, leaving the log empty.
    pub fn take_event_log(&mut self) -> Vec<LoggedEvent> {
        self.observer.take_event_log()
    }

    /// Calls `hook` with every event any node emits, as it happens.
    pub fn on_event(&mut self, hook: impl FnMut(Time, NodeId, &Event) + Send + 'static) {
        self.observer.set_hook(Some(Box::new(hook)));
    }

    /// Removes the hook set by [`Sim::on_event`].
    pub fn clear_event_hook(&mut self) {
        self.observer.set_hook(None);
    }

    /// Switches the packet log (every datagram handled) on or off.
    pub fn log_packets(&mut self, on: bool) {
        self.observer.log_packets(on);
    }

    /// The datagrams logged so far, in the order they were handled.
    pub fn packet_log(&self) -> &[PacketRecord] {
        self.observer.packet_log()
    }

    /// Takes the packet log, leaving it empty.
    pub fn take_packet_log(&mut self) -> Vec<PacketRecord> {
        self.observer.take_packet_log()
    }

    // ------------------------------------------------------------------
    // Driving.

    /// Makes node `n` join through `seeds` (their addresses; `n` itself is
    /// skipped) at the current time.
    pub fn join(&mut self, n: NodeId, seeds: &[NodeId]) {
        let addrs: Vec<SocketAddr> = seeds.iter().map(|&s| self.addr(s)).collect();
        self.with_endpoint(n, |ep, now| ep.join(now, &addrs));
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
}
