//! The public types of the key/value API.

use std::fmt;

use crate::Time;

/// Why a local write was refused. Nothing is written when one is returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvError {
    /// The key is empty.
    EmptyKey,
    /// The key is longer than `Config::max_key_len`.
    KeyTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is larger than `Config::max_value_len`, or the entry would
    /// not fit one datagram.
    ValueTooLarge {
        /// Its length in bytes.
        len: usize,
        /// The largest that fits, for this key.
        max: usize,
    },
    /// The node already owns `Config::max_keys_per_node` keys.
    TooManyKeys {
        /// The limit.
        max: usize,
    },
    /// The expiry is not after the current time.
    ExpiryInPast,
    /// The node has left the cluster.
    Left,
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::EmptyKey => f.write_str("key: must not be empty"),
            KvError::KeyTooLong { len, max } => {
                write!(f, "key: {len} bytes, more than max_key_len ({max})")
            }
            KvError::ValueTooLarge { len, max } => write!(
                f,
                "value: {len} bytes, more than fits (max_value_len or one datagram: {max})"
            ),
            KvError::TooManyKeys { max } => {
                write!(
                    f,
                    "key: this node already owns max_keys_per_node ({max}) keys"
                )
            }
            KvError::ExpiryInPast => f.write_str("expiry: must be in the future"),
            KvError::Left => f.write_str("node: has left the cluster"),
        }
    }
}

impl std::error::Error for KvError {}

/// One visible key of one node, borrowed from the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyValue<'a> {
    /// The owner.
    pub node: &'a str,
    /// The key.
    pub key: &'a str,
    /// Its value.
    pub value: &'a [u8],
    /// Its version (per owner, rising with every write of the owner).
    pub version: u64,
    /// When it expires, if it has a TTL.
    pub expires: Option<Time>,
}
