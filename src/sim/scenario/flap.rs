//! The `flap` scenario: every link of one node goes down for
//! [`FLAP_PERIOD`], up for as long, and so on (a bad cable, a flapping
//! switch port). Each outage is shorter than the suspicion timeout, so the
//! node should never be declared Dead. See `degraded.rs` for the figures.

use std::time::Duration;

use super::degraded::{all, cut, Degradation, Ways};
use super::harness::{Outcome, Run};

/// How long the links stay down, then up.
const FLAP_PERIOD: Duration = Duration::from_secs(3);

impl Run<'_> {
    pub(super) fn flap(&mut self) -> Outcome {
        self.secs(
            "flap_s",
            Some(FLAP_PERIOD),
            "links down this long, then up as long",
        );
        self.degraded(Degradation {
            count: 1,
            apply: cut(Ways::Both, all),
            flap: Some(FLAP_PERIOD),
        })
    }
}
