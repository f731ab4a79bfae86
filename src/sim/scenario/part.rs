//! The `part` scenario: a network partition and its healing.
//!
//! After the cluster converged, the nodes are split 50/50 for the phase's
//! length; then the partition heals and the figure is the time until every
//! node lists all N live again (`heal_s`).

use std::time::Duration;

use super::harness::{Outcome, Run};

impl Run<'_> {
    pub(super) fn part(&mut self) -> Outcome {
        let d = self.cfg.phase_length();
        self.converge()?;
        self.settle();
        let half = self.nodes.len() / 2;
        let groups = [self.nodes[..half].to_vec(), self.nodes[half..].to_vec()];
        self.sim.partition(&groups);
        self.run_phase("partitioned", d, |_| {});
        let min_view = self.sim.min_live_view().unwrap_or(0);
        self.sim.heal();
        self.secs("partition_s", Some(d), "partition length");
        self.int(
            "min_live_at_heal",
            min_view as u64,
            "",
            "smallest live view when the partition healed",
        );
        let figure = ("heal_s", "after heal, until every node lists all N live");
        let timeout = Duration::from_secs(600);
        self.wait_full_view("healing", timeout, figure, |smallest, _| {
            format!(
                "not one view 600 s after the heal: the smallest view is {smallest} of {}",
                self.cfg.nodes
            )
        })
    }
}
