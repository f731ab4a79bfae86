//! How bus items spread (`docs/PROTOCOL.md` §11):
//!
//! * **Push, bounded**: the origin sends a new item to `bus_push_fanout`
//!   random members, and every node forwards an item it receives *pushed*
//!   for the first time to `bus_push_fanout` more (infect-and-die). That
//!   reaches most of the cluster within a few network hops, sending the
//!   payload about twice per node, where the transmit-limited queue would
//!   send it 12–16 times.
//! * **Pull, by id**: every node announces the 8-byte ids of items it
//!   learned, to `gossip_nodes` members per gossip round for
//!   `bus_announce_rounds` rounds; a node lacking one pulls it from the
//!   announcer. Pulled items are announced but not pushed.
//! * **Anti-entropy**: items settled for a probe interval count in a bus
//!   hash folded into the state hash carried on every ping and ack; a
//!   difference starts a sync, which compares the hash's buckets and lists
//!   the ids in those that differ, both ways. A joiner is sent the ids of
//!   every live item at once.
//!
//! Every item lives until its origin's `at + ttl`: held (so duplicates are
//! recognised and peers served) until then, refused after. A new item is
//! handed by kind to `events`, `query` or `election`.

use std::net::SocketAddr;
use std::time::Duration;

use compact_str::CompactString;

use super::state::BusState;
use super::table::{item_key, Item};
use super::types::BusError;
use crate::config::Config;
use crate::context::Ctx;
use crate::wire::budget::{ids_per_datagram, pushed_item_len};
use crate::wire::{
    self, bus_ids, BusHead, DatagramBuilder, Message, MessageKind, BUS_BUCKETS, BUS_ID_LEN,
};
use crate::Time;

/// Every bucket of the bus hash.
const ALL_BUCKETS: u64 = (1 << BUS_BUCKETS) - 1;

/// The head of a bus item.
fn head_of<'a>(msg: &Message<'a>) -> Option<BusHead<'a>> {
    match msg {
        Message::UserEvent(wire::UserEvent { head, .. })
        | Message::Query(wire::Query { head, .. })
        | Message::Election(wire::Election { head, .. })
        | Message::Vote(wire::Vote { head, .. }) => Some(*head),
        _ => None,
    }
}

/// Work a datagram's bus messages ask for, done once all are handled.
#[derive(Default)]
pub(crate) struct AfterBus {
    /// The datagram was an eager push with this fanout.
    push: Option<u8>,
    /// Items new to this node, in arrival order.
    new: Vec<u64>,
    /// Announced ids this node lacks.
    wants: Vec<u64>,
    /// Ids the sender wants.
    serve: Vec<u64>,
    /// A bus sync's differing buckets: list ours, and ask for theirs.
    sync_mask: u64,
    /// A listing asked for ours in these buckets.
    reply_mask: u64,
}

/// Datagrams holding a list of encoded messages, each datagram headed by
/// `lead` (if any); the messages' kinds and sizes for the counters; and the
/// messages that could not be sent.
struct Packed {
    datagrams: Vec<DatagramBuilder>,
    sent: Vec<(MessageKind, usize)>,
    too_large: usize,
    /// Asked for, but no longer (or never) held.
    gone: usize,
    over_budget: bool,
}

impl BusState {
    // ------------------------------------------------------------------
    // Making items.

    /// The checks every call that makes an item shares: not left, a name
    /// within `max_event_name_len`, a payload within `max_event_payload`, a
    /// lifetime within `max_event_duration`, room in the item table.
    pub(super) fn check_bus_call(
        &self,
        cx: &Ctx<'_>,
        name: &str,
        payload: &[u8],
        duration: Duration,
    ) -> Result<(), BusError> {
        if cx.left {
            return Err(BusError::Left);
        }
        let max = cx.config.max_event_name_len;
        if name.is_empty() || name.len() > max {
            return Err(BusError::BadName {
                len: name.len(),
                max,
            });
        }
        self.check_payload(cx, payload)?;
        let max = cx.config.max_event_duration;
        if duration.is_zero() || duration > max {
            return Err(BusError::BadDuration { duration, max });
        }
        if self.table.len() >= cx.config.max_active_events {
            return Err(BusError::TooManyEvents {
                max: cx.config.max_active_events,
            });
        }
        Ok(())
    }

    pub(super) fn check_payload(&self, cx: &Ctx<'_>, payload: &[u8]) -> Result<(), BusError> {
        let max = cx.config.max_event_payload;
        if payload.len() > max {
            return Err(BusError::PayloadTooLarge {
                len: payload.len(),
                max,
            });
        }
        Ok(())
    }

    /// The head of a new item of this node living `ttl` from `now`: the
    /// next sequence number and Lamport time.
    pub(super) fn new_head(&mut self, now: Time, ttl: Duration) -> BusHead<'static> {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.lamport += 1;
        BusHead {
            // Replaced by the caller's borrow of the name: see `originate`.
            origin: "",
            seq: self.next_seq,
            lamport: self.lamport,
            at_ms: now.as_millis(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1),
        }
    }

    /// Stores a new item of this node (`msg`, whose head's origin is
    /// filled in here) and returns its id; refused if it would not fit one
    /// datagram.
    pub(super) fn originate(
        &mut self,
        cx: &mut Ctx<'_>,
        msg: &Message<'_>,
    ) -> Result<u64, BusError> {
        let name = cx.config.name.clone();
        let mut msg = *msg;
        let head = match &mut msg {
            Message::UserEvent(wire::UserEvent { head, .. })
            | Message::Query(wire::Query { head, .. })
            | Message::Election(wire::Election { head, .. })
            | Message::Vote(wire::Vote { head, .. }) => head,
            _ => unreachable!("only items are originated"),
        };
        head.origin = &name;
        let head = *head;
        let encoded = wire::encode_message(&msg);
        // With the push marker (2 bytes) ahead of it.
        let len = pushed_item_len(encoded.len());
        if encoded.is_empty() || len > cx.budget() {
            return Err(BusError::TooLarge {
                len,
                max: cx.budget(),
            });
        }
        let key = item_key(&name, head.seq);
        self.store_item(cx, key, &head, msg.kind(), encoded);
        Ok(key)
    }

    /// Holds an item (without `encoded` bytes: refused, remembered by id
    /// only, never announced or served).
    fn store_item(
        &mut self,
        cx: &mut Ctx<'_>,
        key: u64,
        head: &BusHead<'_>,
        kind: MessageKind,
        encoded: Vec<u8>,
    ) {
        let rounds = if encoded.is_empty() {
            0
        } else {
            cx.config.bus_announce_rounds
        };
        let item = Item {
            encoded,
            kind,
            origin: CompactString::from(head.origin),
            seq: head.seq,
            at_ms: head.at_ms,
            expires_ms: head.at_ms.saturating_add(head.ttl_ms),
        };
        self.table.insert(key, item, rounds);
    }

    /// Pushes this node's new item: to `to` (a query's named nodes, who do
    /// not forward it) or to `bus_push_fanout` random live members (who
    /// do).
    pub(super) fn push_new(&mut self, cx: &mut Ctx<'_>, key: u64, to: Option<Vec<SocketAddr>>) {
        let (targets, fanout) = match to {
            Some(addrs) => (addrs, 0),
            None => {
                let f = cx.config.bus_push_fanout;
                (cx.sample_live(usize::from(f)), f)
            }
        };
        for to in targets {
            self.send_items(cx, to, &[key], Some(fanout));
        }
    }

    // ------------------------------------------------------------------
    // Receiving.

    /// Handles one bus message of a datagram.
    pub(crate) fn handle(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        msg: &Message<'_>,
        after: &mut AfterBus,
    ) {
        match *msg {
            Message::BusPush(p) => {
                after.push = Some(u8::try_from(p.fanout).unwrap_or(u8::MAX));
            }
            Message::BusHave(h) => {
                for id in bus_ids(h.ids) {
                    if self.wanted.len() >= cx.config.max_active_events {
                        // Pulls are bounded like items; the rest are
                        // announced again or found by anti-entropy.
                        cx.drop("bus_want_limit");
                        break;
                    }
                    if self.lacks(cx, now, id) {
                        // Noted now, so an id listed twice is pulled once.
                        self.wanted.insert(id, now);
                        after.wants.push(id);
                    }
                }
                after.reply_mask |= h.reply_mask;
            }
            Message::BusWant(w) => after.serve.extend(bus_ids(w.ids)),
            Message::BusSync(s) => after.sync_mask |= self.differing_buckets(cx, s.buckets.0),
            Message::QueryReply(r) => self.handle_query_reply(cx, &r),
            Message::UserEvent(_) | Message::Query(_) | Message::Election(_) | Message::Vote(_) => {
                self.take_item(cx, now, msg, after);
            }
            _ => {}
        }
    }

    fn lacks(&self, cx: &Ctx<'_>, now: Time, id: u64) -> bool {
        !self.table.contains(id)
            && self
                .wanted
                .get(&id)
                .is_none_or(|t| now >= *t + cx.config.gossip_interval)
    }

    /// Takes an item received: false if it is a duplicate, dead, living
    /// longer than allowed, over a limit, or the table is full (each
    /// counted). A new item is stored, witnessed by the Lamport clock and
    /// noted for forwarding.
    fn accept_item(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        msg: &Message<'_>,
        after: &mut AfterBus,
    ) -> bool {
        let Some(head) = head_of(msg) else {
            return false;
        };
        let key = item_key(head.origin, head.seq);
        if let Some(held) = self.table.get(key) {
            if held.origin == head.origin && held.seq == head.seq {
                cx.out.stats.bus_duplicates += 1;
            } else {
                cx.drop("bus_id_collision");
            }
            return false;
        }
        let now_ms = now.as_millis();
        let expires_ms = head.at_ms.saturating_add(head.ttl_ms);
        if expires_ms <= now_ms {
            cx.drop("bus_expired");
            return false;
        }
        let max_ms = u64::try_from(cx.config.max_event_duration.as_millis()).unwrap_or(u64::MAX);
        if head.ttl_ms > max_ms || expires_ms > now_ms.saturating_add(max_ms) {
            cx.drop("bus_duration");
            return false;
        }
        if self.table.len() >= cx.config.max_active_events {
            cx.drop("bus_table_full");
            return false;
        }
        if !self.item_within_limits(cx, msg) {
            cx.drop("bus_limit");
            // Remembered by id only: not pulled again, and the bus hash
            // still agrees with peers that hold it (a node configured with
            // lower limits would otherwise start a sync on every probe).
            self.store_item(cx, key, &head, msg.kind(), Vec::new());
            return false;
        }
        if head.lamport >= self.lamport {
            self.lamport = head.lamport.saturating_add(1);
        }
        self.store_item(cx, key, &head, msg.kind(), wire::encode_message(msg));
        self.wanted.remove(&key);
        cx.out.stats.bus_items_new += 1;
        after.new.push(key);
        true
    }

    /// An item received: if new to this node, what it means, by kind.
    fn take_item(&mut self, cx: &mut Ctx<'_>, now: Time, msg: &Message<'_>, after: &mut AfterBus) {
        if !self.accept_item(cx, now, msg, after) {
            return;
        }
        match msg {
            Message::UserEvent(e) => self.deliver_user_event(cx, now, e),
            Message::Query(q) => self.receive_query(cx, q),
            Message::Election(e) => self.receive_election(cx, now, e),
            Message::Vote(v) => self.receive_vote(cx, now, v),
            _ => {}
        }
    }

    /// This node's limits on names and payloads, which may be lower than
    /// the wire's.
    fn item_within_limits(&self, cx: &Ctx<'_>, msg: &Message<'_>) -> bool {
        let (name, payload) = match msg {
            Message::UserEvent(e) => (e.name, e.payload.0),
            Message::Query(q) => (q.name, q.payload.0),
            Message::Election(e) => (e.topic, &[][..]),
            _ => ("-", &[][..]),
        };
        name.len() <= cx.config.max_event_name_len && payload.len() <= cx.config.max_event_payload
    }

    // ------------------------------------------------------------------
    // After a datagram.

    /// Forwards what was pushed, pulls what was announced and is lacking,
    /// serves what was pulled, and answers syncs and listings.
    pub(crate) fn finish(&mut self, cx: &mut Ctx<'_>, from: SocketAddr, after: AfterBus) {
        // Never more than this node's own fanout: a peer cannot make the
        // whole cluster multiply its traffic.
        let own = cx.config.bus_push_fanout;
        if let Some(fanout) = after.push.map(|f| f.min(own)).filter(|f| *f > 0) {
            if !after.new.is_empty() {
                let peers =
                    cx.sample_members(usize::from(fanout), |_, r| r.is_live() && r.addr != from);
                for id in peers {
                    let to = cx.members.rec(id).addr;
                    self.send_items(cx, to, &after.new, Some(fanout));
                }
            }
        }
        if !after.wants.is_empty() {
            cx.out.stats.bus_wants += after.wants.len() as u64;
            self.send_id_lists(cx, from, &after.wants, false, |ids| {
                Message::BusWant(wire::BusWant { ids })
            });
        }
        if !after.serve.is_empty() {
            self.send_items(cx, from, &after.serve, None);
        }
        if after.sync_mask != 0 {
            self.send_listing(cx, from, after.sync_mask, true);
        }
        if after.reply_mask != 0 {
            self.send_listing(cx, from, after.reply_mask, false);
        }
    }

    /// Sends `to` the ids of every item held in the buckets of `mask`; with
    /// `ask_back`, the first datagram asks for `to`'s list of them (sent
    /// even if this node holds none there).
    fn send_listing(&mut self, cx: &mut Ctx<'_>, to: SocketAddr, mask: u64, ask_back: bool) {
        let ids = self.table.ids_in(mask);
        if ids.is_empty() && !ask_back {
            return;
        }
        let mut first = ask_back;
        self.send_id_lists(cx, to, &ids, true, |ids| {
            let reply_mask = if std::mem::take(&mut first) { mask } else { 0 };
            Message::BusHave(wire::BusHave { reply_mask, ids })
        });
    }

    /// Sends `to` the ids of every live item: a joiner pulls what it lacks.
    pub(crate) fn list_items(&mut self, cx: &mut Ctx<'_>, to: SocketAddr) {
        self.send_listing(cx, to, ALL_BUCKETS, false);
    }

    /// Sends `ids` in as many messages made by `wrap` as it takes, one per
    /// datagram (at least one, even for no ids); answers (`budgeted`) stop
    /// when the round budget is spent.
    fn send_id_lists(
        &mut self,
        cx: &mut Ctx<'_>,
        to: SocketAddr,
        ids: &[u64],
        budgeted: bool,
        mut wrap: impl FnMut(wire::Bytes<'_>) -> Message<'_>,
    ) {
        let per = ids_per_datagram(cx.budget());
        let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
        let mut chunks: Vec<&[u8]> = bytes.chunks(per * BUS_ID_LEN).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            if budgeted {
                if self.round_budget_left(cx) == 0 {
                    cx.drop("bus_round_budget");
                    return;
                }
                self.round_bytes += chunk.len();
            }
            let msg = wrap(wire::Bytes(chunk));
            let mut b = cx.new_builder();
            cx.push_counted(&mut b, &msg);
            self.emit_bus(cx, to, b);
        }
    }

    /// Bytes of answers still allowed in the current round (a round is a
    /// gossip interval, counted from the first answer in it).
    fn round_budget_left(&mut self, cx: &mut Ctx<'_>) -> usize {
        let now = cx.now;
        if now >= self.round_start + cx.config.gossip_interval {
            self.round_start = now;
            self.round_bytes = 0;
        }
        cx.config.bus_round_budget.saturating_sub(self.round_bytes)
    }

    /// Sends the items `keys` (those still held) to `to`, packed: pushed
    /// with `marker` (each datagram headed by a push marker with that
    /// fanout), or, without one, as answers to a pull (within the round
    /// budget).
    pub(super) fn send_items(
        &mut self,
        cx: &mut Ctx<'_>,
        to: SocketAddr,
        keys: &[u64],
        marker: Option<u8>,
    ) {
        let lead = marker.map(|fanout| {
            wire::encode_message(&Message::BusPush(wire::BusPush {
                fanout: u32::from(fanout),
            }))
        });
        let budget = if marker.is_some() {
            usize::MAX
        } else {
            self.round_budget_left(cx)
        };
        let packed = self.pack_items(cx, keys, lead.as_deref(), budget);
        for _ in 0..packed.too_large {
            cx.drop("entry_exceeds_datagram");
        }
        for _ in 0..packed.gone {
            // Died (or was never held): the puller finds it dead too, or
            // gets it from another holder.
            cx.drop("bus_want_unknown");
        }
        if packed.over_budget {
            cx.drop("bus_round_budget");
        }
        for (kind, bytes) in packed.sent {
            cx.count(kind, bytes);
            if marker.is_none() && kind != MessageKind::BusPush {
                self.round_bytes += bytes;
                cx.out.stats.bus_served += 1;
            }
        }
        for b in packed.datagrams {
            self.emit_bus(cx, to, b);
        }
    }

    fn pack_items(&self, cx: &Ctx<'_>, keys: &[u64], lead: Option<&[u8]>, budget: usize) -> Packed {
        let mut out = Packed {
            datagrams: Vec::new(),
            sent: Vec::new(),
            too_large: 0,
            gone: 0,
            over_budget: false,
        };
        let mut spent = 0;
        let mut b = cx.new_builder();
        for item in keys.iter().filter_map(|k| {
            let item = self.table.get(*k).filter(|i| !i.encoded.is_empty());
            out.gone += usize::from(item.is_none());
            item
        }) {
            if spent + item.encoded.len() > budget {
                out.over_budget = true;
                break;
            }
            let lead_len = lead.map_or(0, <[u8]>::len);
            let need = item.encoded.len() + if b.is_empty() { lead_len } else { 0 };
            if b.remaining() < need {
                if !b.is_empty() {
                    out.datagrams
                        .push(std::mem::replace(&mut b, cx.new_builder()));
                }
                if b.remaining() < item.encoded.len() + lead_len {
                    out.too_large += 1;
                    continue;
                }
            }
            if b.is_empty() {
                if let Some(lead) = lead {
                    b.push_encoded(lead).expect("checked room");
                    out.sent.push((MessageKind::BusPush, lead.len()));
                }
            }
            b.push_encoded(&item.encoded).expect("checked room");
            out.sent.push((item.kind, item.encoded.len()));
            spent += item.encoded.len();
        }
        if !b.is_empty() {
            out.datagrams.push(b);
        }
        out
    }

    /// Emits a datagram of bus traffic (counted apart for the cost figures).
    pub(super) fn emit_bus(&mut self, cx: &mut Ctx<'_>, to: SocketAddr, b: DatagramBuilder) {
        if !b.is_empty() {
            cx.out.stats.bus_packets_out += 1;
        }
        cx.emit_datagram(to, b);
    }

    // ------------------------------------------------------------------
    // Gossip rounds, timers, anti-entropy.

    /// The bus part of a gossip tick: announce the ids of fresh items to
    /// `gossip_nodes` members.
    pub(crate) fn gossip_tick(&mut self, cx: &mut Ctx<'_>, now: Time) {
        let timeout = cx.config.gossip_interval;
        self.wanted.retain(|_, t| now < *t + timeout);
        if cx.left || !self.table.has_fresh() {
            return;
        }
        let per = ids_per_datagram(cx.budget());
        let ids = self.table.take_fresh(per);
        if ids.is_empty() {
            return;
        }
        let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
        let have = Message::BusHave(wire::BusHave {
            reply_mask: 0,
            ids: wire::Bytes(&bytes),
        });
        for to in cx.sample_live(cx.config.gossip_nodes) {
            let mut b = cx.new_builder();
            cx.push_counted(&mut b, &have);
            self.emit_bus(cx, to, b);
        }
    }

    /// Runs the bus timers due at `now`: items die, coalescing windows
    /// close, queries time out, elections expire.
    pub(crate) fn run_timers(&mut self, cx: &mut Ctx<'_>, now: Time) {
        for (key, item) in self.table.expire(now.as_millis()) {
            if item.kind == MessageKind::Query {
                self.forget_answering(key);
            }
        }
        self.close_windows(cx, now);
        self.run_query_timers(cx, now);
        self.run_election_timers(cx, now);
    }

    /// The bus hash's contribution to the state hash at `now` (zero with
    /// no settled item). Items settle and leave on probe-interval
    /// boundaries.
    pub(crate) fn hash32(&self, now: Time, config: &Config) -> [u8; 4] {
        self.table.hash32(now.as_millis(), quantum_ms(config))
    }

    /// The bus part of a sync request: this node's bus-hash buckets (none
    /// if all are zero). `None` while it holds no item at all: a peer
    /// holding some then sees the states differ too, and its own sync
    /// request gets this node's (empty) listing and its pulls.
    pub(crate) fn sync_buckets(&self, now: Time, config: &Config) -> Option<Vec<u8>> {
        if self.table.len() == 0 {
            return None;
        }
        let b = self.table.buckets(now.as_millis(), quantum_ms(config));
        if b.iter().all(|h| *h == 0) {
            return Some(Vec::new());
        }
        Some(b.iter().flat_map(|h| h.to_le_bytes()).collect())
    }

    /// The buckets where `theirs` (validated: none, or all of them)
    /// differs from ours.
    fn differing_buckets(&self, cx: &Ctx<'_>, theirs: &[u8]) -> u64 {
        let ours = self
            .table
            .buckets(cx.now.as_millis(), quantum_ms(cx.config));
        let mut mask = 0;
        for (i, h) in ours.iter().enumerate() {
            let t = theirs
                .get(4 * i..4 * i + 4)
                .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
            if t != *h {
                mask |= 1 << i;
            }
        }
        mask
    }
}

/// The bus hash's time quantum: the probe interval, in milliseconds.
fn quantum_ms(config: &Config) -> u64 {
    u64::try_from(config.probe_interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}
