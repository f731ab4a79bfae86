//! Where phi decides: the per-member phi-accrual detectors
//! ([`PhiDetector`]) fed with every piece of evidence of a member's life
//! (acks of this node's probes, late ones included, and rising key/value
//! heartbeats), the veto they cast on a failed probe, and the suspicion
//! a failed probe raises but this node holds back until a second probe of
//! the same member confirms it ([`Held`]).

use crate::config::Config;
use crate::hash::{fixed_map, FixedMap};
use crate::membership::phi::{PhiDetector, PhiParams};
use crate::membership::state::MemberId;
use crate::Time;

/// One phi-accrual detector per member this node has evidence of.
pub(crate) struct Detectors {
    by_member: FixedMap<MemberId, PhiDetector>,
    held: Option<Held>,
}

/// A suspicion raised by a failed probe and kept to this node until the
/// next probe of the same member fails too ([`Config::confirm_suspicion`]).
/// Most false suspicions (a late ack, a lost datagram) end here without a
/// single datagram to the rest of the cluster.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Held {
    /// The member suspected.
    pub(crate) target: MemberId,
    /// When the first probe failed: the suspicion's start once confirmed.
    pub(crate) since: Time,
    /// Datagrams this node had received when the first probe failed: if
    /// none arrived since, from anyone, the silence is more likely its own
    /// (it hears nobody) than the member's.
    pub(crate) packets_in: u64,
}

impl Detectors {
    /// No detectors yet; the map is keyed with `seed`.
    pub(crate) fn new(seed: u64) -> Detectors {
        Detectors {
            by_member: fixed_map(seed),
            held: None,
        }
    }

    /// Evidence that `id` is alive at `now`; ends a held suspicion of it.
    pub(crate) fn evidence(&mut self, config: &Config, id: MemberId, now: Time) {
        if self.held.is_some_and(|h| h.target == id) {
            self.held = None;
        }
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

    /// Holds a suspicion of `target`, whose probe failed at `now` when
    /// this node had received `packets_in` datagrams.
    pub(crate) fn hold(&mut self, target: MemberId, now: Time, packets_in: u64) {
        self.held = Some(Held {
            target,
            since: now,
            packets_in,
        });
    }

    /// Ends and returns the held suspicion of `id`, if there is one.
    pub(crate) fn take_held(&mut self, id: MemberId) -> Option<Held> {
        self.held.take_if(|h| h.target == id)
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
