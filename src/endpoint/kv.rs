//! The endpoint's key/value calls: each takes in the time and hands the
//! call to [`KvState`](crate::kv::KvState), where replication lives.

use std::time::Duration;

use super::Endpoint;
use crate::kv::{KeyPattern, KeyValue, KvError};
use crate::Time;

impl Endpoint {
    /// Sets this node's `key` to `value` (no expiry) and pushes it to peers
    /// at once. Returns the write's version.
    pub fn set(&mut self, now: Time, key: &str, value: &[u8]) -> Result<u64, KvError> {
        self.write(now, key, value, None)
    }

    /// Sets `key` to `value` for `ttl`: after it, every node hides the key
    /// (by its own clock) and raises [`Event::KeyExpired`](crate::Event::KeyExpired),
    /// and this node writes a tombstone.
    pub fn set_with_ttl(
        &mut self,
        now: Time,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<u64, KvError> {
        self.write(now, key, value, Some(now + ttl))
    }

    /// Sets `key` to `value` until the absolute time `expires` (in the
    /// endpoint's time, which the runtime keeps as wall-clock time).
    pub fn set_with_expiry(
        &mut self,
        now: Time,
        key: &str,
        value: &[u8],
        expires: Time,
    ) -> Result<u64, KvError> {
        self.write(now, key, value, Some(expires))
    }

    fn write(
        &mut self,
        now: Time,
        key: &str,
        value: &[u8],
        expires: Option<Time>,
    ) -> Result<u64, KvError> {
        self.observe_time(now);
        let (kv, _, mut cx) = self.split();
        kv.write(&mut cx, now, key, value, expires)
    }

    /// Deletes this node's `key`: a versioned tombstone spreads like a
    /// write, and is collected after `kv_tombstone_grace`. Returns the
    /// tombstone's version, or `None` if the key was not set.
    pub fn delete(&mut self, now: Time, key: &str) -> Result<Option<u64>, KvError> {
        self.observe_time(now);
        let (kv, _, mut cx) = self.split();
        kv.delete(&mut cx, now, key)
    }

    /// This node's own value of `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.peer_value(&self.config.name, key)
    }

    /// `node`'s value of `key` as this node currently sees it (hidden once
    /// expired by this node's clock, or deleted).
    pub fn peer_value(&self, node: &str, key: &str) -> Option<&[u8]> {
        self.peer_entry(node, key).map(|kv| kv.value)
    }

    /// `node`'s `key` with its version and expiry.
    pub fn peer_entry(&self, node: &str, key: &str) -> Option<KeyValue<'_>> {
        self.kv.entry(self.clock.latest(), node, key)
    }

    /// `node`'s visible keys, sorted.
    pub fn peer_keys(&self, node: &str) -> Vec<&str> {
        self.kv.keys(self.clock.latest(), node)
    }

    /// Every visible key of every node matching `pattern`, sorted by node
    /// then key. `KeyPattern::Any` iterates over all state.
    pub fn scan(&self, pattern: &KeyPattern) -> Vec<KeyValue<'_>> {
        self.kv.scan(self.clock.latest(), pattern)
    }

    /// Nodes whose state this node holds (including itself once it wrote).
    pub fn kv_nodes(&self) -> Vec<&str> {
        self.kv.nodes()
    }

    /// `node`'s generation, heartbeat and highest version as held here.
    pub fn kv_digest(&self, node: &str) -> Option<(u64, u64, u64)> {
        self.kv.digest(node)
    }

    /// This node's current push rate (own writes per gossip interval, as
    /// adapted by flow control).
    pub fn kv_push_rate(&self) -> u32 {
        self.kv.push_rate()
    }
}
