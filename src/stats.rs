//! Counters: nothing is dropped, refused or evicted without being counted.

use std::collections::BTreeMap;

use crate::wire::MessageKind;

/// Per-message-kind counters: read one by kind ([`PerKind::get`]) or by
/// its name ([`PerKind::by_name`], the names of
/// [`MessageKind::name`]), or all that are not zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerKind([u64; MessageKind::ALL.len()]);

impl PerKind {
    /// Adds `n` to `kind`'s counter.
    pub fn add(&mut self, kind: MessageKind, n: u64) {
        self.0[kind as usize] += n;
    }

    /// The counter of `kind`.
    pub fn get(&self, kind: MessageKind) -> u64 {
        self.0[kind as usize]
    }

    /// The counter of the kind named `name` (`"ping"`, `"kv_entry"`…), or
    /// `None` if no kind has that name.
    pub fn by_name(&self, name: &str) -> Option<u64> {
        MessageKind::ALL
            .iter()
            .find(|k| k.name() == name)
            .map(|k| self.get(*k))
    }

    /// Non-zero counters with their kinds' names.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        MessageKind::ALL
            .iter()
            .map(|k| (k.name(), self.get(*k)))
            .filter(|(_, n)| *n > 0)
    }
}

/// Everything an [`Endpoint`](crate::Endpoint) counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received (accepted or not).
    pub packets_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Datagrams sent.
    pub packets_out: u64,
    /// Bytes sent (UDP payload).
    pub bytes_out: u64,
    /// Messages received, by kind.
    pub messages_in: PerKind,
    /// Messages sent, by kind.
    pub messages_out: PerKind,
    /// Bytes of messages sent, by kind (headers not included).
    pub message_bytes_out: PerKind,
    /// Dropped datagrams, messages and refused updates, by reason.
    pub drops: BTreeMap<&'static str, u64>,
    /// Probes started.
    pub probes: u64,
    /// Probes that fell back to ping-req.
    pub indirect_probes: u64,
    /// Probes that failed and raised a suspicion.
    pub failed_probes: u64,
    /// Members this node started suspecting (its own probes or gossip).
    pub suspicions: u64,
    /// Suspicions of this node that it refuted.
    pub refutations: u64,
    /// Claims of this node's name from another address (another node
    /// started with the same name, or a forgery).
    pub name_conflicts: u64,
    /// Members this node declared dead when their suspicion timed out.
    pub deaths_declared: u64,
    /// Anti-entropy exchanges this node started.
    pub syncs_started: u64,
    /// Anti-entropy requests this node answered.
    pub syncs_answered: u64,
    /// Failed probes whose suspicion phi vetoed (fresh evidence of life).
    pub suspicions_vetoed: u64,
    /// Failed probes whose suspicion this node held back for a confirming
    /// probe ([`Config::confirm_suspicion`](crate::Config::confirm_suspicion)).
    pub suspicions_held: u64,
    /// Held suspicions dropped because this node heard nobody while
    /// confirming them (it is more likely the one cut off).
    pub suspicions_withheld: u64,
    /// Key/value entries of other nodes applied.
    pub kv_entries_applied: u64,
    /// Key/value digests this node sent (pulls).
    pub kv_pulls: u64,
    /// Key/value digests this node answered with entries or digest lines.
    pub kv_pulls_answered: u64,
    /// Replicas reset because they were behind a tombstone-collection
    /// horizon.
    pub kv_resets: u64,
    /// Times this node found state of a previous life of its own and moved
    /// to a new generation.
    pub kv_generation_refutations: u64,
    /// Tombstones collected after `kv_tombstone_grace` (what keeps a
    /// deleted key from costing memory for ever).
    pub kv_tombstones_collected: u64,
    /// Gossip intervals that overflowed (flow control halved the push rate).
    pub kv_overflows: u64,
    /// Bus items (events, queries, elections, votes) received for the
    /// first time.
    pub bus_items_new: u64,
    /// Bus items received again (pushed by several peers, or pulled twice).
    pub bus_duplicates: u64,
    /// Bus item ids this node pulled (asked a peer for).
    pub bus_wants: u64,
    /// Bus items this node sent in answer to pulls.
    pub bus_served: u64,
    /// Datagrams sent that carried only bus traffic (items, id lists,
    /// pulls, query replies), for the per-event cost figures.
    pub bus_packets_out: u64,
    /// Coalesced events not delivered because a later one of the same
    /// name superseded them.
    pub events_coalesced: u64,
}

impl Stats {
    /// Counts one drop for `reason`.
    pub(crate) fn drop(&mut self, reason: &'static str) {
        *self.drops.entry(reason).or_insert(0) += 1;
    }

    /// Drops counted for `reason`.
    pub fn drops_for(&self, reason: &str) -> u64 {
        self.drops.get(reason).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_kind_counters_read_by_kind_and_by_name() {
        let mut c = PerKind::default();
        c.add(MessageKind::Ping, 2);
        c.add(MessageKind::KvEntry, 5);
        assert_eq!(c.get(MessageKind::Ping), 2);
        assert_eq!(c.by_name("ping"), Some(2));
        assert_eq!(c.by_name(MessageKind::KvEntry.name()), Some(5));
        assert_eq!(c.by_name("ack"), Some(0));
        assert_eq!(c.by_name("no_such_kind"), None);
        assert_eq!(c.nonzero().count(), 2);
    }
}
