//! The harness every scenario runs in: [`Run`] holds the simulation, the
//! figures so far and the progress sink, and offers the steps scenarios
//! share (converge, settle, wait for a condition, run a phase, count false
//! alarms, record figures).
//!
//! The scenarios themselves are one file each (`join.rs`, `fail.rs`, …),
//! each adding its own method to [`Run`]; the [`run`](super::run) function
//! picks one and adds the figures every report carries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::config::{Scenario, ScenarioConfig};
use super::report::{Figure, Value};
use crate::sim::timeline::Recorder;
use crate::sim::trace::mix;
use crate::sim::writes::WriteTracker;
use crate::sim::{LoggedEvent, NodeId, Sim};
use crate::{EventKind, Time};

/// How often convergence and similar conditions are checked.
pub const CHECK_STEP: Duration = Duration::from_millis(100);

/// Where a running scenario is, for progress displays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// The scenario running.
    pub scenario: Scenario,
    /// What it is doing (`converging`, `settling`, `measuring`, …).
    pub phase: &'static str,
    /// Virtual time reached.
    pub now: Time,
    /// How far the phase is, `0.0..=1.0` (for a wait, the share of its
    /// deadline used).
    pub fraction: f64,
}

/// False alarms counted from the event log (suspicions and deaths of nodes
/// that were up).
pub(super) struct Alarms {
    suspected: Vec<bool>,
    failed: Vec<bool>,
    suspect_events: u64,
    dead_events: u64,
    refutations_before: u64,
}

impl Alarms {
    /// Counts the logged suspicions and deaths except those about nodes
    /// for which `really_down` holds (crashed by the scenario).
    pub(super) fn count(&mut self, log: Vec<LoggedEvent>, really_down: impl Fn(NodeId) -> bool) {
        for e in log {
            let Some(m) = e.member else { continue };
            if really_down(m) {
                continue;
            }
            if e.kind == EventKind::MemberSuspect {
                self.suspect_events += 1;
                self.suspected[m.index()] = true;
            } else {
                self.dead_events += 1;
                self.failed[m.index()] = true;
            }
        }
    }

    /// Whether `n` was ever declared Dead.
    pub(super) fn declared_dead(&self, n: NodeId) -> bool {
        self.failed[n.index()]
    }

    /// Whether `n` was ever suspected.
    pub(super) fn suspected(&self, n: NodeId) -> bool {
        self.suspected[n.index()]
    }
}

/// A scenario being run: the sim, the figures so far, the progress sink.
pub(super) struct Run<'a> {
    pub(super) cfg: &'a ScenarioConfig,
    pub(super) sim: Sim,
    pub(super) rng: SmallRng,
    pub(super) nodes: Vec<NodeId>,
    pub(super) figures: Vec<Figure>,
    /// Samples for [`Report::timeline`](super::Report::timeline), when
    /// asked for.
    pub(super) timeline: Option<Recorder>,
    /// The writes followed, whose backlog the timeline samples.
    pub(super) writes: Option<Arc<Mutex<WriteTracker>>>,
    progress: &'a mut dyn FnMut(Progress),
}

pub(super) type Outcome = Result<(), String>;

impl<'a> Run<'a> {
    pub(super) fn new(cfg: &'a ScenarioConfig, progress: &'a mut dyn FnMut(Progress)) -> Run<'a> {
        let mut sim = Sim::new(cfg.seed, cfg.network);
        let nodes = sim.add_nodes(cfg.nodes, &cfg.node_config());
        Run {
            cfg,
            sim,
            rng: SmallRng::seed_from_u64(mix(cfg.seed ^ 0x5343_454e_4152_494f)),
            nodes,
            figures: Vec::new(),
            timeline: cfg.timeline.map(Recorder::new),
            writes: None,
            progress,
        }
    }

    /// Samples the timeline if one is collected and a sample is due.
    fn sample(
        timeline: &mut Option<Recorder>,
        writes: &Option<Arc<Mutex<WriteTracker>>>,
        sim: &Sim,
    ) {
        if let Some(r) = timeline {
            let pending = writes
                .as_ref()
                .map(|w| w.lock().expect("not poisoned").backlog);
            r.maybe_sample(sim, pending);
        }
    }

    pub(super) fn fig(
        &mut self,
        name: &'static str,
        value: Value,
        unit: &'static str,
        help: &'static str,
    ) {
        self.figures.push(Figure {
            name,
            value,
            unit,
            help,
        });
    }

    pub(super) fn secs(&mut self, name: &'static str, d: Option<Duration>, help: &'static str) {
        let v = d.map_or(Value::Missing, |d| Value::Float(d.as_secs_f64()));
        self.fig(name, v, "s", help);
    }

    pub(super) fn int(
        &mut self,
        name: &'static str,
        n: u64,
        unit: &'static str,
        help: &'static str,
    ) {
        self.fig(name, Value::Int(n), unit, help);
    }

    pub(super) fn report(&mut self, phase: &'static str, fraction: f64) {
        Self::sample(&mut self.timeline, &self.writes, &self.sim);
        let p = Progress {
            scenario: self.cfg.scenario,
            phase,
            now: self.sim.now(),
            fraction: fraction.clamp(0.0, 1.0),
        };
        (self.progress)(p);
    }

    /// Waits (checking every [`CHECK_STEP`]) until `pred` holds; returns
    /// how long it took.
    pub(super) fn wait(
        &mut self,
        phase: &'static str,
        timeout: Duration,
        mut pred: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let start = self.sim.now();
        let progress = &mut *self.progress;
        let scenario = self.cfg.scenario;
        let (timeline, writes) = (&mut self.timeline, &self.writes);
        let at = self.sim.wait_until(CHECK_STEP, timeout, |sim| {
            Self::sample(timeline, writes, sim);
            let done = pred(sim);
            progress(Progress {
                scenario,
                phase,
                now: sim.now(),
                fraction: if done {
                    1.0
                } else {
                    (sim.now() - start).as_secs_f64() / timeout.as_secs_f64()
                },
            });
            done
        });
        at.map(|t| t - start)
    }

    /// Runs for `d`, reporting progress every second of virtual time and
    /// calling `each` after every step.
    pub(super) fn run_phase(
        &mut self,
        phase: &'static str,
        d: Duration,
        each: impl FnMut(&mut Sim),
    ) {
        self.run_steps(phase, d, Duration::from_secs(1), each);
    }

    /// Runs for `d` in steps of `step`, reporting progress and calling
    /// `each` after every step.
    pub(super) fn run_steps(
        &mut self,
        phase: &'static str,
        d: Duration,
        step: Duration,
        mut each: impl FnMut(&mut Sim),
    ) {
        let start = self.sim.now();
        let end = start + d;
        let step = step.min(d);
        while self.sim.now() < end {
            let next = (self.sim.now() + step).min(end);
            self.sim.run_until(next);
            each(&mut self.sim);
            let f = (self.sim.now() - start).as_secs_f64() / d.as_secs_f64();
            self.report(phase, f);
        }
    }

    /// Every node joins through node 0 at t=0; waits until every node lists
    /// all N as live. Records `converge_s`.
    pub(super) fn converge(&mut self) -> Outcome {
        let seed = self.nodes[0];
        for i in 1..self.nodes.len() {
            self.sim.join(self.nodes[i], &[seed]);
        }
        let timeout = self.cfg.join_timeout;
        let figure = ("converge_s", "join: until every node lists all N as live");
        self.wait_full_view("converging", timeout, figure, |smallest, _| {
            format!(
                "not converged after {timeout:?} of virtual time: the smallest view is {smallest} \
                 of {} live",
                self.cfg.nodes
            )
        })
    }

    /// Waits (at most `timeout`) until every running node lists all
    /// running nodes as live ([`Sim::full_view`]) and records how long it
    /// took as `figure` (name, help). If it never happens, fails with
    /// `failure(smallest view, running nodes)`.
    pub(super) fn wait_full_view(
        &mut self,
        phase: &'static str,
        timeout: Duration,
        figure: (&'static str, &'static str),
        failure: impl FnOnce(usize, usize) -> String,
    ) -> Outcome {
        let took = self.wait(phase, timeout, Sim::full_view);
        self.secs(figure.0, took, figure.1);
        match took {
            Some(_) => Ok(()),
            None => Err(failure(
                self.sim.min_live_view().unwrap_or(0),
                self.sim.running_count(),
            )),
        }
    }

    /// Waits (at most 60 s) until no node has anything left to gossip.
    /// Records `settle_s`; not settling is not a failure.
    pub(super) fn settle(&mut self) {
        let took = self.wait("settling", Duration::from_secs(60), |s| {
            s.pending_broadcasts() == 0
        });
        self.secs(
            "settle_s",
            took,
            "after convergence, until every broadcast queue is empty",
        );
    }

    pub(super) fn random_victim(&mut self) -> NodeId {
        self.pick(|_| true)
    }

    /// A random running node other than node 0 (the seed) for which `ok`
    /// holds.
    ///
    /// # Panics
    ///
    /// If there is none (the configs are validated so that there is).
    pub(super) fn pick(&mut self, ok: impl Fn(NodeId) -> bool) -> NodeId {
        let candidates: Vec<NodeId> = self
            .sim
            .running()
            .filter(|&n| n != self.nodes[0] && ok(n))
            .collect();
        candidates[self.rng.random_range(0..candidates.len())]
    }

    /// Starts counting false alarms: logs suspicions and deaths from now
    /// on. Returns the refutations so far, for [`Run::alarm_figures`].
    pub(super) fn watch_alarms(&mut self) -> Alarms {
        self.sim
            .log_events(&[EventKind::MemberSuspect, EventKind::MemberFailed]);
        self.sim.take_event_log();
        Alarms {
            suspected: vec![false; self.sim.len()],
            failed: vec![false; self.sim.len()],
            suspect_events: 0,
            dead_events: 0,
            refutations_before: self.total(|s| s.refutations),
        }
    }

    /// Stops logging and records what `alarms` counted: `false_dead`,
    /// `false_suspect`, `suspect_events`, `dead_events`, `refutations`.
    pub(super) fn alarm_figures(&mut self, alarms: &Alarms) {
        self.sim.log_events(&[]);
        let count = |v: &[bool]| v.iter().filter(|&&b| b).count() as u64;
        self.int(
            "false_dead",
            count(&alarms.failed),
            "",
            "healthy nodes ever declared Dead by anyone",
        );
        self.int(
            "false_suspect",
            count(&alarms.suspected),
            "",
            "healthy nodes ever suspected by anyone",
        );
        self.int(
            "suspect_events",
            alarms.suspect_events,
            "",
            "MemberSuspect events about healthy nodes, all nodes",
        );
        self.int(
            "dead_events",
            alarms.dead_events,
            "",
            "MemberFailed events about healthy nodes, all nodes",
        );
        let refutations = self.total(|s| s.refutations) - alarms.refutations_before;
        self.int(
            "refutations",
            refutations,
            "",
            "suspicions refuted by their subject",
        );
    }

    /// After a disturbance ends (named in the error), waits up to 120 s
    /// until every node lists all running nodes again; records
    /// `reconverge_s`.
    pub(super) fn reconverge(&mut self, disturbance: &str) -> Outcome {
        let figure = (
            "reconverge_s",
            "after the disturbance ends, until every node lists all running nodes again",
        );
        let timeout = Duration::from_secs(120);
        self.wait_full_view("reconverging", timeout, figure, |smallest, running| {
            format!(
                "the cluster did not list all running nodes again within 120 s after {disturbance} \
                 (smallest view {smallest} of {running})"
            )
        })
    }

    pub(super) fn suspicion_figure(&mut self) -> Duration {
        let d = self.cfg.suspicion_timeout();
        self.secs(
            "suspicion_timeout_s",
            Some(d),
            "minimum suspicion timeout: mult * max(1, log10 N) * probe interval",
        );
        d
    }

    pub(super) fn total(&self, f: impl Fn(&crate::Stats) -> u64) -> u64 {
        self.sim
            .running()
            .map(|n| f(self.sim.endpoint(n).stats()))
            .sum()
    }
}
