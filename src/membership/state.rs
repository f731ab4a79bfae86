//! The member table: every member this node knows, indexed by name, with
//! the membership hash that anti-entropy compares.
//!
//! Records live in a slab (`Vec<Option<MemberRecord>>`) so a member's id is
//! stable while it is known; the name index is a `HashTable` of ids keyed by
//! a per-endpoint seeded hash (so crafted names cannot degrade lookups), and
//! is the only per-member overhead beyond the record itself.
//!
//! The membership hash is the XOR, over live (alive or suspect) members, of a
//! mix of name and incarnation. XOR makes it order-free and updatable in
//! O(1); it is kept per bucket (by name) so a sync can exchange only the
//! buckets that differ. Dead and departed members are left out: nodes forget
//! them at different times, and that must not look like disagreement.

use std::hash::BuildHasher;
use std::net::SocketAddr;

use compact_str::CompactString;
use hashbrown::HashTable;

use crate::event::{Member, MemberState};
use crate::hash::mix64;
use crate::Time;

/// Everything known about one member.
#[derive(Clone, Debug)]
pub(crate) struct MemberRecord {
    pub name: CompactString,
    pub addr: SocketAddr,
    pub incarnation: u32,
    pub state: MemberState,
    /// When `state` last changed (for retention and gossip-to-the-dead).
    pub state_since: Time,
    pub meta: Box<[u8]>,
    /// The protocol-wide (unseeded) hash of the name: picks the bucket and
    /// feeds the membership hash, so it must be the same on every node.
    pub name_hash: u64,
}

impl MemberRecord {
    /// Whether the member counts as part of the cluster (alive or suspect).
    pub(crate) fn is_live(&self) -> bool {
        matches!(self.state, MemberState::Alive | MemberState::Suspect)
    }

    fn contribution(&self) -> u64 {
        mix64(self.name_hash ^ u64::from(self.incarnation).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// A snapshot for the user.
    pub(crate) fn to_member(&self) -> Member {
        Member {
            name: self.name.to_string(),
            addr: self.addr,
            incarnation: self.incarnation,
            state: self.state,
            meta: self.meta.to_vec(),
        }
    }
}

/// Member id: an index into the slab, stable while the member is known.
pub(crate) type MemberId = u32;

pub(crate) struct MemberTable {
    slots: Vec<Option<MemberRecord>>,
    free: Vec<MemberId>,
    index: HashTable<MemberId>,
    hasher: foldhash::fast::FixedState,
    bucket_bits: u32,
    buckets: Vec<u64>,
    counts: MemberCounts,
}

/// How many members a node knows in each state, itself included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberCounts {
    /// Alive.
    pub alive: usize,
    /// Suspected of having failed.
    pub suspect: usize,
    /// Declared failed (kept until `dead_retention` passes).
    pub dead: usize,
    /// Left gracefully (kept until `dead_retention` passes).
    pub left: usize,
}

impl MemberCounts {
    /// Members alive or suspect: the cluster size as the node sees it.
    pub fn live(&self) -> usize {
        self.alive + self.suspect
    }

    /// Members known in any state.
    pub fn known(&self) -> usize {
        self.alive + self.suspect + self.dead + self.left
    }

    /// The count of members in `state`.
    pub fn of(&self, state: MemberState) -> usize {
        match state {
            MemberState::Alive => self.alive,
            MemberState::Suspect => self.suspect,
            MemberState::Dead => self.dead,
            MemberState::Left => self.left,
        }
    }

    fn slot(&mut self, state: MemberState) -> &mut usize {
        match state {
            MemberState::Alive => &mut self.alive,
            MemberState::Suspect => &mut self.suspect,
            MemberState::Dead => &mut self.dead,
            MemberState::Left => &mut self.left,
        }
    }
}

impl MemberTable {
    /// An empty table with `buckets` hash buckets (a power of two) and a
    /// seed for the name index.
    pub(crate) fn new(buckets: usize, seed: u64) -> MemberTable {
        MemberTable {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: foldhash::fast::FixedState::with_seed(seed),
            bucket_bits: buckets.trailing_zeros(),
            buckets: vec![0; buckets],
            counts: MemberCounts::default(),
        }
    }

    fn index_hash(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    /// The id of `name`, if known.
    pub(crate) fn find(&self, name: &str) -> Option<MemberId> {
        let h = self.index_hash(name);
        self.index
            .find(h, |&id| {
                self.slots[id as usize]
                    .as_ref()
                    .is_some_and(|r| r.name == name)
            })
            .copied()
    }

    pub(crate) fn get(&self, id: MemberId) -> Option<&MemberRecord> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    /// The record of `id`, which must be known.
    pub(crate) fn rec(&self, id: MemberId) -> &MemberRecord {
        self.slots[id as usize]
            .as_ref()
            .expect("member id refers to a known member")
    }

    /// Changes a record through `f`, keeping the hashes and counters right.
    pub(crate) fn update<R>(&mut self, id: MemberId, f: impl FnOnce(&mut MemberRecord) -> R) -> R {
        let rec = self.slots[id as usize]
            .as_mut()
            .expect("member id refers to a known member");
        let (was_live, old, old_state) = (rec.is_live(), rec.contribution(), rec.state);
        let out = f(rec);
        let (is_live, new, state) = (rec.is_live(), rec.contribution(), rec.state);
        let bucket = bucket_of(rec.name_hash, self.bucket_bits);
        if was_live {
            self.buckets[bucket] ^= old;
        }
        if is_live {
            self.buckets[bucket] ^= new;
        }
        *self.counts.slot(old_state) -= 1;
        *self.counts.slot(state) += 1;
        out
    }

    /// Adds a member not yet known; returns its id.
    pub(crate) fn insert(&mut self, rec: MemberRecord) -> MemberId {
        debug_assert!(self.find(&rec.name).is_none());
        let bucket = bucket_of(rec.name_hash, self.bucket_bits);
        if rec.is_live() {
            self.buckets[bucket] ^= rec.contribution();
        }
        *self.counts.slot(rec.state) += 1;
        let h = self.index_hash(&rec.name);
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(rec);
                id
            }
            None => {
                self.slots.push(Some(rec));
                (self.slots.len() - 1) as MemberId
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(h, id, |&other| {
            hasher.hash_one(
                &slots[other as usize]
                    .as_ref()
                    .expect("indexed ids are known")
                    .name,
            )
        });
        id
    }

    /// Forgets a member.
    pub(crate) fn remove(&mut self, id: MemberId) {
        let Some(rec) = self.slots.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        if rec.is_live() {
            self.buckets[bucket_of(rec.name_hash, self.bucket_bits)] ^= rec.contribution();
        }
        *self.counts.slot(rec.state) -= 1;
        let h = self.index_hash(&rec.name);
        if let Ok(entry) = self.index.find_entry(h, |&other| other == id) {
            entry.remove();
        }
        self.free.push(id);
    }

    /// Members alive or suspect, this node included.
    pub(crate) fn live_count(&self) -> usize {
        self.counts.live()
    }

    /// Members known in any state.
    pub(crate) fn len(&self) -> usize {
        self.counts.known()
    }

    /// Members by state.
    pub(crate) fn counts(&self) -> MemberCounts {
        self.counts
    }

    /// Upper bound (exclusive) of ids, for random sampling.
    pub(crate) fn id_bound(&self) -> usize {
        self.slots.len()
    }

    /// Every known member.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (MemberId, &MemberRecord)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|r| (i as MemberId, r)))
    }

    /// The whole membership hash, folded to 32 bits for probes.
    pub(crate) fn hash32(&self) -> [u8; 4] {
        let h = self.buckets.iter().fold(0u64, |acc, b| acc ^ b);
        ((h ^ (h >> 32)) as u32).to_le_bytes()
    }

    /// Per-bucket hashes, 4 little-endian bytes each, for a sync request.
    pub(crate) fn bucket_hashes(&self) -> Vec<u8> {
        self.buckets
            .iter()
            .flat_map(|&h| ((h ^ (h >> 32)) as u32).to_le_bytes())
            .collect()
    }

    /// Bit mask of the buckets whose hash differs from `theirs` (as sent by
    /// [`MemberTable::bucket_hashes`]). A peer with another bucket count
    /// differs everywhere.
    pub(crate) fn differing_buckets(&self, theirs: &[u8]) -> u64 {
        if theirs.len() != self.buckets.len() * 4 {
            return all_buckets(self.buckets.len());
        }
        let ours = self.bucket_hashes();
        let mut mask = 0u64;
        for (i, (a, b)) in ours.chunks_exact(4).zip(theirs.chunks_exact(4)).enumerate() {
            if a != b {
                mask |= 1 << i;
            }
        }
        mask
    }

    /// Whether `rec` falls in one of the buckets of `mask`.
    pub(crate) fn in_buckets(&self, rec: &MemberRecord, mask: u64) -> bool {
        mask & (1 << bucket_of(rec.name_hash, self.bucket_bits)) != 0
    }
}

/// A mask with every one of `n` buckets set.
pub(crate) fn all_buckets(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

fn bucket_of(name_hash: u64, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (name_hash >> (64 - bits)) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::name_hash;

    fn rec(name: &str, incarnation: u32, state: MemberState) -> MemberRecord {
        MemberRecord {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            incarnation,
            state,
            state_since: Time::ZERO,
            meta: Box::new([]),
            name_hash: name_hash(name),
        }
    }

    #[test]
    fn counts_follow_every_change_of_state() {
        let mut t = MemberTable::new(32, 1);
        let a = t.insert(rec("a", 1, MemberState::Alive));
        let b = t.insert(rec("b", 1, MemberState::Alive));
        t.insert(rec("c", 1, MemberState::Dead));
        t.update(a, |r| r.state = MemberState::Suspect);
        t.update(b, |r| r.state = MemberState::Left);
        let expected = MemberCounts {
            alive: 0,
            suspect: 1,
            dead: 1,
            left: 1,
        };
        assert_eq!(t.counts(), expected);
        assert_eq!((t.live_count(), t.len()), (1, 3));
        t.remove(b);
        assert_eq!(t.counts().left, 0);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn hash_is_independent_of_insertion_order_and_seed() {
        let mut a = MemberTable::new(32, 1);
        let mut b = MemberTable::new(32, 2);
        for i in 0..100 {
            a.insert(rec(&format!("n{i}"), i, MemberState::Alive));
        }
        for i in (0..100).rev() {
            b.insert(rec(&format!("n{i}"), i, MemberState::Alive));
        }
        assert_eq!(a.hash32(), b.hash32());
        assert_eq!(a.differing_buckets(&b.bucket_hashes()), 0);
    }

    #[test]
    fn updates_change_only_their_bucket_and_dead_members_do_not_count() {
        let mut a = MemberTable::new(32, 1);
        let mut b = MemberTable::new(32, 1);
        for i in 0..100 {
            a.insert(rec(&format!("n{i}"), 0, MemberState::Alive));
            b.insert(rec(&format!("n{i}"), 0, MemberState::Alive));
        }
        let id = a.find("n7").unwrap();
        a.update(id, |r| r.incarnation = 1);
        let mask = a.differing_buckets(&b.bucket_hashes());
        assert_eq!(mask.count_ones(), 1);
        assert!(a.in_buckets(a.rec(id), mask));
        assert_ne!(a.hash32(), b.hash32());
        // Suspect keeps the member live: same hash as alive.
        a.update(id, |r| r.incarnation = 0);
        a.update(id, |r| r.state = MemberState::Suspect);
        assert_eq!(a.hash32(), b.hash32());
        // Dead on one side and forgotten on the other agree.
        a.update(id, |r| r.state = MemberState::Dead);
        let bid = b.find("n7").unwrap();
        b.remove(bid);
        assert_eq!(a.hash32(), b.hash32());
        assert_eq!(a.live_count(), 99);
        assert_eq!(a.len(), 100);
        assert_eq!(b.len(), 99);
    }

    #[test]
    fn removed_ids_are_reused_and_lookups_stay_right() {
        let mut t = MemberTable::new(1, 9);
        let a = t.insert(rec("a", 0, MemberState::Alive));
        let b = t.insert(rec("b", 0, MemberState::Alive));
        t.remove(a);
        assert!(t.find("a").is_none());
        let c = t.insert(rec("c", 0, MemberState::Alive));
        assert_eq!(c, a);
        assert_eq!(t.find("c"), Some(c));
        assert_eq!(t.find("b"), Some(b));
        assert_eq!(
            t.differing_buckets(&[0; 8]),
            1,
            "a different bucket count differs everywhere"
        );
    }
}
