//! The runtime's clock: wall-clock time that never goes backwards.
//!
//! Key/value expiries will be absolute wall-clock times compared across
//! nodes, so the endpoint's [`Time`] must be wall-clock based (nanoseconds
//! since the Unix epoch), not an arbitrary monotonic origin. The protocol's
//! timers, however, must never see time go backwards, so each reading is the
//! maximum of the system clock and the previous reading: a clock stepped back
//! holds time still until it catches up (timers stall for the size of the
//! step), and a clock stepped forward fires due timers at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    time_of(SystemTime::now())
}

/// `t` as the endpoint's time. A time before 1970 reads as the epoch (and
/// the clock then holds still); one past 2554 as the end of time.
pub(crate) fn time_of(t: SystemTime) -> Time {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Time::from_nanos(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

/// The endpoint's time `t` as a `SystemTime`.
pub(crate) fn system_time_of(t: Time) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(t.as_nanos())
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

    #[test]
    fn system_times_convert_both_ways() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(system_time_of(time_of(t)), t);
        assert_eq!(time_of(UNIX_EPOCH - Duration::from_secs(1)), Time::ZERO);
    }
}
