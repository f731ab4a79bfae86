//! Time series of a run, for plots: [`Timeline`] of [`Sample`]s taken at a
//! chosen resolution (e.g. once a virtual second).
//!
//! Sampling only reads the endpoints (their member lists and counters), so
//! a run with a timeline is the same run as without (same trace hash); it
//! costs O(N²) per sample, which is why scenarios collect one only when
//! asked ([`ScenarioConfig::timeline`](super::scenario::ScenarioConfig::timeline)).

use std::time::Duration;

use super::Sim;
use crate::{MemberState, Time};

/// One moment of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Virtual seconds since the start.
    pub t: f64,
    /// Nodes running.
    pub running: usize,
    /// Mean over running nodes of the share of all nodes each one sees
    /// correctly (running nodes as live, crashed ones as not live): 1.0
    /// once every membership change is known everywhere.
    pub view_accuracy: f64,
    /// The same share for the node that sees the least correctly.
    pub min_view_accuracy: f64,
    /// Mean number of members a running node holds as alive.
    pub alive: f64,
    /// Mean number of members a running node holds as suspect.
    pub suspect: f64,
    /// Mean number of members a running node holds as dead (or left).
    pub dead: f64,
    /// Bytes sent per running node per second since the previous sample.
    pub bytes_per_node_s: f64,
    /// Writes not yet held by every running node, when writes are
    /// tracked.
    pub writes_pending: Option<u64>,
}

/// Samples of one run, in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// The samples.
    pub samples: Vec<Sample>,
}

/// Takes a [`Sample`] whenever at least `every` passed since the last one.
#[derive(Debug)]
pub(crate) struct Recorder {
    every: Duration,
    timeline: Timeline,
    last: Option<(Time, u64)>,
}

impl Recorder {
    /// A recorder sampling at most every `every`.
    pub(crate) fn new(every: Duration) -> Recorder {
        Recorder {
            every,
            timeline: Timeline::default(),
            last: None,
        }
    }

    /// Samples `sim` if a sample is due; `writes_pending` is the write
    /// backlog, if writes are tracked.
    pub(crate) fn maybe_sample(&mut self, sim: &Sim, writes_pending: Option<u64>) {
        let now = sim.now();
        if self.last.is_some_and(|(t, _)| now < t + self.every) {
            return;
        }
        self.sample(sim, writes_pending);
    }

    /// Samples `sim` now (unless it was just sampled).
    pub(crate) fn sample(&mut self, sim: &Sim, writes_pending: Option<u64>) {
        let now = sim.now();
        if self.last.is_some_and(|(t, _)| t == now) {
            return;
        }
        let bytes = sim.stats().bytes_sent;
        let running = sim.running_count();
        let bytes_per_node_s = match self.last {
            Some((t, b)) if now > t => {
                (bytes - b) as f64 / running.max(1) as f64 / (now - t).as_secs_f64()
            }
            _ => 0.0,
        };
        self.last = Some((now, bytes));
        let total = sim.len() as f64;
        let (mut acc_sum, mut acc_min) = (0.0, f64::INFINITY);
        let (mut alive, mut suspect, mut dead) = (0usize, 0usize, 0usize);
        for n in sim.running() {
            let (mut live_running, mut live_crashed) = (0usize, 0usize);
            for m in sim.endpoint(n).members() {
                let live = match m.state {
                    MemberState::Alive => {
                        alive += 1;
                        true
                    }
                    MemberState::Suspect => {
                        suspect += 1;
                        true
                    }
                    _ => {
                        dead += 1;
                        false
                    }
                };
                if live {
                    let up = sim
                        .node_named(&m.name)
                        .is_some_and(|x| sim.status(x) != super::NodeStatus::Crashed);
                    if up {
                        live_running += 1;
                    } else {
                        live_crashed += 1;
                    }
                }
            }
            let wrong = live_crashed + (running - live_running.min(running));
            let acc = 1.0 - wrong as f64 / total;
            acc_sum += acc;
            acc_min = acc_min.min(acc);
        }
        let per = |x: usize| x as f64 / running.max(1) as f64;
        self.timeline.samples.push(Sample {
            t: now.as_secs_f64(),
            running,
            view_accuracy: acc_sum / running.max(1) as f64,
            min_view_accuracy: if running == 0 { 0.0 } else { acc_min },
            alive: per(alive),
            suspect: per(suspect),
            dead: per(dead),
            bytes_per_node_s,
            writes_pending,
        });
    }

    /// The samples so far.
    pub(crate) fn finish(self) -> Timeline {
        self.timeline
    }
}
