//! A node's key/value state: the replicas, and the bookkeeping that
//! replicates them (generation, push rate, digest rotation, timers). Its
//! methods live by concern in `local`, `replication` and `expiry`, each
//! taking the endpoint's shared [`Ctx`](crate::context::Ctx).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use compact_str::CompactString;

use super::flow::PushRate;
use super::store::KvStore;
use crate::hash::FixedMap;
use crate::Time;

/// A timer on one version of one key: its expiry, or its tombstone's
/// collection.
pub(super) type KeyTimer = (Time, CompactString, CompactString, u64);

/// Everything this node holds and tracks of the replicated key/value state.
pub(crate) struct KvState {
    pub(super) store: KvStore,
    /// This life's generation (the time it started, in milliseconds).
    pub(super) generation: u64,
    pub(super) push_rate: PushRate,
    /// Own keys written beyond the push rate, waiting for a slot.
    pub(super) deferred: VecDeque<CompactString>,
    /// Digest exchanges run each gossip interval until then.
    pub(super) active_until: Time,
    /// Owners whose state changed recently, newest last: listed first in
    /// digests so that news is pulled before the rotating remainder.
    pub(super) hot: VecDeque<(Time, CompactString)>,
    /// Where the rotating part of the next digest starts.
    pub(super) cursor: usize,
    /// Entry bytes sent in answers during this gossip interval.
    pub(super) round_bytes: usize,
    /// An answer this interval was cut short by the round budget.
    pub(super) overflowed: bool,
    /// Keys to expire, earliest first.
    pub(super) expiries: BinaryHeap<Reverse<KeyTimer>>,
    /// How long a tombstone is kept before it is collected.
    pub(super) tombstone_grace: Duration,
    /// Tombstones to collect, in the order they were written.
    pub(super) graves: VecDeque<KeyTimer>,
    /// Keys visible before a reset in the datagram being handled, so that
    /// only the ones that do not come back are reported deleted.
    pub(super) reset_stash: Vec<(CompactString, FixedMap<CompactString, u64>)>,
}

impl KvState {
    /// An empty state: the store keyed with `store_seed`, the digest
    /// rotation starting at a point drawn from `cursor_seed`, own writes
    /// pushed at up to `push_rate` per gossip interval, tombstones kept for
    /// `tombstone_grace`.
    pub(crate) fn new(
        store_seed: u64,
        cursor_seed: u64,
        push_rate: u32,
        tombstone_grace: Duration,
    ) -> KvState {
        KvState {
            store: KvStore::new(store_seed),
            generation: 1,
            push_rate: PushRate::new(push_rate),
            deferred: VecDeque::new(),
            active_until: Time::ZERO,
            hot: VecDeque::new(),
            cursor: (cursor_seed % 1024) as usize,
            round_bytes: 0,
            overflowed: false,
            expiries: BinaryHeap::new(),
            tombstone_grace,
            graves: VecDeque::new(),
            reset_stash: Vec::new(),
        }
    }

    /// Starts this life at `now`: its generation is the time it started
    /// (ms), so a restarted node's state supersedes its previous life's at
    /// once. (Clocks that go back are caught by refutation, in
    /// `replication`.)
    pub(crate) fn start(&mut self, now: Time) {
        self.generation = now.as_millis().max(1);
    }

    /// The 32-bit summary of the store folded into the state hash.
    pub(crate) fn hash32(&self) -> [u8; 4] {
        self.store.hash32()
    }

    /// Whether any node's state is held (own included).
    pub(crate) fn holds_state(&self) -> bool {
        self.store.len() > 0
    }

    /// Whether the gossip tick has key/value work at `now`.
    pub(crate) fn wants_gossip(&self, now: Time) -> bool {
        now < self.active_until || !self.deferred.is_empty()
    }

    /// Forgets a reaped member's state.
    pub(crate) fn forget(&mut self, name: &str) {
        self.store.remove(name);
    }
}
