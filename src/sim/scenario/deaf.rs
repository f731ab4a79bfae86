//! The `deaf` scenario: one node hears nobody but can still send. The
//! others should declare nobody healthy Dead, and the deaf node should
//! see that it is the one cut off rather than declare everyone else Dead
//! (`own_view_dead`). See `degraded.rs` for the figures.

use super::degraded::{all, cut, Degradation, Ways};
use super::harness::{Outcome, Run};

impl Run<'_> {
    pub(super) fn deaf(&mut self) -> Outcome {
        self.degraded(Degradation {
            count: 1,
            apply: cut(Ways::In, all),
            flap: None,
        })
    }
}
