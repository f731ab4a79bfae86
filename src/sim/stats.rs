//! The simulator's own counters: what the network did with the datagrams.
//!
//! Apart from the loop that updates them so that a reader of a report can
//! find what each figure means without reading the loop.

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
    /// Datagrams and timers a slow node ([`Sim::set_slow`](super::Sim::set_slow)) handled late.
    pub slowed: u64,
    /// Datagrams the receiving endpoint rejected (its
    /// [`Endpoint::handle_packet`](crate::Endpoint::handle_packet) returned an error).
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
    /// its timers (see [`TIMER_RESOLUTION`](super::TIMER_RESOLUTION)). Non-zero means the endpoint
    /// would wake up again at once in a real event loop, or spin.
    pub timer_spins: u64,
}
