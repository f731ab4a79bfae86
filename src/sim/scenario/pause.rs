//! The `pause` scenario: a stalled process must not be declared Dead.
//!
//! After the cluster converged, one random node stalls (as in a long GC
//! pause) for 3/4 of the minimum suspicion timeout unless
//! [`ScenarioConfig::duration`](super::ScenarioConfig::duration) says
//! otherwise: it is suspected, but it resumes in time to refute, so nobody
//! may declare it Dead. The run then waits out the longest suspicion
//! timeout, so that a suspicion that was not refuted would show.

use std::time::Duration;

use super::harness::{Outcome, Run};
use crate::sim::NodeId;
use crate::{EventKind, MemberState};

impl Run<'_> {
    pub(super) fn pause(&mut self) -> Outcome {
        let min = self.suspicion_figure();
        let d = self.cfg.duration.unwrap_or(min * 3 / 4);
        self.converge()?;
        self.settle();
        let victim = self.random_victim();
        self.sim
            .log_events(&[EventKind::MemberSuspect, EventKind::MemberFailed]);
        self.sim.take_event_log();
        self.sim.pause(victim, d);
        let max = self.cfg.max_suspicion_timeout();
        self.run_phase("paused", d, |_| {});
        let recovered = self.wait("recovering", max + Duration::from_secs(30), |s| {
            s.everyone_sees(victim, MemberState::Alive)
        });
        // Let any suspicion that was not refuted run out.
        self.run_phase("watching", max, |_| {});
        self.sim.log_events(&[]);
        let log = self.sim.take_event_log();
        let by = |kind: EventKind| {
            let mut who: Vec<NodeId> = log
                .iter()
                .filter(|e| e.kind == kind && e.member == Some(victim))
                .map(|e| e.node)
                .collect();
            who.sort();
            who.dedup();
            who.len() as u64
        };
        let (suspected_by, dead_by) = (by(EventKind::MemberSuspect), by(EventKind::MemberFailed));
        self.secs("pause_s", Some(d), "how long the node stalled");
        self.int(
            "suspected_by",
            suspected_by,
            "",
            "nodes that suspected the paused node",
        );
        self.int(
            "declared_dead_by",
            dead_by,
            "",
            "nodes that declared it Dead (should be 0)",
        );
        self.secs(
            "recovered_s",
            recovered,
            "after resuming, until every node holds it Alive",
        );
        Ok(())
    }
}
