//! Queries. A query is a bus item (it spreads, and is
//! deduped and repaired, like a user event) that lives for its timeout and
//! carries the asker's address. A node matching its filter raises
//! [`Event::Query`] and acks at once, straight to the asker; the embedding
//! code answers with [`Endpoint::respond`](crate::Endpoint::respond) (the runtime does so from the
//! handler registered for the query's name). The asker counts one ack and
//! one response per node and reports [`Event::QueryDone`] at the timeout.
//!
//! A query filtered by node names is pushed straight to those nodes
//! (which do not forward it); the rest of the cluster still learns it by
//! id, so a named node whose push was lost pulls it like any item.

use std::cmp::Reverse;
use std::net::SocketAddr;
use std::time::Duration;

use compact_str::CompactString;

use super::state::{BusState, Names, Pending, Queries};
use super::table::item_key;
use super::types::{filter_matches, filter_nodes, BusError, QueryFilter, QueryId};
use crate::context::Ctx;
use crate::event::Event;
use crate::wire::{self, Message};
use crate::Time;

impl Queries {
    fn names(&self) -> Names {
        Names::with_hasher(foldhash::fast::FixedState::with_seed(self.seed ^ 2))
    }
}

impl BusState {
    /// Asks the nodes matching `filter` (every node but this one, by
    /// default) `name` with `payload`. Each raises [`Event::Query`] and
    /// acks; this node reports [`Event::QueryAck`] and
    /// [`Event::QueryResponse`] as they arrive (one of each per node), then
    /// [`Event::QueryDone`] after `timeout`, when answers stop being taken.
    /// This node does not receive its own query.
    pub(crate) fn query(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        name: &str,
        payload: &[u8],
        timeout: Duration,
        filter: &QueryFilter,
    ) -> Result<QueryId, BusError> {
        self.check_bus_call(cx, name, payload, timeout)?;
        if self.queries.pending.len() >= cx.config.max_pending_queries {
            return Err(BusError::TooManyQueries {
                max: cx.config.max_pending_queries,
            });
        }
        let filter = filter.encode()?;
        let head = self.new_head(now, timeout);
        let msg = Message::Query(wire::Query {
            head,
            addr: cx.addr,
            name,
            filter: wire::Bytes(&filter),
            payload: wire::Bytes(payload),
        });
        let key = self.originate(cx, &msg)?;
        let pending = Pending {
            acks: self.queries.names(),
            responses: self.queries.names(),
        };
        self.queries.pending.insert(head.seq, pending);
        self.queries
            .deadlines
            .push(Reverse((now + timeout, head.seq)));
        let named = filter_nodes(&filter);
        let direct = (!named.is_empty()).then(|| {
            named
                .iter()
                .filter_map(|n| cx.members.find(n))
                .map(|id| cx.members.rec(id))
                .filter(|r| r.is_live() && r.name != cx.config.name)
                .map(|r| r.addr)
                .collect()
        });
        self.push_new(cx, key, direct);
        Ok(QueryId {
            origin: cx.config.name.clone(),
            seq: head.seq,
        })
    }

    /// Answers the query `id` (received as [`Event::Query`]) with
    /// `payload`, straight to the asker. Once per query, while it lives.
    pub(crate) fn respond(
        &mut self,
        cx: &mut Ctx<'_>,
        id: &QueryId,
        payload: &[u8],
    ) -> Result<(), BusError> {
        if cx.left {
            return Err(BusError::Left);
        }
        self.check_payload(cx, payload)?;
        let key = item_key(&id.origin, id.seq);
        let Some(&mut (to, ref mut responded)) = self.queries.answering.get_mut(&key) else {
            return Err(BusError::UnknownQuery);
        };
        if *responded {
            return Err(BusError::AlreadyResponded);
        }
        *responded = true;
        let me = cx.config.name.clone();
        self.send_query_reply(cx, to, &id.origin, id.seq, &me, Some(payload));
        Ok(())
    }

    /// An ack (`payload` `None`) or a response, straight to the asker.
    fn send_query_reply(
        &mut self,
        cx: &mut Ctx<'_>,
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
        let mut b = cx.new_builder();
        cx.push_counted(&mut b, &reply);
        self.emit_bus(cx, to, b);
    }

    /// A query item new to this node: raise it and ack if the filter
    /// matches.
    pub(super) fn receive_query(&mut self, cx: &mut Ctx<'_>, q: &wire::Query<'_>) {
        let me = cx.config.name.clone();
        if q.head.origin == me {
            return;
        }
        let meta = cx.members.rec(cx.me).meta.clone();
        if !filter_matches(q.filter.0, &me, &meta) {
            return;
        }
        let key = item_key(q.head.origin, q.head.seq);
        self.queries.answering.insert(key, (q.addr, false));
        self.send_query_reply(cx, q.addr, q.head.origin, q.head.seq, &me, None);
        cx.event(Event::Query {
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
        self.queries.answering.remove(&key);
    }

    pub(super) fn handle_query_reply(&mut self, cx: &mut Ctx<'_>, r: &wire::QueryReply<'_>) {
        let max = cx.config.max_members;
        let Some(p) = self
            .queries
            .pending
            .get_mut(&r.seq)
            .filter(|_| r.asker == cx.config.name)
        else {
            cx.drop("query_unknown");
            return;
        };
        let seen = if r.ack { &mut p.acks } else { &mut p.responses };
        if seen.len() >= max {
            cx.drop("query_reply_limit");
            return;
        }
        if !seen.insert(CompactString::from(r.from)) {
            cx.drop("query_duplicate_reply");
            return;
        }
        let id = QueryId {
            origin: cx.config.name.clone(),
            seq: r.seq,
        };
        let from = r.from.to_owned();
        cx.event(if r.ack {
            Event::QueryAck { id, from }
        } else {
            Event::QueryResponse {
                id,
                from,
                payload: r.payload.0.to_vec(),
            }
        });
    }

    pub(super) fn run_query_timers(&mut self, cx: &mut Ctx<'_>, now: Time) {
        while let Some(Reverse((t, _))) = self.queries.deadlines.peek() {
            if *t > now {
                break;
            }
            let Reverse((_, seq)) = self.queries.deadlines.pop().expect("peeked");
            let Some(p) = self.queries.pending.remove(&seq) else {
                continue;
            };
            cx.event(Event::QueryDone {
                id: QueryId {
                    origin: cx.config.name.clone(),
                    seq,
                },
                acks: p.acks.len(),
                responses: p.responses.len(),
            });
        }
    }
}
