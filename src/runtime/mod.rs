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
//! The pieces, one file each: `node` (the handle, its config and keyring
//! calls), `kv` (the handle's key/value calls), `bus` (its event bus,
//! query and election calls), `handlers` (query handlers and the thread
//! they run on), `host`, `reactor` (the event loop), `driver` (one
//! endpoint on a loop), `socket` (binding and the send queue), `clock`,
//! `resolve` (seeds), `subscribe` (event fan-out and filters), `stats`.

mod bus;
mod clock;
mod driver;
mod handlers;
mod host;
mod kv;
mod node;
mod reactor;
mod resolve;
mod socket;
mod stats;
mod subscribe;

use std::fmt;
use std::io;

pub use bus::{IncomingQuery, QueryEvent, QueryHandle, QueryHandlerFn, QueryResult};
pub use host::Host;
pub use kv::KeyEntry;
pub use node::{Node, NodeConfig};
pub use stats::{NodeStats, RuntimeStats, SubscriberStats};
pub use subscribe::EventFilter;

use crate::security::KeyError;
use crate::{BusError, ConfigError, KvError};

/// Why a [`Node`] call failed.
#[derive(Debug)]
pub enum NodeError {
    /// A configuration field cannot work (protocol or runtime).
    Config(ConfigError),
    /// The OS refused something (binding the socket, starting the thread).
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// The node is not running: never started, stopped, or left.
    NotRunning,
    /// [`Node::start`] on a node already running.
    AlreadyRunning,
    /// A peer address that did not resolve.
    Resolve {
        /// The address as given.
        spec: String,
        /// Why it did not resolve.
        reason: String,
    },
    /// A key/value write refused (nothing was written).
    Kv(KvError),
    /// A keyring change refused (the keyring is unchanged).
    Key(KeyError),
    /// An event, query, response, election or vote refused (nothing was
    /// sent).
    Bus(BusError),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Config(e) => e.fmt(f),
            NodeError::Io { what, source } => write!(f, "cannot {what}: {source}"),
            NodeError::NotRunning => f.write_str("the node is not running"),
            NodeError::AlreadyRunning => f.write_str("the node is already running"),
            NodeError::Resolve { spec, reason } => write!(f, "cannot resolve {spec}: {reason}"),
            NodeError::Kv(e) => write!(f, "write refused: {e}"),
            NodeError::Key(e) => write!(f, "keyring change refused: {e}"),
            NodeError::Bus(e) => write!(f, "refused: {e}"),
        }
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NodeError::Config(e) => Some(e),
            NodeError::Io { source, .. } => Some(source),
            NodeError::Kv(e) => Some(e),
            NodeError::Key(e) => Some(e),
            NodeError::Bus(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ConfigError> for NodeError {
    fn from(e: ConfigError) -> NodeError {
        NodeError::Config(e)
    }
}

impl From<KvError> for NodeError {
    fn from(e: KvError) -> NodeError {
        NodeError::Kv(e)
    }
}

impl From<KeyError> for NodeError {
    fn from(e: KeyError) -> NodeError {
        NodeError::Key(e)
    }
}

impl From<BusError> for NodeError {
    fn from(e: BusError) -> NodeError {
        NodeError::Bus(e)
    }
}
