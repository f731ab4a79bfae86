//! Replicated key/value state on the endpoint: local writes, the push of
//! new entries, scuttlebutt digests and deltas, TTL expiry and tombstone
//! collection. The data structures live in [`crate::kv`]; the algorithm is
//! `docs/PROTOCOL.md` §7.
//!
//! * A write takes its owner's next version and is pushed at once (to
//!   `gossip_nodes` peers, then piggybacked like any update), within the
//!   AIMD push rate; every replica that applies a new entry re-gossips it.
//! * Replicas apply an entry only if they hold every earlier version of its
//!   owner (its `base`), so a lost or reordered push leaves a gap that a
//!   digest exchange fills, never a hole that would be claimed as held.
//! * Digest exchanges run each gossip interval while state is changing,
//!   and whenever a probe shows a peer's state hash differs (the store's
//!   hash is folded into the membership hash carried on pings and acks).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use compact_str::CompactString;
use hashbrown::HashMap;

use super::Endpoint;
use crate::event::Event;
use crate::kv::store::{Apply, KvStore, NodeState, Record};
use crate::kv::{KeyPattern, KeyValue, KvError, PushRate};
use crate::membership::phi::{PhiDetector, PhiParams};
use crate::membership::state::MemberId;
use crate::wire::{self, DatagramBuilder, Message, MessageKind};
use crate::Time;

type FixedMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Recently changed owners remembered for digests; more than a datagram
/// lists is pointless, and the rotation covers the rest.
const MAX_HOT: usize = 128;

/// A timer on one version of one key: its expiry, or its tombstone's
/// collection.
type KeyTimer = Reverse<(Time, CompactString, CompactString, u64)>;

/// The endpoint's key/value bookkeeping besides the store itself.
pub(super) struct KvState {
    pub(super) store: KvStore,
    generation: u64,
    push_rate: PushRate,
    /// Own keys written beyond the push rate, waiting for a slot.
    deferred: VecDeque<CompactString>,
    /// Digest exchanges run each gossip interval until then.
    active_until: Time,
    /// Owners whose state changed recently, newest last: listed first in
    /// digests so that news is pulled before the rotating remainder.
    hot: VecDeque<(Time, CompactString)>,
    /// Where the rotating part of the next digest starts.
    cursor: usize,
    /// Entry bytes sent in answers during this gossip interval.
    round_bytes: usize,
    /// An answer this interval was cut short by the round budget.
    overflowed: bool,
    expiries: BinaryHeap<KeyTimer>,
    graves: VecDeque<(Time, CompactString, CompactString, u64)>,
    /// The latest time seen: reads hide keys expired by then.
    pub(super) now: Time,
    /// Keys visible before a reset in the datagram being handled, so that
    /// only the ones that do not come back are reported deleted.
    reset_stash: Vec<(CompactString, FixedMap<CompactString, u64>)>,
    pub(super) phi: FixedMap<MemberId, PhiDetector>,
}

impl KvState {
    pub(super) fn new(seeds: [u64; 3], push_rate: u32) -> KvState {
        KvState {
            store: KvStore::new(seeds[0]),
            generation: 1,
            push_rate: PushRate::new(push_rate),
            deferred: VecDeque::new(),
            active_until: Time::ZERO,
            hot: VecDeque::new(),
            cursor: 0,
            round_bytes: 0,
            overflowed: false,
            expiries: BinaryHeap::new(),
            graves: VecDeque::new(),
            now: Time::ZERO,
            reset_stash: Vec::new(),
            phi: FixedMap::with_hasher(foldhash::fast::FixedState::with_seed(seeds[1])),
        }
        .with_seed(seeds[2])
    }

    fn with_seed(mut self, seed: u64) -> KvState {
        self.cursor = (seed % 1024) as usize;
        self
    }

    /// The earliest key/value timer.
    pub(super) fn next_timer(&self) -> Option<Time> {
        let expiry = self.expiries.peek().map(|Reverse((t, ..))| *t);
        let grave = self.graves.front().map(|(t, ..)| *t);
        match (expiry, grave) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the gossip tick has key/value work.
    pub(super) fn wants_gossip(&self, now: Time) -> bool {
        now < self.active_until || !self.deferred.is_empty()
    }
}

/// The queue subject of `node`'s `key`: distinct from member names (which
/// are the subjects of membership updates), so a newer write of a key
/// replaces the older one in the queue and nothing else.
fn subject(node: &str, key: &str) -> String {
    format!("\0{node}\0{key}")
}

/// What to send a peer about one owner in answer to its digest.
struct Send {
    node: CompactString,
    /// Send everything from scratch (after a reset, or a node it lacks).
    from_scratch: bool,
    /// Otherwise, the entries after this version.
    after: u64,
    /// How far behind the peer is (scuttle-depth: most behind first).
    depth: u64,
}

impl Endpoint {
    // ------------------------------------------------------------------
    // Local API.

    /// Sets this node's `key` to `value` (no expiry) and pushes it to peers
    /// at once. Returns the write's version.
    pub fn set(&mut self, now: Time, key: &str, value: &[u8]) -> Result<u64, KvError> {
        self.write_own(now, key, value, None)
    }

    /// Sets `key` to `value` for `ttl`: after it, every node hides the key
    /// (by its own clock) and raises [`Event::KeyExpired`], and this node
    /// writes a tombstone.
    pub fn set_with_ttl(
        &mut self,
        now: Time,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<u64, KvError> {
        self.write_own(now, key, value, Some(now + ttl))
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
        self.write_own(now, key, value, Some(expires))
    }

    /// Deletes this node's `key`: a versioned tombstone spreads like a
    /// write, and is collected after `kv_tombstone_grace`. Returns the
    /// tombstone's version, or `None` if the key was not set.
    pub fn delete(&mut self, now: Time, key: &str) -> Result<Option<u64>, KvError> {
        self.observe_time(now);
        if self.get(key).is_none() {
            return Ok(None);
        }
        self.check_key(key)?;
        Ok(Some(self.write_unchecked(now, key, &[], None, true)))
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
        let (node, s) = self.kv.store.get_named(node)?;
        let (k, r) = s.record_named(key)?;
        self.visible(node, k, r)
    }

    /// `node`'s visible keys, sorted.
    pub fn peer_keys(&self, node: &str) -> Vec<&str> {
        let Some(s) = self.kv.store.get(node) else {
            return Vec::new();
        };
        let mut keys: Vec<&str> = s
            .records()
            .filter(|(_, r)| r.visible(self.kv.now))
            .map(|(k, _)| k)
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Every visible key of every node matching `pattern`, sorted by node
    /// then key. `KeyPattern::Any` iterates over all state.
    pub fn scan(&self, pattern: &KeyPattern) -> Vec<KeyValue<'_>> {
        let prefix = pattern.literal_prefix();
        let mut out: Vec<KeyValue<'_>> = self
            .kv
            .store
            .nodes()
            .flat_map(|(node, s)| {
                s.records()
                    .filter(move |(k, _)| k.starts_with(prefix) && pattern.matches(k))
                    .filter_map(move |(k, r)| self.visible(node, k, r))
            })
            .collect();
        out.sort_unstable_by(|a, b| (a.node, a.key).cmp(&(b.node, b.key)));
        out
    }

    /// Nodes whose state this node holds (including itself once it wrote).
    pub fn kv_nodes(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.kv.store.nodes().map(|(n, _)| n).collect();
        v.sort_unstable();
        v
    }

    /// `node`'s generation, heartbeat and highest version as held here.
    pub fn kv_digest(&self, node: &str) -> Option<(u64, u64, u64)> {
        self.kv
            .store
            .get(node)
            .map(|s| (s.generation, s.heartbeat, s.max_version))
    }

    /// This node's current push rate (own writes per gossip interval, as
    /// adapted by flow control).
    pub fn kv_push_rate(&self) -> u32 {
        self.kv.push_rate.rate()
    }

    /// The phi-accrual suspicion level of `member` at `now` (0 = just
    /// heard from; the default threshold is 8), or `None` if this node has
    /// no evidence of its life yet.
    pub fn phi(&self, member: &str, now: Time) -> Option<f64> {
        let id = self.members.find(member)?;
        let d = self.kv.phi.get(&id)?;
        Some(d.phi(now, self.phi_params()))
    }

    fn visible<'a>(&'a self, node: &'a str, key: &'a str, r: &'a Record) -> Option<KeyValue<'a>> {
        r.visible(self.kv.now).then_some(KeyValue {
            node,
            key,
            value: &r.value,
            version: r.version,
            expires: r.expires,
        })
    }

    pub(super) fn observe_time(&mut self, now: Time) {
        if !self.clock_started {
            // The first deadlines were drawn as offsets within one period
            // (so nodes started together do not tick in lockstep); they
            // count from the first time this endpoint is given, which for
            // the runtime is wall-clock time, not zero.
            self.clock_started = true;
            // A life's key/value generation is the time it started (ms), so
            // a restarted node's state supersedes its previous life's at
            // once. (Clocks that go back are caught by refutation, below.)
            self.kv.generation = (now.as_nanos() / 1_000_000).max(1);
            let base = now.saturating_since(Time::ZERO);
            self.next_probe += base;
            self.next_gossip += base;
            self.next_reconnect += base;
        }
        self.kv.now = self.kv.now.max(now);
    }

    fn check_key(&self, key: &str) -> Result<(), KvError> {
        if self.left {
            return Err(KvError::Left);
        }
        if key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        if key.len() > self.config.max_key_len {
            return Err(KvError::KeyTooLong {
                len: key.len(),
                max: self.config.max_key_len,
            });
        }
        Ok(())
    }

    fn write_own(
        &mut self,
        now: Time,
        key: &str,
        value: &[u8],
        expires: Option<Time>,
    ) -> Result<u64, KvError> {
        self.observe_time(now);
        self.check_key(key)?;
        if expires.is_some_and(|e| e <= now) {
            return Err(KvError::ExpiryInPast);
        }
        // The largest value that fits: the configured limit, and one
        // datagram with this entry at its largest possible integers.
        let probe = wire::KvEntry {
            node: &self.config.name,
            generation: u64::MAX,
            base: u64::MAX - 1,
            version: u64::MAX,
            key,
            value: wire::Bytes(&[]),
            expires_ms: u64::MAX,
            deleted: false,
        };
        let empty = wire::HEADER_LEN + wire::encode_message(&Message::KvEntry(probe)).len();
        // A value's length prefix grows with it (up to 3 bytes here).
        let fits = self.message_budget().saturating_sub(empty + 2);
        let max = self.config.max_value_len.min(fits);
        if value.len() > max {
            return Err(KvError::ValueTooLarge {
                len: value.len(),
                max,
            });
        }
        let own = self.kv.store.get(&self.config.name);
        let is_new = own.is_none_or(|s| s.record(key).is_none_or(|r| r.deleted));
        let live = own.map_or(0, NodeState::live_keys);
        if is_new && live >= self.config.max_keys_per_node {
            return Err(KvError::TooManyKeys {
                max: self.config.max_keys_per_node,
            });
        }
        Ok(self.write_unchecked(now, key, value, expires, false))
    }

    /// Writes a new version of an own key (checks done), schedules its
    /// timers and pushes it.
    fn write_unchecked(
        &mut self,
        now: Time,
        key: &str,
        value: &[u8],
        expires: Option<Time>,
        deleted: bool,
    ) -> u64 {
        let me = CompactString::from(self.config.name.as_str());
        let generation = self.kv.generation;
        let version = self.kv.store.with(&me, generation, |s| {
            s.write(key, value, expires, deleted);
            s.max_version
        });
        self.schedule_key_timers(now, &me, key, version, expires, deleted);
        self.mark_changed(now, &me);
        if self.kv.push_rate.take() {
            self.push_entry(&me, key);
            self.gossip(now);
        } else if !self.kv.deferred.iter().any(|k| k == key) {
            self.kv.deferred.push_back(CompactString::from(key));
        }
        version
    }

    fn schedule_key_timers(
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
            self.kv.graves.push_back((
                now + self.config.kv_tombstone_grace,
                node.clone(),
                key,
                version,
            ));
        } else if let Some(at) = expires {
            self.kv
                .expiries
                .push(Reverse((at, node.clone(), key, version)));
        }
    }

    /// Notes that `node`'s state changed: digest exchanges run for a while
    /// and list it first.
    fn mark_changed(&mut self, now: Time, node: &CompactString) {
        let rounds = crate::broadcast::retransmit_limit(
            self.config.retransmit_mult,
            self.members.live_count(),
        );
        self.kv.active_until = now + self.config.gossip_interval * rounds;
        if let Some(at) = self.kv.hot.iter().rposition(|(_, n)| n == node) {
            self.kv.hot.remove(at);
        }
        self.kv.hot.push_back((now, node.clone()));
        if self.kv.hot.len() > MAX_HOT {
            self.kv.hot.pop_front();
        }
        while self
            .kv
            .hot
            .front()
            .is_some_and(|(t, _)| *t + self.config.gossip_interval * rounds < now)
        {
            self.kv.hot.pop_front();
        }
    }

    /// Queues `node`'s current record of `key` for dissemination.
    fn push_entry(&mut self, node: &str, key: &str) {
        let Some(s) = self.kv.store.get(node) else {
            return;
        };
        let Some((k, r)) = s.record_named(key) else {
            return;
        };
        let payload =
            wire::encode_message(&Message::KvEntry(s.entry(node, k, r, s.base_of(r.version))));
        self.broadcast_encoded(&subject(node, key), payload);
    }

    // ------------------------------------------------------------------
    // Timers.

    /// Expires keys and collects tombstones whose time has come.
    pub(super) fn run_kv_timers(&mut self, now: Time) {
        self.observe_time(now);
        while let Some(Reverse((at, ..))) = self.kv.expiries.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, node, key, version)) = self.kv.expiries.pop().expect("peeked");
            let current = self
                .kv
                .store
                .get(&node)
                .and_then(|s| s.record(&key))
                .is_some_and(|r| r.version == version && !r.deleted);
            if !current {
                continue;
            }
            if node == self.config.name && !self.left {
                // The owner turns the expiry into a tombstone, so replicas
                // that missed the expiry (or whose clocks lag) drop it too.
                self.write_unchecked(now, &key, &[], None, true);
            }
            self.events.push_back(Event::KeyExpired {
                node: node.into(),
                key: key.into(),
                version,
            });
        }
        while self.kv.graves.front().is_some_and(|(t, ..)| *t <= now) {
            let (_, node, key, version) = self.kv.graves.pop_front().expect("checked");
            let generation = self.kv.store.get(&node).map(|s| s.generation);
            if let Some(generation) = generation {
                self.kv
                    .store
                    .with(&node, generation, |s| s.collect(&key, version));
            }
        }
    }

    /// The key/value part of a gossip tick: adapt the push rate, release
    /// deferred writes, and pull from peers while state is changing.
    pub(super) fn kv_gossip_tick(&mut self, now: Time) {
        let overflowed = self.kv.overflowed || self.queue.has_unsent();
        self.kv.push_rate.end_interval(overflowed);
        if overflowed {
            self.stats.kv_overflows += 1;
        }
        self.kv.overflowed = false;
        self.kv.round_bytes = 0;
        let me = self.config.name.clone();
        while !self.kv.deferred.is_empty() && self.kv.push_rate.take() {
            let key = self.kv.deferred.pop_front().expect("not empty");
            self.push_entry(&me, &key);
        }
        if now < self.kv.active_until && !self.left {
            let peers = self.sample_members(self.config.gossip_nodes, |_, r| r.is_live());
            for id in peers {
                let to = self.members.rec(id).addr;
                self.send_pull(to, false);
            }
        }
    }

    /// Sends `to` this node's digest (recently changed owners first, then a
    /// rotating share of the rest, as much as fits one datagram).
    pub(super) fn send_pull(&mut self, to: SocketAddr, rotate: bool) {
        let me = CompactString::from(self.config.name.as_str());
        let generation = self.kv.generation;
        self.kv.store.with(&me, generation, |s| s.heartbeat += 1);
        self.stats.kv_pulls += 1;
        // At most one datagram of lines: ourselves, the recently changed
        // owners (newest first), then the next owners of the rotation.
        let total = self.kv.store.len();
        let cap = (self.config.max_datagram / 16).min(total);
        let mut listed: Vec<CompactString> = Vec::with_capacity(2 * cap + 1);
        listed.push(me);
        listed.extend(self.kv.hot.iter().rev().take(cap).map(|(_, n)| n.clone()));
        let start = self.kv.cursor % total.max(1);
        if rotate {
            listed.extend(
                (0..cap).map(|i| CompactString::from(self.kv.store.nth((start + i) % total))),
            );
        }
        let mut seen = hashbrown::HashSet::<&str, foldhash::fast::FixedState>::default();
        let mut lines: Vec<Vec<u8>> = Vec::with_capacity(listed.len());
        // Room for the pull marker (3 bytes) ahead of the lines.
        let mut room = self.new_builder().remaining().saturating_sub(3);
        let mut rotated = 0;
        for (i, node) in listed.iter().enumerate() {
            let Some(s) = self.kv.store.get(node) else {
                continue;
            };
            if !seen.insert(node) {
                if i > self.kv.hot.len().min(cap) {
                    rotated += 1;
                }
                continue;
            }
            let line = wire::encode_message(&Message::KvDigest(wire::KvDigest {
                node,
                generation: s.generation,
                heartbeat: s.heartbeat,
                max_version: s.max_version,
            }));
            if line.len() > room {
                break;
            }
            room -= line.len();
            lines.push(line);
            if i > self.kv.hot.len().min(cap) {
                rotated += 1;
            }
        }
        let complete = rotate && lines.len() >= total;
        if rotate {
            // The next digest continues the rotation after these.
            self.kv.cursor = start + rotated;
        }
        let mut b = self.new_builder();
        self.push_counted(
            &mut b,
            &Message::KvPull(wire::KvPull {
                reply: false,
                complete,
            }),
        );
        for line in &lines {
            if b.push_encoded(line).is_err() {
                break;
            }
            self.count_out(MessageKind::KvDigest, line.len());
        }
        self.emit_datagram(to, b);
    }

    // ------------------------------------------------------------------
    // Receiving.

    /// Evidence that `id` is alive, for its phi detector.
    pub(super) fn evidence(&mut self, id: MemberId, now: Time) {
        if id == self.me {
            return;
        }
        let window = self.config.phi_window;
        self.kv
            .phi
            .entry(id)
            .or_insert_with(|| PhiDetector::new(window))
            .heartbeat(now);
    }

    pub(super) fn phi_params(&self) -> PhiParams {
        PhiParams {
            min_std_dev: self.config.phi_min_std_dev,
            acceptable_pause: self.config.phi_acceptable_pause,
            first_interval: self.config.probe_interval,
        }
    }

    /// Phi's say on a failed probe of `id`: veto the suspicion when its
    /// evidence of life is recent (within one probe interval) and on its
    /// usual rhythm (phi below the threshold). A crashed member sends
    /// nothing, so a veto delays its detection by at most one interval.
    pub(super) fn phi_vetoes(&self, id: MemberId, now: Time) -> bool {
        if !self.config.phi {
            return false;
        }
        let Some(d) = self.kv.phi.get(&id) else {
            return false;
        };
        let recent = d
            .last_heartbeat()
            .is_some_and(|t| now.saturating_since(t) < self.config.probe_interval);
        recent
            && d.mean_interval().is_some()
            && d.phi(now, self.phi_params()) < self.config.phi_threshold
    }

    /// Another node claims something about this node's own state: if it
    /// holds a later generation, or more versions of this one, that is state
    /// of a previous life (whose clock was ahead, or which started in the
    /// same millisecond), and a new generation replaces it.
    fn refute_generation(&mut self, now: Time, generation: u64, max_version: u64) {
        let own_max = self
            .kv
            .store
            .get(&self.config.name)
            .map_or(0, |s| s.max_version);
        let stale = generation > self.kv.generation
            || (generation == self.kv.generation && max_version > own_max);
        if !stale {
            return;
        }
        self.stats.kv_generation_refutations += 1;
        self.kv.generation = generation.saturating_add(1);
        let me = CompactString::from(self.config.name.as_str());
        let old = self.kv.store.reset(&me, self.kv.generation);
        let Some(old) = old else { return };
        let mut live: Vec<(&str, &Record)> =
            old.records().filter(|(_, r)| r.visible(now)).collect();
        live.sort_unstable_by_key(|(_, r)| r.version);
        for (key, r) in live {
            self.kv.store.with(&me, self.kv.generation, |s| {
                s.write(key, &r.value, r.expires, false)
            });
            let version = self.kv.store.get(&me).map_or(0, |s| s.max_version);
            self.schedule_key_timers(now, &me, key, version, r.expires, false);
        }
        self.mark_changed(now, &me);
    }

    pub(super) fn handle_kv_entry(&mut self, now: Time, e: &wire::KvEntry<'_>) {
        if e.node == self.config.name {
            self.refute_generation(now, e.generation, e.version);
            return;
        }
        if self.members.find(e.node).is_none() {
            self.stats.drop("kv_unknown_node");
            return;
        }
        let node = CompactString::from(e.node);
        let held = self.kv.store.get(e.node).map(|s| s.generation);
        match held {
            Some(g) if g > e.generation => return,
            Some(g) if g < e.generation => {
                // The owner restarted: its old state is replaced, not merged.
                let old = self.kv.store.reset(e.node, e.generation);
                self.stash_reset(&node, old);
            }
            _ => {}
        }
        let max_keys = self.config.max_keys_per_node;
        let outcome = self
            .kv
            .store
            .with(e.node, e.generation, |s| s.apply(e, max_keys));
        match outcome {
            Apply::Applied(old) => self.applied(now, &node, e, old),
            Apply::Stale => {}
            Apply::Gap => {
                self.stats.drop("kv_gap");
                self.mark_changed(now, &node);
            }
            Apply::Limit => self.stats.drop("kv_key_limit"),
        }
    }

    fn applied(
        &mut self,
        now: Time,
        node: &CompactString,
        e: &wire::KvEntry<'_>,
        old: Option<Record>,
    ) {
        self.stats.kv_entries_applied += 1;
        let expires = (e.expires_ms != 0).then(|| Time::from_millis(e.expires_ms));
        self.schedule_key_timers(now, node, e.key, e.version, expires, e.deleted);
        self.mark_changed(now, node);
        self.push_entry(node, e.key);
        let was_visible = old.as_ref().is_some_and(|r| r.visible(now))
            || self.stashed_version(node, e.key).is_some();
        let visible = !e.deleted && expires.is_none_or(|t| now < t);
        if visible {
            if self.stashed_version(node, e.key) == Some(e.version) {
                return; // came back unchanged after a reset
            }
            self.events.push_back(Event::KeyUpdated {
                node: node.to_string(),
                key: e.key.to_owned(),
                value: e.value.0.to_vec(),
                version: e.version,
            });
        } else if was_visible {
            self.events.push_back(Event::KeyDeleted {
                node: node.to_string(),
                key: e.key.to_owned(),
                version: e.version,
            });
        }
        self.unstash(node, e.key);
    }

    fn stash_reset(&mut self, node: &CompactString, old: Option<NodeState>) {
        let Some(old) = old else { return };
        let visible: FixedMap<CompactString, u64> = old
            .records()
            .filter(|(_, r)| r.visible(self.kv.now))
            .map(|(k, r)| (CompactString::from(k), r.version))
            .collect();
        if !visible.is_empty() {
            self.kv.reset_stash.push((node.clone(), visible));
        }
    }

    fn stashed_version(&self, node: &str, key: &str) -> Option<u64> {
        self.kv
            .reset_stash
            .iter()
            .find(|(n, _)| n == node)
            .and_then(|(_, m)| m.get(key).copied())
    }

    fn unstash(&mut self, node: &str, key: &str) {
        if let Some((_, m)) = self.kv.reset_stash.iter_mut().find(|(n, _)| n == node) {
            m.remove(key);
        }
    }

    /// After a datagram: keys a reset removed that did not come back are
    /// reported deleted.
    pub(super) fn finish_resets(&mut self) {
        for (node, keys) in std::mem::take(&mut self.kv.reset_stash) {
            let mut keys: Vec<(CompactString, u64)> = keys.into_iter().collect();
            keys.sort_unstable();
            for (key, version) in keys {
                self.events.push_back(Event::KeyDeleted {
                    node: node.to_string(),
                    key: key.into(),
                    version,
                });
            }
        }
    }

    pub(super) fn handle_kv_reset(&mut self, r: &wire::KvReset<'_>) {
        if r.node == self.config.name {
            return;
        }
        let behind = self
            .kv
            .store
            .get(r.node)
            .is_some_and(|s| s.generation == r.generation && s.max_version < r.floor);
        if behind {
            self.stats.kv_resets += 1;
            let node = CompactString::from(r.node);
            let old = self.kv.store.reset(r.node, r.generation);
            self.stash_reset(&node, old);
        }
    }

    /// A digest line: its heartbeat is evidence of the owner's life; with a
    /// pull, the line also asks for what the sender lacks.
    pub(super) fn handle_kv_digest(&mut self, now: Time, d: &wire::KvDigest<'_>) {
        if d.node == self.config.name {
            self.refute_generation(now, d.generation, d.max_version);
            return;
        }
        let rising = self
            .kv
            .store
            .get(d.node)
            .is_some_and(|s| s.generation == d.generation && d.heartbeat > s.heartbeat);
        if rising {
            self.kv
                .store
                .with(d.node, d.generation, |s| s.heartbeat = d.heartbeat);
            if let Some(id) = self.members.find(d.node) {
                self.evidence(id, now);
            }
        }
    }

    /// Answers a digest: entries the sender lacks, most-behind owners
    /// first, within the round budget; unless the digest was itself an
    /// answer, also our digest lines for owners where the sender holds more.
    pub(super) fn answer_pull(
        &mut self,
        to: SocketAddr,
        pull: wire::KvPull,
        digests: &[(CompactString, u64, u64)],
    ) {
        let mut sends: Vec<Send> = Vec::new();
        let mut lacks: Vec<CompactString> = Vec::new();
        let mut seen = hashbrown::HashSet::<&str, foldhash::fast::FixedState>::default();
        for (node, generation, max) in digests {
            seen.insert(node);
            let Some(s) = self.kv.store.get(node) else {
                if *max > 0 && self.members.find(node).is_some() {
                    lacks.push(node.clone());
                }
                continue;
            };
            if s.generation > *generation || (s.generation == *generation && s.max_version > *max) {
                let from_scratch = s.generation != *generation || *max < s.gc_floor;
                let depth = s.max_version - if from_scratch { 0 } else { *max };
                sends.push(Send {
                    node: node.clone(),
                    from_scratch,
                    after: *max,
                    depth,
                });
            } else if s.generation < *generation || s.max_version < *max {
                lacks.push(node.clone());
            }
        }
        if pull.complete && !pull.reply {
            for (node, s) in self.kv.store.nodes() {
                if !seen.contains(node) && s.max_version > 0 {
                    sends.push(Send {
                        node: CompactString::from(node),
                        from_scratch: true,
                        after: 0,
                        depth: s.max_version,
                    });
                }
            }
        }
        sends.sort_by(|a, b| b.depth.cmp(&a.depth).then_with(|| a.node.cmp(&b.node)));
        if pull.reply {
            lacks.clear();
        }
        if sends.is_empty() && lacks.is_empty() {
            return;
        }
        self.stats.kv_pulls_answered += 1;
        let mut b = self.new_builder();
        if !lacks.is_empty() {
            self.push_counted(
                &mut b,
                &Message::KvPull(wire::KvPull {
                    reply: true,
                    complete: false,
                }),
            );
            for node in &lacks {
                let (generation, heartbeat, max_version) = self
                    .kv
                    .store
                    .get(node)
                    .map_or((0, 0, 0), |s| (s.generation, s.heartbeat, s.max_version));
                let d = Message::KvDigest(wire::KvDigest {
                    node,
                    generation,
                    heartbeat,
                    max_version,
                });
                if b.push(&d).is_err() {
                    break;
                }
            }
        }
        for send in sends {
            if !self.send_node_entries(to, &mut b, &send) {
                break;
            }
        }
        self.emit_datagram(to, b);
    }

    /// Packs `send`'s entries into `b`, flushing full datagrams to `to`.
    /// Returns false once the round budget is spent.
    fn send_node_entries(&mut self, to: SocketAddr, b: &mut DatagramBuilder, send: &Send) -> bool {
        let Some(s) = self.kv.store.get(&send.node) else {
            return true;
        };
        let node = send.node.as_str();
        let mut encoded: Vec<Vec<u8>> = Vec::new();
        let mut prev = if send.from_scratch { 0 } else { send.after };
        if send.from_scratch {
            encoded.push(wire::encode_message(&Message::KvReset(wire::KvReset {
                node,
                generation: s.generation,
                floor: s.gc_floor,
            })));
        }
        let start = if send.from_scratch { 0 } else { send.after };
        // Encode only what this interval's budget can take, plus one entry
        // past it (which raises the overflow below): a replica far behind
        // must not cost encoding its owner's whole state every interval.
        let room = self
            .config
            .kv_round_budget
            .saturating_sub(self.kv.round_bytes);
        let mut planned: usize = encoded.iter().map(Vec::len).sum();
        for (key, r) in s.entries_after(start) {
            let past_budget = planned >= room;
            let base = if send.from_scratch {
                prev
            } else {
                s.base_of(r.version)
            };
            let entry = wire::encode_message(&Message::KvEntry(s.entry(node, key, r, base)));
            planned += entry.len();
            encoded.push(entry);
            prev = r.version;
            if past_budget {
                break;
            }
        }
        let reset_len = if send.from_scratch {
            encoded[0].len()
        } else {
            0
        };
        for (i, msg) in encoded.iter().enumerate() {
            if self.kv.round_bytes >= self.config.kv_round_budget {
                self.kv.overflowed = true;
                self.stats.drop("kv_round_budget");
                return false;
            }
            // A reset travels with its first entry: alone it would wipe the
            // replica without refilling it.
            let need = if send.from_scratch && i == 0 {
                reset_len + encoded.get(1).map_or(0, Vec::len)
            } else {
                msg.len()
            };
            if b.remaining() < need {
                let full = std::mem::replace(b, self.new_builder());
                self.emit_datagram(to, full);
            }
            if b.push_encoded(msg).is_err() {
                // Larger than an empty datagram (a peer's long name under a
                // small budget): cannot be sent this way.
                self.stats.drop("entry_exceeds_datagram");
                return true;
            }
            let kind = if send.from_scratch && i == 0 {
                MessageKind::KvReset
            } else {
                MessageKind::KvEntry
            };
            self.count_out(kind, msg.len());
            self.kv.round_bytes += msg.len();
        }
        true
    }

    /// Forgets a reaped member's state and detector.
    pub(super) fn forget_kv(&mut self, id: MemberId, name: &str) {
        self.kv.store.remove(name);
        self.kv.phi.remove(&id);
    }
}
