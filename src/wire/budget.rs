//! What fits in one datagram: the single owner of the arithmetic of the
//! header, the sealing overhead and message framing. Every builder and
//! every limit check asks here, so a change to the format changes the
//! budget in one place.

use super::{encode_message, KvEntry, Message, BUS_ID_LEN, HEADER_LEN};
use crate::security::SEAL_OVERHEAD;

/// Bytes of the longest varint integer (a `u64` above `u32::MAX`).
const MAX_VARINT: usize = 9;
/// Bytes of the longest length prefix a datagram can need (lengths up to
/// 65535).
const MAX_LEN_PREFIX: usize = 3;
/// Bytes of the marker ahead of pushed bus items (tag and fanout).
pub const PUSH_MARKER_LEN: usize = 2;
/// Bytes of the marker ahead of key/value digest lines (tag and two flags).
pub const PULL_MARKER_LEN: usize = 3;

/// Bytes a key/value entry takes besides its key, value and owner's name,
/// at most: the datagram header, the sealing overhead (reserved whether or
/// not keys are set, so turning encryption on never makes a stored value
/// unsendable), the tag, four integers, three length prefixes and the
/// tombstone flag. Configuration is checked against it.
pub const KV_ENTRY_OVERHEAD: usize =
    HEADER_LEN + SEAL_OVERHEAD + 1 + 4 * MAX_VARINT + 3 * MAX_LEN_PREFIX + 1;

/// Bytes a bus item takes besides its name, payload and origin's name, at
/// most: the header and sealing overhead (as for key/value entries), the
/// push marker, the tag, the head's four integers, a query's address (19
/// with its length) and empty filter (1), three length prefixes and a flag.
pub const BUS_ITEM_OVERHEAD: usize = HEADER_LEN
    + SEAL_OVERHEAD
    + PUSH_MARKER_LEN
    + 1
    + 4 * MAX_VARINT
    + 19
    + 1
    + 3 * MAX_LEN_PREFIX
    + 1;

/// Bytes a plaintext datagram (header included) may take when the sealed
/// datagram must stay within `max_datagram`.
pub fn datagram_budget(max_datagram: usize, sealed: bool) -> usize {
    if sealed {
        max_datagram - SEAL_OVERHEAD
    } else {
        max_datagram
    }
}

/// The largest value `node` can write under `key` and still send it in one
/// datagram of `budget` bytes, whatever its version and expiry grow to.
pub fn kv_value_room(budget: usize, node: &str, key: &str) -> usize {
    let largest = KvEntry {
        node,
        generation: u64::MAX,
        base: u64::MAX - 1,
        version: u64::MAX,
        key,
        value: super::Bytes(&[]),
        expires_ms: u64::MAX,
        deleted: false,
    };
    let empty = HEADER_LEN + encode_message(&Message::KvEntry(largest)).len();
    // The value's length prefix grows with it (up to 3 bytes here, from
    // the 1 counted in `empty`).
    budget.saturating_sub(empty + MAX_LEN_PREFIX - 1)
}

/// Bytes a pushed datagram holding one encoded bus item of `encoded_len`
/// bytes takes.
pub fn pushed_item_len(encoded_len: usize) -> usize {
    HEADER_LEN + PUSH_MARKER_LEN + encoded_len
}

/// How many bus item ids one id-list message fits in a datagram of
/// `budget` bytes: room for the tag, a reply mask (up to 3 bytes) and a
/// length prefix.
pub fn ids_per_datagram(budget: usize) -> usize {
    (budget - HEADER_LEN - 1 - 3 - MAX_LEN_PREFIX) / BUS_ID_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{
        BusHave, BusPush, Bytes, ClusterTag, DatagramBuilder, Header, KvPull, BUS_BUCKETS,
    };

    fn fits(budget: usize, msgs: &[Message<'_>]) -> bool {
        let mut b = DatagramBuilder::new(Header::new(ClusterTag(1)), budget);
        msgs.iter().all(|m| b.push(m).is_ok())
    }

    #[test]
    fn the_largest_value_fits_whatever_its_integers_grow_to() {
        for budget in [512, 1400, 9000] {
            let (node, key) = ("node-with-a-name", "some/key");
            let room = kv_value_room(budget, node, key);
            let value = vec![7; room];
            let largest = Message::KvEntry(KvEntry {
                node,
                generation: u64::MAX,
                base: u64::MAX - 1,
                version: u64::MAX,
                key,
                value: Bytes(&value),
                expires_ms: u64::MAX,
                deleted: false,
            });
            assert!(fits(budget, &[largest]), "budget {budget}");
        }
    }

    #[test]
    fn a_full_id_list_fits_with_the_largest_reply_mask() {
        for budget in [512, 1400, 9000] {
            let ids = vec![0xff; ids_per_datagram(budget) * BUS_ID_LEN];
            let have = Message::BusHave(BusHave {
                reply_mask: (1 << BUS_BUCKETS) - 1,
                ids: Bytes(&ids),
            });
            assert!(fits(budget, &[have]), "budget {budget}");
        }
    }

    #[test]
    fn the_markers_are_as_long_as_counted() {
        let marker = encode_message(&Message::BusPush(BusPush { fanout: 3 }));
        assert_eq!(marker.len(), PUSH_MARKER_LEN);
        let pull = encode_message(&Message::KvPull(KvPull {
            reply: true,
            complete: true,
        }));
        assert_eq!(pull.len(), PULL_MARKER_LEN);
        assert_eq!(pushed_item_len(10), HEADER_LEN + PUSH_MARKER_LEN + 10);
    }
}
