//! The `slow` scenario: CPU-starved nodes must not be declared Dead, and
//! real crashes must still be detected.
//!
//! After the cluster converged, [`ScenarioConfig::slow_count`] random nodes
//! become slow: each draws a mean lateness uniformly from
//! [`ScenarioConfig::slow_delay`] and handles every datagram and timer that
//! much ± half of it late ([`SlowConfig::around`]). They stay slow for the
//! whole run (default 600 s). Meanwhile [`ScenarioConfig::crashes`] healthy
//! (not slow) nodes crash, evenly spaced over the run; each is timed until
//! every running node — the slow ones included — holds it Dead. The run
//! goes on past its length while a crash is still undetected (at most the
//! longest suspicion timeout plus 60 s after the last crash). Then the
//! slowness ends and the cluster must list every running node again.
//!
//! A false Dead is a node that was up (slow or not) declared Dead by
//! anyone; a slow node is alive, so declaring it Dead is a false positive
//! even though it is hard to tell from a failure.
//!
//! [`ScenarioConfig::slow_count`]: super::ScenarioConfig::slow_count
//! [`ScenarioConfig::slow_delay`]: super::ScenarioConfig::slow_delay
//! [`ScenarioConfig::crashes`]: super::ScenarioConfig::crashes

use std::time::Duration;

use rand::Rng;

use super::harness::{Outcome, Run, CHECK_STEP};
use super::report::{max, mean, Value};
use crate::sim::{NodeId, SlowConfig};
use crate::{MemberState, Time};

/// A crash being timed.
struct Crash {
    node: NodeId,
    at: Time,
    detected: Option<f64>,
}

impl Run<'_> {
    pub(super) fn slow(&mut self) -> Outcome {
        let d = self.cfg.phase_length();
        self.suspicion_figure();
        let grace = self.cfg.max_suspicion_timeout() + Duration::from_secs(60);
        self.secs(
            "max_suspicion_timeout_s",
            Some(self.cfg.max_suspicion_timeout()),
            "longest suspicion timeout (Lifeguard's start; SWIM's only one)",
        );
        self.converge()?;
        self.settle();
        let n = self.sim.len();
        let mut slow = vec![false; n];
        let mut delays = Vec::new();
        let (low, high) = self.cfg.slow_delay;
        for _ in 0..self.cfg.slow_count() {
            let x = self.pick(|x| !slow[x.index()]);
            slow[x.index()] = true;
            let delay = low + (high - low).mul_f64(self.rng.random::<f64>());
            delays.push(delay.as_secs_f64());
            self.sim.set_slow(x, Some(SlowConfig::around(delay)));
        }
        let start = self.sim.now();
        let k = self.cfg.crashes;
        // Evenly spaced, the last well before the end: d·i/(k+1).
        let mut due: Vec<Time> = (1..=k as u32)
            .map(|i| start + d * i / (k as u32 + 1))
            .collect();
        due.reverse();
        let mut crashes: Vec<Crash> = Vec::new();
        let mut down = vec![false; n];
        let mut alarms = self.watch_alarms();
        let vetoes_before = self.total(|s| s.suspicions_vetoed);
        let end = start + d;
        let deadline = start + d * k as u32 / (k as u32 + 1) + grace;
        loop {
            let now = self.sim.now();
            let undetected = crashes.iter().any(|c| c.detected.is_none()) || !due.is_empty();
            if now >= end && (!undetected || now >= deadline) {
                break;
            }
            self.sim.run_until(now + CHECK_STEP);
            alarms.count(self.sim.take_event_log(), |m| down[m.index()]);
            let now = self.sim.now();
            for c in crashes.iter_mut().filter(|c| c.detected.is_none()) {
                if self.sim.everyone_sees(c.node, MemberState::Dead) {
                    c.detected = Some((now - c.at).as_secs_f64());
                }
            }
            if due.last().is_some_and(|&t| t <= now) {
                due.pop();
                let victim = self.pick(|x| !slow[x.index()]);
                down[victim.index()] = true;
                self.sim.crash(victim);
                crashes.push(Crash {
                    node: victim,
                    at: now,
                    detected: None,
                });
            }
            let f = (now - start).as_secs_f64() / d.as_secs_f64();
            self.report("slow", f);
        }
        let vetoes = self.total(|s| s.suspicions_vetoed) - vetoes_before;
        let slow_dead = (0..n)
            .filter(|&i| slow[i] && alarms.declared_dead(NodeId(i as u32)))
            .count();
        let slow_suspected = (0..n)
            .filter(|&i| slow[i] && alarms.suspected(NodeId(i as u32)))
            .count();
        self.int(
            "slow_nodes",
            delays.len() as u64,
            "",
            "nodes handling everything late",
        );
        self.fig(
            "slow_delay_s",
            mean(&delays),
            "s",
            "their mean lateness (each ± half of it per input)",
        );
        self.secs("slow_s", Some(d), "time slowed");
        self.alarm_figures(&alarms);
        self.int(
            "false_dead_slow",
            slow_dead as u64,
            "",
            "of the false Deads, slow nodes",
        );
        self.int(
            "false_suspect_slow",
            slow_suspected as u64,
            "",
            "of the nodes suspected, slow ones",
        );
        self.int(
            "vetoes",
            vetoes,
            "",
            "failed probes whose suspicion phi vetoed, all nodes",
        );
        let detected: Vec<f64> = crashes.iter().filter_map(|c| c.detected).collect();
        self.int(
            "crashes",
            detected.len() as u64,
            "",
            "healthy nodes crashed and detected by every running node",
        );
        self.fig(
            "detect_s",
            mean(&detected),
            "s",
            "mean, crash until every running node holds it Dead",
        );
        self.fig("detect_s_max", max(&detected), "s", "slowest detection");
        self.fig("detect_s_all", Value::Floats(detected), "s", "per crash");
        for x in self.sim.nodes().collect::<Vec<_>>() {
            self.sim.set_slow(x, None);
        }
        if let Some(c) = crashes.iter().find(|c| c.detected.is_none()) {
            return Err(format!(
                "{} crashed at {} was not Dead everywhere {grace:?} after the last crash",
                c.node, c.at
            ));
        }
        self.reconverge("the slowness ended")
    }
}
