//! Where a key's TTL expires and a tombstone is collected. Every replica
//! hides a key once its own clock passes the expiry and raises
//! [`Event::KeyExpired`]; the owner also turns the expiry into a tombstone
//! that spreads like a write, so replicas that missed it drop the key too.
//! Tombstones are collected `kv_tombstone_grace` after they were written.

use std::cmp::Reverse;

use compact_str::CompactString;

use super::state::KvState;
use crate::context::Ctx;
use crate::event::Event;
use crate::Time;

impl KvState {
    /// Arms the timer of version `version` of `node`'s `key`: its
    /// tombstone's collection if `deleted`, else its expiry if it has one.
    pub(super) fn schedule_key_timers(
        &mut self,
        now: Time,
        node: &CompactString,
        key: &str,
        version: u64,
        expires: Option<Time>,
        deleted: bool,
    ) {
        let key = CompactString::from(key);
        if deleted {
            self.graves
                .push_back((now + self.tombstone_grace, node.clone(), key, version));
        } else if let Some(at) = expires {
            self.expiries
                .push(Reverse((at, node.clone(), key, version)));
        }
    }

    /// The earliest key/value timer.
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        let expiry = self.expiries.peek().map(|Reverse((t, ..))| *t);
        let grave = self.graves.front().map(|(t, ..)| *t);
        match (expiry, grave) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires keys and collects tombstones whose time has come.
    pub(crate) fn run_timers(&mut self, cx: &mut Ctx<'_>, now: Time) {
        while let Some(Reverse((at, ..))) = self.expiries.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, node, key, version)) = self.expiries.pop().expect("peeked");
            let current = self
                .store
                .get(&node)
                .and_then(|s| s.record(&key))
                .is_some_and(|r| r.version == version && !r.deleted);
            if !current {
                continue;
            }
            if node == cx.name() && !cx.left {
                // The owner turns the expiry into a tombstone, so replicas
                // that missed the expiry (or whose clocks lag) drop it too.
                self.write_unchecked(cx, now, &key, &[], None, true);
            }
            cx.event(Event::KeyExpired {
                node: node.into(),
                key: key.into(),
                version,
            });
        }
        while self.graves.front().is_some_and(|(t, ..)| *t <= now) {
            let (_, node, key, version) = self.graves.pop_front().expect("checked");
            let generation = self.store.get(&node).map(|s| s.generation);
            if let Some(generation) = generation {
                let collected = self
                    .store
                    .with(&node, generation, |s| s.collect(&key, version));
                cx.out.stats.kv_tombstones_collected += u64::from(collected);
            }
        }
    }
}
