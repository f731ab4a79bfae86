//! A simulated node: its public id and status, its private state in the
//! simulator, and its synthetic address.
//!
//! Kept apart from the event loop so that the loop, the fault injection and
//! the queries all read one definition of what a node is, and so that the
//! address scheme (`10.a.b.c:7946`, from the index) has one owner: both
//! directions of it ([`node_addr`] and [`node_index`]) live here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::slow::SlowConfig;
use crate::{Config, Endpoint, Time};

/// The UDP port of every simulated node.
pub const SIM_PORT: u16 = 7946;

/// A simulated node: its index in the order of
/// [`Sim::add_node`](super::Sim::add_node) calls.
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

/// A datagram that reached a node and waits to be handled (queued at a
/// paused node, or scheduled late at a slow one).
pub(super) struct Arrival {
    pub(super) arrived: Time,
    pub(super) sent: Time,
    pub(super) from: u32,
    pub(super) data: Vec<u8>,
}

/// What the simulator keeps about one node.
pub(super) struct Node {
    pub(super) ep: Endpoint,
    pub(super) config: Config,
    pub(super) addr: SocketAddr,
    pub(super) status: NodeStatus,
    /// The deadline a live heap entry stands for; `None` when unarmed.
    pub(super) timer: Option<Time>,
    pub(super) backlog: Vec<Arrival>,
    pub(super) restarts: u32,
    /// Called from outside the loop since the last flush (see
    /// [`Sim::endpoint_mut`](super::Sim::endpoint_mut)).
    pub(super) dirty: bool,
    /// Consecutive timer runs that left a deadline still due.
    pub(super) spin_streak: u8,
    /// How late it handles its input, if it is slow.
    pub(super) slow: Option<SlowConfig>,
    /// When a slow node handles its latest input: the next one is handled
    /// no earlier, so inputs keep their order.
    pub(super) slow_busy_until: Time,
    /// A slow node's timer fell due and waits in the heap to be handled
    /// (as a late action without an arrival); until then the timer is not
    /// re-armed, since whatever falls due meanwhile is handled by it.
    pub(super) timer_late: bool,
}

impl Node {
    /// A fresh, running node that has not armed its timer yet.
    pub(super) fn new(ep: Endpoint, config: Config, addr: SocketAddr) -> Node {
        Node {
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
        }
    }
}

/// The synthetic address of the node with index `i`:
/// `10.(i>>16).(i>>8).(i&255):7946`.
pub fn node_addr(i: u32) -> SocketAddr {
    let [_, b, c, d] = i.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, b, c, d)), SIM_PORT)
}

/// The index of the node at `addr` ([`node_addr`] backwards), if it is one
/// of the first `count` nodes.
pub(super) fn node_index(addr: SocketAddr, count: usize) -> Option<u32> {
    let IpAddr::V4(ip) = addr.ip() else {
        return None;
    };
    let [a, b, c, d] = ip.octets();
    if a != 10 || addr.port() != SIM_PORT {
        return None;
    }
    let index = u32::from(b) << 16 | u32::from(c) << 8 | u32::from(d);
    ((index as usize) < count).then_some(index)
}
