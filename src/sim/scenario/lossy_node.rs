//! The `lossy-node` scenario: one node loses 30% of its datagrams, in and
//! out, on every link. See `degraded.rs` for the figures.

use super::degraded::{set, Degradation};
use super::harness::{Outcome, Run};
use crate::sim::LinkConfig;

/// Loss on each direction of the lossy node's links.
const NODE_LOSS: f64 = 0.3;

impl Run<'_> {
    pub(super) fn lossy_node(&mut self) -> Outcome {
        self.fig(
            "node_loss",
            super::report::Value::Float(NODE_LOSS),
            "",
            "loss on each direction of the faulty node's links",
        );
        self.degraded(Degradation {
            count: 1,
            apply: Box::new(|sim, faulty, others, on| {
                let link = on.then(|| LinkConfig {
                    loss: NODE_LOSS,
                    ..sim.network().link()
                });
                for &o in others {
                    set(sim, o, faulty[0], link);
                    set(sim, faulty[0], o, link);
                }
            }),
            flap: None,
        })
    }
}
