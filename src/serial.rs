//! Serial-number arithmetic (RFC 1982) for the counters only their owner
//! raises: incarnations (`u32`) and key/value generations (`u64`).
//!
//! Compared as plain integers, one forged claim at the type's maximum would
//! win forever: the owner could never say anything newer. Compared as serial
//! numbers, `a` is newer than `b` when it is ahead by less than half the
//! number space, so the owner can always answer a claim `c` about itself
//! with `c + 1` (wrapping), which is newer than `c` everywhere. A forger can
//! still make the owner refute, but never put a claim beyond its reach.
//! Exactly half the space apart the order is broken by the plain integer
//! order, so the relation stays antisymmetric.

/// Whether incarnation `a` is newer than `b`.
pub(crate) fn newer32(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && (d < 1 << 31 || (d == 1 << 31 && a > b))
}

/// Whether incarnation `a` is `b` or newer.
pub(crate) fn at_least32(a: u32, b: u32) -> bool {
    a == b || newer32(a, b)
}

/// Whether generation `a` is newer than `b`.
pub(crate) fn newer64(a: u64, b: u64) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && (d < 1 << 63 || (d == 1 << 63 && a > b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counters_compare_as_integers() {
        assert!(newer32(3, 2));
        assert!(!newer32(2, 3));
        assert!(!newer32(2, 2));
        assert!(at_least32(2, 2));
        assert!(newer64(1_700_000_000_001, 1_700_000_000_000));
    }

    #[test]
    fn the_owner_can_always_answer_a_claim() {
        for c in [0, 1, u32::MAX, u32::MAX / 2, 1 << 31, (1 << 31) + 1] {
            assert!(newer32(c.wrapping_add(1), c), "{c}");
            assert!(!newer32(c, c.wrapping_add(1)), "{c}");
        }
        for c in [0, u64::MAX, 1 << 63, u64::MAX / 2] {
            assert!(newer64(c.wrapping_add(1), c), "{c}");
        }
    }

    #[test]
    fn a_maximal_claim_loses_to_a_small_real_counter() {
        // u32::MAX is one behind 0: a forged maximum about a member at a
        // small incarnation is old news.
        assert!(!newer32(u32::MAX, 5));
        assert!(!newer64(u64::MAX, 1_700_000_000_000));
    }

    #[test]
    fn half_way_apart_is_still_antisymmetric() {
        let (a, b) = (1u32 << 31, 0u32);
        assert!(newer32(a, b) != newer32(b, a));
        let (a, b) = (1u64 << 63, 0u64);
        assert!(newer64(a, b) != newer64(b, a));
    }
}
