//! Virtual and real time as one type.
//!
//! The [`Endpoint`](crate::Endpoint) never reads a clock: every call that can
//! move the protocol forward takes a [`Time`]. Keeping time a plain number is
//! what makes a run reproducible from its seed.
//!
//! The simulator passes virtual time from zero. The [`runtime`](crate::runtime)
//! passes wall-clock time: nanoseconds since the Unix epoch, read from
//! `SystemTime` and made monotonic (each reading is the maximum of the clock
//! and the previous reading). It is wall-clock based because key/value
//! expiries are absolute wall-clock times that every node compares with its
//! own clock; it is monotonic because the protocol's timers must never see
//! time go backwards. A clock stepped back therefore holds time still until
//! it catches up (timers are late by the size of the step); a clock stepped
//! forward makes due timers fire at once.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point in time, in nanoseconds since an origin chosen by the caller:
/// the start of a simulation, or the Unix epoch in the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    /// The origin.
    pub const ZERO: Time = Time(0);

    /// A time `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Time {
        Time(nanos)
    }

    /// A time `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Time {
        // Saturating: expiries arrive from the network.
        Time(millis.saturating_mul(1_000_000))
    }

    /// A time `secs` seconds after the origin.
    pub const fn from_secs(secs: u64) -> Time {
        Time(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the origin: the unit bus items, key
    /// expiries and seal stamps travel in.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Seconds since the origin, as a float (for reports).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// The time elapsed since `earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

impl AddAssign<Duration> for Time {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Time> for Time {
    type Output = Duration;
    /// Saturating: a later `rhs` gives zero rather than a panic.
    fn sub(self, rhs: Time) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let t = Time::from_secs(2);
        assert_eq!(t + Duration::from_millis(500), Time::from_millis(2500));
        assert_eq!(Time::from_secs(1) - t, Duration::ZERO);
        assert_eq!(t - Time::from_secs(1), Duration::from_secs(1));
        assert_eq!(
            Time::from_nanos(u64::MAX) + Duration::from_secs(1),
            Time::from_nanos(u64::MAX)
        );
    }
}
