//! The `fail` scenario: how fast a crash is detected.
//!
//! After the cluster converged and went quiet,
//! [`ScenarioConfig::crashes`](super::ScenarioConfig::crashes) random nodes
//! crash one after the other; each is timed from the crash to the first
//! suspicion anywhere, the first Dead anywhere, and until every running
//! node holds it Dead. The time to first suspicion is roughly exponential,
//! so its mean needs many crashes.

use std::time::Duration;

use super::harness::{Outcome, Run};
use super::report::{mean, Value};
use crate::sim::LoggedEvent;
use crate::{EventKind, MemberState};

impl Run<'_> {
    pub(super) fn fail(&mut self) -> Outcome {
        self.suspicion_figure();
        let interval = self.cfg.node_config().probe_interval;
        self.fig(
            "theory_first_detect_s",
            Value::Float(
                interval.as_secs_f64() * std::f64::consts::E / (std::f64::consts::E - 1.0),
            ),
            "s",
            "SWIM's expected first detection: e/(e-1) probe intervals",
        );
        self.converge()?;
        self.settle();
        let timeout = self.cfg.max_suspicion_timeout() + Duration::from_secs(60);
        self.sim
            .log_events(&[EventKind::MemberSuspect, EventKind::MemberFailed]);
        let (mut suspect, mut dead, mut all_dead) = (Vec::new(), Vec::new(), Vec::new());
        let mut failure = None;
        for _ in 0..self.cfg.crashes {
            let victim = self.random_victim();
            self.sim.take_event_log();
            let t0 = self.sim.now();
            self.sim.crash(victim);
            let took = self.wait("detecting", timeout, |s| {
                s.everyone_sees(victim, MemberState::Dead)
            });
            let first = |kind: EventKind, log: &[LoggedEvent]| {
                log.iter()
                    .filter(|e| e.kind == kind && e.member == Some(victim))
                    .map(|e| (e.time - t0).as_secs_f64())
                    .reduce(f64::min)
            };
            let log = self.sim.take_event_log();
            let (s, d) = (
                first(EventKind::MemberSuspect, &log),
                first(EventKind::MemberFailed, &log),
            );
            suspect.extend(s);
            dead.extend(d);
            match took {
                Some(t) => all_dead.push(t.as_secs_f64()),
                None => {
                    failure = Some(format!(
                        "{} ({}) crashed at {} was not Dead everywhere {:?} later",
                        self.sim.name(victim),
                        victim,
                        t0,
                        timeout
                    ));
                    break;
                }
            }
        }
        self.sim.log_events(&[]);
        self.int(
            "crashes",
            all_dead.len() as u64,
            "",
            "crashes fully detected",
        );
        self.fig(
            "first_suspect_s",
            mean(&suspect),
            "s",
            "mean, crash to the first suspicion anywhere",
        );
        self.fig(
            "first_dead_s",
            mean(&dead),
            "s",
            "mean, crash to the first Dead anywhere",
        );
        self.fig(
            "all_dead_s",
            mean(&all_dead),
            "s",
            "mean, crash until every node holds it Dead",
        );
        self.fig(
            "first_suspect_s_all",
            Value::Floats(suspect),
            "s",
            "per crash",
        );
        self.fig("first_dead_s_all", Value::Floats(dead), "s", "per crash");
        self.fig("all_dead_s_all", Value::Floats(all_dead), "s", "per crash");
        failure.map_or(Ok(()), Err)
    }
}
