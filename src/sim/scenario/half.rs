//! The `half` scenario: one node cut, both ways, from half of the cluster
//! (it still reaches the other half, and through it everyone). See
//! `degraded.rs` for the figures.

use super::degraded::{cut, half, Degradation, Ways};
use super::harness::{Outcome, Run};

impl Run<'_> {
    pub(super) fn half(&mut self) -> Outcome {
        self.degraded(Degradation {
            count: 1,
            apply: cut(Ways::Both, half),
            flap: None,
        })
    }
}
