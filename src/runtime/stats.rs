//! What a running node counts beyond its endpoint's [`Stats`], and how a
//! growing counter is logged.

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

impl RuntimeStats {
    /// Every number of these stats but the per-subscriber ones, by its
    /// field's name, in declaration order: what a metrics exporter or a
    /// log line iterates over instead of naming each field.
    pub fn by_name(&self) -> [(&'static str, u64); 9] {
        [
            ("send_errors", self.send_errors),
            ("send_queue_drops", self.send_queue_drops),
            ("recv_errors", self.recv_errors),
            ("resolve_failures", self.resolve_failures),
            ("recv_buffer", self.recv_buffer as u64),
            ("send_buffer", self.send_buffer as u64),
            ("events", self.events),
            ("query_handler_drops", self.query_handler_drops),
            ("query_handler_failures", self.query_handler_failures),
        ]
    }
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

/// Logs the 1st, 2nd, 4th, 8th… occurrence of a repeated problem as a
/// warning (the rest at debug level): a persistent fault is visible without
/// flooding the log, and the counter in stats has the exact number.
pub(crate) fn log_doubling(count: u64, what: std::fmt::Arguments<'_>) {
    if count.is_power_of_two() {
        log::warn!("{what} (occurrence {count}, counted in stats)");
    } else {
        log::debug!("{what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_is_readable_by_its_name() {
        // A literal naming every field: a new counter fails to compile here
        // until it is given a name in `by_name`.
        let stats = RuntimeStats {
            send_errors: 1,
            send_queue_drops: 2,
            recv_errors: 3,
            resolve_failures: 4,
            recv_buffer: 5,
            send_buffer: 6,
            events: 7,
            query_handler_drops: 8,
            query_handler_failures: 9,
            subscribers: Vec::new(),
        };
        let named = stats.by_name();
        assert_eq!(named.map(|(_, n)| n), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(named[3], ("resolve_failures", 4));
        let mut names = named.map(|(name, _)| name).to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), named.len());
    }
}
