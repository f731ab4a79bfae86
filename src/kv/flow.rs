//! Flow control of the node's own writes: an AIMD push rate.
//!
//! The scuttlebutt paper (van Renesse et al. 2008, §4) keeps staleness
//! bounded under load by adapting each node's update rate: additive
//! increase while gossip keeps up, multiplicative decrease when it
//! overflows. Here the rate is how many of its own writes a node pushes
//! per gossip interval; writes beyond it stay in the store (peers still
//! pull them by digest), coalesced by key, and are pushed as the rate
//! allows. "Overflow" is a gossip tick that could not send every pending
//! update it had.

/// Pushes allowed per gossip interval, adapted by AIMD.
#[derive(Clone, Debug)]
pub(crate) struct PushRate {
    rate: u32,
    max: u32,
    credit: u32,
}

impl PushRate {
    pub(crate) fn new(max: u32) -> PushRate {
        PushRate {
            rate: max,
            max,
            credit: max,
        }
    }

    /// Takes one push slot of the current interval, if any is left.
    pub(crate) fn take(&mut self) -> bool {
        if self.credit == 0 {
            return false;
        }
        self.credit -= 1;
        true
    }

    /// Ends an interval: halve the rate after an overflow, else raise it by
    /// one, and refill the credit.
    pub(crate) fn end_interval(&mut self, overflowed: bool) {
        self.rate = if overflowed {
            (self.rate / 2).max(1)
        } else {
            (self.rate + 1).min(self.max)
        };
        self.credit = self.rate;
    }

    /// The current rate.
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aimd_halves_on_overflow_and_climbs_by_one() {
        let mut r = PushRate::new(32);
        assert_eq!(r.rate(), 32);
        r.end_interval(true);
        assert_eq!(r.rate(), 16);
        r.end_interval(true);
        r.end_interval(true);
        assert_eq!(r.rate(), 4);
        r.end_interval(false);
        assert_eq!(r.rate(), 5);
        for _ in 0..100 {
            r.end_interval(true);
        }
        assert_eq!(r.rate(), 1, "never below one push per interval");
        for _ in 0..100 {
            r.end_interval(false);
        }
        assert_eq!(r.rate(), 32, "never above the configured ceiling");
    }

    #[test]
    fn credit_is_the_rate_per_interval() {
        let mut r = PushRate::new(8);
        r.end_interval(true);
        let taken = (0..10).filter(|_| r.take()).count();
        assert_eq!(taken, 4);
    }
}
