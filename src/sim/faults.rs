//! Fault injection: crashes, restarts, pauses, slowness, partitions, loss
//! and per-link overrides.
//!
//! A fault only changes the state the event loop reads (a node's status,
//! the partition groups, the network and link settings) and, for a pause,
//! queues the resume; how a datagram or a timer then fares is decided by
//! the loop (`event_loop.rs`) when it happens. The models behind the
//! settings are in `network.rs` and `slow.rs`.

use std::time::Duration;

use super::network::{check_probability, LinkConfig, NetworkConfig};
use super::node::{NodeId, NodeStatus};
use super::schedule::Action;
use super::slow::SlowConfig;
use super::Sim;
use crate::{Endpoint, Time};

impl Sim {
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
}
