//! Queries on the endpoint. A query is a bus item (it spreads, and is
//! deduped and repaired, like a user event) that lives for its timeout and
//! carries the asker's address. A node matching its filter raises
//! [`Event::Query`] and acks at once, straight to the asker; the embedding
//! code answers with [`Endpoint::respond`] (the runtime does so from the
//! handler registered for the query's name). The asker counts one ack and
//! one response per node and reports [`Event::QueryDone`] at the timeout.
//!
//! A query filtered by node names is pushed straight to those nodes
//! (which do not forward it); the rest of the cluster still learns it by
//! id, so a named node whose push was lost pulls it like any item.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::Duration;

use compact_str::CompactString;
use hashbrown::HashSet;

use super::{Endpoint, FixedMap};
use crate::bus::{filter_matches, filter_nodes, item_key, BusError, QueryFilter, QueryId};
use crate::event::Event;
use crate::wire::{self, Message};
use crate::Time;

type Names = HashSet<CompactString, foldhash::fast::FixedState>;

/// A query of this node, waiting for answers.
struct Pending {
    acks: Names,
    responses: Names,
}

/// The endpoint's query bookkeeping.
pub(super) struct Queries {
    /// This node's running queries, by sequence number.
    pending: FixedMap<u64, Pending>,
    deadlines: BinaryHeap<Reverse<(Time, u64)>>,
    /// Queries this node matched, by item id: the asker's address, and
    /// whether this node responded already. Forgotten when the item dies.
    answering: FixedMap<u64, (SocketAddr, bool)>,
    seed: u64,
}

impl Queries {
    pub(super) fn new(seed: u64) -> Queries {
        let map = |s: u64| foldhash::fast::FixedState::with_seed(s);
        Queries {
            pending: FixedMap::with_hasher(map(seed)),
            deadlines: BinaryHeap::new(),
            answering: FixedMap::with_hasher(map(seed ^ 1)),
            seed,
        }
    }

    pub(super) fn next_timer(&self) -> Option<Time> {
        self.deadlines.peek().map(|Reverse((t, _))| *t)
    }

    fn names(&self) -> Names {
        Names::with_hasher(foldhash::fast::FixedState::with_seed(self.seed ^ 2))
    }
}

impl Endpoint {
    /// Asks the nodes matching `filter` (every node but this one, by
    /// default) `name` with `payload`. Each raises [`Event::Query`] and
    /// acks; this node reports [`Event::QueryAck`] and
    /// [`Event::QueryResponse`] as they arrive (one of each per node), then
    /// [`Event::QueryDone`] after `timeout`, when answers stop being taken.
    /// This node does not receive its own query.
    pub fn query(
        &mut self,
        now: Time,
        name: &str,
        payload: &[u8],
        timeout: Duration,
        filter: &QueryFilter,
    ) -> Result<QueryId, BusError> {
        self.observe_time(now);
        self.check_bus_call(name, payload, timeout)?;
        if self.bus.queries.pending.len() >= self.config.max_pending_queries {
            return Err(BusError::TooManyQueries {
                max: self.config.max_pending_queries,
            });
        }
        let filter = filter.encode()?;
        let head = self.new_head(now, timeout);
        let msg = Message::Query(wire::Query {
            head,
            addr: self.addr,
            name,
            filter: wire::Bytes(&filter),
            payload: wire::Bytes(payload),
        });
        let key = self.originate(&msg)?;
        let pending = Pending {
            acks: self.bus.queries.names(),
            responses: self.bus.queries.names(),
        };
        self.bus.queries.pending.insert(head.seq, pending);
        self.bus
            .queries
            .deadlines
            .push(Reverse((now + timeout, head.seq)));
        let named = filter_nodes(&filter);
        let direct = (!named.is_empty()).then(|| {
            named
                .iter()
                .filter_map(|n| self.members.find(n))
                .map(|id| self.members.rec(id))
                .filter(|r| r.is_live() && r.name != self.config.name)
                .map(|r| r.addr)
                .collect()
        });
        self.push_new(key, direct);
        Ok(QueryId {
            origin: self.config.name.clone(),
            seq: head.seq,
        })
    }

    /// Answers the query `id` (received as [`Event::Query`]) with
    /// `payload`, straight to the asker. Once per query, while it lives.
    pub fn respond(&mut self, now: Time, id: &QueryId, payload: &[u8]) -> Result<(), BusError> {
        self.observe_time(now);
        if self.left {
            return Err(BusError::Left);
        }
        self.check_payload(payload)?;
        let key = item_key(&id.origin, id.seq);
        let Some(&mut (to, ref mut responded)) = self.bus.queries.answering.get_mut(&key) else {
            return Err(BusError::UnknownQuery);
        };
        if *responded {
            return Err(BusError::AlreadyResponded);
        }
        *responded = true;
        let me = self.config.name.clone();
        self.send_query_reply(to, &id.origin, id.seq, &me, Some(payload));
        Ok(())
    }

    /// Queries of this node still waiting for answers.
    pub fn pending_queries(&self) -> usize {
        self.bus.queries.pending.len()
    }

    /// An ack (`payload` `None`) or a response, straight to the asker.
    fn send_query_reply(
        &mut self,
        to: SocketAddr,
        asker: &str,
        seq: u64,
        from: &str,
        payload: Option<&[u8]>,
    ) {
        let reply = Message::QueryReply(wire::QueryReply {
            asker,
            seq,
            from,
            ack: payload.is_none(),
            payload: wire::Bytes(payload.unwrap_or_default()),
        });
        let mut b = self.new_builder();
        self.push_counted(&mut b, &reply);
        self.emit_bus(to, b);
    }

    /// A query item new to this node: raise it and ack if the filter
    /// matches.
    pub(super) fn receive_query(&mut self, _now: Time, q: &wire::Query<'_>) {
        let me = self.config.name.clone();
        if q.head.origin == me {
            return;
        }
        let meta = self.members.rec(self.me).meta.clone();
        if !filter_matches(q.filter.0, &me, &meta) {
            return;
        }
        let key = item_key(q.head.origin, q.head.seq);
        self.bus.queries.answering.insert(key, (q.addr, false));
        self.send_query_reply(q.addr, q.head.origin, q.head.seq, &me, None);
        self.events.push_back(Event::Query {
            id: QueryId {
                origin: q.head.origin.to_owned(),
                seq: q.head.seq,
            },
            from: q.head.origin.to_owned(),
            name: q.name.to_owned(),
            payload: q.payload.0.to_vec(),
            lamport: q.head.lamport,
        });
    }

    /// The query item `key` died: it can no longer be answered.
    pub(super) fn forget_answering(&mut self, key: u64) {
        self.bus.queries.answering.remove(&key);
    }

    pub(super) fn handle_query_reply(&mut self, _now: Time, r: &wire::QueryReply<'_>) {
        let max = self.config.max_members;
        let Some(p) = self
            .bus
            .queries
            .pending
            .get_mut(&r.seq)
            .filter(|_| r.asker == self.config.name)
        else {
            self.stats.drop("query_unknown");
            return;
        };
        let seen = if r.ack { &mut p.acks } else { &mut p.responses };
        if seen.len() >= max {
            self.stats.drop("query_reply_limit");
            return;
        }
        if !seen.insert(CompactString::from(r.from)) {
            self.stats.drop("query_duplicate_reply");
            return;
        }
        let id = QueryId {
            origin: self.config.name.clone(),
            seq: r.seq,
        };
        let from = r.from.to_owned();
        self.events.push_back(if r.ack {
            Event::QueryAck { id, from }
        } else {
            Event::QueryResponse {
                id,
                from,
                payload: r.payload.0.to_vec(),
            }
        });
    }

    pub(super) fn run_query_timers(&mut self, now: Time) {
        while let Some(Reverse((t, _))) = self.bus.queries.deadlines.peek() {
            if *t > now {
                break;
            }
            let Reverse((_, seq)) = self.bus.queries.deadlines.pop().expect("peeked");
            let Some(p) = self.bus.queries.pending.remove(&seq) else {
                continue;
            };
            self.events.push_back(Event::QueryDone {
                id: QueryId {
                    origin: self.config.name.clone(),
                    seq,
                },
                acks: p.acks.len(),
                responses: p.responses.len(),
            });
        }
    }
}
