//! The `load` scenario: what a steady cluster costs in traffic.
//!
//! After the cluster converged and went quiet, the bytes and datagrams each
//! node sends are measured over the phase's length; the figures are the
//! mean and the busiest node, per second.

use super::harness::{Outcome, Run};
use super::report::{max, mean};
use crate::sim::Sim;

impl Run<'_> {
    pub(super) fn load(&mut self) -> Outcome {
        let d = self.cfg.phase_length();
        self.converge()?;
        self.settle();
        let snapshot = |sim: &Sim| -> Vec<(u64, u64)> {
            sim.nodes()
                .map(|n| {
                    let s = sim.endpoint(n).stats();
                    (s.bytes_out, s.packets_out)
                })
                .collect()
        };
        let before = snapshot(&self.sim);
        self.run_phase("measuring", d, |_| {});
        let after = snapshot(&self.sim);
        let secs = d.as_secs_f64();
        let bytes: Vec<f64> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| (a.0 - b.0) as f64 / secs)
            .collect();
        let packets: Vec<f64> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| (a.1 - b.1) as f64 / secs)
            .collect();
        self.secs("measure_s", Some(d), "time measured");
        self.fig(
            "bytes_per_node_s",
            mean(&bytes),
            "B/s",
            "mean bytes sent per node per second",
        );
        self.fig(
            "packets_per_node_s",
            mean(&packets),
            "pkt/s",
            "mean datagrams sent per node per second",
        );
        self.fig("bytes_per_node_s_max", max(&bytes), "B/s", "busiest node");
        self.fig(
            "packets_per_node_s_max",
            max(&packets),
            "pkt/s",
            "busiest node",
        );
        Ok(())
    }
}
