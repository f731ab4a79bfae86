//! The bus items a node holds while they live: the dedupe memory, the
//! store that serves pulls and joiners, the list of items still being
//! announced, and the *bus hash* over settled items that anti-entropy
//! compares.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use compact_str::CompactString;
use hashbrown::HashMap;

use crate::hash::{mix64, name_hash};
use crate::wire::{MessageKind, BUS_BUCKETS};

/// The 64-bit id of the item `seq` of `origin`: what digests and pulls
/// carry instead of the pair. Stable across nodes and versions (FNV-1a of
/// the name, mixed with the sequence number).
pub(crate) fn item_key(origin: &str, seq: u64) -> u64 {
    mix64(name_hash(origin) ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// One item held.
#[derive(Debug)]
pub(crate) struct Item {
    /// The message, encoded once, copied into every datagram that carries
    /// it; empty for an item this node refused (its own limits) and only
    /// remembers by id.
    pub(crate) encoded: Vec<u8>,
    pub(crate) kind: MessageKind,
    pub(crate) origin: CompactString,
    pub(crate) seq: u64,
    /// When its origin made it, in milliseconds.
    pub(crate) at_ms: u64,
    /// When it dies, in milliseconds.
    pub(crate) expires_ms: u64,
}

/// What the bus hash of one bucket is made of: the XOR of the folded ids
/// of its settled items.
type Buckets = [u32; BUS_BUCKETS];

/// See the module docs.
pub(crate) struct ItemTable {
    items: HashMap<u64, Item, foldhash::fast::FixedState>,
    expiries: BinaryHeap<Reverse<(u64, u64)>>,
    /// Items still to be announced, newest last, with the rounds left.
    fresh: VecDeque<(u64, u32)>,
    /// Bumped on every insertion and removal (invalidates `cache`).
    version: u64,
    /// The buckets computed last: (quantum index, version, buckets).
    cache: Cell<Option<(u64, u64, Buckets)>>,
}

fn bucket_of(key: u64) -> usize {
    (key % BUS_BUCKETS as u64) as usize
}

/// Whether an item counts in the bus hash at `now_ms`: from the first
/// quantum boundary at least one quantum after it was made (so items still
/// spreading do not make hashes differ) until the last boundary before it
/// dies. Both ends are quantum boundaries computed from the origin's
/// times, so every node holding the item includes it over the same span,
/// and hashes change only when a boundary passes.
fn settled(item: &Item, now_ms: u64, quantum_ms: u64) -> bool {
    let q = quantum_ms.max(1);
    let enter = item.at_ms.saturating_add(q).div_ceil(q).saturating_mul(q);
    let leave = item.expires_ms / q * q;
    enter <= now_ms && now_ms < leave
}

impl ItemTable {
    pub(crate) fn new(seed: u64) -> ItemTable {
        ItemTable {
            items: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(seed)),
            expiries: BinaryHeap::new(),
            fresh: VecDeque::new(),
            version: 0,
            cache: Cell::new(None),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn get(&self, key: u64) -> Option<&Item> {
        self.items.get(&key)
    }

    pub(crate) fn contains(&self, key: u64) -> bool {
        self.items.contains_key(&key)
    }

    /// Holds `item` under `key` until it expires, announcing it for
    /// `rounds` gossip rounds.
    pub(crate) fn insert(&mut self, key: u64, item: Item, rounds: u32) {
        self.expiries.push(Reverse((item.expires_ms, key)));
        if rounds > 0 {
            self.fresh.push_back((key, rounds));
        }
        self.items.insert(key, item);
        self.version += 1;
    }

    /// When the next item dies.
    pub(crate) fn next_expiry(&self) -> Option<u64> {
        self.expiries.peek().map(|Reverse((t, _))| *t)
    }

    /// Removes and returns the items dead at `now_ms`.
    pub(crate) fn expire(&mut self, now_ms: u64) -> Vec<(u64, Item)> {
        let mut dead = Vec::new();
        while let Some(&Reverse((t, key))) = self.expiries.peek() {
            if t > now_ms {
                break;
            }
            self.expiries.pop();
            if let Some(item) = self.items.remove(&key) {
                dead.push((key, item));
            }
        }
        if !dead.is_empty() {
            self.version += 1;
        }
        dead
    }

    /// Whether some item is still being announced.
    pub(crate) fn has_fresh(&self) -> bool {
        !self.fresh.is_empty()
    }

    /// The ids to announce this round, newest first, at most `max`: each
    /// one's rounds left drop by one. Items announced enough, or gone,
    /// leave the list.
    pub(crate) fn take_fresh(&mut self, max: usize) -> Vec<u64> {
        let mut ids = Vec::new();
        for (key, left) in self.fresh.iter_mut().rev() {
            if ids.len() == max {
                break;
            }
            if self.items.contains_key(key) {
                ids.push(*key);
                *left -= 1;
            } else {
                *left = 0;
            }
        }
        self.fresh.retain(|(_, left)| *left > 0);
        ids
    }

    /// The bus hash's buckets at `now_ms` (cached until a quantum boundary
    /// passes or the items change).
    pub(crate) fn buckets(&self, now_ms: u64, quantum_ms: u64) -> Buckets {
        let quantum = now_ms / quantum_ms.max(1);
        if let Some((q, v, b)) = self.cache.get() {
            if q == quantum && v == self.version {
                return b;
            }
        }
        let mut b = [0u32; BUS_BUCKETS];
        for (key, item) in &self.items {
            if settled(item, now_ms, quantum_ms) {
                b[bucket_of(*key)] ^= (*key ^ (*key >> 32)) as u32;
            }
        }
        self.cache.set(Some((quantum, self.version, b)));
        b
    }

    /// The bus hash folded to 4 bytes: zero when no item is settled, so a
    /// node with no live items leaves the state hash as it was.
    pub(crate) fn hash32(&self, now_ms: u64, quantum_ms: u64) -> [u8; 4] {
        self.buckets(now_ms, quantum_ms)
            .iter()
            .fold(0u32, |h, b| h ^ b)
            .to_le_bytes()
    }

    /// The ids of every item held in the buckets of `mask` (with its
    /// contents: not those remembered by id only), sorted.
    pub(crate) fn ids_in(&self, mask: u64) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .items
            .iter()
            .filter(|(k, item)| mask & (1 << bucket_of(**k)) != 0 && !item.encoded.is_empty())
            .map(|(k, _)| *k)
            .collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(at_ms: u64, ttl_ms: u64) -> Item {
        Item {
            encoded: vec![1],
            kind: MessageKind::UserEvent,
            origin: "a".into(),
            seq: at_ms,
            at_ms,
            expires_ms: at_ms + ttl_ms,
        }
    }

    #[test]
    fn items_settle_and_leave_the_hash_on_quantum_boundaries() {
        let mut t = ItemTable::new(1);
        t.insert(item_key("a", 1), item(1_500, 10_000), 2);
        // Made at 1.5 s: settles at 3 s (the first boundary a second on),
        // leaves at 11 s (the last boundary before it dies at 11.5 s).
        for (now, counted) in [
            (2_999, false),
            (3_000, true),
            (10_999, true),
            (11_000, false),
        ] {
            assert_eq!(t.hash32(now, 1_000) != [0; 4], counted, "at {now} ms");
        }
        // Too short-lived to settle at all.
        let mut short = ItemTable::new(1);
        short.insert(item_key("a", 2), item(1_500, 1_000), 0);
        assert!((0..5_000)
            .step_by(100)
            .all(|now| short.hash32(now, 1_000) == [0; 4]));
    }

    #[test]
    fn fresh_items_are_announced_newest_first_for_their_rounds() {
        let mut t = ItemTable::new(1);
        for seq in 0..3 {
            t.insert(item_key("a", seq), item(seq, 1_000), 2);
        }
        let newest_two = vec![item_key("a", 2), item_key("a", 1)];
        assert_eq!(t.take_fresh(2), newest_two);
        assert_eq!(t.take_fresh(5).len(), 3);
        assert_eq!(t.take_fresh(5), vec![item_key("a", 0)]);
        assert!(!t.has_fresh());
        assert_eq!(t.expire(1_001).len(), 2);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn listing_by_bucket_covers_every_item_once() {
        let mut t = ItemTable::new(1);
        for seq in 0..100 {
            t.insert(item_key("b", seq), item(seq, 1_000), 0);
        }
        let all: usize = (0..BUS_BUCKETS).map(|b| t.ids_in(1 << b).len()).sum();
        assert_eq!(all, 100);
        assert_eq!(t.ids_in((1 << BUS_BUCKETS) - 1).len(), 100);
    }
}
