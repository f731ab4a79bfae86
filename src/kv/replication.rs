//! Replication of key/value entries: every new entry is pushed at once
//! (to `gossip_nodes` peers, then piggybacked like any update) within the
//! AIMD push rate, and every replica that applies a new entry re-gossips
//! it. Replicas apply an entry only if they hold every earlier version of
//! its owner (its `base`), so a lost or reordered push leaves a gap that a
//! digest exchange (`digest`) fills, never a hole that would be claimed as
//! held. A restarted owner has a new generation, which replaces its old
//! state instead of mixing with it. Generations compare as serial numbers
//! (see [`crate::serial`]) and an owner answers any claim about itself at
//! its generation or a newer one with a newer generation still, so a forged
//! generation, even `u64::MAX`, cannot outlast the owner's next word.

use compact_str::CompactString;

use super::state::KvState;
use super::store::{Apply, NodeState, Record};
use crate::context::Ctx;
use crate::event::Event;
use crate::hash::FixedMap;
use crate::serial::newer64;
use crate::wire::{self, Message};
use crate::Time;

/// Recently changed owners remembered for digests; more than a datagram
/// lists is pointless, and the rotation covers the rest.
const MAX_HOT: usize = 128;

/// The queue subject of `node`'s `key`: distinct from member names (which
/// are the subjects of membership updates), so a newer write of a key
/// replaces the older one in the queue and nothing else.
fn subject(node: &str, key: &str) -> String {
    format!("\0{node}\0{key}")
}

impl KvState {
    /// Notes that `node`'s state changed: digest exchanges run for a while
    /// and list it first.
    pub(super) fn mark_changed(&mut self, cx: &mut Ctx<'_>, now: Time, node: &CompactString) {
        let rounds =
            crate::broadcast::retransmit_limit(cx.config.retransmit_mult, cx.members.live_count());
        self.active_until = now + cx.config.gossip_interval * rounds;
        if let Some(at) = self.hot.iter().rposition(|(_, n)| n == node) {
            self.hot.remove(at);
        }
        self.hot.push_back((now, node.clone()));
        if self.hot.len() > MAX_HOT {
            self.hot.pop_front();
        }
        while self
            .hot
            .front()
            .is_some_and(|(t, _)| *t + cx.config.gossip_interval * rounds < now)
        {
            self.hot.pop_front();
        }
    }

    /// Queues `node`'s current record of `key` for dissemination.
    pub(super) fn push_entry(&mut self, cx: &mut Ctx<'_>, node: &str, key: &str) {
        let Some(s) = self.store.get(node) else {
            return;
        };
        let Some((k, r)) = s.record_named(key) else {
            return;
        };
        let payload =
            wire::encode_message(&Message::KvEntry(s.entry(node, k, r, s.base_of(r.version))));
        cx.broadcast_encoded(&subject(node, key), payload);
    }

    /// Another node claims something about this node's own state: if it
    /// holds a later generation, or more versions of this one, that is state
    /// of a previous life (whose clock was ahead, or which started in the
    /// same millisecond), and a new generation replaces it.
    pub(super) fn refute_generation(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        generation: u64,
        max_version: u64,
    ) {
        let own_max = self.store.get(&cx.config.name).map_or(0, |s| s.max_version);
        let stale = newer64(generation, self.generation)
            || (generation == self.generation && max_version > own_max);
        if !stale {
            return;
        }
        cx.out.stats.kv_generation_refutations += 1;
        // Serial order: one past the claim is newer than it whatever its
        // value, so no forged generation can outlast this node's answer.
        self.generation = generation.wrapping_add(1);
        let me = CompactString::from(cx.config.name.as_str());
        let old = self.store.reset(&me, self.generation);
        let Some(old) = old else { return };
        let mut live: Vec<(&str, &Record)> =
            old.records().filter(|(_, r)| r.visible(now)).collect();
        live.sort_unstable_by_key(|(_, r)| r.version);
        for (key, r) in live {
            self.store.with(&me, self.generation, |s| {
                s.write(key, &r.value, r.expires, false)
            });
            let version = self.store.get(&me).map_or(0, |s| s.max_version);
            self.schedule_key_timers(now, &me, key, version, r.expires, false);
        }
        self.mark_changed(cx, now, &me);
    }

    pub(crate) fn handle_entry(&mut self, cx: &mut Ctx<'_>, now: Time, e: &wire::KvEntry<'_>) {
        if e.node == cx.config.name {
            self.refute_generation(cx, now, e.generation, e.version);
            return;
        }
        if cx.members.find(e.node).is_none() {
            cx.drop("kv_unknown_node");
            return;
        }
        let node = CompactString::from(e.node);
        let held = self.store.get(e.node).map(|s| s.generation);
        match held {
            Some(g) if newer64(g, e.generation) => return,
            Some(g) if g != e.generation => {
                // The owner restarted: its old state is replaced, not merged.
                let old = self.store.reset(e.node, e.generation);
                self.stash_reset(cx, &node, old);
            }
            _ => {}
        }
        let max_keys = cx.config.max_keys_per_node;
        let outcome = self
            .store
            .with(e.node, e.generation, |s| s.apply(e, max_keys));
        match outcome {
            Apply::Applied(old) => self.applied(cx, now, &node, e, old),
            Apply::Stale => {}
            Apply::Gap => {
                cx.drop("kv_gap");
                self.mark_changed(cx, now, &node);
            }
            Apply::Limit => cx.drop("kv_key_limit"),
        }
    }

    fn applied(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        node: &CompactString,
        e: &wire::KvEntry<'_>,
        old: Option<Record>,
    ) {
        cx.out.stats.kv_entries_applied += 1;
        let expires = (e.expires_ms != 0).then(|| Time::from_millis(e.expires_ms));
        self.schedule_key_timers(now, node, e.key, e.version, expires, e.deleted);
        self.mark_changed(cx, now, node);
        self.push_entry(cx, node, e.key);
        let was_visible = old.as_ref().is_some_and(|r| r.visible(now))
            || self.stashed_version(node, e.key).is_some();
        let visible = !e.deleted && expires.is_none_or(|t| now < t);
        if visible {
            if self.stashed_version(node, e.key) == Some(e.version) {
                return; // came back unchanged after a reset
            }
            cx.event(Event::KeyUpdated {
                node: node.to_string(),
                key: e.key.to_owned(),
                value: e.value.0.to_vec(),
                version: e.version,
            });
        } else if was_visible {
            cx.event(Event::KeyDeleted {
                node: node.to_string(),
                key: e.key.to_owned(),
                version: e.version,
            });
        }
        self.unstash(node, e.key);
    }

    fn stash_reset(&mut self, cx: &mut Ctx<'_>, node: &CompactString, old: Option<NodeState>) {
        let Some(old) = old else { return };
        let visible: FixedMap<CompactString, u64> = old
            .records()
            .filter(|(_, r)| r.visible(cx.now))
            .map(|(k, r)| (CompactString::from(k), r.version))
            .collect();
        if !visible.is_empty() {
            self.reset_stash.push((node.clone(), visible));
        }
    }

    fn stashed_version(&self, node: &str, key: &str) -> Option<u64> {
        self.reset_stash
            .iter()
            .find(|(n, _)| n == node)
            .and_then(|(_, m)| m.get(key).copied())
    }

    fn unstash(&mut self, node: &str, key: &str) {
        if let Some((_, m)) = self.reset_stash.iter_mut().find(|(n, _)| n == node) {
            m.remove(key);
        }
    }

    /// After a datagram: keys a reset removed that did not come back are
    /// reported deleted.
    pub(crate) fn finish_resets(&mut self, cx: &mut Ctx<'_>) {
        for (node, keys) in std::mem::take(&mut self.reset_stash) {
            let mut keys: Vec<(CompactString, u64)> = keys.into_iter().collect();
            keys.sort_unstable();
            for (key, version) in keys {
                cx.event(Event::KeyDeleted {
                    node: node.to_string(),
                    key: key.into(),
                    version,
                });
            }
        }
    }

    pub(crate) fn handle_reset(&mut self, cx: &mut Ctx<'_>, r: &wire::KvReset<'_>) {
        if r.node == cx.config.name {
            return;
        }
        let behind = self
            .store
            .get(r.node)
            .is_some_and(|s| s.generation == r.generation && s.max_version < r.floor);
        if behind {
            cx.out.stats.kv_resets += 1;
            let node = CompactString::from(r.node);
            let old = self.store.reset(r.node, r.generation);
            self.stash_reset(cx, &node, old);
        }
    }
}
