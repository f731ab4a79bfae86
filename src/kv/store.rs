//! The replicas: every node's keys as this node knows them.
//!
//! Per owner a [`NodeState`] holds the keys with their versions, indexed by
//! version so that "everything after version v" is a range scan, and the
//! scuttlebutt summary (generation, heartbeat, max version). `max_version`
//! means "every write of the owner up to here is reflected": entries are
//! applied only in version order (see [`Apply`]), which is what lets a
//! delta be cut anywhere and still leave a consistent prefix.

use std::collections::BTreeMap;

use crate::hash::{name_hash, FixedMap};
use crate::wire::{self, Bytes};
use crate::Time;
use compact_str::CompactString;

/// One key of one owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub value: Box<[u8]>,
    pub version: u64,
    /// Absolute expiry (owner's clock), if any.
    pub expires: Option<Time>,
    /// A tombstone: deleted, or expired at its owner.
    pub deleted: bool,
}

impl Record {
    /// Whether a reader at `now` sees the key: not deleted and not past its
    /// expiry. Replicas hide expired keys by their own clock, so a key goes
    /// away even if its owner died before writing the tombstone.
    pub(crate) fn visible(&self, now: Time) -> bool {
        !self.deleted && self.expires.is_none_or(|e| now < e)
    }
}

/// What one owner's keys look like at this node.
#[derive(Debug)]
pub(crate) struct NodeState {
    pub generation: u64,
    pub heartbeat: u64,
    pub max_version: u64,
    /// Tombstones up to this version may have been collected: a peer that
    /// holds less must be reset, not sent a delta, or it would keep keys
    /// whose deletion it never heard of.
    pub gc_floor: u64,
    keys: FixedMap<CompactString, Record>,
    by_version: BTreeMap<u64, CompactString>,
    /// Keys that are not tombstones (the per-node key limit counts these).
    live: usize,
    /// Position in the store's owner list.
    slot: usize,
}

/// The outcome of offering one entry to a replica.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Apply {
    /// Applied; carries the record it replaced, if any.
    Applied(Option<Record>),
    /// Nothing new (an older generation, or a version already held).
    Stale,
    /// The replica misses versions before this one; anti-entropy will fill
    /// them in.
    Gap,
    /// Applying would exceed the per-node key limit.
    Limit,
}

impl NodeState {
    fn new(generation: u64, seed: u64) -> NodeState {
        NodeState {
            generation,
            heartbeat: 0,
            max_version: 0,
            gc_floor: 0,
            keys: FixedMap::with_hasher(foldhash::fast::FixedState::with_seed(seed)),
            by_version: BTreeMap::new(),
            live: 0,
            slot: 0,
        }
    }

    /// The record of `key`, tombstones included.
    pub(crate) fn record(&self, key: &str) -> Option<&Record> {
        self.keys.get(key)
    }

    /// `key` as stored, with its record.
    pub(crate) fn record_named(&self, key: &str) -> Option<(&str, &Record)> {
        self.keys.get_key_value(key).map(|(k, r)| (k.as_str(), r))
    }

    /// Every key with its record, in no particular order.
    pub(crate) fn records(&self) -> impl Iterator<Item = (&str, &Record)> {
        self.keys.iter().map(|(k, r)| (k.as_str(), r))
    }

    /// Keys that are not tombstones.
    pub(crate) fn live_keys(&self) -> usize {
        self.live
    }

    /// The base to send with the entry at `version`: the previous version
    /// this replica still holds, or the collection horizon if higher.
    pub(crate) fn base_of(&self, version: u64) -> u64 {
        let prev = self
            .by_version
            .range(..version)
            .next_back()
            .map_or(0, |(v, _)| *v);
        prev.max(self.gc_floor)
    }

    /// Entries with versions above `after`, in version order.
    pub(crate) fn entries_after(&self, after: u64) -> impl Iterator<Item = (&str, &Record)> {
        self.by_version
            .range(after.saturating_add(1)..)
            .filter_map(|(_, k)| self.keys.get(k).map(|r| (k.as_str(), r)))
    }

    fn put(&mut self, key: &str, rec: Record) -> Option<Record> {
        self.max_version = self.max_version.max(rec.version);
        self.by_version
            .insert(rec.version, CompactString::from(key));
        if !rec.deleted {
            self.live += 1;
        }
        let old = self.keys.insert(CompactString::from(key), rec);
        if let Some(o) = &old {
            self.by_version.remove(&o.version);
            if !o.deleted {
                self.live -= 1;
            }
        }
        old
    }

    /// Writes a new version of `key` (the owner's own write).
    pub(crate) fn write(&mut self, key: &str, value: &[u8], expires: Option<Time>, deleted: bool) {
        let version = self.max_version + 1;
        self.put(
            key,
            Record {
                value: value.into(),
                version,
                expires,
                deleted,
            },
        );
    }

    /// Offers a received entry (already checked to be of this generation).
    pub(crate) fn apply(&mut self, e: &wire::KvEntry<'_>, max_keys: usize) -> Apply {
        if e.version <= self.max_version {
            return Apply::Stale;
        }
        if e.base > self.max_version {
            return Apply::Gap;
        }
        let replaces_live = self.keys.get(e.key).is_some_and(|r| !r.deleted);
        if !e.deleted && !replaces_live && self.live >= max_keys {
            return Apply::Limit;
        }
        let old = self.put(
            e.key,
            Record {
                value: e.value.0.into(),
                version: e.version,
                expires: (e.expires_ms != 0).then(|| Time::from_millis(e.expires_ms)),
                deleted: e.deleted,
            },
        );
        Apply::Applied(old)
    }

    /// Removes the tombstone of `key` if it is still the one at `version`,
    /// raising the collection horizon.
    pub(crate) fn collect(&mut self, key: &str, version: u64) -> bool {
        match self.keys.get(key) {
            Some(r) if r.deleted && r.version == version => {
                self.keys.remove(key);
                self.by_version.remove(&version);
                self.gc_floor = self.gc_floor.max(version);
                true
            }
            _ => false,
        }
    }

    /// The wire form of `key`'s record, with the base a receiver needs.
    pub(crate) fn entry<'a>(
        &'a self,
        node: &'a str,
        key: &'a str,
        rec: &'a Record,
        base: u64,
    ) -> wire::KvEntry<'a> {
        wire::KvEntry {
            node,
            generation: self.generation,
            base,
            version: rec.version,
            key,
            value: Bytes(&rec.value),
            expires_ms: rec.expires.map_or(0, |t| t.as_millis().max(1)),
            deleted: rec.deleted,
        }
    }
}

/// Every owner's state, and a hash summarising all of it.
#[derive(Debug)]
pub(crate) struct KvStore {
    nodes: FixedMap<CompactString, NodeState>,
    /// Owners in a stable order, so that a rotating digest picks the next
    /// few by index instead of listing (and sorting) all of them.
    order: Vec<CompactString>,
    hash: u64,
    seed: u64,
}

/// One owner's contribution to the store hash: it changes exactly when the
/// owner's generation or max version does (heartbeats are left out so that
/// a quiet cluster's hashes stay equal). A state that never held a version
/// contributes nothing: such states are not replicated (a node creates its
/// own empty one with its first digest, and peers create none for an owner
/// without versions), so counting them would keep the hashes of a converged
/// cluster apart forever, each mismatch starting another sync.
fn contribution(node: &str, s: &NodeState) -> u64 {
    if s.max_version == 0 {
        return 0;
    }
    let mut z = name_hash(node) ^ s.generation.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z ^= s.max_version.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    z = (z ^ (z >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (z ^ (z >> 29)).wrapping_mul(0x94d0_49bb_1331_11eb) ^ (z >> 32)
}

impl KvStore {
    pub(crate) fn new(seed: u64) -> KvStore {
        KvStore {
            nodes: FixedMap::with_hasher(foldhash::fast::FixedState::with_seed(seed)),
            order: Vec::new(),
            hash: 0,
            seed,
        }
    }

    pub(crate) fn get(&self, node: &str) -> Option<&NodeState> {
        self.nodes.get(node)
    }

    /// `node`'s name as stored, with its state.
    pub(crate) fn get_named(&self, node: &str) -> Option<(&str, &NodeState)> {
        self.nodes.get_key_value(node).map(|(n, s)| (n.as_str(), s))
    }

    pub(crate) fn nodes(&self) -> impl Iterator<Item = (&str, &NodeState)> {
        self.nodes.iter().map(|(n, s)| (n.as_str(), s))
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// 32 bits of the hash over every owner's (generation, max version),
    /// folded into the membership hash carried on probes.
    pub(crate) fn hash32(&self) -> [u8; 4] {
        ((self.hash ^ (self.hash >> 32)) as u32).to_le_bytes()
    }

    /// Runs `f` on `node`'s state (created at `generation` if absent) and
    /// keeps the store hash in step with whatever `f` changed.
    pub(crate) fn with<R>(
        &mut self,
        node: &str,
        generation: u64,
        f: impl FnOnce(&mut NodeState) -> R,
    ) -> R {
        let seed = self.seed;
        let slot = self.order.len();
        let mut created = false;
        let s = self.nodes.entry_ref(node).or_insert_with(|| {
            created = true;
            let mut s = NodeState::new(generation, seed);
            s.slot = slot;
            s
        });
        if created {
            self.order.push(CompactString::from(node));
        }
        // A state just created was not part of the hash yet.
        let before = if created { 0 } else { contribution(node, s) };
        let r = f(s);
        self.hash ^= before ^ contribution(node, s);
        r
    }

    /// Replaces `node`'s state with an empty one at `generation`, returning
    /// the old one.
    pub(crate) fn reset(&mut self, node: &str, generation: u64) -> Option<NodeState> {
        let old = self.remove(node);
        self.with(node, generation, |_| ());
        old
    }

    /// Forgets `node` entirely (it was reaped from membership).
    pub(crate) fn remove(&mut self, node: &str) -> Option<NodeState> {
        let old = self.nodes.remove(node)?;
        self.hash ^= contribution(node, &old);
        self.order.swap_remove(old.slot);
        if let Some(moved) = self.order.get(old.slot) {
            if let Some(s) = self.nodes.get_mut(moved) {
                s.slot = old.slot;
            }
        }
        Some(old)
    }

    /// The owner at position `i` of the stable order (`i < len`).
    pub(crate) fn nth(&self, i: usize) -> &str {
        &self.order[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(key: &'a str, base: u64, version: u64, value: &'a [u8]) -> wire::KvEntry<'a> {
        wire::KvEntry {
            node: "a",
            generation: 1,
            base,
            version,
            key,
            value: Bytes(value),
            expires_ms: 0,
            deleted: false,
        }
    }

    #[test]
    fn entries_apply_in_version_order_only() {
        let mut s = NodeState::new(1, 0);
        assert_eq!(s.apply(&entry("x", 1, 2, b"2"), 10), Apply::Gap);
        assert!(matches!(
            s.apply(&entry("x", 0, 1, b"1"), 10),
            Apply::Applied(None)
        ));
        assert!(matches!(
            s.apply(&entry("x", 1, 2, b"2"), 10),
            Apply::Applied(Some(_))
        ));
        assert_eq!(s.apply(&entry("x", 1, 2, b"2"), 10), Apply::Stale);
        assert_eq!(s.max_version, 2);
        assert_eq!(&*s.record("x").unwrap().value, b"2");
        // The overwritten version 1 is gone from the version index.
        assert_eq!(s.entries_after(0).count(), 1);
    }

    #[test]
    fn base_skips_overwritten_versions_and_respects_the_gc_floor() {
        let mut s = NodeState::new(1, 0);
        s.write("a", b"1", None, false); // v1
        s.write("b", b"1", None, false); // v2
        s.write("a", b"2", None, false); // v3 replaces v1
        assert_eq!(s.base_of(3), 2);
        assert_eq!(s.base_of(2), 0);
        s.write("b", b"", None, true); // v4: tombstone of b
        assert!(s.collect("b", 4));
        assert_eq!(s.gc_floor, 4);
        assert_eq!(s.base_of(3), 4, "never below the collection horizon");
        assert_eq!(s.live_keys(), 1);
    }

    #[test]
    fn the_key_limit_refuses_new_keys_but_not_overwrites_or_tombstones() {
        let mut s = NodeState::new(1, 0);
        assert!(matches!(
            s.apply(&entry("x", 0, 1, b"1"), 1),
            Apply::Applied(_)
        ));
        assert_eq!(s.apply(&entry("y", 1, 2, b"1"), 1), Apply::Limit);
        assert!(matches!(
            s.apply(&entry("x", 1, 2, b"2"), 1),
            Apply::Applied(_)
        ));
    }

    #[test]
    fn store_hash_follows_generation_and_version_but_not_heartbeat() {
        let mut a = KvStore::new(1);
        let mut b = KvStore::new(2);
        a.with("n", 1, |s| s.write("k", b"v", None, false));
        assert_ne!(a.hash32(), b.hash32());
        b.with("n", 1, |s| s.write("k", b"other", None, false));
        assert_eq!(a.hash32(), b.hash32(), "same (generation, version)");
        a.with("n", 1, |s| s.heartbeat += 5);
        assert_eq!(a.hash32(), b.hash32(), "heartbeats do not count");
        a.reset("n", 2);
        assert_ne!(a.hash32(), b.hash32());
        a.remove("n");
        b.remove("n");
        assert_eq!(a.hash32(), b.hash32());
        assert_eq!(a.hash32(), [0; 4]);
        // An owner's state without any version (as a node's own, created by
        // its first digest) is not replicated, so it must not count.
        a.with("empty", 1, |s| s.heartbeat += 1);
        assert_eq!(a.hash32(), [0; 4]);
    }

    #[test]
    fn the_owner_order_survives_removals() {
        let mut st = KvStore::new(3);
        for n in ["a", "b", "c", "d"] {
            st.with(n, 1, |_| ());
        }
        st.remove("b");
        st.remove("a");
        let mut listed: Vec<&str> = (0..st.len()).map(|i| st.nth(i)).collect();
        listed.sort_unstable();
        assert_eq!(listed, ["c", "d"]);
        st.with("e", 1, |_| ());
        st.remove("d");
        let mut listed: Vec<&str> = (0..st.len()).map(|i| st.nth(i)).collect();
        listed.sort_unstable();
        assert_eq!(listed, ["c", "e"]);
    }
}
