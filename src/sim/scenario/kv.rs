//! The `kv` scenario: how fast one write reaches every replica.
//!
//! After the cluster converged and went quiet, a random node sets a fresh
//! key; the time until 99% and 100% of the nodes hold it is taken from the
//! [`Event::KeyUpdated`] each replica emits (exact, not rounded to a check
//! step). The write is repeated [`ScenarioConfig::writes`] times from
//! random nodes, [`SPACING`] apart, so the figures are means over many
//! spreads rather than one sample.
//!
//! [`ScenarioConfig::writes`]: super::ScenarioConfig::writes

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use super::harness::{Outcome, Run};
use super::report::{max, mean, Value};
use crate::{Event, Time};

/// Time between two writes: long enough for the previous one to have
/// spread, stopped being retransmitted and stopped driving digest
/// exchanges (about `retransmit_mult · log10 N` gossip intervals, 2.4 s at
/// N=100), so that each write starts from a quiet cluster and its bytes
/// can be told apart.
pub const SPACING: Duration = Duration::from_secs(10);

/// How long one write may take to reach every node before the scenario
/// gives up.
const SPREAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Every key update reported, as it happens: (when, by which node index,
/// whose key, which key).
type Seen = Mutex<Vec<(Time, usize, String, String)>>;

/// One write's spread.
struct Spread {
    p99: f64,
    all: f64,
    /// Bytes all nodes sent from the write until the next one.
    bytes: u64,
    /// How long that was.
    window: Duration,
}

impl Run<'_> {
    pub(super) fn kv(&mut self) -> Outcome {
        let n = self.cfg.nodes;
        let c = self.cfg.node_config();
        let fanout = c.gossip_nodes as f64;
        let nf = n as f64;
        let rounds = nf.ln() / (1.0 + fanout).ln() + nf.ln() / fanout;
        self.fig(
            "theory_all_s",
            Value::Float(rounds * c.gossip_interval.as_secs_f64()),
            "s",
            "push gossip, fanout f per interval: (log_(1+f) N + ln N / f) intervals",
        );
        self.converge()?;
        self.settle();
        let before = self.sim.stats().bytes_sent;
        self.run_phase("baseline", SPACING, |_| {});
        let baseline = (self.sim.stats().bytes_sent - before) as f64 / SPACING.as_secs_f64();

        let seen: Arc<Seen> = Arc::default();
        let sink = Arc::clone(&seen);
        self.sim.on_event(move |t, node, e| {
            if let Event::KeyUpdated {
                node: owner, key, ..
            } = e
            {
                let mut v = sink.lock().expect("not poisoned");
                v.push((t, node.index(), owner.clone(), key.clone()));
            }
        });
        let mut spreads = Vec::new();
        let mut failure = None;
        for w in 0..self.cfg.writes {
            match self.one_write(w, &seen) {
                Ok(s) => spreads.push(s),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        self.sim.clear_event_hook();
        self.kv_figures(&spreads, baseline);
        failure.map_or(Ok(()), Err)
    }

    /// Writer `w` is a random node; waits until every node holds its key,
    /// then until [`SPACING`] after the write.
    fn one_write(&mut self, w: usize, seen: &Seen) -> Result<Spread, String> {
        let n = self.cfg.nodes;
        let writer = self.nodes[self.rng.random_range(0..n)];
        let owner = self.sim.name(writer).to_owned();
        let (key, value) = (format!("kv.{w}"), format!("value-{w}"));
        seen.lock().expect("not poisoned").clear();
        let bytes = self.sim.stats().bytes_sent;
        let t0 = self.sim.now();
        self.sim
            .with_endpoint(writer, |ep, now| ep.set(now, &key, value.as_bytes()))
            .map_err(|e| format!("write {w} refused: {e}"))?;
        // First time each node other than the writer reported the key.
        let first = |seen: &Seen| {
            let mut at: Vec<Option<Time>> = vec![None; n];
            for (t, node, o, k) in seen.lock().expect("not poisoned").iter() {
                if *o == owner && *k == key && at[*node].is_none() {
                    at[*node] = Some(*t);
                }
            }
            at
        };
        let reported = |seen: &Seen| first(seen).iter().filter(|t| t.is_some()).count();
        let took = self.wait("spreading", SPREAD_TIMEOUT, |_| reported(seen) == n - 1);
        if took.is_none() {
            let held = reported(seen) + 1;
            return Err(format!(
                "write {w} by {owner} reached {held} of {n} nodes in {SPREAD_TIMEOUT:?}"
            ));
        }
        if let Some(x) = self
            .sim
            .running()
            .find(|&x| self.sim.endpoint(x).peer_value(&owner, &key) != Some(value.as_bytes()))
        {
            return Err(format!("{x} reported {owner}'s {key} but does not hold it"));
        }
        let mut times: Vec<f64> = first(seen)
            .into_iter()
            .flatten()
            .map(|t| (t - t0).as_secs_f64())
            .collect();
        // The writer holds its key from the start.
        times.push(0.0);
        times.sort_by(f64::total_cmp);
        let p99 = times[((0.99 * n as f64).ceil() as usize).clamp(1, n) - 1];
        let all = times[n - 1];
        let until = t0 + SPACING;
        if self.sim.now() < until {
            let rest = until - self.sim.now();
            self.run_phase("spacing", rest, |_| {});
        }
        Ok(Spread {
            p99,
            all,
            bytes: self.sim.stats().bytes_sent - bytes,
            window: self.sim.now() - t0,
        })
    }

    fn kv_figures(&mut self, spreads: &[Spread], baseline: f64) {
        let n = self.cfg.nodes as f64;
        let p99: Vec<f64> = spreads.iter().map(|s| s.p99).collect();
        let all: Vec<f64> = spreads.iter().map(|s| s.all).collect();
        // What a write costs on top of the steady state.
        let extra: Vec<f64> = spreads
            .iter()
            .map(|s| (s.bytes as f64 - baseline * s.window.as_secs_f64()) / n)
            .collect();
        self.int("writes", spreads.len() as u64, "", "writes fully spread");
        self.fig(
            "p99_s",
            mean(&p99),
            "s",
            "mean, write until 99% of nodes hold it",
        );
        self.fig(
            "all_s",
            mean(&all),
            "s",
            "mean, write until every node holds it",
        );
        self.fig("p99_s_max", max(&p99), "s", "slowest write to 99%");
        self.fig("all_s_max", max(&all), "s", "slowest write to all");
        self.fig(
            "write_bytes_per_node",
            mean(&extra),
            "B",
            "mean bytes one write costs each node (above the steady state)",
        );
        self.fig(
            "baseline_bytes_per_node_s",
            Value::Float(baseline / n),
            "B/s",
            "steady state before the writes, per node",
        );
        self.fig("all_s_all", Value::Floats(all), "s", "per write");
    }
}
