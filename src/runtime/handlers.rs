//! Query handlers ([`Node::on_query`](super::Node::on_query)): the
//! registrations, and the thread that runs them.
//!
//! The node's loop only picks the handler for each query it receives
//! (a glob match per registration) and queues the query; a thread of the
//! node's own runs the handlers one at a time and hands each outcome to
//! a [`Responder`], which the driver makes post it back to the loop. So a
//! handler that blocks delays other answers of its node but never the loop,
//! which in a [`Host`](super::Host) serves every node on it. The thread
//! starts with the first registration and ends once the node handle and
//! its driver are gone and the queue is drained.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::error::NodeError;
use super::query::{IncomingQuery, QueryHandlerFn};
use super::stats::{log_doubling, RuntimeStats};
use crate::{Event, KeyPattern};

/// What a handler's run means for its node.
pub(crate) enum HandlerOutcome {
    /// Send this response to the asker.
    Respond(Vec<u8>),
    /// The handler panicked: no response (counted).
    Panicked,
}

/// Takes a handler's outcome for `query` back to its node, from the
/// handler thread.
pub(crate) type Responder = Arc<dyn Fn(IncomingQuery, HandlerOutcome) + Send + Sync>;

struct Registration {
    pattern: KeyPattern,
    handler: Arc<QueryHandlerFn>,
}

/// A query waiting for its handler, with the way back to its node.
struct Job {
    query: IncomingQuery,
    handler: Arc<QueryHandlerFn>,
    responder: Responder,
}

#[derive(Default)]
struct Inner {
    list: Vec<Registration>,
    /// The handler thread's queue, once there is a handler.
    queue: Option<Sender<Job>>,
}

/// A node's query handlers. Owned by the [`Node`](super::Node) handle and
/// shared with its driver, so registrations survive stop and start.
pub(crate) struct QueryHandlers {
    /// Queries the handler thread may have waiting.
    capacity: usize,
    inner: Mutex<Inner>,
}

impl QueryHandlers {
    /// No handlers (and no thread) yet; at most `capacity` queries will
    /// wait for the handler thread.
    pub(crate) fn new(capacity: usize) -> QueryHandlers {
        QueryHandlers {
            capacity,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Registrations are pushed whole: a panic while holding the lock
        // leaves nothing half-done worth refusing.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a handler for queries whose name matches `pattern`, starting
    /// the handler thread with the first one.
    pub(crate) fn register(
        &self,
        pattern: KeyPattern,
        handler: Arc<QueryHandlerFn>,
    ) -> Result<(), NodeError> {
        let mut inner = self.lock();
        if inner.queue.is_none() {
            let (tx, rx) = crossbeam_channel::bounded(self.capacity);
            std::thread::Builder::new()
                .name("vinery handlers".into())
                .spawn(move || run_handlers(rx))
                .map_err(|source| NodeError::Io {
                    what: "start the query handler thread".into(),
                    source,
                })?;
            inner.queue = Some(tx);
        }
        inner.list.push(Registration { pattern, handler });
        Ok(())
    }

    /// On the node's loop: queues every query in `events` that a handler
    /// matches (the first registered) for the handler thread. A full queue
    /// drops the query for the handler (it was acked; it gets no response),
    /// counted in `stats`.
    pub(crate) fn dispatch(
        &self,
        events: &[Event],
        responder: Option<&Responder>,
        stats: &mut RuntimeStats,
    ) {
        let mut queries = events.iter().filter_map(IncomingQuery::of).peekable();
        if queries.peek().is_none() {
            return;
        }
        let inner = self.lock();
        let (Some(queue), Some(responder)) = (&inner.queue, responder) else {
            return;
        };
        for query in queries {
            let Some(r) = inner.list.iter().find(|r| r.pattern.matches(&query.name)) else {
                continue;
            };
            let job = Job {
                query,
                handler: r.handler.clone(),
                responder: responder.clone(),
            };
            if let Err(e) = queue.try_send(job) {
                stats.query_handler_drops += 1;
                let why = match e {
                    TrySendError::Full(_) => "the handlers are not keeping up",
                    TrySendError::Disconnected(_) => "the handler thread is gone",
                };
                log_doubling(
                    stats.query_handler_drops,
                    format_args!("query handlers: {why}; queries go unanswered (counted)"),
                );
            }
        }
    }
}

/// The handler thread: runs each queued query's handler and hands what
/// it produced to the query's responder. A panicking handler answers
/// nothing; the thread goes on with the next query.
fn run_handlers(jobs: Receiver<Job>) {
    for Job {
        query,
        handler,
        responder,
    } in jobs
    {
        match panic::catch_unwind(AssertUnwindSafe(|| handler(&query))) {
            Ok(None) => {}
            Ok(Some(payload)) => responder(query, HandlerOutcome::Respond(payload)),
            Err(_) => {
                log::error!(
                    "the handler of query {:?} ({}) panicked: no response",
                    query.name,
                    query.id
                );
                responder(query, HandlerOutcome::Panicked);
            }
        }
    }
}
