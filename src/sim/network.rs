//! The network model: latency, jitter, loss, duplication, partitions and
//! per-link overrides.
//!
//! Every datagram gets a one-way delay of `latency` plus an exponentially
//! distributed extra with mean `jitter` (so packets sent close together can
//! arrive out of order, as on a real network), is lost with probability
//! `loss`, and is delivered twice with probability `duplicate` (the copy
//! with its own delay). A per-link [`LinkConfig`] replaces latency, jitter
//! and loss for one direction of one pair of nodes.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::Rng;

/// The whole network's behaviour. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Base one-way delay of every datagram.
    pub latency: Duration,
    /// Mean of the exponentially distributed extra delay added to each
    /// datagram; zero gives a fixed delay and in-order delivery.
    pub jitter: Duration,
    /// Probability that a datagram is lost, `0.0..=1.0`.
    pub loss: f64,
    /// Probability that a datagram is delivered twice, `0.0..=1.0`.
    pub duplicate: f64,
}

impl Default for NetworkConfig {
    /// A LAN: 200 µs base latency, 100 µs mean jitter, no loss, no
    /// duplicates.
    fn default() -> NetworkConfig {
        NetworkConfig::lan()
    }
}

impl NetworkConfig {
    /// A LAN: 200 µs base latency, 100 µs mean jitter, no loss.
    pub fn lan() -> NetworkConfig {
        NetworkConfig {
            latency: Duration::from_micros(200),
            jitter: Duration::from_micros(100),
            loss: 0.0,
            duplicate: 0.0,
        }
    }

    /// A wide-area network: 40 ms base latency, 10 ms mean jitter, no loss.
    pub fn wan() -> NetworkConfig {
        NetworkConfig {
            latency: Duration::from_millis(40),
            jitter: Duration::from_millis(10),
            loss: 0.0,
            duplicate: 0.0,
        }
    }

    /// A perfect network: fixed 100 µs delay, no jitter, loss or duplicates.
    /// Delivery order between two nodes is send order.
    pub fn ideal() -> NetworkConfig {
        NetworkConfig {
            latency: Duration::from_micros(100),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
        }
    }

    /// The link behaviour this network gives every pair of nodes.
    pub fn link(&self) -> LinkConfig {
        LinkConfig {
            latency: self.latency,
            jitter: self.jitter,
            loss: self.loss,
        }
    }
}

/// One direction of one link, overriding the network's latency, jitter and
/// loss (set with [`Sim::set_link`](super::Sim::set_link)). Duplication and
/// partitions still come from the network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConfig {
    /// Base one-way delay.
    pub latency: Duration,
    /// Mean of the exponentially distributed extra delay.
    pub jitter: Duration,
    /// Probability that a datagram is lost, `0.0..=1.0`.
    pub loss: f64,
}

impl Default for LinkConfig {
    /// The default network's link: 200 µs, 100 µs jitter, no loss.
    fn default() -> LinkConfig {
        NetworkConfig::default().link()
    }
}

impl LinkConfig {
    /// Draws whether a datagram is lost on this link.
    pub(super) fn lost(&self, rng: &mut SmallRng) -> bool {
        self.loss > 0.0 && rng.random::<f64>() < self.loss
    }

    /// Draws a one-way delay in nanoseconds for this link.
    pub(super) fn delay_nanos(&self, rng: &mut SmallRng) -> u64 {
        let base = duration_nanos(self.latency);
        if self.jitter.is_zero() {
            return base;
        }
        // Inverse transform sampling; 1 - u is in (0, 1], so ln is finite.
        let u: f64 = rng.random::<f64>();
        let extra = -(1.0 - u).ln() * self.jitter.as_nanos() as f64;
        base.saturating_add(extra as u64)
    }
}

pub(super) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Checks a probability argument, with a message naming `what`.
pub(super) fn check_probability(what: &str, p: f64) {
    assert!(
        (0.0..=1.0).contains(&p),
        "{what} must be a probability in 0.0..=1.0, got {p}"
    );
}
