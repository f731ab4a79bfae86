//! The threaded runtime: real UDP sockets, real time, a blocking API.
//!
//! A [`Node`] binds one UDP socket (socket2: large buffers, no SO_REUSEADDR,
//! nonblocking, IPv4 or IPv6) and drives an [`Endpoint`](crate::Endpoint)
//! from a thread running a `mio::Poll`: datagrams in go to
//! `handle_packet`, `poll_transmit` output goes to the socket, the endpoint's
//! `poll_timeout` is the loop's timer, and commands from the handle arrive
//! over a channel with a `mio::Waker`. Events fan out to subscribers over
//! bounded channels ([`Node::subscribe`], [`Node::subscribe_filtered`]);
//! the event bus rides on them ([`Node::hear`]), while a query's answers
//! go to its own [`QueryHandle`] and query handlers ([`Node::on_query`])
//! run on a thread of their own, never on the loop.
//! A [`Host`] runs many nodes on one thread.
//!
//! Time is wall-clock: nanoseconds since the Unix epoch, never decreasing
//! (see [`Time`](crate::Time)). The runtime makes no protocol decision: it
//! moves bytes, time and commands, and counts everything it cannot move
//! ([`RuntimeStats`]). Problems are logged through the `log` facade.
//!
//! Subscriptions and queries hand out `crossbeam_channel` receivers; the
//! types needed to use them ([`Receiver`], its errors, [`Select`] to wait on
//! several) are re-exported here, so a program needs no dependency of its
//! own on crossbeam.
//!
//! # Layers
//!
//! One concern per file; a file imports only from the layers below it, so
//! there are no import cycles between files:
//!
//! 1. Plain types: `error` ([`NodeError`]), `subscribe` (what a
//!    subscription selects: [`EventFilter`]), `query` (a
//!    query's two ends: [`QueryHandle`], [`IncomingQuery`]), `stats`
//!    ([`NodeStats`], [`RuntimeStats`]), `clock` (wall-clock [`Time`](crate::Time)).
//! 2. The OS and the plumbing around an endpoint: `socket` (binding, the
//!    send queue), `resolve` (seed names), `fanout` (events to
//!    subscribers), `handlers` (query handlers and their thread).
//! 3. `driver`: one endpoint on a loop, moving bytes, time and commands.
//! 4. `reactor`: the event loop, running any number of drivers.
//! 5. The public handles: `node` ([`Node`], [`NodeConfig`]; membership,
//!    keyring and subscriptions), `kv` and `bus` (the node's key/value and
//!    event bus calls), `host` ([`Host`]).

mod bus;
mod clock;
mod driver;
mod error;
mod fanout;
mod handlers;
mod host;
mod kv;
mod node;
mod query;
mod reactor;
mod resolve;
mod socket;
mod stats;
mod subscribe;

pub use crossbeam_channel::{Receiver, RecvError, RecvTimeoutError, Select, TryRecvError};
pub use error::NodeError;
pub use host::Host;
pub use kv::KeyEntry;
pub use node::{Node, NodeConfig};
pub use query::{IncomingQuery, QueryEvent, QueryHandle, QueryHandlerFn, QueryResult};
pub use stats::{NodeStats, RuntimeStats, SubscriberStats};
pub use subscribe::EventFilter;
