//! Where phi decides: the per-member phi-accrual detectors
//! ([`PhiDetector`]) fed with every piece of evidence of a member's life
//! (acks of this node's probes, late ones included, and rising key/value
//! heartbeats), and the veto they cast on a failed probe.

use crate::config::Config;
use crate::hash::{fixed_map, FixedMap};
use crate::membership::phi::{PhiDetector, PhiParams};
use crate::membership::state::MemberId;
use crate::Time;

/// One phi-accrual detector per member this node has evidence of.
pub(crate) struct Detectors {
    by_member: FixedMap<MemberId, PhiDetector>,
}

impl Detectors {
    /// No detectors yet; the map is keyed with `seed`.
    pub(crate) fn new(seed: u64) -> Detectors {
        Detectors {
            by_member: fixed_map(seed),
        }
    }

    /// Evidence that `id` is alive at `now`.
    pub(crate) fn evidence(&mut self, config: &Config, id: MemberId, now: Time) {
        let window = config.phi_window;
        self.by_member
            .entry(id)
            .or_insert_with(|| PhiDetector::new(window))
            .heartbeat(now);
    }

    /// The suspicion level of `id` at `now`, if there is evidence of it.
    pub(crate) fn phi(&self, config: &Config, id: MemberId, now: Time) -> Option<f64> {
        let d = self.by_member.get(&id)?;
        Some(d.phi(now, params(config)))
    }

    /// Phi's say on a failed probe of `id`: veto the suspicion when its
    /// evidence of life is recent (within one probe interval) and on its
    /// usual rhythm (phi below the threshold). A crashed member sends
    /// nothing, so a veto delays its detection by at most one interval.
    pub(crate) fn vetoes(&self, config: &Config, id: MemberId, now: Time) -> bool {
        if !config.phi {
            return false;
        }
        let Some(d) = self.by_member.get(&id) else {
            return false;
        };
        let recent = d
            .last_heartbeat()
            .is_some_and(|t| now.saturating_since(t) < config.probe_interval);
        recent && d.mean_interval().is_some() && d.phi(now, params(config)) < config.phi_threshold
    }

    /// Forgets a reaped member.
    pub(crate) fn forget(&mut self, id: MemberId) {
        self.by_member.remove(&id);
    }
}

fn params(config: &Config) -> PhiParams {
    PhiParams {
        min_std_dev: config.phi_min_std_dev,
        acceptable_pause: config.phi_acceptable_pause,
        first_interval: config.probe_interval,
    }
}
