//! The `kv-load` scenario: sustained write throughput.
//!
//! After the cluster converged and went quiet, and after 5 s measuring the
//! steady state's traffic, a share [`ScenarioConfig::writers`] of the nodes
//! each write [`ScenarioConfig::rate`] times a second, at a random phase
//! of their own, for the phase's length. Each writer cycles over enough
//! keys of [`ScenarioConfig::value_size`] bytes that a key is rewritten
//! only [`REWRITE_AFTER`] later. Every
//! write is followed until every running node holds it (exact, from the
//! [`Event::KeyUpdated`](crate::Event::KeyUpdated) of the last replica).
//! Then writes stop and the backlog is given up to [`DRAIN`] to empty.
//!
//! The floor is what every node must at least receive: each write once,
//! `writers · rate · entry` bytes a second, with the entry's encoded size
//! on the wire. `floor_ratio` is the bytes a node actually sent per second
//! during the writes (membership traffic included) over that floor.
//!
//! The backlog (writes not yet everywhere) is sampled every second; it is
//! called bounded when the writes drained after the load stopped and its
//! mean over the last 10 s of the load is at most 1.5 times its mean over
//! the 10 s after a 10 s warm-up (a backlog that grows is a protocol that
//! falls behind).
//!
//! [`find_max_rate`] searches the highest rate whose p99 lag stays under a
//! bound, with short runs.

use std::time::Duration;

use super::config::ScenarioConfig;
use super::harness::{Outcome, Run};
use super::report::{max, mean, Report, Value};
use super::Progress;
use crate::sim::writes::{entry_bytes, WriteLoad, WriteTracker};
use crate::sim::NodeId;
use crate::wire::MessageKind;

/// Each writer cycles over enough keys that a key is written again only
/// this long after: far longer than a write takes to spread, so every
/// write must reach every node (a replica that lagged could otherwise skip
/// overwritten writes, and the figures would flatter the protocol), while
/// the store stays small (N × 4 × rate entries per node, at least 4 each).
pub const REWRITE_AFTER: Duration = Duration::from_secs(4);

/// How many keys a writer writing `rate` times a second cycles over.
fn keys_per_writer(rate: f64) -> u64 {
    (rate * REWRITE_AFTER.as_secs_f64()).ceil().max(4.0) as u64
}

/// After the load stops, how long the remaining writes may take to reach
/// every node.
pub const DRAIN: Duration = Duration::from_secs(30);

/// Steady-state traffic measured before the writes start.
const BASELINE: Duration = Duration::from_secs(5);

/// Warm-up excluded from the backlog's reference window.
const WARMUP: f64 = 10.0;

impl Run<'_> {
    pub(super) fn kv_load(&mut self) -> Outcome {
        let d = self.cfg.phase_length();
        self.converge()?;
        self.settle();
        let before = self.sim.stats().bytes_sent;
        self.run_phase("baseline", BASELINE, |_| {});
        let n = self.cfg.nodes as f64;
        let baseline = (self.sim.stats().bytes_sent - before) as f64 / n / BASELINE.as_secs_f64();

        let mut writers: Vec<NodeId> = self.nodes.clone();
        // A random share, chosen with the scenario's own generator.
        for i in (1..writers.len()).rev() {
            let j = rand::Rng::random_range(&mut self.rng, 0..=i);
            writers.swap(i, j);
        }
        writers.truncate(self.cfg.writer_count());
        let tracker = WriteTracker::install(&mut self.sim);
        self.writes = Some(tracker.clone());
        let start = self.sim.now();
        let mut load = WriteLoad::new(&writers, self.cfg.rate, start, d, &mut self.rng);
        load.value_size = self.cfg.value_size;
        load.keys = keys_per_writer(self.cfg.rate);

        let bytes_before = self.sim.stats().bytes_sent;
        let kinds_before = self.kv_traffic();
        let mut backlog: Vec<(f64, u64)> = Vec::new();
        let end = start + d;
        let mut next_second = start + Duration::from_secs(1);
        let mut refused = None;
        while self.sim.now() < end {
            let next_write = load.peek().map_or(end, |(t, _)| t);
            let next = next_write.min(next_second).min(end);
            self.sim.run_until(next);
            if let Err(e) = load.issue_due(&mut self.sim, &tracker) {
                refused = Some(e);
                break;
            }
            if self.sim.now() >= next_second {
                let pending = tracker.lock().expect("not poisoned").backlog;
                backlog.push(((self.sim.now() - start).as_secs_f64(), pending));
                next_second += Duration::from_secs(1);
                let f = (self.sim.now() - start).as_secs_f64() / d.as_secs_f64();
                self.report("writing", f);
            }
        }
        let write_bytes = self.sim.stats().bytes_sent - bytes_before;
        let kinds = self.kv_traffic().map2(&kinds_before, |a, b| a - b);
        let written_for = self.sim.now() - start;
        let drained = self.wait("draining", DRAIN, |_| {
            tracker.lock().expect("not poisoned").backlog == 0
        });
        self.sim.clear_event_hook();
        self.writes = None;
        let t = tracker.lock().expect("not poisoned");

        let last_version = load.issued / writers.len().max(1) as u64;
        let entry = entry_bytes(
            self.sim.name(writers[0]),
            last_version.max(1),
            format!("load.{}", load.keys - 1).len(),
            self.cfg.value_size,
        );
        let floor = writers.len() as f64 * self.cfg.rate * entry as f64;
        let per_node_s = write_bytes as f64 / n / written_for.as_secs_f64().max(1e-9);
        let backlog_values: Vec<f64> = backlog.iter().map(|&(_, b)| b as f64).collect();
        let window = |from: f64, to: f64| -> Vec<f64> {
            backlog
                .iter()
                .filter(|&&(s, _)| s > from && s <= to)
                .map(|&(_, b)| b as f64)
                .collect()
        };
        let secs = d.as_secs_f64();
        let last10 = mean(&window(secs - 10.0, secs));
        let reference = mean(&window(WARMUP, WARMUP + 10.0));
        let bounded = match (&last10, &reference) {
            (Value::Float(last), Value::Float(reference)) => {
                drained.is_some() && *last <= 1.5 * reference.max(1.0)
            }
            // Too short to tell growth apart: drained is all one can say.
            _ => drained.is_some(),
        };
        let (issued, completed, unfinished) = (load.issued, t.lags.len() as u64, t.backlog);
        let abandoned = t.abandoned;
        let (p50, p99, worst) = (t.quantile(0.5), t.quantile(0.99), max(&t.lags));
        drop(t);

        self.int("writers", writers.len() as u64, "", "nodes writing");
        self.fig(
            "rate",
            Value::Float(self.cfg.rate),
            "/s",
            "writes per second of each writer",
        );
        self.int("writes", issued, "", "writes issued");
        self.int(
            "completed",
            completed,
            "",
            "writes that reached every running node",
        );
        self.int(
            "unfinished",
            unfinished + abandoned,
            "",
            "writes not everywhere when the drain ended",
        );
        self.secs(
            "lag_p50_s",
            p50.map(Duration::from_secs_f64),
            "median write -> every running node holds it",
        );
        self.secs(
            "lag_p99_s",
            p99.map(Duration::from_secs_f64),
            "99th percentile of the lag",
        );
        self.fig("lag_max_s", worst, "s", "slowest write");
        self.int(
            "entry_bytes",
            entry as u64,
            "B",
            "one write's encoded entry",
        );
        self.fig(
            "floor_bytes_per_node_s",
            Value::Float(floor),
            "B/s",
            "every node receives every write once: writers * rate * entry",
        );
        self.fig(
            "bytes_per_node_s",
            Value::Float(per_node_s),
            "B/s",
            "mean bytes sent per node per second while writing (all traffic)",
        );
        self.fig(
            "floor_ratio",
            Value::Float(per_node_s / floor),
            "x",
            "bytes_per_node_s over the floor",
        );
        self.fig(
            "baseline_bytes_per_node_s",
            Value::Float(baseline),
            "B/s",
            "steady state before the writes, per node",
        );
        self.fig(
            "extra_floor_ratio",
            Value::Float((per_node_s - baseline) / floor),
            "x",
            "bytes above the steady state over the floor",
        );
        let share = |x: u64| Value::Float(x as f64 / write_bytes.max(1) as f64);
        self.fig(
            "entry_copies",
            Value::Float(kinds.entries_in as f64 / issued.max(1) as f64 / n),
            "",
            "kv entries each node received per write (1 is the floor)",
        );
        self.fig(
            "entry_byte_share",
            share(kinds.entry_bytes),
            "",
            "share of the bytes sent that were kv entries",
        );
        self.fig(
            "digest_byte_share",
            share(kinds.digest_bytes),
            "",
            "share of the bytes sent that were scuttlebutt digests",
        );
        self.fig(
            "backlog_max",
            max(&backlog_values),
            "",
            "most writes not yet everywhere, sampled each second",
        );
        self.fig(
            "backlog_last10_mean",
            last10,
            "",
            "mean backlog over the last 10 s of writing",
        );
        self.fig(
            "backlog_ref_mean",
            reference,
            "",
            "mean backlog over 10..20 s of writing (the reference)",
        );
        self.int(
            "backlog_bounded",
            u64::from(bounded),
            "",
            "1: drained after the load, last-10s mean <= 1.5 x reference",
        );
        self.secs(
            "drain_s",
            drained,
            "after the load stopped, until every write was everywhere",
        );
        self.fig(
            "backlog_all",
            Value::Floats(backlog_values),
            "",
            "backlog each second",
        );
        match refused {
            Some(e) => Err(e),
            None if drained.is_none() => Err(format!(
                "{unfinished} writes still not everywhere {DRAIN:?} after the load stopped"
            )),
            None => Ok(()),
        }
    }
}

/// Key/value traffic summed over the running nodes.
#[derive(Clone, Copy)]
struct KvTraffic {
    entries_in: u64,
    entry_bytes: u64,
    digest_bytes: u64,
}

impl KvTraffic {
    fn map2(self, other: &KvTraffic, f: impl Fn(u64, u64) -> u64) -> KvTraffic {
        KvTraffic {
            entries_in: f(self.entries_in, other.entries_in),
            entry_bytes: f(self.entry_bytes, other.entry_bytes),
            digest_bytes: f(self.digest_bytes, other.digest_bytes),
        }
    }
}

impl Run<'_> {
    fn kv_traffic(&self) -> KvTraffic {
        KvTraffic {
            entries_in: self.total(|s| s.messages_in.get(MessageKind::KvEntry)),
            entry_bytes: self.total(|s| s.message_bytes_out.get(MessageKind::KvEntry)),
            digest_bytes: self.total(|s| {
                s.message_bytes_out.get(MessageKind::KvDigest)
                    + s.message_bytes_out.get(MessageKind::KvPull)
            }),
        }
    }
}

/// The outcome of [`find_max_rate`].
#[derive(Clone, Debug)]
pub struct RateSearch {
    /// The highest rate tried whose p99 lag was under the bound (writes
    /// per second per writer), if any was.
    pub max_rate: Option<f64>,
    /// Every run, in the order they ran.
    pub runs: Vec<Report>,
}

/// Searches the highest [`ScenarioConfig::rate`] at which `kv-load`'s p99
/// lag stays under `bound` and the backlog stays bounded: doubles the rate
/// from `cfg.rate` until a run misses (or halves it until one holds), then
/// bisects `steps` times between the highest rate that held and the
/// lowest that missed. Each run is a full
/// `kv-load` of `cfg` (use a short [`ScenarioConfig::duration`], e.g.
/// 20 s).
///
/// # Panics
///
/// If `cfg` is not a valid `kv-load` configuration.
pub fn find_max_rate(
    cfg: &ScenarioConfig,
    bound: Duration,
    steps: u32,
    progress: &mut dyn FnMut(Progress),
) -> RateSearch {
    let mut runs = Vec::new();
    let mut try_rate = |rate: f64, runs: &mut Vec<Report>| -> bool {
        let mut c = cfg.clone();
        c.rate = rate;
        let r = super::run(&c, progress);
        let ok = r.ok()
            && r.number("backlog_bounded") == Some(1.0)
            && r.number("lag_p99_s")
                .is_some_and(|p| p < bound.as_secs_f64());
        runs.push(r);
        ok
    };
    let (mut good, mut bad) = (None, None);
    // Doubling up from a rate that holds, or halving down from one that
    // misses; 20 steps is a factor of a million.
    let mut rate = cfg.rate;
    for _ in 0..20 {
        if try_rate(rate, &mut runs) {
            good = Some(rate);
            if bad.is_some() {
                break;
            }
            rate *= 2.0;
        } else {
            bad = Some(rate);
            if good.is_some() {
                break;
            }
            rate /= 2.0;
        }
    }
    if let (Some(mut lo), Some(mut hi)) = (good, bad) {
        for _ in 0..steps {
            let mid = (lo + hi) / 2.0;
            if try_rate(mid, &mut runs) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        good = Some(lo);
    }
    RateSearch {
        max_rate: good,
        runs,
    }
}
