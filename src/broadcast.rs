//! The dissemination queue: updates waiting to be piggybacked.
//!
//! Every update is encoded once and then copied into outgoing datagrams,
//! least-transmitted first (newest first among equals, so fresh news
//! overtakes old), until it has been sent `limit` times; SWIM shows
//! `λ·log n` transmissions reach every member with high probability. A newer
//! update about the same member replaces the queued one, so the queue never
//! holds two opinions about one member. Like memberlist's
//! `TransmitLimitedQueue`.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use compact_str::CompactString;
use hashbrown::HashMap;

use crate::wire::{DatagramBuilder, MessageKind};

/// Ordering key: fewest transmissions first, then newest.
type Key = (u32, Reverse<u64>);

#[derive(Debug)]
struct Queued {
    subject: CompactString,
    payload: Vec<u8>,
}

/// Transmit-limited broadcast queue.
#[derive(Debug, Default)]
pub(crate) struct BroadcastQueue {
    order: BTreeMap<Key, Queued>,
    by_subject: HashMap<CompactString, Key, foldhash::fast::FixedState>,
    next_id: u64,
}

/// What one fill put into a datagram.
#[derive(Debug, Default)]
pub(crate) struct Filled {
    /// Encoded bytes added, by message kind (for statistics).
    pub bytes: Vec<(MessageKind, usize)>,
}

/// The kind of an encoded message: its first byte is the wire tag (tags
/// below 251 are one byte in bincode's varint encoding).
fn kind_of(encoded: &[u8]) -> Option<MessageKind> {
    encoded
        .first()
        .and_then(|&t| MessageKind::ALL.get(usize::from(t)).copied())
}

impl BroadcastQueue {
    /// An empty queue whose subject index is keyed with `seed`.
    pub(crate) fn new(seed: u64) -> BroadcastQueue {
        BroadcastQueue {
            order: BTreeMap::new(),
            by_subject: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(seed)),
            next_id: 0,
        }
    }

    /// Queues an encoded update about `subject`, replacing any older one.
    /// Returns how many entries were evicted to stay within `cap`.
    pub(crate) fn push(&mut self, subject: &str, payload: Vec<u8>, cap: usize) -> usize {
        if let Some(old) = self.by_subject.remove(subject) {
            self.order.remove(&old);
        }
        let key = (0, Reverse(self.next_id));
        self.next_id += 1;
        self.by_subject.insert(CompactString::from(subject), key);
        self.order.insert(
            key,
            Queued {
                subject: CompactString::from(subject),
                payload,
            },
        );
        let mut evicted = 0;
        while self.order.len() > cap {
            // The most-sent (and among those the oldest) has done most of
            // its work already.
            if let Some((_, q)) = self.order.pop_last() {
                self.by_subject.remove(&q.subject);
                evicted += 1;
            }
        }
        evicted
    }

    /// Copies as many updates as fit into `out`, counting one transmission
    /// for each and dropping those that reached `limit`.
    pub(crate) fn fill(&mut self, out: &mut DatagramBuilder, limit: u32) -> Filled {
        let mut filled = Filled::default();
        let mut sent: Vec<Key> = Vec::new();
        for (key, q) in &self.order {
            if out.remaining() < 4 {
                break;
            }
            if out.push_encoded(&q.payload).is_ok() {
                sent.push(*key);
                if let Some(kind) = kind_of(&q.payload) {
                    filled.bytes.push((kind, q.payload.len()));
                }
            }
        }
        for key in sent {
            let Some(q) = self.order.remove(&key) else {
                continue;
            };
            let transmits = key.0 + 1;
            if transmits >= limit {
                self.by_subject.remove(&q.subject);
            } else {
                let new_key = (transmits, key.1);
                if let Some(k) = self.by_subject.get_mut(&q.subject) {
                    *k = new_key;
                }
                self.order.insert(new_key, q);
            }
        }
        filled
    }

    /// Updates waiting.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing waits.
    /// Whether some update has not been sent even once: the last fills
    /// could not keep up (flow control's overflow signal).
    pub(crate) fn has_unsent(&self) -> bool {
        self.order.keys().next().is_some_and(|(sent, _)| *sent == 0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The transmission limit for a cluster of `n` members: `mult ·
/// ⌈log10(n + 1)⌉` (memberlist's `retransmitLimit`).
pub(crate) fn retransmit_limit(mult: u32, n: usize) -> u32 {
    let scale = ((n as f64) + 1.0).log10().ceil() as u32;
    mult * scale.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_message, ClusterTag, Datagram, Header, Left, Message};

    fn left(name: &str, incarnation: u32) -> Vec<u8> {
        encode_message(&Message::Left(Left { name, incarnation }))
    }

    fn builder(budget: usize) -> DatagramBuilder {
        DatagramBuilder::new(Header::new(ClusterTag(1)), budget)
    }

    fn decoded(b: DatagramBuilder) -> Vec<(String, u32)> {
        let bytes = b.finish();
        let d = Datagram::parse(&bytes, ClusterTag(1)).unwrap();
        d.messages()
            .map(|m| match m.unwrap() {
                Message::Left(l) => (l.name.to_string(), l.incarnation),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn retransmit_limit_matches_memberlist() {
        assert_eq!(retransmit_limit(4, 0), 4);
        assert_eq!(retransmit_limit(4, 1), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 99), 8);
        assert_eq!(retransmit_limit(4, 100), 12);
        assert_eq!(retransmit_limit(4, 1000), 16);
        assert_eq!(retransmit_limit(3, 10_000), 15);
    }

    #[test]
    fn each_update_is_sent_exactly_limit_times() {
        let mut q = BroadcastQueue::new(0);
        q.push("a", left("a", 1), 100);
        for _ in 0..3 {
            let mut b = builder(512);
            q.fill(&mut b, 3);
            assert_eq!(decoded(b), vec![("a".to_string(), 1)]);
        }
        assert!(q.is_empty());
        let mut b = builder(512);
        q.fill(&mut b, 3);
        assert!(b.is_empty());
    }

    #[test]
    fn newer_update_replaces_older_about_same_member() {
        let mut q = BroadcastQueue::new(0);
        q.push("a", left("a", 1), 100);
        q.push("b", left("b", 1), 100);
        q.push("a", left("a", 2), 100);
        assert_eq!(q.len(), 2);
        let mut b = builder(512);
        q.fill(&mut b, 10);
        assert_eq!(decoded(b), vec![("a".to_string(), 2), ("b".to_string(), 1)]);
    }

    #[test]
    fn least_sent_goes_first_and_newest_among_equals() {
        let mut q = BroadcastQueue::new(0);
        q.push("old", left("old", 1), 100);
        let mut b = builder(512);
        q.fill(&mut b, 10); // "old" now sent once
        q.push("x", left("x", 1), 100);
        q.push("y", left("y", 1), 100);
        // Room for exactly two Left messages of this size.
        let one = left("x", 1).len();
        let mut b = builder(crate::wire::HEADER_LEN + 2 * one + 3);
        q.fill(&mut b, 10);
        assert_eq!(decoded(b), vec![("y".to_string(), 1), ("x".to_string(), 1)]);
    }

    #[test]
    fn packing_never_exceeds_budget_and_skips_what_does_not_fit() {
        let mut q = BroadcastQueue::new(0);
        for i in 0..500 {
            let name = format!("member-{i:04}-{}", "x".repeat(i % 40));
            q.push(&name.clone(), left(&name, i as u32), 10_000);
        }
        for budget in [512, 700, 1400] {
            let mut b = builder(budget);
            let filled = q.fill(&mut b, 100);
            assert!(!filled.bytes.is_empty());
            let bytes = b.finish();
            assert!(bytes.len() <= budget);
        }
    }

    #[test]
    fn cap_evicts_the_most_sent() {
        let mut q = BroadcastQueue::new(0);
        q.push("a", left("a", 1), 2);
        let mut b = builder(512);
        q.fill(&mut b, 10);
        q.push("b", left("b", 1), 2);
        assert_eq!(q.push("c", left("c", 1), 2), 1);
        let mut b = builder(512);
        q.fill(&mut b, 10);
        let mut names: Vec<String> = decoded(b).into_iter().map(|(n, _)| n).collect();
        names.sort();
        assert_eq!(names, vec!["b", "c"]);
    }
}
