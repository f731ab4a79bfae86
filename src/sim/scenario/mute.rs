//! The `mute` scenario: everything one node sends to half of the cluster
//! is lost (it still hears everyone). See `degraded.rs` for the figures.

use super::degraded::{cut, half, Degradation, Ways};
use super::harness::{Outcome, Run};

impl Run<'_> {
    pub(super) fn mute(&mut self) -> Outcome {
        self.degraded(Degradation {
            count: 1,
            apply: cut(Ways::Out, half),
            flap: None,
        })
    }
}
