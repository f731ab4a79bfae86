//! Runs a [`Script`]: builds the cluster, joins it through node 0, applies
//! the steps at their times, and measures as it goes (every
//! [`CHECK_STEP`] of virtual time, like the scenarios).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::{Action, NodeSet, Script, ScriptError, Step};
use crate::sim::scenario::{mean, number_of, Figure, Value, CHECK_STEP};
use crate::sim::timeline::Recorder;
use crate::sim::trace::mix;
use crate::sim::writes::{quantile, WriteLoad, WriteTracker};
use crate::sim::{LinkConfig, NodeId, NodeStatus, Sim, Timeline};
use crate::{EventKind, MemberState, Time};

/// What a script run measured (the cluster, seed and variant are the
/// script's). The figures are those of [`FIGURES`](super::FIGURES) (or
/// the script's `report` list), all times in virtual seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptReport {
    /// Wall-clock seconds the run took.
    pub wall_s: f64,
    /// Why the run went wrong (the cluster never converged, a write was
    /// refused); the figures are still there.
    pub failure: Option<String>,
    /// The figures, in [`FIGURES`](super::FIGURES) order.
    pub figures: Vec<Figure>,
    /// The simulation's trace hash at the end.
    pub trace_hash: u64,
    /// Samples over time, when asked for.
    pub timeline: Option<Timeline>,
}

impl ScriptReport {
    /// Whether the run went as planned.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    /// The figure named `name` as a number, if it was measured.
    pub fn number(&self, name: &str) -> Option<f64> {
        number_of(&self.figures, name)
    }
}

/// Runs `script`, collecting a [`Timeline`] with a sample (O(N²)) every
/// `timeline` (no finer than [`CHECK_STEP`]) when set;
/// `progress` gets the virtual time reached and the share of the run done.
///
/// # Errors
///
/// If [`Script::check`] fails.
pub fn run(
    script: &Script,
    timeline: Option<std::time::Duration>,
    progress: &mut dyn FnMut(Time, f64),
) -> Result<ScriptReport, ScriptError> {
    script.check()?;
    let started = Instant::now();
    let mut config = script.profile.config();
    script.variant.apply(&mut config);
    let mut sim = Sim::new(script.seed, script.network);
    let nodes = sim.add_nodes(script.nodes, &config);
    let mut r = Runner {
        rng: SmallRng::seed_from_u64(mix(script.seed ^ 0x5343_5249_5054)),
        seed_node: nodes[0],
        nodes,
        disturbed: vec![false; script.nodes],
        suspected: vec![false; script.nodes],
        failed: vec![false; script.nodes],
        suspect_events: 0,
        converge: None,
        healing: None,
        heals: Vec::new(),
        victims: Vec::new(),
        detections: Vec::new(),
        undetected: 0,
        jittered: Vec::new(),
        tracker: None,
        loads: Vec::new(),
        recorder: timeline.map(Recorder::new),
        failure: None,
        sim,
    };
    r.sim
        .log_events(&[EventKind::MemberSuspect, EventKind::MemberFailed]);
    for &x in &r.nodes[1..] {
        r.sim.join(x, &[r.seed_node]);
    }
    let end = Time::ZERO + script.end_time();
    let occurrences = occurrences(script, end);
    let mut next = 0;
    let mut next_check = Time::ZERO;
    loop {
        let mut target = next_check.min(end);
        if let Some((at, _)) = occurrences.get(next) {
            target = target.min(*at);
        }
        for load in &r.loads {
            if let Some((at, _)) = load.peek() {
                target = target.min(at);
            }
        }
        r.sim.run_until(target);
        if let Err(e) = r.issue_writes() {
            r.failure.get_or_insert(e);
        }
        if r.sim.now() >= next_check {
            r.check();
            next_check += CHECK_STEP;
            progress(r.sim.now(), r.sim.now().as_secs_f64() / end.as_secs_f64());
        }
        while let Some((at, step)) = occurrences.get(next) {
            if *at > r.sim.now() {
                break;
            }
            r.count_alarms();
            r.apply(step);
            next += 1;
        }
        if r.sim.now() >= end {
            break;
        }
    }
    r.check();
    Ok(r.finish(script, started))
}

/// Every time a step happens until `end`, in time order (steps at the
/// same time in script order).
fn occurrences(script: &Script, end: Time) -> Vec<(Time, &Step)> {
    let mut out = Vec::new();
    for step in &script.steps {
        let mut at = Time::ZERO + step.at;
        loop {
            if at > end {
                break;
            }
            out.push((at, step));
            if !step.repeat {
                break;
            }
            at += step.at;
        }
    }
    out.sort_by_key(|&(at, step)| (at, step.line));
    out
}

struct Runner {
    sim: Sim,
    rng: SmallRng,
    nodes: Vec<NodeId>,
    seed_node: NodeId,
    /// Nodes the script crashed or restarted: their suspicions are not
    /// false alarms.
    disturbed: Vec<bool>,
    suspected: Vec<bool>,
    failed: Vec<bool>,
    suspect_events: u64,
    converge: Option<Time>,
    /// When the last heal happened, until the view is whole again.
    healing: Option<Time>,
    heals: Vec<f64>,
    /// Crashed nodes not yet known Dead everywhere, with their crash time.
    victims: Vec<(NodeId, Time)>,
    detections: Vec<f64>,
    /// Victims restarted before everyone knew them Dead.
    undetected: u64,
    jittered: Vec<NodeId>,
    tracker: Option<Arc<Mutex<WriteTracker>>>,
    loads: Vec<WriteLoad>,
    recorder: Option<Recorder>,
    failure: Option<String>,
}

impl Runner {
    fn issue_writes(&mut self) -> Result<(), String> {
        let Some(tracker) = &self.tracker else {
            return Ok(());
        };
        for load in &mut self.loads {
            load.issue_due(&mut self.sim, tracker)?;
        }
        Ok(())
    }

    fn backlog(&self) -> Option<u64> {
        self.tracker
            .as_ref()
            .map(|t| t.lock().expect("not poisoned").backlog)
    }

    /// The periodic measurements.
    fn check(&mut self) {
        let now = self.sim.now();
        let full = self.sim.full_view();
        if full && self.converge.is_none() {
            self.converge = Some(now);
        }
        if full {
            if let Some(healed) = self.healing.take() {
                self.heals.push((now - healed).as_secs_f64());
            }
        }
        let sim = &self.sim;
        let detections = &mut self.detections;
        self.victims.retain(|&(v, crashed)| {
            if sim.everyone_sees(v, MemberState::Dead) {
                detections.push((now - crashed).as_secs_f64());
                false
            } else {
                true
            }
        });
        self.count_alarms();
        let backlog = self.backlog();
        if let Some(r) = &mut self.recorder {
            r.maybe_sample(&self.sim, backlog);
        }
    }

    fn count_alarms(&mut self) {
        for e in self.sim.take_event_log() {
            let Some(m) = e.member else { continue };
            if self.disturbed[m.index()] {
                continue;
            }
            if e.kind == EventKind::MemberSuspect {
                self.suspect_events += 1;
                self.suspected[m.index()] = true;
            } else {
                self.failed[m.index()] = true;
            }
        }
    }

    /// Nodes for a crash or restart: a range as written, else chosen at
    /// random among `candidates` (never node 0).
    fn pick(&mut self, set: &NodeSet, candidates: Vec<NodeId>) -> Vec<NodeId> {
        let n = self.nodes.len();
        let k = match set {
            NodeSet::Range(r) => {
                let (a, b) = r.resolve(n);
                return self.nodes[a..b].to_vec();
            }
            NodeSet::Count(k) => *k,
            NodeSet::Share(f) if *f <= 0.0 => 0,
            NodeSet::Share(f) => ((n as f64 * f).round() as usize).max(1),
        };
        let mut c = candidates;
        c.shuffle(&mut self.rng);
        c.truncate(k);
        c.sort_by_key(|x| x.index());
        c
    }

    fn apply(&mut self, step: &Step) {
        let now = self.sim.now();
        match &step.action {
            Action::Partition(ranges) => {
                let n = self.nodes.len();
                let groups: Vec<Vec<NodeId>> = ranges
                    .iter()
                    .map(|r| {
                        let (a, b) = r.resolve(n);
                        self.nodes[a..b].to_vec()
                    })
                    .collect();
                self.sim.partition(&groups);
                self.healing = None;
            }
            Action::Heal => {
                self.sim.heal();
                self.healing = Some(now);
            }
            Action::Crash(set) => {
                let seed = self.seed_node;
                let up: Vec<NodeId> = self.sim.running().filter(|&x| x != seed).collect();
                for v in self.pick(set, up) {
                    if self.sim.status(v) == NodeStatus::Crashed {
                        continue;
                    }
                    self.sim.crash(v);
                    self.disturbed[v.index()] = true;
                    self.victims.push((v, now));
                }
                self.recount(&[]);
            }
            Action::Restart(set) => {
                let seed = self.seed_node;
                let all: Vec<NodeId> = self.nodes.iter().copied().filter(|&x| x != seed).collect();
                let chosen = self.pick(set, all);
                for &v in &chosen {
                    self.sim.restart(v, &[seed]);
                    self.disturbed[v.index()] = true;
                }
                let before = self.victims.len();
                self.victims.retain(|(v, _)| !chosen.contains(v));
                self.undetected += (before - self.victims.len()) as u64;
                self.recount(&chosen);
            }
            Action::Jitter { share, delay } => {
                for a in std::mem::take(&mut self.jittered) {
                    for &b in &self.nodes {
                        self.sim.clear_link(a, b);
                        self.sim.clear_link(b, a);
                    }
                }
                let all = self.nodes.clone();
                let chosen = self.pick(&NodeSet::Share(*share), all);
                let net = *self.sim.network();
                let link = LinkConfig {
                    latency: net.latency,
                    jitter: net.jitter + *delay,
                    loss: net.loss,
                };
                for &a in &chosen {
                    for &b in &self.nodes {
                        if a != b {
                            self.sim.set_link(a, b, link);
                            self.sim.set_link(b, a, link);
                        }
                    }
                }
                self.jittered = chosen;
            }
            Action::Loss(p) => self.sim.set_loss(*p),
            Action::Write { rate, length, size } => {
                if self.tracker.is_none() {
                    self.tracker = Some(WriteTracker::install(&mut self.sim));
                }
                let per_node = rate / self.nodes.len() as f64;
                let mut load = WriteLoad::new(&self.nodes, per_node, now, *length, &mut self.rng);
                load.value_size = *size;
                // Writes of every load share one key space per node.
                load.keys = 16;
                self.loads.push(load);
            }
        }
    }

    fn recount(&mut self, restarted: &[NodeId]) {
        if let Some(t) = &self.tracker {
            t.lock()
                .expect("not poisoned")
                .recount(&self.sim, restarted);
        }
    }

    fn finish(mut self, script: &Script, started: Instant) -> ScriptReport {
        self.count_alarms();
        self.sim.clear_event_hook();
        let n = self.nodes.len() as f64;
        let secs = self.sim.now().as_secs_f64();
        let mut figures = Vec::new();
        let mut fig = |name: &'static str, value: Value, unit: &'static str, help: &'static str| {
            figures.push(Figure {
                name,
                value,
                unit,
                help,
            });
        };
        let float = |x: Option<f64>| x.map_or(Value::Missing, Value::Float);
        let count = |v: &[bool]| Value::Int(v.iter().filter(|&&b| b).count() as u64);
        fig(
            "converge_s",
            float(self.converge.map(Time::as_secs_f64)),
            "s",
            "from the start until every node lists all N",
        );
        fig(
            "heal_s",
            mean(&self.heals),
            "s",
            "mean, heal until every node lists all running nodes",
        );
        fig(
            "heal_s_max",
            float(self.heals.iter().copied().reduce(f64::max)),
            "s",
            "slowest heal",
        );
        fig(
            "detect_s",
            mean(&self.detections),
            "s",
            "mean, crash until every running node holds it Dead",
        );
        fig(
            "detect_s_max",
            float(self.detections.iter().copied().reduce(f64::max)),
            "s",
            "slowest detection",
        );
        fig(
            "undetected",
            Value::Int(self.undetected + self.victims.len() as u64),
            "",
            "crashes not known everywhere by their restart or the end",
        );
        fig(
            "false_dead",
            count(&self.failed),
            "",
            "nodes never crashed by the script, declared Dead by someone",
        );
        fig(
            "false_suspect",
            count(&self.suspected),
            "",
            "nodes never crashed by the script, suspected by someone",
        );
        fig(
            "suspect_events",
            Value::Int(self.suspect_events),
            "",
            "MemberSuspect events about those nodes, all nodes",
        );
        fig(
            "bytes_per_node_s",
            Value::Float(self.sim.stats().bytes_sent as f64 / n / secs.max(1e-9)),
            "B/s",
            "mean bytes sent per node per second, whole run",
        );
        if let Some(t) = &self.tracker {
            let t = t.lock().expect("not poisoned");
            let issued: u64 = self.loads.iter().map(|l| l.issued).sum();
            fig("writes", Value::Int(issued), "", "writes issued");
            fig(
                "write_lag_p50_s",
                float(quantile(&t.lags, 0.5)),
                "s",
                "median write -> every running node holds it",
            );
            fig(
                "write_lag_p99_s",
                float(quantile(&t.lags, 0.99)),
                "s",
                "99th percentile of the lag",
            );
            fig(
                "write_lag_max_s",
                float(quantile(&t.lags, 1.0)),
                "s",
                "slowest write",
            );
            fig(
                "writes_unfinished",
                Value::Int(t.backlog),
                "",
                "writes not everywhere at the end",
            );
            fig(
                "writes_abandoned",
                Value::Int(t.abandoned),
                "",
                "writes not everywhere when their writer restarted (no longer followed)",
            );
        }
        fig(
            "virtual_s",
            Value::Float(secs),
            "s",
            "virtual time simulated",
        );
        if !script.report.is_empty() {
            figures.retain(|f| script.report.iter().any(|r| r == f.name));
        }
        if self.converge.is_none() {
            self.failure.get_or_insert_with(|| {
                format!(
                    "the cluster never listed all nodes (smallest view {} of {})",
                    self.sim.min_live_view().unwrap_or(0),
                    self.sim.running_count()
                )
            });
        }
        if let Some(r) = &mut self.recorder {
            r.sample(&self.sim, None);
        }
        ScriptReport {
            wall_s: started.elapsed().as_secs_f64(),
            failure: self.failure,
            figures,
            trace_hash: self.sim.trace_hash(),
            timeline: self.recorder.map(Recorder::finish),
        }
    }
}
