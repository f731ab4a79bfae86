//! What the partial-fault scenarios (`jitter`, `deaf`, `half`, `mute`,
//! `lossy-node`, `flap`) share: a few faulty nodes on an otherwise healthy
//! network, a real crash of a healthy node halfway through, and the false
//! alarms counted by who raised them.
//!
//! Each scenario file only says which nodes are faulty and what their
//! links do ([`Degradation`]); [`Run::degraded`] converges the cluster,
//! applies the fault for the phase's length (toggling it when it flaps),
//! crashes a random healthy node at half time, and records:
//!
//! * `suspect_events`: suspicions raised by healthy observers about healthy
//!   nodes; `suspect_events_faulty`: about the faulty (but alive) nodes;
//! * `false_dead`: healthy nodes declared Dead by healthy observers;
//!   `faulty_dead`: faulty nodes declared Dead by healthy observers;
//!   `own_view_dead`: live nodes the faulty nodes declared Dead;
//! * `bytes_per_node_s`: mean bytes sent per node per second from the start
//!   of the fault to the crash;
//! * `all_dead_s`: from the crash until every healthy node holds the
//!   crashed node Dead.

use std::time::Duration;

use super::harness::{Outcome, Run, CHECK_STEP};
use super::report::Value;
use crate::sim::{LinkConfig, LoggedEvent, NodeId, Sim};
use crate::{EventKind, MemberState, Time};

/// What a scenario does to its faulty nodes' links.
pub(super) struct Degradation<'a> {
    /// How many nodes are faulty.
    pub(super) count: usize,
    /// Turns the fault on (`true`) or off on the links of `faulty`;
    /// `others` is every other node, in a random order fixed for the run.
    pub(super) apply: ApplyFault<'a>,
    /// When set, the fault is on for this long, then off as long, and so
    /// on (a flapping link).
    pub(super) flap: Option<Duration>,
}

/// Turns a fault on or off: `(sim, faulty, others, on)`.
pub(super) type ApplyFault<'a> = Box<dyn Fn(&mut Sim, &[NodeId], &[NodeId], bool) + 'a>;

/// Which directions of a link a fault affects.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Ways {
    /// Datagrams to the faulty node.
    In,
    /// Datagrams from the faulty node.
    Out,
    /// Both.
    Both,
}

/// A fault that takes the links between `faulty[0]` and `targets` (which
/// part of `others`) down in `ways`: deafness, a cut, muteness, flapping.
pub(super) fn cut(ways: Ways, targets: fn(&[NodeId]) -> &[NodeId]) -> ApplyFault<'static> {
    Box::new(move |sim, faulty, others, on| {
        let link = on.then(|| down(sim));
        for &o in targets(others) {
            if ways != Ways::Out {
                set(sim, o, faulty[0], link);
            }
            if ways != Ways::In {
                set(sim, faulty[0], o, link);
            }
        }
    })
}

/// Every other node.
pub(super) fn all(others: &[NodeId]) -> &[NodeId] {
    others
}

/// Half of the other nodes (a random half: `others` is shuffled).
pub(super) fn half(others: &[NodeId]) -> &[NodeId] {
    &others[..others.len() / 2]
}

/// A link that loses everything.
pub(super) fn down(sim: &Sim) -> LinkConfig {
    LinkConfig {
        loss: 1.0,
        ..sim.network().link()
    }
}

/// Sets `link` (or, when `None`, the network's own) on `a` to `b`.
pub(super) fn set(sim: &mut Sim, a: NodeId, b: NodeId, link: Option<LinkConfig>) {
    match link {
        Some(l) => sim.set_link(a, b, l),
        None => sim.clear_link(a, b),
    }
}

/// False alarms by observer class.
#[derive(Default)]
struct Tally {
    suspect_healthy: u64,
    suspect_faulty: u64,
    dead_healthy: Vec<bool>,
    dead_faulty: Vec<bool>,
    own_view_dead: Vec<bool>,
    dead_events: u64,
}

impl Tally {
    fn count(&mut self, log: Vec<LoggedEvent>, faulty: &[bool], crashed: Option<(NodeId, Time)>) {
        for e in log {
            let Some(m) = e.member else { continue };
            if crashed.is_some_and(|(c, at)| c == m && e.time >= at) {
                continue;
            }
            let dead = e.kind == EventKind::MemberFailed;
            match (faulty[e.node.index()], faulty[m.index()], dead) {
                (true, _, true) => self.own_view_dead[m.index()] = true,
                (true, _, false) => {}
                (false, false, false) => self.suspect_healthy += 1,
                (false, true, false) => self.suspect_faulty += 1,
                (false, false, true) => {
                    self.dead_events += 1;
                    self.dead_healthy[m.index()] = true;
                }
                (false, true, true) => self.dead_faulty[m.index()] = true,
            }
        }
    }
}

fn trues(v: &[bool]) -> u64 {
    v.iter().filter(|&&b| b).count() as u64
}

impl Run<'_> {
    /// Runs a partial-fault scenario. See the module docs.
    pub(super) fn degraded(&mut self, fault: Degradation<'_>) -> Outcome {
        let d = self.cfg.phase_length();
        let grace = self.cfg.max_suspicion_timeout() + Duration::from_secs(60);
        self.suspicion_figure();
        self.converge()?;
        self.settle();
        let n = self.sim.len();
        let mut faulty = vec![false; n];
        let mut bad = Vec::new();
        for _ in 0..fault.count {
            let x = self.pick(|x| !faulty[x.index()]);
            faulty[x.index()] = true;
            bad.push(x);
        }
        let mut others: Vec<NodeId> = self
            .nodes
            .iter()
            .copied()
            .filter(|x| !faulty[x.index()])
            .collect();
        for i in (1..others.len()).rev() {
            use rand::Rng;
            others.swap(i, self.rng.random_range(0..=i));
        }
        self.sim
            .log_events(&[EventKind::MemberSuspect, EventKind::MemberFailed]);
        self.sim.take_event_log();
        let mut tally = Tally {
            dead_healthy: vec![false; n],
            dead_faulty: vec![false; n],
            own_view_dead: vec![false; n],
            ..Tally::default()
        };
        let bytes = |sim: &Sim| -> u64 {
            sim.running()
                .map(|x| sim.endpoint(x).stats().bytes_out)
                .sum()
        };
        (fault.apply)(&mut self.sim, &bad, &others, true);
        let mut on = true;
        let start = self.sim.now();
        let bytes_before = bytes(&self.sim);
        let crash_due = start + d / 2;
        let end = start + d;
        let mut next_flip = fault.flap.map(|p| start + p);
        let mut crashed: Option<(NodeId, Time)> = None;
        let mut detected = None;
        loop {
            let now = self.sim.now();
            if now >= end && (detected.is_some() || now >= crash_due + grace) {
                break;
            }
            self.sim.run_until(now + CHECK_STEP);
            tally.count(self.sim.take_event_log(), &faulty, crashed);
            let now = self.sim.now();
            if let (Some(at), Some(p)) = (next_flip, fault.flap) {
                if now >= at && now < end {
                    on = !on;
                    (fault.apply)(&mut self.sim, &bad, &others, on);
                    next_flip = Some(at + p);
                }
            }
            match crashed {
                None if now >= crash_due => {
                    let secs = (now - start).as_secs_f64();
                    let b = (bytes(&self.sim) - bytes_before) as f64 / secs / n as f64;
                    self.fig(
                        "bytes_per_node_s",
                        Value::Float(b),
                        "B/s",
                        "mean bytes sent per node per second under the fault, before the crash",
                    );
                    let victim = self.pick(|x| !faulty[x.index()]);
                    self.sim.crash(victim);
                    crashed = Some((victim, now));
                }
                Some((victim, at)) if detected.is_none() => {
                    let name = self.sim.name(victim).to_owned();
                    let sim = &self.sim;
                    let everyone = sim.running().filter(|x| !faulty[x.index()]).all(|x| {
                        sim.endpoint(x)
                            .member(&name)
                            .is_some_and(|m| m.state == MemberState::Dead)
                    });
                    if everyone {
                        detected = Some(now - at);
                    }
                }
                _ => {}
            }
            let f = (now - start).as_secs_f64() / d.as_secs_f64();
            self.report("degraded", f);
        }
        self.sim.log_events(&[]);
        (fault.apply)(&mut self.sim, &bad, &others, false);
        self.int("faulty_nodes", bad.len() as u64, "", "nodes with the fault");
        self.secs("fault_s", Some(d), "time under the fault");
        self.int(
            "suspect_events",
            tally.suspect_healthy,
            "",
            "MemberSuspect events raised by healthy nodes about healthy nodes",
        );
        self.int(
            "suspect_events_faulty",
            tally.suspect_faulty,
            "",
            "MemberSuspect events raised by healthy nodes about the faulty (alive) nodes",
        );
        self.int(
            "false_dead",
            trues(&tally.dead_healthy),
            "",
            "healthy nodes declared Dead by healthy nodes",
        );
        self.int(
            "dead_events",
            tally.dead_events,
            "",
            "MemberFailed events raised by healthy nodes about healthy nodes",
        );
        self.int(
            "faulty_dead",
            trues(&tally.dead_faulty),
            "",
            "faulty (alive) nodes declared Dead by healthy nodes",
        );
        self.int(
            "own_view_dead",
            trues(&tally.own_view_dead),
            "",
            "live nodes the faulty nodes declared Dead",
        );
        self.secs(
            "all_dead_s",
            detected,
            "a healthy node crashed at half time: until every healthy node holds it Dead",
        );
        match detected {
            Some(_) => Ok(()),
            None => Err(format!(
                "the node crashed at half time was not Dead at every healthy node {grace:?} later"
            )),
        }
    }
}
