//! A query's two ends as the runtime hands them out: the asker's
//! [`QueryHandle`], receiving [`QueryEvent`]s, and the answerer's
//! [`IncomingQuery`], given to its handler ([`QueryHandlerFn`]). Plain
//! types, below everything that routes them (the fan-out, the handler
//! thread, the driver).

use crossbeam_channel::Receiver;

use super::error::NodeError;
use crate::{Event, QueryId};

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

/// A running query of this node ([`Node::query`](super::Node::query)): its id, and its answers
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
    /// The handle of query `id`, whose answers arrive on `events`.
    pub(super) fn new(id: QueryId, events: Receiver<QueryEvent>) -> QueryHandle {
        QueryHandle { id, events }
    }

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

/// Another node's query, as a handler registered with [`Node::on_query`](super::Node::on_query)
/// sees it (the fields of [`Event::Query`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingQuery {
    /// The query's id: its asker and sequence number (for
    /// [`Node::respond`](super::Node::respond)).
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
