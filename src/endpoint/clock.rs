//! Where time enters. Every call that carries a time passes it to
//! [`Endpoint::observe_time`] first; the endpoint never reads a clock.
//!
//! The first deadlines (probe, gossip, reconnect) are drawn at
//! construction as offsets within one period, so nodes started together do
//! not tick in lockstep; they count from the first time this endpoint is
//! given, which for the runtime is wall-clock time, not zero. That first
//! time also starts this life's key/value generation.

use super::Endpoint;
use crate::Time;

/// The endpoint's view of time.
#[derive(Debug, Default)]
pub(super) struct Clock {
    /// Whether a time was seen yet.
    started: bool,
    /// The first time seen: this life's start (a node young enough yields
    /// a contested name, see merge.rs).
    first: Time,
    /// The latest time seen: reads hide keys expired by then, seals are
    /// stamped with it.
    latest: Time,
}

impl Clock {
    /// The latest time seen.
    pub(super) fn latest(&self) -> Time {
        self.latest
    }

    /// The first time seen.
    pub(super) fn first(&self) -> Time {
        self.first
    }
}

impl Endpoint {
    /// Starts the endpoint's clock at `now`: its first deadlines (drawn at
    /// construction within one period) count from it. Optional: the first
    /// call carrying a time starts the clock otherwise, and so does this
    /// call only if none did before. Call it right after
    /// [`Endpoint::new`] so that [`Endpoint::poll_timeout`] is meaningful
    /// before anything else happens.
    pub fn start(&mut self, now: Time) {
        self.observe_time(now);
    }

    /// Takes in `now`, the time of the call being handled.
    pub(super) fn observe_time(&mut self, now: Time) {
        if !self.clock.started {
            self.clock.started = true;
            self.clock.first = now;
            self.kv.start(now);
            let base = now.saturating_since(Time::ZERO);
            self.next_probe += base;
            self.next_gossip += base;
            self.next_reconnect += base;
        }
        self.clock.latest = self.clock.latest.max(now);
    }
}
