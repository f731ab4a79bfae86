//! The endpoint's event-bus calls: each takes in the time and hands the
//! call to [`BusState`](crate::bus::BusState), where the bus lives.

use std::time::Duration;

use super::Endpoint;
use crate::bus::{BusError, EventId, QueryFilter, QueryId};
use crate::Time;

impl Endpoint {
    /// Says `name` with `payload` to every other live node, which each
    /// receive it once as [`Event::UserEvent`](crate::Event::UserEvent)
    /// while `duration` lasts (nodes joining meanwhile too); after it,
    /// nobody does. This node does not hear its own events.
    pub fn say(
        &mut self,
        now: Time,
        name: &str,
        payload: &[u8],
        duration: Duration,
    ) -> Result<EventId, BusError> {
        self.observe_time(now);
        let (_, bus, mut cx) = self.split();
        bus.say(&mut cx, now, name, payload, duration, false)
    }

    /// Like [`Endpoint::say`], but receivers coalesce: of the events of
    /// this name arriving within `event_coalesce_window`, each delivers
    /// only the latest (by Lamport time, as serf's coalesced user events),
    /// at the end of the window.
    pub fn say_coalesced(
        &mut self,
        now: Time,
        name: &str,
        payload: &[u8],
        duration: Duration,
    ) -> Result<EventId, BusError> {
        self.observe_time(now);
        let (_, bus, mut cx) = self.split();
        bus.say(&mut cx, now, name, payload, duration, true)
    }

    /// This node's Lamport clock: above the Lamport time of every bus item
    /// it made or received.
    pub fn lamport(&self) -> u64 {
        self.bus.lamport()
    }

    /// Bus items (events, queries, elections, votes) alive and held here.
    pub fn active_bus_items(&self) -> usize {
        self.bus.items()
    }

    /// Asks the nodes matching `filter` (every node but this one, by
    /// default) `name` with `payload`. Each raises
    /// [`Event::Query`](crate::Event::Query) and acks; this node reports
    /// [`Event::QueryAck`](crate::Event::QueryAck) and
    /// [`Event::QueryResponse`](crate::Event::QueryResponse) as they arrive
    /// (one of each per node), then
    /// [`Event::QueryDone`](crate::Event::QueryDone) after `timeout`, when
    /// answers stop being taken. This node does not receive its own query.
    pub fn query(
        &mut self,
        now: Time,
        name: &str,
        payload: &[u8],
        timeout: Duration,
        filter: &QueryFilter,
    ) -> Result<QueryId, BusError> {
        self.observe_time(now);
        let (_, bus, mut cx) = self.split();
        bus.query(&mut cx, now, name, payload, timeout, filter)
    }

    /// Answers the query `id` (received as
    /// [`Event::Query`](crate::Event::Query)) with `payload`, straight to
    /// the asker. Once per query, while it lives.
    pub fn respond(&mut self, now: Time, id: &QueryId, payload: &[u8]) -> Result<(), BusError> {
        self.observe_time(now);
        let (_, bus, mut cx) = self.split();
        bus.respond(&mut cx, id, payload)
    }

    /// Queries of this node still waiting for answers.
    pub fn pending_queries(&self) -> usize {
        self.bus.pending_queries()
    }

    /// Creates an election on `topic`: it succeeds when `min` of the
    /// `total` voters vote yes before `expire` passes. This node (the
    /// creator) then raises [`Event::Quorum`](crate::Event::Quorum);
    /// otherwise every node that knew the election raises
    /// [`Event::ElectionExpired`](crate::Event::ElectionExpired) at the
    /// expiry. With `min > total / 2`, two elections on one topic never
    /// both succeed (see `bus/election.rs` for the rules and their limits).
    pub fn election(
        &mut self,
        now: Time,
        topic: &str,
        expire: Duration,
        min: u32,
        total: u32,
    ) -> Result<(), BusError> {
        self.observe_time(now);
        let (_, bus, mut cx) = self.split();
        bus.election(&mut cx, now, topic, expire, min, total)
    }

    /// Votes on the live election on `topic` this node knows (the lowest
    /// one if several nodes created one). Once per topic: the first vote
    /// is final.
    pub fn vote(&mut self, now: Time, topic: &str, yes: bool) -> Result<(), BusError> {
        self.observe_time(now);
        let (_, bus, mut cx) = self.split();
        bus.vote(&mut cx, now, topic, yes)
    }

    /// Elections known (running, or heard of through votes).
    pub fn elections(&self) -> usize {
        self.bus.elections()
    }
}
