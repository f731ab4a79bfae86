//! SWIM's failure detector: one probe per interval, round-robin over a
//! shuffled member list; a direct ping, then ping-req through
//! `indirect_checks` members once the probe timeout passes, then a
//! suspicion if nothing answered by the end of the interval. Lifeguard
//! scales both timeouts by the local health multiplier, asks relays for
//! nacks (missing nacks mean the trouble is ours), and carries a suspicion
//! on the probe of a suspect (the buddy system) so it can refute at once.

use std::net::SocketAddr;

use compact_str::CompactString;
use rand::Rng;

use super::Endpoint;
use crate::event::MemberState;
use crate::membership::state::MemberId;
use crate::wire::{self, Message};
use crate::Time;

/// The probe in flight.
#[derive(Debug)]
pub(super) struct Probe {
    target: MemberId,
    target_name: CompactString,
    seq: u32,
    /// When to fall back to indirect probes.
    pub(super) timeout_at: Time,
    /// End of this probe's interval: no ack by then means suspect.
    pub(super) deadline: Time,
    pub(super) indirect_sent: bool,
    pub(super) acked: bool,
    expected_nacks: u32,
    nacks: u32,
}

impl Probe {
    /// Every relay asked has reported that the target is silent too: the
    /// direct and all indirect paths failed, and waiting for the rest of the
    /// interval would only delay the suspicion. (memberlist waits out the
    /// interval; this is where vinery gains on first detection.)
    fn conclusively_failed(&self) -> bool {
        !self.acked
            && self.indirect_sent
            && self.expected_nacks > 0
            && self.nacks >= self.expected_nacks
    }
}

/// Probes remembered after they end, so that a late ack still counts as
/// evidence of its target's life.
pub(super) const RECENT_PROBES: usize = 8;

/// A ping-req this node is relaying for another member.
#[derive(Debug)]
pub(super) struct Relay {
    requester: SocketAddr,
    seq: u32,
    nack: bool,
}

impl Endpoint {
    /// Advances the probe cycle to `now`.
    pub(super) fn run_probe(&mut self, now: Time) {
        if let Some(p) = &self.probe {
            if !p.acked && !p.indirect_sent && now >= p.timeout_at {
                self.send_ping_reqs();
            }
        }
        if let Some(p) = &self.probe {
            if now >= p.deadline || p.conclusively_failed() {
                let p = self.probe.take().expect("checked above");
                if !p.acked {
                    self.probe_failed(now, p);
                }
            }
        }
        if self.probe.is_none() && now >= self.next_probe {
            self.start_probe(now);
        }
    }

    fn next_target(&mut self) -> Option<MemberId> {
        if let Some(id) = self.reprobe.take() {
            if self.members.get(id).is_some_and(|r| r.is_live()) {
                return Some(id);
            }
        }
        for _ in 0..=self.probe_order.len() {
            if self.probe_pos >= self.probe_order.len() {
                self.probe_pos = 0;
                // Reshuffle after each full pass (Fisher-Yates).
                for i in (1..self.probe_order.len()).rev() {
                    let j = self.rng.random_range(0..=i);
                    self.probe_order.swap(i, j);
                }
            }
            let &id = self.probe_order.get(self.probe_pos)?;
            self.probe_pos += 1;
            if id != self.me && self.members.get(id).is_some_and(|r| r.is_live()) {
                return Some(id);
            }
        }
        None
    }

    /// Puts a newly known member at a random place in the probe order, so
    /// that it is probed within one pass but not by everyone at once.
    pub(super) fn add_to_probe_order(&mut self, id: MemberId) {
        let at = self.rng.random_range(0..=self.probe_order.len());
        self.probe_order.insert(at, id);
        if at < self.probe_pos {
            self.probe_pos += 1;
        }
    }

    pub(super) fn remove_from_probe_order(&mut self, id: MemberId) {
        if let Some(at) = self.probe_order.iter().position(|&x| x == id) {
            self.probe_order.remove(at);
            if at < self.probe_pos {
                self.probe_pos -= 1;
            }
        }
    }

    fn start_probe(&mut self, now: Time) {
        let interval = self.awareness.scale(self.config.probe_interval);
        self.next_probe = now + interval;
        let Some(target) = self.next_target() else {
            return;
        };
        let seq = self.next_seq();
        let rec = self.members.rec(target);
        let (addr, name, incarnation, suspect) = (
            rec.addr,
            rec.name.clone(),
            rec.incarnation,
            rec.state == MemberState::Suspect,
        );
        self.out.stats.probes += 1;
        let hash = self.state_hash();
        let ping = Message::Ping(wire::Ping {
            seq,
            target: &name,
            hash,
        });
        if suspect && self.config.lifeguard {
            // Buddy system: tell the suspect directly so it can refute now
            // instead of waiting for gossip to reach it.
            let me = self.config.name.clone();
            let buddy = Message::Suspect(wire::Suspect {
                name: &name,
                incarnation,
                from: &me,
            });
            self.cx().send(addr, &[buddy, ping], true);
        } else {
            self.cx().send(addr, &[ping], true);
        }
        if self.recent_probes.len() == RECENT_PROBES {
            self.recent_probes.pop_front();
        }
        self.recent_probes.push_back((seq, target));
        self.probe = Some(Probe {
            target,
            target_name: name,
            seq,
            timeout_at: now + self.awareness.scale(self.config.probe_timeout),
            deadline: now + interval,
            indirect_sent: false,
            acked: false,
            expected_nacks: 0,
            nacks: 0,
        });
    }

    fn send_ping_reqs(&mut self) {
        let Some(p) = &self.probe else { return };
        let (target, seq, target_name) = (p.target, p.seq, p.target_name.clone());
        let Some(target_addr) = self.members.get(target).map(|r| r.addr) else {
            return;
        };
        let k = self.config.indirect_checks;
        let relays = self
            .cx()
            .sample_members(k, |id, r| id != target && r.state == MemberState::Alive);
        let nack = self.config.lifeguard;
        for &id in &relays {
            let to = self.members.rec(id).addr;
            let req = Message::PingReq(wire::PingReq {
                seq,
                target: &target_name,
                target_addr,
                nack,
            });
            self.cx().send(to, &[req], true);
        }
        self.out.stats.indirect_probes += 1;
        if let Some(p) = &mut self.probe {
            p.indirect_sent = true;
            p.expected_nacks = if nack { relays.len() as u32 } else { 0 };
        }
    }

    fn probe_failed(&mut self, now: Time, p: Probe) {
        self.out.stats.failed_probes += 1;
        if self.config.lifeguard {
            // Missing nacks mean our own packets are not getting through;
            // with nobody to ask, any failure counts against us.
            let delta = if p.expected_nacks > 0 {
                p.expected_nacks.saturating_sub(p.nacks)
            } else {
                1
            };
            self.awareness.apply(delta as i32);
        }
        let Some(rec) = self.members.get(p.target) else {
            return;
        };
        if rec.name != p.target_name || !rec.is_live() {
            return;
        }
        let incarnation = rec.incarnation;
        if rec.state == MemberState::Alive && self.phi.vetoes(&self.config, p.target, now) {
            // Evidence of life keeps arriving on its usual rhythm: more
            // likely lost packets than a failure. Probe it again next
            // interval instead of raising a suspicion now.
            self.out.stats.suspicions_vetoed += 1;
            self.reprobe = Some(p.target);
            return;
        }
        let mut since = now;
        if rec.state == MemberState::Alive && self.config.confirm_suspicion {
            match self.phi.take_held(p.target) {
                None => {
                    // Keep it to ourselves and probe the member again next
                    // interval: a late ack or a lost datagram ends it here.
                    self.out.stats.suspicions_held += 1;
                    self.phi.hold(p.target, now, self.out.stats.packets_in);
                    self.reprobe = Some(p.target);
                    return;
                }
                Some(held) if self.out.stats.packets_in == held.packets_in => {
                    // Two rounds without a single datagram from anyone:
                    // this node is the one cut off; accusing others would
                    // only spread its own deafness.
                    self.out.stats.suspicions_withheld += 1;
                    return;
                }
                // The suspicion started when the first probe failed, so the
                // confirming round does not delay detection; unless it took
                // longer than an interval (poor local health scales the
                // probes), when backdating would eat the member's time to
                // refute.
                Some(held) if now - held.since <= self.config.probe_interval => {
                    since = held.since;
                }
                Some(_) => {}
            }
        }
        let me = self.config.name.clone();
        self.apply_suspect(since, &p.target_name, incarnation, &me);
    }

    pub(super) fn handle_ack(&mut self, now: Time, seq: u32) {
        if let Some(&(_, target)) = self.recent_probes.iter().find(|(s, _)| *s == seq) {
            // Late acks count too: a slow member is alive.
            self.evidence(target, now);
        }
        if let Some(p) = &mut self.probe {
            if p.seq == seq {
                if !p.acked {
                    p.acked = true;
                    if self.config.lifeguard {
                        self.awareness.apply(-1);
                    }
                }
                return;
            }
        }
        if let Some(relay) = self.relays.remove(&seq) {
            let hash = self.state_hash();
            self.cx().send(
                relay.requester,
                &[Message::Ack(wire::Ack {
                    seq: relay.seq,
                    hash,
                })],
                true,
            );
            return;
        }
        self.out.stats.drop("unexpected_ack");
    }

    pub(super) fn handle_nack(&mut self, now: Time, seq: u32) {
        match &mut self.probe {
            Some(p) if p.seq == seq => {
                p.nacks += 1;
                if p.conclusively_failed() {
                    self.run_probe(now);
                }
            }
            _ => self.out.stats.drop("unexpected_nack"),
        }
    }

    pub(super) fn handle_ping_req(&mut self, now: Time, from: SocketAddr, r: wire::PingReq<'_>) {
        if self.relays.len() >= self.config.max_pending_relays {
            self.out.stats.drop("relay_limit");
            return;
        }
        let relay_seq = self.next_seq();
        let hash = self.state_hash();
        self.cx().send(
            r.target_addr,
            &[Message::Ping(wire::Ping {
                seq: relay_seq,
                target: r.target,
                hash,
            })],
            true,
        );
        self.relays.insert(
            relay_seq,
            Relay {
                requester: from,
                seq: r.seq,
                nack: r.nack,
            },
        );
        // Half the probe timeout: the requester already waited a full one,
        // and nacks that arrive well before its interval ends let it
        // conclude early (see `Probe::conclusively_failed`).
        self.relay_deadlines
            .push_back((now + self.config.probe_timeout / 2, relay_seq));
    }

    /// Sends nacks for relayed probes whose target stayed silent.
    pub(super) fn expire_relays(&mut self, now: Time) {
        while let Some(&(t, seq)) = self.relay_deadlines.front() {
            if t > now {
                break;
            }
            self.relay_deadlines.pop_front();
            if let Some(relay) = self.relays.remove(&seq) {
                if relay.nack {
                    self.cx().send(
                        relay.requester,
                        &[Message::Nack(wire::Nack { seq: relay.seq })],
                        false,
                    );
                }
            }
        }
    }
}
