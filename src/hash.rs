//! Hashing shared by the member table, the key/value store and the bus
//! table: the protocol's fixed name hash (every node must compute the same
//! value, so it is never seeded) and the seeded map type whose iteration
//! order depends only on the endpoint's seed.

use hashbrown::HashMap;

/// A hash map keyed with a fixed seed drawn from the endpoint's generator,
/// so that runs are reproducible.
pub(crate) type FixedMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// An empty [`FixedMap`] keyed with `seed`.
pub(crate) fn fixed_map<K, V>(seed: u64) -> FixedMap<K, V> {
    FixedMap::with_hasher(foldhash::fast::FixedState::with_seed(seed))
}

/// The protocol's name hash: FNV-1a then a finaliser, fixed forever so
/// every node computes the same buckets.
pub(crate) fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// splitmix64's finaliser: spreads every input bit over the output.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
