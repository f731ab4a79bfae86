//! Quorum elections. An election and every vote are bus
//! items, so they reach every node (and nodes joining while the election
//! runs) and die at the election's expiry. Every node keeps a tally per
//! election: the distinct voters' votes.
//!
//! * **One winner**: only the election's creator raises [`Event::Quorum`],
//!   once, when its tally holds `min` yes votes before the expiry. The
//!   creator is one node, so at most one `Quorum` per election, whatever
//!   the network does; the cost is that a creator that dies or is cut off
//!   from the voters decides nothing (the election expires).
//! * **One vote per voter and topic**: a node votes once on a topic, and
//!   its first vote is final (a second vote item of the same voter for the
//!   same election is ignored everywhere). If two nodes created elections
//!   on the same topic concurrently (on both sides of a partition, say),
//!   each voter's vote goes to one of them (the lowest by (Lamport time,
//!   creator, sequence) that it knows), so with `min > total / 2` and at
//!   most `total` voters, at most one of them can reach a quorum.
//! * **Learning of one**: every node but the creator raises
//!   [`Event::ElectionStarted`] when the election reaches it, which is when
//!   [`Endpoint::vote`](crate::Endpoint::vote) can be called there.
//! * **Expiry**: at the expiry every node that knew the election and did
//!   not count `min` yes votes raises [`Event::ElectionExpired`].

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::Duration;

use compact_str::CompactString;

use super::state::{BusState, Elections, Tally};
use super::table::item_key;
use super::types::BusError;
use crate::context::Ctx;
use crate::event::Event;
use crate::wire::{self, Message};
use crate::Time;

impl Tally {
    fn yes(&self) -> usize {
        self.votes.values().filter(|y| **y).count()
    }
}

impl Elections {
    /// The live election on `topic` a vote goes to: the lowest by (Lamport
    /// time, creator, sequence), so every voter that knows the same
    /// elections picks the same one.
    fn on_topic(&self, topic: &str, now: Time) -> Option<(u64, &Tally)> {
        self.tallies
            .iter()
            .filter(|(_, t)| t.topic.as_deref() == Some(topic) && now < t.expires)
            .min_by(|(_, a), (_, b)| {
                (a.lamport, &a.creator, a.seq).cmp(&(b.lamport, &b.creator, b.seq))
            })
            .map(|(k, t)| (*k, t))
    }
}

impl BusState {
    /// Creates an election on `topic`: it succeeds when `min` of the
    /// `total` voters vote yes before `expire` passes. This node (the
    /// creator) then raises [`Event::Quorum`]; otherwise every node that
    /// knew the election raises [`Event::ElectionExpired`] at the expiry.
    /// With `min > total / 2`, two elections on one topic never both
    /// succeed (see the module docs of the rules and their limits).
    pub(crate) fn election(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        topic: &str,
        expire: Duration,
        min: u32,
        total: u32,
    ) -> Result<(), BusError> {
        self.check_bus_call(cx, topic, &[], expire)?;
        let max_total = cx.config.max_votes_per_election;
        if min == 0 || min > total || total as usize > max_total {
            return Err(BusError::BadQuorum {
                min,
                total,
                max_total,
            });
        }
        if self.elections.on_topic(topic, now).is_some() {
            return Err(BusError::ElectionExists);
        }
        if self.elections.tallies.len() >= cx.config.max_elections {
            return Err(BusError::TooManyElections {
                max: cx.config.max_elections,
            });
        }
        let head = self.new_head(now, expire);
        let msg = Message::Election(wire::Election {
            head,
            topic,
            min,
            total,
        });
        let key = self.originate(cx, &msg)?;
        let me = CompactString::from(cx.config.name.as_str());
        // In milliseconds, as every other node computes it from the item.
        let expires = Time::from_millis(head.at_ms.saturating_add(head.ttl_ms));
        let tally = self.tally(cx, key, &me, head.seq, expires);
        if let Some(t) = tally {
            t.topic = Some(CompactString::from(topic));
            t.lamport = head.lamport;
            t.min = min;
            t.mine = true;
        }
        self.push_new(cx, key, None);
        Ok(())
    }

    /// Votes on the live election on `topic` this node knows (the lowest
    /// one if several nodes created one). Once per topic: the first vote
    /// is final.
    pub(crate) fn vote(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        topic: &str,
        yes: bool,
    ) -> Result<(), BusError> {
        if self.elections.voted.contains_key(topic) {
            return Err(BusError::AlreadyVoted);
        }
        let Some((key, t)) = self.elections.on_topic(topic, now) else {
            return Err(BusError::UnknownElection);
        };
        let (creator, election, expires) = (t.creator.clone(), t.seq, t.expires);
        let ttl = Duration::from_millis(expires.as_millis().saturating_sub(now.as_millis()).max(1));
        self.check_bus_call(cx, topic, &[], ttl)?;
        let head = self.new_head(now, ttl);
        let msg = Message::Vote(wire::Vote {
            head,
            creator: &creator,
            election,
            yes,
        });
        let vote_key = self.originate(cx, &msg)?;
        self.elections
            .voted
            .insert(CompactString::from(topic), expires);
        let me = CompactString::from(cx.config.name.as_str());
        self.count_vote(cx, now, key, me, yes);
        self.push_new(cx, vote_key, None);
        Ok(())
    }

    /// The tally of election `key`, made (empty) if new and within
    /// `max_elections`; `None` (counted) beyond it.
    fn tally(
        &mut self,
        cx: &mut Ctx<'_>,
        key: u64,
        creator: &CompactString,
        seq: u64,
        expires: Time,
    ) -> Option<&mut Tally> {
        let elections = &mut self.elections;
        if !elections.tallies.contains_key(&key) {
            if elections.tallies.len() >= cx.config.max_elections {
                cx.drop("election_limit");
                return None;
            }
            elections.expiries.push(Reverse((expires, key)));
            elections.tallies.insert(
                key,
                Tally {
                    topic: None,
                    creator: creator.clone(),
                    seq,
                    lamport: 0,
                    min: u32::MAX,
                    expires,
                    votes: BTreeMap::new(),
                    mine: false,
                    reached: false,
                },
            );
        }
        elections.tallies.get_mut(&key)
    }

    pub(super) fn receive_election(&mut self, cx: &mut Ctx<'_>, now: Time, e: &wire::Election<'_>) {
        let key = item_key(e.head.origin, e.head.seq);
        let expires = Time::from_millis(e.head.at_ms.saturating_add(e.head.ttl_ms));
        let creator = CompactString::from(e.head.origin);
        let Some(t) = self.tally(cx, key, &creator, e.head.seq, expires) else {
            return;
        };
        let moved = t.expires != expires;
        let first = t.topic.is_none();
        t.topic = Some(CompactString::from(e.topic));
        t.lamport = e.head.lamport;
        t.min = e.min;
        t.expires = expires;
        if moved {
            self.elections.expiries.push(Reverse((expires, key)));
        }
        if first && e.head.origin != cx.config.name {
            cx.event(Event::ElectionStarted {
                topic: e.topic.to_owned(),
                creator: e.head.origin.to_owned(),
                min: e.min,
                total: e.total,
            });
        }
        self.check_quorum(cx, now, key);
    }

    pub(super) fn receive_vote(&mut self, cx: &mut Ctx<'_>, now: Time, v: &wire::Vote<'_>) {
        let key = item_key(v.creator, v.election);
        let expires = Time::from_millis(v.head.at_ms.saturating_add(v.head.ttl_ms));
        if self
            .tally(
                cx,
                key,
                &CompactString::from(v.creator),
                v.election,
                expires,
            )
            .is_none()
        {
            return;
        }
        self.count_vote(cx, now, key, CompactString::from(v.head.origin), v.yes);
    }

    /// Counts `voter`'s vote in election `key` (its first vote only, within
    /// `max_votes_per_election`).
    fn count_vote(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        key: u64,
        voter: CompactString,
        yes: bool,
    ) {
        let max = cx.config.max_votes_per_election;
        let Some(t) = self.elections.tallies.get_mut(&key) else {
            return;
        };
        if t.votes.contains_key(&voter) {
            cx.drop("vote_repeated");
            return;
        }
        if t.votes.len() >= max {
            cx.drop("vote_limit");
            return;
        }
        t.votes.insert(voter, yes);
        self.check_quorum(cx, now, key);
    }

    /// Marks election `key` reached once it has `min` yes votes before its
    /// expiry, and raises the quorum if this node created it.
    fn check_quorum(&mut self, cx: &mut Ctx<'_>, now: Time, key: u64) {
        let Some(t) = self.elections.tallies.get_mut(&key) else {
            return;
        };
        if t.reached || now >= t.expires || t.yes() < t.min as usize {
            return;
        }
        t.reached = true;
        if let (true, Some(topic)) = (t.mine, &t.topic) {
            let voters = t
                .votes
                .iter()
                .filter(|(_, y)| **y)
                .map(|(v, _)| v.to_string())
                .collect();
            cx.event(Event::Quorum {
                topic: topic.to_string(),
                creator: t.creator.to_string(),
                voters,
            });
        }
    }

    pub(super) fn run_election_timers(&mut self, cx: &mut Ctx<'_>, now: Time) {
        let elections = &mut self.elections;
        while let Some(Reverse((t, _))) = elections.expiries.peek() {
            if *t > now {
                break;
            }
            let Reverse((t, key)) = elections.expiries.pop().expect("peeked");
            if elections.tallies.get(&key).is_none_or(|e| e.expires != t) {
                continue; // gone, or its expiry moved
            }
            let tally = elections.tallies.remove(&key).expect("checked");
            if let (false, Some(topic)) = (tally.reached, tally.topic.as_ref()) {
                cx.event(Event::ElectionExpired {
                    topic: topic.to_string(),
                    creator: tally.creator.to_string(),
                    yes: tally.yes(),
                });
            }
        }
        elections.voted.retain(|_, until| now < *until);
    }
}
