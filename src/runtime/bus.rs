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

use super::error::NodeError;
use super::node::Node;
use super::query::{IncomingQuery, QueryHandle};
use super::subscribe::EventFilter;
use crate::{BusError, Event, EventId, KeyPattern, QueryFilter, QueryId};

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
        Ok(QueryHandle::new(id, events))
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
