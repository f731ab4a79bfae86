//! A node's replicated key/value state through its handle: each call runs
//! the [`Endpoint`](crate::Endpoint)'s method of the same name on the
//! node's loop (so a write is pushed to peers before the call returns) and
//! hands back owned results. The algorithm is `docs/PROTOCOL.md` §7.

use std::time::{Duration, SystemTime};

use super::clock::{system_time_of, time_of};
use super::error::NodeError;
use super::node::Node;
use crate::{KeyPattern, KeyValue};

/// One visible key of one node, as [`Node::scan`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    /// The owner.
    pub node: String,
    /// The key.
    pub key: String,
    /// Its value.
    pub value: Vec<u8>,
    /// The owner's version of this write.
    pub version: u64,
    /// When it expires, if it was set with a TTL or an expiry.
    pub expires: Option<SystemTime>,
}

impl From<KeyValue<'_>> for KeyEntry {
    fn from(kv: KeyValue<'_>) -> KeyEntry {
        KeyEntry {
            node: kv.node.to_owned(),
            key: kv.key.to_owned(),
            value: kv.value.to_vec(),
            version: kv.version,
            expires: kv.expires.map(system_time_of),
        }
    }
}

impl Node {
    /// This node's own value of `key`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, NodeError> {
        let key = key.to_owned();
        self.with_endpoint(move |ep, _| ep.get(&key).map(<[u8]>::to_vec))
    }

    /// Sets this node's `key` to `value`, with no expiry, and pushes it to
    /// peers. Returns the write's version.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<u64, NodeError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        Ok(self.with_endpoint(move |ep, now| ep.set(now, &key, &value))??)
    }

    /// Sets `key` to `value` for `ttl`: then every node hides it and raises
    /// [`Event::KeyExpired`](crate::Event::KeyExpired).
    pub fn set_with_ttl(&self, key: &str, value: &[u8], ttl: Duration) -> Result<u64, NodeError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        Ok(self.with_endpoint(move |ep, now| ep.set_with_ttl(now, &key, &value, ttl))??)
    }

    /// Sets `key` to `value` until the wall-clock time `expires` (each node
    /// applies it by its own clock, so clocks should agree, as with NTP).
    pub fn set_with_expiry(
        &self,
        key: &str,
        value: &[u8],
        expires: SystemTime,
    ) -> Result<u64, NodeError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        let at = time_of(expires);
        Ok(self.with_endpoint(move |ep, now| ep.set_with_expiry(now, &key, &value, at))??)
    }

    /// Deletes this node's `key` (a tombstone spreads like a write).
    /// Returns the tombstone's version, or `None` if the key was not set.
    pub fn delete(&self, key: &str) -> Result<Option<u64>, NodeError> {
        let key = key.to_owned();
        Ok(self.with_endpoint(move |ep, now| ep.delete(now, &key))??)
    }

    /// `peer`'s value of `key` as this node sees it (`None` once deleted or
    /// expired by this node's clock).
    pub fn peer_value(&self, peer: &str, key: &str) -> Result<Option<Vec<u8>>, NodeError> {
        Ok(self.peer_entry(peer, key)?.map(|e| e.value))
    }

    /// `peer`'s `key` with its version and expiry.
    pub fn peer_entry(&self, peer: &str, key: &str) -> Result<Option<KeyEntry>, NodeError> {
        let (peer, key) = (peer.to_owned(), key.to_owned());
        self.with_endpoint(move |ep, _| ep.peer_entry(&peer, &key).map(KeyEntry::from))
    }

    /// `peer`'s visible keys, sorted.
    pub fn peer_keys(&self, peer: &str) -> Result<Vec<String>, NodeError> {
        let peer = peer.to_owned();
        self.with_endpoint(move |ep, _| {
            ep.peer_keys(&peer).into_iter().map(str::to_owned).collect()
        })
    }

    /// Every visible key of every node matching `pattern`, sorted by node
    /// then key.
    pub fn scan(&self, pattern: &KeyPattern) -> Result<Vec<KeyEntry>, NodeError> {
        let pattern = pattern.clone();
        self.with_endpoint(move |ep, _| ep.scan(&pattern).into_iter().map(KeyEntry::from).collect())
    }

    /// Nodes whose state this node holds (itself included once it wrote).
    pub fn kv_nodes(&self) -> Result<Vec<String>, NodeError> {
        self.with_endpoint(|ep, _| ep.kv_nodes().into_iter().map(str::to_owned).collect())
    }

    /// The phi-accrual suspicion level of `peer` now (0 = just heard from;
    /// `Config::phi_threshold` is where evidence counts as overdue), or
    /// `None` without evidence of its life yet.
    pub fn phi(&self, peer: &str) -> Result<Option<f64>, NodeError> {
        let peer = peer.to_owned();
        self.with_endpoint(move |ep, now| ep.phi(&peer, now))
    }
}
