//! The bounds a decoded message must respect beyond its encoding (name,
//! metadata, key and event-name lengths, bus list sizes), shared by the
//! membership, key/value and bus messages.

use super::WireError;

/// Longest member name accepted on the wire, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Largest member metadata accepted on the wire, in bytes (as memberlist).
pub const MAX_META_LEN: usize = 512;
/// Largest number of anti-entropy buckets a sync request may carry.
pub const MAX_SYNC_BUCKETS: usize = 64;
/// Longest key accepted on the wire, in bytes.
pub const MAX_KEY_LEN: usize = 255;
/// Bytes of one item id in bus `BusHave` and `BusWant` lists.
pub const BUS_ID_LEN: usize = 8;
/// Buckets of the bus hash compared by `BusSync`.
pub const BUS_BUCKETS: usize = 16;
/// Largest eager-push fanout a `BusPush` may ask for.
pub const MAX_BUS_FANOUT: u8 = 16;
/// Longest event name, query name or election topic on the wire, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 255;

/// A member name: not empty, at most [`MAX_NAME_LEN`] bytes.
#[inline(always)]
pub(super) fn check_name(name: &str) -> Result<(), WireError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(WireError::BadName);
    }
    Ok(())
}
