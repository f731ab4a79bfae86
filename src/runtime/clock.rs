//! The runtime's clock: wall-clock time that never goes backwards.
//!
//! Key/value expiries will be absolute wall-clock times compared across
//! nodes, so the endpoint's [`Time`] must be wall-clock based (nanoseconds
//! since the Unix epoch), not an arbitrary monotonic origin. The protocol's
//! timers, however, must never see time go backwards, so each reading is the
//! maximum of the system clock and the previous reading: a clock stepped back
//! holds time still until it catches up (timers stall for the size of the
//! step), and a clock stepped forward fires due timers at once.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::Time;

/// A monotonic view of the system clock.
#[derive(Debug, Default)]
pub(crate) struct WallClock {
    last: Time,
}

impl WallClock {
    /// The current time: nanoseconds since the Unix epoch, never less than
    /// the previous reading.
    pub(crate) fn now(&mut self) -> Time {
        self.last = self.last.max(system_now());
        self.last
    }
}

fn system_now() -> Time {
    // A clock set before 1970 reads as the epoch; `now` then holds still.
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Time::from_nanos(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_wall_clock_and_never_decrease() {
        let mut clock = WallClock::default();
        let a = clock.now();
        // 2020-01-01 in nanoseconds: the reading is epoch-based, not uptime.
        assert!(a.as_nanos() > 1_577_836_800_000_000_000);
        clock.last = Time::from_nanos(u64::MAX - 1);
        assert_eq!(clock.now(), Time::from_nanos(u64::MAX - 1));
    }
}
