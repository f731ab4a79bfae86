//! Scuttlebutt anti-entropy: digests of `(generation, heartbeat, max
//! version)` per owner, answered with exactly the entries the other side
//! lacks, most-behind owners first, within a byte budget per gossip round.
//! Digest exchanges run each gossip interval while state is changing, and
//! whenever a probe shows a peer's state hash differs (the store's hash is
//! folded into the state hash carried on pings and acks). At thousands of
//! nodes a digest lists the recently changed owners and a rotating share of
//! the rest, so it stays within one datagram.

use std::net::SocketAddr;

use compact_str::CompactString;

use super::state::KvState;
use crate::context::Ctx;
use crate::serial::newer64;
use crate::wire::budget::PULL_MARKER_LEN;
use crate::wire::{self, DatagramBuilder, Message, MessageKind};
use crate::Time;

/// The entries of one owner to send a peer in answer to its digest.
struct OwnerDelta {
    node: CompactString,
    /// Send everything from scratch (after a reset, or a node it lacks).
    from_scratch: bool,
    /// Otherwise, the entries after this version.
    after: u64,
    /// How far behind the peer is (scuttle-depth: most behind first).
    depth: u64,
}

impl KvState {
    /// The key/value part of a gossip tick: adapt the push rate, release
    /// deferred writes, and pull from peers while state is changing.
    pub(crate) fn gossip_tick(&mut self, cx: &mut Ctx<'_>, now: Time) {
        let overflowed = self.overflowed || cx.out.queue.has_unsent();
        self.push_rate.end_interval(overflowed);
        if overflowed {
            cx.out.stats.kv_overflows += 1;
        }
        self.overflowed = false;
        self.round_bytes = 0;
        let me = cx.config.name.clone();
        while !self.deferred.is_empty() && self.push_rate.take() {
            let key = self.deferred.pop_front().expect("not empty");
            self.push_entry(cx, &me, &key);
        }
        if now < self.active_until && !cx.left {
            for to in cx.sample_live(cx.config.gossip_nodes) {
                self.send_pull(cx, to, false);
            }
        }
    }

    /// Sends `to` this node's digest (recently changed owners first, then a
    /// rotating share of the rest, as much as fits one datagram).
    pub(crate) fn send_pull(&mut self, cx: &mut Ctx<'_>, to: SocketAddr, rotate: bool) {
        let me = CompactString::from(cx.config.name.as_str());
        let generation = self.generation;
        self.store.with(&me, generation, |s| s.heartbeat += 1);
        cx.out.stats.kv_pulls += 1;
        // At most one datagram of lines: ourselves, the recently changed
        // owners (newest first), then the next owners of the rotation.
        let total = self.store.len();
        let cap = (cx.config.max_datagram / 16).min(total);
        let mut listed: Vec<CompactString> = Vec::with_capacity(2 * cap + 1);
        listed.push(me);
        listed.extend(self.hot.iter().rev().take(cap).map(|(_, n)| n.clone()));
        let start = self.cursor % total.max(1);
        if rotate {
            listed
                .extend((0..cap).map(|i| CompactString::from(self.store.nth((start + i) % total))));
        }
        let mut seen = hashbrown::HashSet::<&str, foldhash::fast::FixedState>::default();
        let mut lines: Vec<Vec<u8>> = Vec::with_capacity(listed.len());
        // Room for the pull marker ahead of the lines.
        let mut room = cx.new_builder().remaining().saturating_sub(PULL_MARKER_LEN);
        let mut rotated = 0;
        for (i, node) in listed.iter().enumerate() {
            let Some(s) = self.store.get(node) else {
                continue;
            };
            if !seen.insert(node) {
                if i > self.hot.len().min(cap) {
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
            if i > self.hot.len().min(cap) {
                rotated += 1;
            }
        }
        let complete = rotate && lines.len() >= total;
        if rotate {
            // The next digest continues the rotation after these.
            self.cursor = start + rotated;
        }
        let mut b = cx.new_builder();
        cx.push_counted(
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
            cx.count(MessageKind::KvDigest, line.len());
        }
        cx.emit_datagram(to, b);
    }

    /// A digest line. Returns whether its heartbeat rose, which is
    /// evidence of its owner's life (for the failure detector); with a
    /// pull, the line also asks for what the sender lacks.
    pub(crate) fn handle_digest(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        d: &wire::KvDigest<'_>,
    ) -> bool {
        if d.node == cx.config.name {
            self.refute_generation(cx, now, d.generation, d.max_version);
            return false;
        }
        let rising = self
            .store
            .get(d.node)
            .is_some_and(|s| s.generation == d.generation && d.heartbeat > s.heartbeat);
        if rising {
            self.store
                .with(d.node, d.generation, |s| s.heartbeat = d.heartbeat);
        }
        rising
    }

    /// Answers a digest: entries the sender lacks, most-behind owners
    /// first, within the round budget; unless the digest was itself an
    /// answer, also our digest lines for owners where the sender holds more.
    pub(crate) fn answer_pull(
        &mut self,
        cx: &mut Ctx<'_>,
        to: SocketAddr,
        pull: wire::KvPull,
        digests: &[(CompactString, u64, u64)],
    ) {
        let mut sends: Vec<OwnerDelta> = Vec::new();
        let mut lacks: Vec<CompactString> = Vec::new();
        let mut seen = hashbrown::HashSet::<&str, foldhash::fast::FixedState>::default();
        for (node, generation, max) in digests {
            seen.insert(node);
            let Some(s) = self.store.get(node) else {
                if *max > 0 && cx.members.find(node).is_some() {
                    lacks.push(node.clone());
                }
                continue;
            };
            if newer64(s.generation, *generation)
                || (s.generation == *generation && s.max_version > *max)
            {
                let from_scratch = s.generation != *generation || *max < s.gc_floor;
                let depth = s.max_version - if from_scratch { 0 } else { *max };
                sends.push(OwnerDelta {
                    node: node.clone(),
                    from_scratch,
                    after: *max,
                    depth,
                });
            } else if s.generation != *generation || s.max_version < *max {
                lacks.push(node.clone());
            }
        }
        if pull.complete && !pull.reply {
            for (node, s) in self.store.nodes() {
                if !seen.contains(node) && s.max_version > 0 {
                    sends.push(OwnerDelta {
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
        cx.out.stats.kv_pulls_answered += 1;
        let mut b = cx.new_builder();
        if !lacks.is_empty() {
            cx.push_counted(
                &mut b,
                &Message::KvPull(wire::KvPull {
                    reply: true,
                    complete: false,
                }),
            );
            for node in &lacks {
                let (generation, heartbeat, max_version) = self
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
            if !self.send_node_entries(cx, to, &mut b, &send) {
                break;
            }
        }
        cx.emit_datagram(to, b);
    }

    /// Packs `send`'s entries into `b`, flushing full datagrams to `to`.
    /// Returns false once the round budget is spent.
    fn send_node_entries(
        &mut self,
        cx: &mut Ctx<'_>,
        to: SocketAddr,
        b: &mut DatagramBuilder,
        send: &OwnerDelta,
    ) -> bool {
        let Some(s) = self.store.get(&send.node) else {
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
        let room = cx.config.kv_round_budget.saturating_sub(self.round_bytes);
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
            if self.round_bytes >= cx.config.kv_round_budget {
                self.overflowed = true;
                cx.drop("kv_round_budget");
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
                let full = std::mem::replace(b, cx.new_builder());
                cx.emit_datagram(to, full);
            }
            if b.push_encoded(msg).is_err() {
                // Larger than an empty datagram (a peer's long name under a
                // small budget): cannot be sent this way.
                cx.drop("entry_exceeds_datagram");
                return true;
            }
            let kind = if send.from_scratch && i == 0 {
                MessageKind::KvReset
            } else {
                MessageKind::KvEntry
            };
            cx.count(kind, msg.len());
            self.round_bytes += msg.len();
        }
        true
    }
}
