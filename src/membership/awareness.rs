//! Lifeguard's local health multiplier ("awareness").
//!
//! A node that misses acks because it is itself slow (CPU starved, paused,
//! losing packets) should not blame its peers. Evidence of our own trouble
//! (missed nacks, having to refute a suspicion of ourselves) raises the
//! score; successful probes lower it. Probe interval and timeout are scaled
//! by `score + 1`, so an unhealthy node probes more patiently.

use std::time::Duration;

/// The local health score, `0..max`.
#[derive(Clone, Debug)]
pub(crate) struct Awareness {
    max: u32,
    score: u32,
}

impl Awareness {
    /// A healthy node whose multiplier can grow up to `max`.
    pub(crate) fn new(max: u32) -> Awareness {
        Awareness {
            max: max.max(1),
            score: 0,
        }
    }

    /// Moves the score by `delta`, staying within `0..max`.
    pub(crate) fn apply(&mut self, delta: i32) {
        let s = i64::from(self.score) + i64::from(delta);
        self.score = s.clamp(0, i64::from(self.max - 1)) as u32;
    }

    /// The current score (0 is healthy).
    pub(crate) fn score(&self) -> u32 {
        self.score
    }

    /// `d` scaled by the health multiplier.
    pub(crate) fn scale(&self, d: Duration) -> Duration {
        d * (self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_stays_in_range_and_scales_timeouts() {
        let mut a = Awareness::new(8);
        a.apply(-1);
        assert_eq!(a.score(), 0);
        assert_eq!(
            a.scale(Duration::from_millis(500)),
            Duration::from_millis(500)
        );
        a.apply(3);
        assert_eq!(a.score(), 3);
        assert_eq!(a.scale(Duration::from_millis(500)), Duration::from_secs(2));
        a.apply(100);
        assert_eq!(a.score(), 7, "capped at max - 1");
        a.apply(-2);
        assert_eq!(a.score(), 5);
    }
}
