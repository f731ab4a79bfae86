//! This node's own writes (checked against the limits and the datagram
//! budget, versioned, pushed within the push rate) and every read (which
//! hides keys expired by this node's clock).

use compact_str::CompactString;

use super::pattern::KeyPattern;
use super::state::KvState;
use super::store::{NodeState, Record};
use super::types::{KeyValue, KvError};
use crate::context::Ctx;
use crate::wire::budget::kv_value_room;
use crate::Time;

impl KvState {
    /// Writes `key` of this node: `value` until `expires` (if any). Returns
    /// the write's version.
    pub(crate) fn write(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        key: &str,
        value: &[u8],
        expires: Option<Time>,
    ) -> Result<u64, KvError> {
        check_key(cx, key)?;
        if expires.is_some_and(|e| e <= now) {
            return Err(KvError::ExpiryInPast);
        }
        // The largest value that fits: the configured limit, and one
        // datagram with this entry at its largest possible integers.
        let fits = kv_value_room(cx.budget(), cx.name(), key);
        let max = cx.config.max_value_len.min(fits);
        if value.len() > max {
            return Err(KvError::ValueTooLarge {
                len: value.len(),
                max,
            });
        }
        let own = self.store.get(cx.name());
        let is_new = own.is_none_or(|s| s.record(key).is_none_or(|r| r.deleted));
        let live = own.map_or(0, NodeState::live_keys);
        if is_new && live >= cx.config.max_keys_per_node {
            return Err(KvError::TooManyKeys {
                max: cx.config.max_keys_per_node,
            });
        }
        Ok(self.write_unchecked(cx, now, key, value, expires, false))
    }

    /// Deletes this node's `key`; `None` if it was not set.
    pub(crate) fn delete(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        key: &str,
    ) -> Result<Option<u64>, KvError> {
        if self.entry(cx.now, cx.name(), key).is_none() {
            return Ok(None);
        }
        check_key(cx, key)?;
        Ok(Some(self.write_unchecked(cx, now, key, &[], None, true)))
    }

    /// Writes a new version of an own key (checks done), schedules its
    /// timers and pushes it.
    pub(super) fn write_unchecked(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        key: &str,
        value: &[u8],
        expires: Option<Time>,
        deleted: bool,
    ) -> u64 {
        let me = CompactString::from(cx.name());
        let generation = self.generation;
        let version = self.store.with(&me, generation, |s| {
            s.write(key, value, expires, deleted);
            s.max_version
        });
        self.schedule_key_timers(now, &me, key, version, expires, deleted);
        self.mark_changed(cx, now, &me);
        if self.push_rate.take() {
            self.push_entry(cx, &me, key);
            cx.gossip(now);
        } else if !self.deferred.iter().any(|k| k == key) {
            self.deferred.push_back(CompactString::from(key));
        }
        version
    }

    /// `node`'s `key` with its version and expiry, as a reader at `now`
    /// sees it (hidden once expired, or deleted).
    pub(crate) fn entry<'a>(&'a self, now: Time, node: &str, key: &str) -> Option<KeyValue<'a>> {
        let (node, s) = self.store.get_named(node)?;
        let (k, r) = s.record_named(key)?;
        visible(now, node, k, r)
    }

    /// `node`'s keys visible at `now`, sorted.
    pub(crate) fn keys(&self, now: Time, node: &str) -> Vec<&str> {
        let Some(s) = self.store.get(node) else {
            return Vec::new();
        };
        let mut keys: Vec<&str> = s
            .records()
            .filter(|(_, r)| r.visible(now))
            .map(|(k, _)| k)
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Every key visible at `now` of every node matching `pattern`, sorted
    /// by node then key.
    pub(crate) fn scan(&self, now: Time, pattern: &KeyPattern) -> Vec<KeyValue<'_>> {
        let prefix = pattern.literal_prefix();
        let mut out: Vec<KeyValue<'_>> = self
            .store
            .nodes()
            .flat_map(|(node, s)| {
                s.records()
                    .filter(move |(k, _)| k.starts_with(prefix) && pattern.matches(k))
                    .filter_map(move |(k, r)| visible(now, node, k, r))
            })
            .collect();
        out.sort_unstable_by(|a, b| (a.node, a.key).cmp(&(b.node, b.key)));
        out
    }

    /// Nodes whose state this node holds, sorted.
    pub(crate) fn nodes(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.store.nodes().map(|(n, _)| n).collect();
        v.sort_unstable();
        v
    }

    /// `node`'s generation, heartbeat and highest version as held here.
    pub(crate) fn digest(&self, node: &str) -> Option<(u64, u64, u64)> {
        self.store
            .get(node)
            .map(|s| (s.generation, s.heartbeat, s.max_version))
    }

    /// Own writes pushed per gossip interval, as flow control adapted it.
    pub(crate) fn push_rate(&self) -> u32 {
        self.push_rate.rate()
    }
}

fn visible<'a>(now: Time, node: &'a str, key: &'a str, r: &'a Record) -> Option<KeyValue<'a>> {
    r.visible(now).then_some(KeyValue {
        node,
        key,
        value: &r.value,
        version: r.version,
        expires: r.expires,
    })
}

fn check_key(cx: &Ctx<'_>, key: &str) -> Result<(), KvError> {
    if cx.left {
        return Err(KvError::Left);
    }
    if key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    if key.len() > cx.config.max_key_len {
        return Err(KvError::KeyTooLong {
            len: key.len(),
            max: cx.config.max_key_len,
        });
    }
    Ok(())
}
