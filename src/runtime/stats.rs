//! What a running node counts beyond its endpoint's [`Stats`].

use super::subscribe::EventFilter;
use crate::Stats;

/// A node's counters: the protocol's and the runtime's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// The endpoint's counters (packets, messages, drops by reason, probes…).
    pub endpoint: Stats,
    /// The runtime's counters.
    pub runtime: RuntimeStats,
}

/// Counters of the runtime around the endpoint: everything it fails to
/// send, receive, resolve or deliver. Reset when the node is started again,
/// except the per-subscriber counters, which live as long as the
/// subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Datagrams the OS refused to send (other than "would block"), e.g.
    /// network unreachable; each is dropped.
    pub send_errors: u64,
    /// Datagrams dropped because the socket would block and the send queue
    /// was full.
    pub send_queue_drops: u64,
    /// Errors reading the socket.
    pub recv_errors: u64,
    /// Seed or peer names that did not resolve to an address of the
    /// socket's family (each attempt counts).
    pub resolve_failures: u64,
    /// Receive buffer size the OS granted (SO_RCVBUF as read back; Linux
    /// reports twice the usable bytes).
    pub recv_buffer: usize,
    /// Send buffer size the OS granted (SO_SNDBUF as read back).
    pub send_buffer: usize,
    /// Events the endpoint produced (delivered to every subscriber whose
    /// filter matches).
    pub events: u64,
    /// Queries received that a handler matched but that were not handed to
    /// it, because [`NodeConfig::event_buffer`](super::NodeConfig::event_buffer)
    /// queries were waiting for the handlers already (they got no response).
    pub query_handler_drops: u64,
    /// Query handlers that meant to respond and could not: the handler
    /// panicked, or the endpoint refused its response (the query was over
    /// because the handler took longer than its timeout, or the response
    /// was too large).
    pub query_handler_failures: u64,
    /// One entry per live subscription.
    pub subscribers: Vec<SubscriberStats>,
}

/// Delivery counters of one subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberStats {
    /// The subscription's id, in order of subscription.
    pub id: u64,
    /// What it subscribed to.
    pub filter: EventFilter,
    /// Events delivered to its channel.
    pub delivered: u64,
    /// Events dropped because its channel was full (the subscriber was
    /// not keeping up).
    pub dropped: u64,
}
