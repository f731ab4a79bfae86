//! Lifeguard's dynamic suspicion timeout.
//!
//! A suspicion starts with a long timeout and shrinks towards the minimum as
//! independent members confirm it: if many members see the same failure it
//! is probably real, and if nobody else does, the suspect has longer to
//! refute. The formulas are memberlist's, so timings carry over:
//!
//! ```text
//! min     = mult · max(1, log10(max(1, n))) · probe_interval
//! max     = max_timeout_mult · min
//! timeout = max(min, max − (max − min) · log(c + 1) / log(k + 1))
//! ```
//!
//! with `c` confirmations received of the `k` expected.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use compact_str::CompactString;

use crate::config::Config;
use crate::hash::{fixed_map, FixedMap};
use crate::membership::state::MemberId;
use crate::Time;

/// The minimum suspicion timeout for a cluster of `n` members: `mult ·
/// max(1, log10 n) · interval`, with the scale truncated to milliseconds as
/// memberlist does.
pub fn suspicion_timeout(mult: u32, n: usize, interval: Duration) -> Duration {
    let scale = (n.max(1) as f64).log10().max(1.0);
    let scale_ms = (scale * 1000.0) as u64;
    let nanos = u128::from(mult) * u128::from(scale_ms) * interval.as_nanos() / 1000;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The timeout of a suspicion with `confirmations` of `k` expected, between
/// `min` and `max`. With `k == 0` no confirmations are expected and the
/// minimum applies at once.
pub fn suspicion_timeout_after(
    confirmations: u32,
    k: u32,
    min: Duration,
    max: Duration,
) -> Duration {
    if k == 0 || max <= min {
        return min;
    }
    let frac = (f64::from(confirmations) + 1.0).ln() / (f64::from(k) + 1.0).ln();
    let raw = max.as_secs_f64() - frac * (max.as_secs_f64() - min.as_secs_f64());
    let timeout = Duration::from_millis((raw * 1000.0).floor().max(0.0) as u64);
    timeout.max(min)
}

/// One member's running suspicion.
#[derive(Clone, Debug)]
pub(crate) struct SuspicionTimer {
    start: Time,
    min: Duration,
    max: Duration,
    k: u32,
    /// Who has reported it, the originator first; only distinct names count.
    confirmed_by: Vec<CompactString>,
}

impl SuspicionTimer {
    /// A suspicion raised by `from` at `start`, expecting `k` confirmations.
    pub(crate) fn new(
        start: Time,
        from: &str,
        k: u32,
        min: Duration,
        max: Duration,
    ) -> SuspicionTimer {
        SuspicionTimer {
            start,
            min,
            max,
            k,
            confirmed_by: vec![CompactString::from(from)],
        }
    }

    /// Records a report by `from`; true if it is a new independent
    /// confirmation (which shortens the timeout and is worth re-gossiping).
    pub(crate) fn confirm(&mut self, from: &str) -> bool {
        if self.confirmations() >= self.k || self.confirmed_by.iter().any(|n| n == from) {
            return false;
        }
        self.confirmed_by.push(CompactString::from(from));
        true
    }

    /// Independent confirmations so far (the originator does not count).
    pub(crate) fn confirmations(&self) -> u32 {
        (self.confirmed_by.len() - 1) as u32
    }

    /// When the suspect is declared dead unless it refutes first.
    pub(crate) fn deadline(&self) -> Time {
        self.start + suspicion_timeout_after(self.confirmations(), self.k, self.min, self.max)
    }
}

/// A node's running suspicions, by member, with their deadlines.
pub(crate) struct Suspicions {
    timers: FixedMap<MemberId, SuspicionTimer>,
    /// Deadlines, earliest first; entries go stale when a timer shrinks or
    /// ends (the map is the truth).
    deadlines: BinaryHeap<Reverse<(Time, MemberId)>>,
}

impl Suspicions {
    /// None yet; the map is keyed with `seed`.
    pub(crate) fn new(seed: u64) -> Suspicions {
        Suspicions {
            timers: fixed_map(seed),
            deadlines: BinaryHeap::new(),
        }
    }

    /// Starts a suspicion of `id` raised by `from` at `now`, in a cluster
    /// of `live` members. Where the suspicion timeout is computed: the
    /// minimum from the cluster size, and with Lifeguard a maximum of
    /// `suspicion_max_timeout_mult` times it, shrinking with each of the
    /// `suspicion_mult − 2` confirmations expected (memberlist's rule; none
    /// in tiny clusters).
    pub(crate) fn start(
        &mut self,
        config: &Config,
        live: usize,
        now: Time,
        id: MemberId,
        from: &str,
    ) {
        let min = suspicion_timeout(config.suspicion_mult, live, config.probe_interval);
        let (k, max) = if config.lifeguard {
            let k = config.suspicion_mult.saturating_sub(2);
            let k = if live.saturating_sub(2) < k as usize {
                0
            } else {
                k
            };
            (k, min * config.suspicion_max_timeout_mult)
        } else {
            (0, min)
        };
        let timer = SuspicionTimer::new(now, from, k, min, max);
        self.deadlines.push(Reverse((timer.deadline(), id)));
        self.timers.insert(id, timer);
    }

    /// Records `from`'s report of the suspicion of `id`; true if it is a
    /// new independent confirmation (its deadline then moves closer).
    pub(crate) fn confirm(&mut self, id: MemberId, from: &str) -> bool {
        let Some(timer) = self.timers.get_mut(&id) else {
            return false;
        };
        if !timer.confirm(from) {
            return false;
        }
        self.deadlines.push(Reverse((timer.deadline(), id)));
        true
    }

    /// Ends the suspicion of `id` (refuted, or the member is gone).
    pub(crate) fn end(&mut self, id: MemberId) {
        self.timers.remove(&id);
    }

    /// The earliest deadline (possibly of a suspicion that ended since).
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        self.deadlines.peek().map(|Reverse((t, _))| *t)
    }

    /// A member whose suspicion ran out by `now`, its suspicion ended.
    pub(crate) fn pop_expired(&mut self, now: Time) -> Option<MemberId> {
        while let Some(&Reverse((t, id))) = self.deadlines.peek() {
            if t > now {
                return None;
            }
            self.deadlines.pop();
            if self
                .timers
                .get(&id)
                .is_some_and(|timer| timer.deadline() <= now)
            {
                self.timers.remove(&id);
                return Some(id);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const S: Duration = Duration::from_secs(1);

    #[test]
    fn minimum_timeout_scales_with_log_of_cluster_size() {
        // memberlist's TestSuspicionTimeout: suspicionTimeout(3, n, 1s) / 3.
        for (n, want) in [
            (5, 1000 * MS),
            (10, 1000 * MS),
            (50, 1698 * MS),
            (100, 2000 * MS),
            (500, 2698 * MS),
            (1000, 3000 * MS),
        ] {
            assert_eq!(suspicion_timeout(3, n, S) / 3, want, "n = {n}");
        }
        // The LAN preset at N=1000: 4 · 3 · 1 s.
        assert_eq!(suspicion_timeout(4, 1000, S), 12 * S);
        assert_eq!(
            suspicion_timeout(4, 0, S),
            4 * S,
            "tiny clusters use scale 1"
        );
    }

    #[test]
    fn timeout_shrinks_with_confirmations() {
        // memberlist's TestSuspicion_remainingSuspicionTime, as timeouts
        // (remaining + elapsed): (c, k, min, max) -> timeout.
        let table = [
            (0, 3, 2 * S, 30 * S, 30 * S),
            (1, 3, 2 * S, 30 * S, 16 * S),
            (2, 3, 2 * S, 30 * S, 7810 * MS),
            (3, 3, 2 * S, 30 * S, 2 * S),
            (4, 3, 2 * S, 30 * S, 2 * S),
            (5, 3, 2 * S, 30 * S, 2 * S),
            (0, 0, 2 * S, 30 * S, 2 * S),
        ];
        for (c, k, min, max, want) in table {
            assert_eq!(suspicion_timeout_after(c, k, min, max), want, "c={c} k={k}");
        }
    }

    #[test]
    fn only_distinct_confirmers_count_up_to_k() {
        let start = Time::from_secs(10);
        let mut t = SuspicionTimer::new(start, "a", 2, 2 * S, 12 * S);
        assert_eq!(t.deadline(), start + 12 * S);
        assert!(!t.confirm("a"), "the originator is not a confirmation");
        assert!(t.confirm("b"));
        assert!(!t.confirm("b"), "duplicates do not count");
        assert!(t.deadline() < start + 12 * S);
        assert!(t.confirm("c"));
        assert_eq!(t.deadline(), start + 2 * S);
        assert!(!t.confirm("d"), "beyond k nothing changes");
        assert_eq!(t.confirmations(), 2);
    }
}
