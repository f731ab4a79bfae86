//! The `jitter` scenario: a few nodes whose every datagram, in and out,
//! takes an exponentially distributed extra delay
//! ([`ScenarioConfig::jitter`](super::ScenarioConfig::jitter) of the
//! nodes, mean [`ScenarioConfig::jitter_delay`](super::ScenarioConfig::jitter_delay)).
//! Slow links are not failures: nobody should be declared Dead, and the
//! suspicions they cause are noise. See `degraded.rs` for the figures.

use super::degraded::{set, Degradation};
use super::harness::{Outcome, Run};
use crate::sim::LinkConfig;

impl Run<'_> {
    pub(super) fn jitter(&mut self) -> Outcome {
        let delay = self.cfg.jitter_delay;
        self.secs("jitter_delay_s", Some(delay), "mean extra one-way delay");
        self.degraded(Degradation {
            count: self.cfg.jitter_count(),
            apply: Box::new(move |sim, faulty, others, on| {
                let slow = on.then(|| LinkConfig {
                    jitter: delay,
                    ..sim.network().link()
                });
                for &x in faulty {
                    for &o in others.iter().chain(faulty).filter(|&&o| o != x) {
                        set(sim, x, o, slow);
                        set(sim, o, x, slow);
                    }
                }
            }),
            flap: None,
        })
    }
}
