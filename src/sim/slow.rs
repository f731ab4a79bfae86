//! The slowness model: a node that handles everything late, as a
//! CPU-starved process does.
//!
//! A process that does not get the CPU when it needs it still receives
//! datagrams on time (the kernel queues them) and its timers still expire on
//! time, but it only gets to handle them once it is scheduled again. So for
//! a slow node every input — a datagram that reached it, or its own timer
//! falling due — is handled a random `delay ± jitter` later. Inputs are
//! handled in the order they became ready (one thread works through one
//! queue), so an input is never handled before an earlier one even when its
//! own draw was shorter. What the node sends in answer leaves when it
//! handles the input, and the endpoint sees the handling time as `now` (it
//! reads the clock when it runs). Calls from outside the loop
//! ([`Sim::with_endpoint`](super::Sim::with_endpoint)) are not delayed.
//!
//! This differs from [`Sim::pause`](super::Sim::pause), which freezes a
//! node and then handles the whole backlog at one instant: a slow node is
//! late all the time, by a varying amount, which is what starves a failure
//! detector of timely acks without ever stopping the node.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::Rng;

use super::network::duration_nanos;

/// How late a slow node handles its input (see
/// [`Sim::set_slow`](super::Sim::set_slow)): each datagram and each timer
/// is handled `delay ± jitter` (uniformly distributed) after it became
/// ready, in the order they became ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowConfig {
    /// The mean lateness.
    pub delay: Duration,
    /// Half the width of the uniform spread around `delay`. Keep it at most
    /// `delay`: the spread is cut at zero, which would raise the mean.
    pub jitter: Duration,
}

impl SlowConfig {
    /// Lateness `delay` with a spread of `± delay / 2`, the model the
    /// `slow` scenario uses: a starved process is late by a varying amount.
    pub fn around(delay: Duration) -> SlowConfig {
        SlowConfig {
            delay,
            jitter: delay / 2,
        }
    }

    /// Draws one lateness, in nanoseconds.
    pub(super) fn draw_nanos(&self, rng: &mut SmallRng) -> u64 {
        let delay = duration_nanos(self.delay);
        let jitter = duration_nanos(self.jitter);
        if jitter == 0 {
            return delay;
        }
        let low = delay.saturating_sub(jitter);
        let high = delay.saturating_add(jitter);
        rng.random_range(low..=high)
    }
}
