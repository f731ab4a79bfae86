//! Where the next deadline is computed, and where due timers run: SWIM's
//! own (probe, relays, suspicions, gossip, sync, join, reconnect) and each
//! feature's, which it exposes as `next_deadline` and runs in
//! `run_timers`.

use super::Endpoint;
use crate::Time;

impl Endpoint {
    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        self.observe_time(now);
        let (kv, bus, mut cx) = self.split();
        kv.run_timers(&mut cx, now);
        bus.run_timers(&mut cx, now);
        if !self.left {
            self.run_probe(now);
        }
        self.expire_relays(now);
        // After probing: a failed probe can confirm a suspicion and pull its
        // deadline into the past.
        self.expire_suspicions(now);
        if now >= self.next_gossip {
            let (kv, bus, mut cx) = self.split();
            kv.gossip_tick(&mut cx, now);
            bus.gossip_tick(&mut cx, now);
            if !cx.out.queue.is_empty() {
                cx.gossip(now);
            }
            self.next_gossip = now + self.config.gossip_interval;
        }
        if self.left {
            return;
        }
        self.run_sync(now);
        if let Some(j) = &self.joining {
            if self.members.live_count() > 1 {
                self.joining = None;
            } else if now >= j.next_retry {
                self.send_joins(now);
            }
        }
        if now >= self.next_reconnect {
            self.next_reconnect = now + self.config.reconnect_interval;
            self.reap(now);
            self.reconnect(now);
        }
    }

    /// The next time [`Endpoint::handle_timeout`] has work, if any. A quiet
    /// cluster asks only for its probe timer: gossip, sync and reconnect
    /// timers are armed only while they have something to do. Never
    /// earlier than the latest time the endpoint was given: work already
    /// due is due "now", not in the past.
    pub fn poll_timeout(&self) -> Option<Time> {
        let mut next = Earliest::default();
        if !self.left {
            next.consider(Some(match &self.probe {
                Some(p) if !p.acked && !p.indirect_sent => p.timeout_at,
                Some(p) => p.deadline,
                None => self.next_probe,
            }));
            next.consider(self.out_of_sync.map(|_| self.next_sync));
            next.consider(self.joining.as_ref().map(|j| j.next_retry));
            next.consider((!self.gone.is_empty()).then_some(self.next_reconnect));
        }
        next.consider(self.relay_deadlines.front().map(|(t, _)| *t));
        next.consider(self.suspicions.next_deadline());
        let gossip = !self.out.queue.is_empty()
            || self.kv.wants_gossip(self.clock.latest())
            || self.bus.wants_gossip();
        next.consider(gossip.then_some(self.next_gossip));
        next.consider(self.kv.next_deadline());
        next.consider(self.bus.next_deadline());
        next.0.map(|t| t.max(self.clock.latest()))
    }
}

/// The earliest of the deadlines considered.
#[derive(Default)]
struct Earliest(Option<Time>);

impl Earliest {
    fn consider(&mut self, t: Option<Time>) {
        if let Some(t) = t {
            self.0 = Some(self.0.map_or(t, |n| n.min(t)));
        }
    }
}
