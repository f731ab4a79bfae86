//! The event queue: what happens next, in virtual time, and the policy for
//! re-arming a timer that is still due.
//!
//! One binary heap holds packet deliveries and node timers, ordered by
//! (time, sequence number), so that two entries due at the same instant
//! run in the order they were pushed, and a run is reproducible. The loop
//! that pops and dispatches the entries is in `event_loop.rs`; this file
//! knows nothing of nodes beyond their indices.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::node::Arrival;
use crate::Time;

/// An endpoint deadline still due right after the endpoint ran its timers
/// is run again at once (as a real event loop would re-poll), up to
/// [`MAX_IMMEDIATE_RERUNS`] times in a row; after that it is retried this
/// much later, so that a deadline stuck in the past cannot freeze virtual
/// time. Each such wake-up is counted in
/// [`SimStats::timer_spins`](super::SimStats::timer_spins).
pub const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// How many times in a row a still-due timer is re-run at the same instant
/// before it is pushed back by [`TIMER_RESOLUTION`].
pub const MAX_IMMEDIATE_RERUNS: u8 = 3;

/// What an entry of the queue does when its time comes.
pub(super) enum Action {
    /// A datagram reaches node `to`.
    Deliver {
        to: u32,
        from: u32,
        sent: Time,
        data: Vec<u8>,
    },
    /// Node `node`'s timer falls due (if it is still armed for this time).
    Timer { node: u32 },
    /// A paused node resumes (if its pause still ends at this time).
    Resume { node: u32 },
    /// A slow node handles a datagram that reached it earlier (`Some`), or
    /// its timer that fell due earlier (`None`). `life` is the node's
    /// restart count when it became ready: a restart discards it.
    Late {
        node: u32,
        life: u32,
        arrival: Option<Arrival>,
    },
}

/// One queued action and when it happens.
pub(super) struct Entry {
    pub(super) at: Time,
    seq: u64,
    pub(super) action: Action,
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

/// The queue of [`Entry`]s, earliest first, ties in push order.
#[derive(Default)]
pub(super) struct Schedule {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
}

impl Schedule {
    /// Queues `action` at `at`, after everything already queued for `at`.
    pub(super) fn push(&mut self, at: Time, action: Action) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { at, seq, action });
    }

    /// Takes the earliest entry if it is due at or before `t`.
    pub(super) fn pop_due(&mut self, t: Time) -> Option<Entry> {
        if self.heap.peek()?.at > t {
            return None;
        }
        self.heap.pop()
    }
}
