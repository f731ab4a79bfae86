//! [`NodeError`]: why a [`Node`](super::Node) call failed. At the bottom of
//! the runtime's layers, so that every file may return it.

use std::fmt;
use std::io;

use crate::security::KeyError;
use crate::{BusError, ConfigError, ForceLeaveError, KvError};

/// Why a [`Node`](super::Node) call failed.
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
    /// [`Node::start`](super::Node::start) on a node already running.
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
    /// A forced leave refused (nothing changed).
    ForceLeave(ForceLeaveError),
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
            NodeError::ForceLeave(e) => write!(f, "force-leave refused: {e}"),
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
            NodeError::ForceLeave(e) => Some(e),
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

impl From<ForceLeaveError> for NodeError {
    fn from(e: ForceLeaveError) -> NodeError {
        NodeError::ForceLeave(e)
    }
}
