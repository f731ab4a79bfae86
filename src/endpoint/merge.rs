//! Merging membership updates, by SWIM's precedence rules:
//!
//! Incarnations compare as serial numbers (see [`crate::serial`]): "`i > j`"
//! below means `i` is ahead of `j` by less than half the number space, so a
//! forged claim at any value can be refuted by the member it is about.
//!
//! * `Alive(i)` overrides `Alive(j)` and `Suspect(j)` when `i > j`, and
//!   `Dead(j)`/`Left(j)` when `i > j` (a restarted node comes back this way);
//! * `Suspect(i)` overrides `Alive(j)` when `i >= j`;
//! * `Dead(i)` and `Left(i)` override `Alive(j)` and `Suspect(j)` when `i >= j`.
//!
//! Only a member raises its own incarnation: told it is suspect, dead or
//! left at an incarnation at or above its own, it refutes with a higher one.
//! Every accepted change heard through gossip is re-broadcast (that is the
//! epidemic); changes learned from full-state entries (join replies, syncs)
//! are not, because anti-entropy already spreads them pair by pair, and
//! re-gossiping a whole membership after a mass join would keep every queue
//! busy for tens of seconds. Either way the user hears of it as an
//! [`Event`].

use std::net::SocketAddr;

use compact_str::CompactString;

use super::Endpoint;
use crate::event::{Event, MemberState};
use crate::hash::name_hash;
use crate::membership::state::{MemberId, MemberRecord};
use crate::serial::{at_least32, newer32};
use crate::wire::{self, Message, WireState};
use crate::Time;

/// How an update arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Via {
    /// Gossip (piggybacked or a gossip tick): re-gossip what is new.
    Gossip,
    /// A full-state entry: anti-entropy spreads it, no re-gossip.
    Sync,
}

impl Endpoint {
    pub(super) fn apply_alive(&mut self, now: Time, a: wire::Alive<'_>, via: Via) {
        if a.name == self.config.name {
            let own = self.members.rec(self.me);
            let same =
                a.incarnation == own.incarnation && a.addr == own.addr && *a.meta.0 == *own.meta;
            if !at_least32(a.incarnation, own.incarnation) || same {
                return;
            }
            if a.addr != own.addr && self.name_contested(now, a.addr, via) {
                return;
            }
            // A record of a previous life of ours (or a forgery).
            self.refute(a.incarnation);
            return;
        }
        let Some(id) = self.members.find(a.name) else {
            if self.members.len() >= self.config.max_members {
                self.out.stats.drop("member_limit");
                return;
            }
            if self.introduced >= self.config.max_introductions_per_datagram {
                self.out.stats.drop("introduction_limit");
                return;
            }
            self.introduced += 1;
            let id = self.members.insert(MemberRecord {
                name: CompactString::from(a.name),
                addr: a.addr,
                incarnation: a.incarnation,
                state: MemberState::Alive,
                state_since: now,
                meta: a.meta.0.into(),
                name_hash: name_hash(a.name),
            });
            self.add_to_probe_order(id);
            if via == Via::Gossip {
                self.cx().broadcast(a.name, &Message::Alive(a));
            }
            self.cx().member_event(Event::MemberJoined, id);
            return;
        };
        let rec = self.members.rec(id);
        if !newer32(a.incarnation, rec.incarnation) {
            return;
        }
        let old_state = rec.state;
        let changed = rec.addr != a.addr || *rec.meta != *a.meta.0;
        self.members.update(id, |r| {
            r.incarnation = a.incarnation;
            r.addr = a.addr;
            if changed {
                r.meta = a.meta.0.into();
            }
            if r.state != MemberState::Alive {
                r.state = MemberState::Alive;
                r.state_since = now;
            }
        });
        self.suspicions.end(id);
        if matches!(old_state, MemberState::Dead | MemberState::Left) {
            // Forgotten-but-retained members left the probe order when they
            // failed; put them back.
            self.remove_from_probe_order(id);
            self.add_to_probe_order(id);
        }
        if via == Via::Gossip {
            self.cx().broadcast(a.name, &Message::Alive(a));
        }
        match old_state {
            MemberState::Alive if changed => self.cx().member_event(Event::MemberUpdated, id),
            MemberState::Alive => {}
            MemberState::Suspect | MemberState::Dead => {
                self.cx().member_event(Event::MemberRecovered, id)
            }
            MemberState::Left => self.cx().member_event(Event::MemberJoined, id),
        }
    }

    /// The member an accusation (suspect, dead, left) at `incarnation` is
    /// about, if it is another known member and the accusation is not stale.
    /// An accusation of this node is refuted here instead, and reported
    /// ([`Event::SelfAccused`]) if `claim` is `Suspect` or `Dead`; `by` is
    /// the accuser.
    fn accused(
        &mut self,
        name: &str,
        incarnation: u32,
        claim: MemberState,
        by: &str,
    ) -> Option<MemberId> {
        if name == self.config.name {
            if at_least32(incarnation, self.members.rec(self.me).incarnation)
                && self.refute(incarnation)
                && matches!(claim, MemberState::Suspect | MemberState::Dead)
            {
                // Being suspected usually means this node's packets are late
                // or lost; the refutation hides that from everyone but the
                // counters, so the application hears of it. Raised only
                // when a refutation happens, so a flood of stale claims
                // (below our incarnation) raises nothing.
                self.cx().event(Event::SelfAccused {
                    name: name.to_owned(),
                    state: claim,
                    incarnation,
                    by: by.to_owned(),
                });
            }
            return None;
        }
        let id = self.members.find(name)?;
        at_least32(incarnation, self.members.rec(id).incarnation).then_some(id)
    }

    pub(super) fn apply_suspect(&mut self, now: Time, name: &str, incarnation: u32, from: &str) {
        let Some(id) = self.accused(name, incarnation, MemberState::Suspect, from) else {
            return;
        };
        match self.members.rec(id).state {
            MemberState::Dead | MemberState::Left => {}
            MemberState::Suspect if newer32(incarnation, self.members.rec(id).incarnation) => {
                // The member refuted the suspicion we hold (it is alive at a
                // higher incarnation) and is suspected afresh: that is a new
                // suspicion with its own timer, not a confirmation of the
                // refuted one. (memberlist counts it as a confirmation and
                // can declare a slow but living member dead at the stale
                // incarnation; the `slow` scenario showed it.)
                self.suspect_anew(now, id, name, incarnation, from);
            }
            MemberState::Suspect => {
                if self.suspicions.confirm(id, from) {
                    let msg = Message::Suspect(wire::Suspect {
                        name,
                        incarnation,
                        from,
                    });
                    self.cx().broadcast(name, &msg);
                }
            }
            MemberState::Alive => {
                self.suspect_anew(now, id, name, incarnation, from);
                self.cx().member_event(Event::MemberSuspect, id);
            }
        }
    }

    /// Starts a suspicion of `id` at `incarnation` by `from`, and spreads it.
    fn suspect_anew(&mut self, now: Time, id: MemberId, name: &str, incarnation: u32, from: &str) {
        self.members.update(id, |r| {
            r.incarnation = incarnation;
            r.state = MemberState::Suspect;
            r.state_since = now;
        });
        self.out.stats.suspicions += 1;
        let live = self.members.live_count();
        self.suspicions.start(&self.config, live, now, id, from);
        self.cx().broadcast(
            name,
            &Message::Suspect(wire::Suspect {
                name,
                incarnation,
                from,
            }),
        );
    }

    /// Declares dead every suspect whose timer ran out.
    pub(super) fn expire_suspicions(&mut self, now: Time) {
        while let Some(id) = self.suspicions.pop_expired(now) {
            let rec = self.members.rec(id);
            let (name, incarnation) = (rec.name.clone(), rec.incarnation);
            self.out.stats.deaths_declared += 1;
            let me = self.config.name.clone();
            self.apply_dead(now, &name, incarnation, &me);
        }
    }

    pub(super) fn apply_dead(&mut self, now: Time, name: &str, incarnation: u32, from: &str) {
        if name == self.config.name {
            // If this node yielded its name, the holder failed: it is free.
            self.name_claim.reclaim();
        }
        let Some(id) = self.accused(name, incarnation, MemberState::Dead, from) else {
            return;
        };
        if !self.members.rec(id).is_live() {
            return;
        }
        self.set_gone(now, id, incarnation, MemberState::Dead);
        self.cx().broadcast(
            name,
            &Message::Dead(wire::Dead {
                name,
                incarnation,
                from,
            }),
        );
        self.cx().member_event(Event::MemberFailed, id);
    }

    pub(super) fn apply_left(&mut self, now: Time, name: &str, incarnation: u32, via: Via) {
        // A leave names no sender, and is no accusation anyway.
        let Some(id) = self.accused(name, incarnation, MemberState::Left, "") else {
            return;
        };
        if self.members.rec(id).state == MemberState::Left {
            return;
        }
        self.set_gone(now, id, incarnation, MemberState::Left);
        if via == Via::Gossip {
            self.cx()
                .broadcast(name, &Message::Left(wire::Left { name, incarnation }));
        }
        self.cx().member_event(Event::MemberLeft, id);
    }

    fn set_gone(&mut self, now: Time, id: MemberId, incarnation: u32, state: MemberState) {
        let was_live = self.members.rec(id).is_live();
        self.members.update(id, |r| {
            r.incarnation = incarnation;
            r.state = state;
            r.state_since = now;
        });
        self.suspicions.end(id);
        if was_live {
            self.gone.push(id);
        }
    }

    /// Another node claims this node's name from `theirs`: counts it,
    /// reports it as the name claim decides (membership/conflict.rs), and
    /// returns whether this node yields the name.
    fn name_contested(&mut self, now: Time, theirs: SocketAddr, via: Via) -> bool {
        self.out.stats.name_conflicts += 1;
        let settle = self.config.probe_interval * self.config.suspicion_mult;
        let contest = self.name_claim.contest(
            now,
            theirs,
            settle,
            self.clock.first(),
            via == Via::Sync,
            self.config.allow_name_takeover,
        );
        if contest.report {
            let event = Event::MemberConflict {
                name: self.config.name.clone(),
                ours: self.addr,
                theirs,
            };
            self.cx().event(event);
        }
        contest.yielded
    }

    /// Raises our incarnation above `accused` and tells everyone; returns
    /// whether it did (a node that left or yielded its name does not).
    fn refute(&mut self, accused: u32) -> bool {
        if self.left || self.name_claim.yielded() {
            return false;
        }
        let own = self.members.rec(self.me).incarnation;
        // Serial order: the answer is newer than the claim whatever its
        // value, so no claim can put this node beyond refuting.
        let incarnation = if newer32(accused, own) { accused } else { own }.wrapping_add(1);
        self.members
            .update(self.me, |r| r.incarnation = incarnation);
        self.out.stats.refutations += 1;
        if self.config.lifeguard {
            // Being suspected is a sign our own packets are late or lost.
            self.awareness.apply(1);
        }
        self.broadcast_own_alive();
        true
    }

    /// Queues this node's current alive record for dissemination.
    pub(super) fn broadcast_own_alive(&mut self) {
        let rec = self.members.rec(self.me);
        let (name, addr, incarnation, meta) = (
            rec.name.clone(),
            rec.addr,
            rec.incarnation,
            rec.meta.clone(),
        );
        let alive = wire::Alive {
            name: &name,
            addr,
            incarnation,
            meta: wire::Bytes(&meta),
        };
        self.cx().broadcast(&name, &Message::Alive(alive));
    }

    /// Merges one full-state entry from a join reply or a sync, as a claim
    /// by `claimant`. A remote `Dead` is only a suspicion here (memberlist's
    /// rule): after a partition heals each side holds the other as dead,
    /// and believing that outright would fail healthy members wholesale.
    /// Counting the claimant as the accuser lets several peers' claims
    /// confirm it through Lifeguard's timer, while the suspect refutes.
    pub(super) fn merge_entry(&mut self, now: Time, m: wire::MemberEntry<'_>, claimant: &str) {
        let alive = wire::Alive {
            name: m.name,
            addr: m.addr,
            incarnation: m.incarnation,
            meta: m.meta,
        };
        match m.state {
            WireState::Alive => self.apply_alive(now, alive, Via::Sync),
            WireState::Left => self.apply_left(now, m.name, m.incarnation, Via::Sync),
            WireState::Dead if m.name == self.config.name => {
                // Refuted either way; as a death it also frees a name this
                // node yielded.
                self.apply_dead(now, m.name, m.incarnation, claimant);
            }
            WireState::Suspect | WireState::Dead => {
                if self.members.find(m.name).is_none() && m.name != self.config.name {
                    if m.state == WireState::Dead {
                        // A failure we never knew the member of: nothing to do.
                        return;
                    }
                    // Learn of it first, so the suspicion has a record.
                    self.apply_alive(now, alive, Via::Sync);
                }
                self.apply_suspect(now, m.name, m.incarnation, claimant);
            }
        }
    }
}
