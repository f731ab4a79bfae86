//! The `join` scenario: how long N nodes take to find each other.
//!
//! Every node joins through node 0 at t=0; the figure is the time until
//! every node lists all N as live (`converge_s`), and the bytes each node
//! sent until then.

use super::harness::{Outcome, Run};
use super::report::Value;

impl Run<'_> {
    pub(super) fn join(&mut self) -> Outcome {
        self.converge()?;
        let per_node = self.sim.stats().bytes_sent as f64 / self.cfg.nodes as f64;
        self.fig(
            "join_bytes_per_node",
            Value::Float(per_node),
            "B",
            "bytes sent per node until converged",
        );
        Ok(())
    }
}
