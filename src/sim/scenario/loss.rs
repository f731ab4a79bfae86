//! The `loss` scenario: false alarms under random packet loss.
//!
//! After the cluster converged, the network loses
//! [`ScenarioConfig::loss`](super::ScenarioConfig::loss) of all datagrams
//! for the phase's length; every suspicion or Dead of a (healthy) node is a
//! false alarm. Then the loss ends and the cluster must list every node
//! again.

use super::harness::{Outcome, Run};
use super::report::Value;

impl Run<'_> {
    pub(super) fn loss(&mut self) -> Outcome {
        let d = self.cfg.phase_length();
        self.converge()?;
        self.settle();
        let mut alarms = self.watch_alarms();
        self.sim.set_loss(self.cfg.loss);
        self.run_phase("lossy", d, |sim| {
            alarms.count(sim.take_event_log(), |_| false)
        });
        self.sim.set_loss(self.cfg.network.loss);
        self.fig("loss", Value::Float(self.cfg.loss), "", "loss probability");
        self.secs("loss_s", Some(d), "time under loss");
        self.alarm_figures(&alarms);
        self.reconverge("the loss ended")
    }
}
