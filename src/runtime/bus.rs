//! The event bus, queries and elections through a node's handle
//! (`docs/PROTOCOL.md` §11). Saying, asking, answering and voting run the
//! [`Endpoint`](crate::Endpoint)'s method of the same name on the node's
//! loop, so the item is pushed to peers before the call returns; what
//! arrives comes out through subscriptions ([`Node::hear`],
//! [`Node::subscribe_filtered`] with the bus's
//! [`EventKind`](crate::EventKind)s), a query's
//! own [`QueryHandle`], and query handlers ([`Node::on_query`]).
//!
//! Query handlers run on a thread of their own per node, never on the
//! node's loop: a handler may block (run a command, ask a database) without
//! delaying the node's probes, or, in a [`Host`](super::Host), every other
//! node on the loop.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;

use super::node::Node;
use super::subscribe::EventFilter;
use super::NodeError;
use crate::{BusError, Event, EventId, KeyPattern, QueryFilter, QueryId};

/// One answer to a query of this node, as its [`QueryHandle`] receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryEvent {
    /// A node received the query (it matched the filter); it sends this
    /// whether or not it will respond.
    Ack {
        /// The node.
        from: String,
    },
    /// A node responded.
    Response {
        /// The node.
        from: String,
        /// Its response.
        payload: Vec<u8>,
    },
    /// The query timed out: no more acks or responses are taken. Always the
    /// last event of a query.
    Done {
        /// How many nodes acknowledged it.
        acks: usize,
        /// How many nodes responded.
        responses: usize,
    },
}

impl QueryEvent {
    /// The query an asker-side endpoint event is about, and the event as
    /// its handle sees it; `None` for every other event.
    pub(super) fn of(event: &Event) -> Option<(&QueryId, QueryEvent)> {
        match event {
            Event::QueryAck { id, from } => Some((id, QueryEvent::Ack { from: from.clone() })),
            Event::QueryResponse { id, from, payload } => Some((
                id,
                QueryEvent::Response {
                    from: from.clone(),
                    payload: payload.clone(),
                },
            )),
            &Event::QueryDone {
                ref id,
                acks,
                responses,
            } => Some((id, QueryEvent::Done { acks, responses })),
            _ => None,
        }
    }
}

/// Everything a query gathered by its timeout, as [`QueryHandle::collect`]
/// returns it, in order of arrival.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryResult {
    /// The nodes that acknowledged the query.
    pub acks: Vec<String>,
    /// The nodes that responded, with their responses.
    pub responses: Vec<(String, Vec<u8>)>,
}

/// A running query of this node ([`Node::query`]): its id, and its answers
/// as they arrive. Only this query's events reach it, and none is ever
/// dropped (a query gets at most one ack and one response per node).
/// Dropping the handle does not stop the query; the answers still reach
/// subscriptions of the [`EventKind`](crate::EventKind)s `QueryAck`,
/// `QueryResponse` and `QueryDone`.
#[derive(Debug)]
pub struct QueryHandle {
    id: QueryId,
    events: Receiver<QueryEvent>,
}

impl QueryHandle {
    /// The query's id (this node and a sequence number).
    pub fn id(&self) -> &QueryId {
        &self.id
    }

    /// The next answer, waiting for it: acks and responses as they arrive,
    /// then [`QueryEvent::Done`] at the timeout. `None` after `Done`, or
    /// if the node stopped before the query timed out (no `Done` came).
    pub fn recv(&self) -> Option<QueryEvent> {
        self.events.recv().ok()
    }

    /// The channel the answers arrive on, to wait with a timeout or select
    /// over several queries. It disconnects after [`QueryEvent::Done`], or
    /// when the node stops.
    pub fn events(&self) -> &Receiver<QueryEvent> {
        &self.events
    }

    /// Waits for the query's timeout and returns the acks and responses
    /// not yet taken with [`QueryHandle::recv`]. [`NodeError::NotRunning`]
    /// if the node stopped first (the answers were cut short).
    pub fn collect(self) -> Result<QueryResult, NodeError> {
        let mut result = QueryResult::default();
        for event in self.events.iter() {
            match event {
                QueryEvent::Ack { from } => result.acks.push(from),
                QueryEvent::Response { from, payload } => result.responses.push((from, payload)),
                QueryEvent::Done { .. } => return Ok(result),
            }
        }
        Err(NodeError::NotRunning)
    }
}

/// Another node's query, as a handler registered with [`Node::on_query`]
/// sees it (the fields of [`Event::Query`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingQuery {
    /// The query's id: its asker and sequence number (for
    /// [`Node::respond`]).
    pub id: QueryId,
    /// The asker.
    pub from: String,
    /// The query's name.
    pub name: String,
    /// The query's payload.
    pub payload: Vec<u8>,
    /// The asker's Lamport time when it asked.
    pub lamport: u64,
}

impl IncomingQuery {
    /// The query an [`Event::Query`] carries.
    pub(super) fn of(event: &Event) -> Option<IncomingQuery> {
        match event {
            Event::Query {
                id,
                from,
                name,
                payload,
                lamport,
            } => Some(IncomingQuery {
                id: id.clone(),
                from: from.clone(),
                name: name.clone(),
                payload: payload.clone(),
                lamport: *lamport,
            }),
            _ => None,
        }
    }
}

/// What answers queries: given a query, the response to send, or `None`
/// to send none (the query was acked already).
pub type QueryHandlerFn = dyn Fn(&IncomingQuery) -> Option<Vec<u8>> + Send + Sync;

impl Node {
    /// Says `name` with `payload` to every other live node: each receives
    /// it once as [`Event::UserEvent`] while `duration` lasts (nodes
    /// joining meanwhile too). This node does not hear its own events.
    /// Refused ([`NodeError::Bus`], nothing sent) for an empty or too long
    /// name, too large a payload or a duration out of bounds.
    pub fn say(
        &self,
        name: &str,
        payload: &[u8],
        duration: Duration,
    ) -> Result<EventId, NodeError> {
        self.say_with(name, payload, duration, false)
    }

    /// Like [`Node::say`], but receivers coalesce: of the events of this
    /// name arriving within `Config::event_coalesce_window`, each delivers
    /// only the latest (for "the config changed" news, where only the last
    /// matters).
    pub fn say_coalesced(
        &self,
        name: &str,
        payload: &[u8],
        duration: Duration,
    ) -> Result<EventId, NodeError> {
        self.say_with(name, payload, duration, true)
    }

    fn say_with(
        &self,
        name: &str,
        payload: &[u8],
        duration: Duration,
        coalesce: bool,
    ) -> Result<EventId, NodeError> {
        let (name, payload) = (name.to_owned(), payload.to_vec());
        Ok(self.with_endpoint(move |ep, now| {
            if coalesce {
                ep.say_coalesced(now, &name, &payload, duration)
            } else {
                ep.say(now, &name, &payload, duration)
            }
        })??)
    }

    /// Other nodes' user events whose name matches the glob `pattern`
    /// (`deploy.*`, `*`; see [`KeyPattern::glob`], which accepts every
    /// string), from now on, through a channel of
    /// [`NodeConfig::event_buffer`](super::NodeConfig::event_buffer)
    /// events (overflow is counted in the subscription's stats). Like every
    /// subscription it outlives stop and start; dropping the receiver ends
    /// it.
    pub fn hear(&self, pattern: &str) -> Receiver<Event> {
        self.subscribe_filtered(EventFilter::user_events(KeyPattern::glob(pattern)))
    }

    /// The first user event whose name matches `pattern`, then nothing: the
    /// subscription ends after delivering it, and the receiver sees the
    /// channel disconnected once it has taken the event.
    pub fn hear_once(&self, pattern: &str) -> Receiver<Event> {
        self.subscribe_once(EventFilter::user_events(KeyPattern::glob(pattern)))
    }

    /// Asks the nodes matching `filter` (every other node, by default)
    /// `name` with `payload`; answers are taken for `timeout`. Each
    /// matching node acks at once and may respond (from a handler, see
    /// [`Node::on_query`], or with [`Node::respond`]). The returned handle
    /// receives this query's acks and responses as they arrive, then its
    /// end. This node does not receive its own query.
    pub fn query(
        &self,
        name: &str,
        payload: &[u8],
        timeout: Duration,
        filter: &QueryFilter,
    ) -> Result<QueryHandle, NodeError> {
        let (tx, events) = crossbeam_channel::unbounded();
        let subscribers = self.subscribers.clone();
        let (name, payload, filter) = (name.to_owned(), payload.to_vec(), filter.clone());
        let id = self.with_endpoint(move |ep, now| {
            let id = ep.query(now, &name, &payload, timeout, &filter)?;
            subscribers.route_query(id.clone(), tx);
            Ok::<_, BusError>(id)
        })??;
        Ok(QueryHandle { id, events })
    }

    /// Responds to another node's query `id` (received as
    /// [`Event::Query`]) with `payload`, straight to the asker; from any
    /// thread, once per query, while it lives.
    pub fn respond(&self, id: &QueryId, payload: &[u8]) -> Result<(), NodeError> {
        let (id, payload) = (id.clone(), payload.to_vec());
        Ok(self.with_endpoint(move |ep, now| ep.respond(now, &id, &payload))??)
    }

    /// Answers other nodes' queries whose name matches the glob `pattern`
    /// with `handler`: its `Some(response)` is sent to the asker, `None`
    /// sends nothing (every matching query is acked anyway). When several
    /// registered patterns match, the first registered handler answers; a
    /// query no pattern matches is acked and gets no response.
    ///
    /// Handlers run one at a time on a thread of this node's own, never on
    /// its loop: a slow handler delays the node's other answers, not its
    /// protocol. A response after the query's timeout is refused, a
    /// panicking handler sends none (both counted in
    /// [`RuntimeStats::query_handler_failures`](super::RuntimeStats::query_handler_failures)), and
    /// queries arriving while
    /// [`NodeConfig::event_buffer`](super::NodeConfig::event_buffer) wait
    /// already are dropped (counted in `query_handler_drops`).
    /// Registrations outlive stop and start, like subscriptions.
    pub fn on_query<F>(&self, pattern: &str, handler: F) -> Result<(), NodeError>
    where
        F: Fn(&IncomingQuery) -> Option<Vec<u8>> + Send + Sync + 'static,
    {
        self.handlers
            .register(KeyPattern::glob(pattern), Arc::new(handler))
    }

    /// Creates an election on `topic`: this node raises [`Event::Quorum`]
    /// if `min` yes votes are counted before `expire` passes; otherwise
    /// every node that knew it raises [`Event::ElectionExpired`]. Other
    /// nodes raise [`Event::ElectionStarted`] when it arrives, and vote with
    /// [`Node::vote`]. With `min > total / 2`, two elections on one topic
    /// never both succeed (its limits: `docs/PROTOCOL.md` §11).
    pub fn election(
        &self,
        topic: &str,
        expire: Duration,
        min: u32,
        total: u32,
    ) -> Result<(), NodeError> {
        let topic = topic.to_owned();
        Ok(self.with_endpoint(move |ep, now| ep.election(now, &topic, expire, min, total))??)
    }

    /// Votes on the live election on `topic` this node knows (this node's
    /// own included). Once per topic: the first vote is final.
    pub fn vote(&self, topic: &str, yes: bool) -> Result<(), NodeError> {
        let topic = topic.to_owned();
        Ok(self.with_endpoint(move |ep, now| ep.vote(now, &topic, yes))??)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> QueryId {
        QueryId {
            origin: "a".into(),
            seq: 7,
        }
    }

    #[test]
    fn only_the_askers_query_events_go_to_handles() {
        let ack = Event::QueryAck {
            id: id(),
            from: "b".into(),
        };
        assert_eq!(
            QueryEvent::of(&ack),
            Some((&id(), QueryEvent::Ack { from: "b".into() }))
        );
        let done = Event::QueryDone {
            id: id(),
            acks: 2,
            responses: 1,
        };
        assert_eq!(
            QueryEvent::of(&done).map(|(_, e)| e),
            Some(QueryEvent::Done {
                acks: 2,
                responses: 1
            })
        );
        let asked = Event::Query {
            id: id(),
            from: "a".into(),
            name: "n".into(),
            payload: b"p".to_vec(),
            lamport: 3,
        };
        assert_eq!(
            QueryEvent::of(&asked),
            None,
            "queries to answer are not answers"
        );
        assert_eq!(IncomingQuery::of(&asked).map(|q| q.lamport), Some(3));
        assert_eq!(IncomingQuery::of(&ack), None);
    }

    #[test]
    fn collect_gathers_answers_until_done_and_reports_a_cut_short_query() {
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(QueryEvent::Ack { from: "b".into() }).unwrap();
        tx.send(QueryEvent::Response {
            from: "b".into(),
            payload: b"r".to_vec(),
        })
        .unwrap();
        tx.send(QueryEvent::Ack { from: "c".into() }).unwrap();
        tx.send(QueryEvent::Done {
            acks: 2,
            responses: 1,
        })
        .unwrap();
        let handle = QueryHandle {
            id: id(),
            events: rx,
        };
        assert_eq!(
            handle.collect().unwrap(),
            QueryResult {
                acks: vec!["b".into(), "c".into()],
                responses: vec![("b".into(), b"r".to_vec())],
            }
        );

        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(QueryEvent::Ack { from: "b".into() }).unwrap();
        drop(tx); // the node stopped before the timeout
        let cut = QueryHandle {
            id: id(),
            events: rx,
        };
        assert!(matches!(cut.collect(), Err(NodeError::NotRunning)));
    }
}
