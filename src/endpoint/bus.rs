//! The event bus on the endpoint: how bus items (user events, queries,
//! elections, votes) spread, and user events themselves. Queries and
//! elections are `query.rs` and `election.rs`; the algorithm is
//! `docs/PROTOCOL.md` §11.
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
//! recognised and peers served) until then, refused after.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::Duration;

use compact_str::CompactString;

use super::{election, query, Endpoint, FixedMap};
use crate::bus::{item_key, BusError, EventId, Item, ItemTable};
use crate::event::Event;
use crate::membership::state::mix64;
use crate::wire::{
    self, bus_ids, BusHead, DatagramBuilder, Message, MessageKind, BUS_BUCKETS, BUS_ID_LEN,
    HEADER_LEN,
};
use crate::Time;

/// Every bucket of the bus hash.
const ALL_BUCKETS: u64 = (1 << BUS_BUCKETS) - 1;

/// Milliseconds of `t` (items carry their times in milliseconds).
pub(super) fn millis(t: Time) -> u64 {
    t.as_nanos() / 1_000_000
}

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

/// A coalesced event waiting for the end of its name's window.
struct Coalescing {
    /// (Lamport time, origin, seq): the latest wins.
    order: (u64, CompactString, u64),
    payload: Vec<u8>,
    expires: Time,
}

/// The endpoint's bus state.
pub(super) struct BusState {
    pub(super) table: ItemTable,
    lamport: u64,
    next_seq: u64,
    /// Ids pulled, and when: not pulled again within a gossip interval.
    wanted: FixedMap<u64, Time>,
    /// Bytes sent in answers during the current round, and its start.
    round_bytes: usize,
    round_start: Time,
    coalescing: FixedMap<CompactString, Coalescing>,
    coalesce_timers: BinaryHeap<Reverse<(Time, CompactString)>>,
    /// Per coalesced name, the Lamport time delivered last and until when
    /// it is remembered: older events of the name arriving later are
    /// superseded too.
    coalesced_last: FixedMap<CompactString, (u64, Time)>,
    pub(super) queries: query::Queries,
    pub(super) elections: election::Elections,
}

impl BusState {
    /// `seed` is random per endpoint; the sequence starts at a random
    /// 32-bit point so a restarted node's ids differ from its previous
    /// life's (ids stay short on the wire).
    pub(super) fn new(seed: u64) -> BusState {
        let seeds: [u64; 4] = std::array::from_fn(|i| mix64(seed ^ (i as u64 + 1)));
        let map = |s: u64| foldhash::fast::FixedState::with_seed(s);
        BusState {
            table: ItemTable::new(seeds[0]),
            lamport: 0,
            next_seq: seeds[1] >> 32,
            wanted: FixedMap::with_hasher(map(seeds[2])),
            round_bytes: 0,
            round_start: Time::ZERO,
            coalescing: FixedMap::with_hasher(map(seeds[3])),
            coalesce_timers: BinaryHeap::new(),
            coalesced_last: FixedMap::with_hasher(map(seeds[3] ^ 1)),
            queries: query::Queries::new(seeds[2] ^ 1),
            elections: election::Elections::new(seeds[0] ^ 1),
        }
    }

    /// Whether the gossip tick has bus work (ids to announce).
    pub(super) fn wants_gossip(&self) -> bool {
        self.table.has_fresh()
    }

    /// The earliest bus timer.
    pub(super) fn next_timer(&self) -> Option<Time> {
        [
            self.table.next_expiry().map(Time::from_millis),
            self.coalesce_timers.peek().map(|Reverse((t, _))| *t),
            self.queries.next_timer(),
            self.elections.next_timer(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// Work a datagram's bus messages ask for, done once all are handled.
#[derive(Default)]
pub(super) struct AfterBus {
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

impl Endpoint {
    // ------------------------------------------------------------------
    // Local API.

    /// Says `name` with `payload` to every other live node, which each
    /// receive it once as [`Event::UserEvent`] while `duration` lasts
    /// (nodes joining meanwhile too); after it, nobody does. This node
    /// does not hear its own events.
    pub fn say(
        &mut self,
        now: Time,
        name: &str,
        payload: &[u8],
        duration: Duration,
    ) -> Result<EventId, BusError> {
        self.say_with(now, name, payload, duration, false)
    }

    /// Like [`Endpoint::say`], but receivers coalesce: of the events of
    /// this name arriving within `event_coalesce_window`, each delivers
    /// only the latest (by Lamport time, as serf's coalesced user events),
    /// at the end of the window.
    pub fn say_coalesced(
        &mut self,
        now: Time,
        name: &str,
        payload: &[u8],
        duration: Duration,
    ) -> Result<EventId, BusError> {
        self.say_with(now, name, payload, duration, true)
    }

    fn say_with(
        &mut self,
        now: Time,
        name: &str,
        payload: &[u8],
        duration: Duration,
        coalesce: bool,
    ) -> Result<EventId, BusError> {
        self.observe_time(now);
        self.check_bus_call(name, payload, duration)?;
        let head = self.new_head(now, duration);
        let msg = Message::UserEvent(wire::UserEvent {
            head,
            name,
            coalesce,
            payload: wire::Bytes(payload),
        });
        let key = self.originate(&msg)?;
        self.push_new(key, None);
        Ok(EventId {
            origin: self.config.name.clone(),
            seq: head.seq,
        })
    }

    /// This node's Lamport clock: above the Lamport time of every bus item
    /// it made or received.
    pub fn lamport(&self) -> u64 {
        self.bus.lamport
    }

    /// Bus items (events, queries, elections, votes) alive and held here.
    pub fn active_bus_items(&self) -> usize {
        self.bus.table.len()
    }

    // ------------------------------------------------------------------
    // Making items.

    /// The checks every call that makes an item shares: not left, a name
    /// within `max_event_name_len`, a payload within `max_event_payload`, a
    /// lifetime within `max_event_duration`, room in the item table.
    pub(super) fn check_bus_call(
        &self,
        name: &str,
        payload: &[u8],
        duration: Duration,
    ) -> Result<(), BusError> {
        if self.left {
            return Err(BusError::Left);
        }
        let max = self.config.max_event_name_len;
        if name.is_empty() || name.len() > max {
            return Err(BusError::BadName {
                len: name.len(),
                max,
            });
        }
        self.check_payload(payload)?;
        let max = self.config.max_event_duration;
        if duration.is_zero() || duration > max {
            return Err(BusError::BadDuration { duration, max });
        }
        if self.bus.table.len() >= self.config.max_active_events {
            return Err(BusError::TooManyEvents {
                max: self.config.max_active_events,
            });
        }
        Ok(())
    }

    pub(super) fn check_payload(&self, payload: &[u8]) -> Result<(), BusError> {
        let max = self.config.max_event_payload;
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
        self.bus.next_seq = self.bus.next_seq.wrapping_add(1);
        self.bus.lamport += 1;
        BusHead {
            // Replaced by the caller's borrow of the name: see `originate`.
            origin: "",
            seq: self.bus.next_seq,
            lamport: self.bus.lamport,
            at_ms: millis(now),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1),
        }
    }

    /// Stores a new item of this node (`msg`, whose head's origin is
    /// filled in here) and returns its id; refused if it would not fit one
    /// datagram.
    pub(super) fn originate(&mut self, msg: &Message<'_>) -> Result<u64, BusError> {
        let name = self.config.name.clone();
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
        let len = HEADER_LEN + 2 + encoded.len();
        if encoded.is_empty() || len > self.message_budget() {
            return Err(BusError::TooLarge {
                len,
                max: self.message_budget(),
            });
        }
        let key = item_key(&name, head.seq);
        self.store_item(key, &head, msg.kind(), encoded);
        Ok(key)
    }

    /// Holds an item (without `encoded` bytes: refused, remembered by id
    /// only, never announced or served).
    fn store_item(&mut self, key: u64, head: &BusHead<'_>, kind: MessageKind, encoded: Vec<u8>) {
        let rounds = if encoded.is_empty() {
            0
        } else {
            self.config.bus_announce_rounds
        };
        let item = Item {
            encoded,
            kind,
            origin: CompactString::from(head.origin),
            seq: head.seq,
            at_ms: head.at_ms,
            expires_ms: head.at_ms.saturating_add(head.ttl_ms),
        };
        self.bus.table.insert(key, item, rounds);
    }

    /// Pushes this node's new item: to `to` (a query's named nodes, who do
    /// not forward it) or to `bus_push_fanout` random live members (who
    /// do).
    pub(super) fn push_new(&mut self, key: u64, to: Option<Vec<SocketAddr>>) {
        let (targets, fanout) = match to {
            Some(addrs) => (addrs, 0),
            None => {
                let f = self.config.bus_push_fanout;
                let ids = self.sample_members(usize::from(f), |_, r| r.is_live());
                (ids.iter().map(|&id| self.members.rec(id).addr).collect(), f)
            }
        };
        for to in targets {
            self.send_items(to, &[key], Some(fanout));
        }
    }

    // ------------------------------------------------------------------
    // Receiving.

    /// Handles one bus message of a datagram.
    pub(super) fn handle_bus(&mut self, now: Time, msg: &Message<'_>, after: &mut AfterBus) {
        match *msg {
            Message::BusPush(p) => {
                after.push = Some(u8::try_from(p.fanout).unwrap_or(u8::MAX));
            }
            Message::BusHave(h) => {
                for id in bus_ids(h.ids) {
                    if self.bus.wanted.len() >= self.config.max_active_events {
                        // Pulls are bounded like items; the rest are
                        // announced again or found by anti-entropy.
                        self.stats.drop("bus_want_limit");
                        break;
                    }
                    if self.lacks(now, id) {
                        // Noted now, so an id listed twice is pulled once.
                        self.bus.wanted.insert(id, now);
                        after.wants.push(id);
                    }
                }
                after.reply_mask |= h.reply_mask;
            }
            Message::BusWant(w) => after.serve.extend(bus_ids(w.ids)),
            Message::BusSync(s) => after.sync_mask |= self.differing_buckets(s.buckets.0),
            Message::QueryReply(r) => self.handle_query_reply(now, &r),
            Message::UserEvent(_) | Message::Query(_) | Message::Election(_) | Message::Vote(_) => {
                self.take_item(now, msg, after);
            }
            _ => {}
        }
    }

    fn lacks(&self, now: Time, id: u64) -> bool {
        !self.bus.table.contains(id)
            && self
                .bus
                .wanted
                .get(&id)
                .is_none_or(|t| now >= *t + self.config.gossip_interval)
    }

    /// Takes an item received: false if it is a duplicate, dead, living
    /// longer than allowed, over a limit, or the table is full (each
    /// counted). A new item is stored, witnessed by the Lamport clock and
    /// noted for forwarding.
    fn accept_item(&mut self, now: Time, msg: &Message<'_>, after: &mut AfterBus) -> bool {
        let Some(head) = head_of(msg) else {
            return false;
        };
        let key = item_key(head.origin, head.seq);
        if let Some(held) = self.bus.table.get(key) {
            if held.origin == head.origin && held.seq == head.seq {
                self.stats.bus_duplicates += 1;
            } else {
                self.stats.drop("bus_id_collision");
            }
            return false;
        }
        let now_ms = millis(now);
        let expires_ms = head.at_ms.saturating_add(head.ttl_ms);
        if expires_ms <= now_ms {
            self.stats.drop("bus_expired");
            return false;
        }
        let max_ms = u64::try_from(self.config.max_event_duration.as_millis()).unwrap_or(u64::MAX);
        if head.ttl_ms > max_ms || expires_ms > now_ms.saturating_add(max_ms) {
            self.stats.drop("bus_duration");
            return false;
        }
        if self.bus.table.len() >= self.config.max_active_events {
            self.stats.drop("bus_table_full");
            return false;
        }
        if !self.item_within_limits(msg) {
            self.stats.drop("bus_limit");
            // Remembered by id only: not pulled again, and the bus hash
            // still agrees with peers that hold it (a node configured with
            // lower limits would otherwise start a sync on every probe).
            self.store_item(key, &head, msg.kind(), Vec::new());
            return false;
        }
        if head.lamport >= self.bus.lamport {
            self.bus.lamport = head.lamport.saturating_add(1);
        }
        self.store_item(key, &head, msg.kind(), wire::encode_message(msg));
        self.bus.wanted.remove(&key);
        self.stats.bus_items_new += 1;
        after.new.push(key);
        true
    }

    /// An item received: if new to this node, what it means, by kind.
    fn take_item(&mut self, now: Time, msg: &Message<'_>, after: &mut AfterBus) {
        if !self.accept_item(now, msg, after) {
            return;
        }
        match msg {
            Message::UserEvent(e) => self.deliver_user_event(now, e),
            Message::Query(q) => self.receive_query(now, q),
            Message::Election(e) => self.receive_election(now, e),
            Message::Vote(v) => self.receive_vote(now, v),
            _ => {}
        }
    }

    /// This node's limits on names and payloads, which may be lower than
    /// the wire's.
    fn item_within_limits(&self, msg: &Message<'_>) -> bool {
        let (name, payload) = match msg {
            Message::UserEvent(e) => (e.name, e.payload.0),
            Message::Query(q) => (q.name, q.payload.0),
            Message::Election(e) => (e.topic, &[][..]),
            _ => ("-", &[][..]),
        };
        name.len() <= self.config.max_event_name_len
            && payload.len() <= self.config.max_event_payload
    }

    fn deliver_user_event(&mut self, now: Time, e: &wire::UserEvent<'_>) {
        if e.head.origin == self.config.name {
            return; // a node does not hear its own events
        }
        let at_once = Event::UserEvent {
            origin: e.head.origin.to_owned(),
            seq: e.head.seq,
            lamport: e.head.lamport,
            name: e.name.to_owned(),
            payload: e.payload.0.to_vec(),
        };
        if !e.coalesce {
            self.events.push_back(at_once);
            return;
        }
        let order = (
            e.head.lamport,
            CompactString::from(e.head.origin),
            e.head.seq,
        );
        let expires = Time::from_millis(e.head.at_ms.saturating_add(e.head.ttl_ms));
        let name = CompactString::from(e.name);
        let superseded = self
            .bus
            .coalesced_last
            .get(&name)
            .is_some_and(|(lamport, until)| now < *until && *lamport >= e.head.lamport);
        if superseded {
            self.stats.events_coalesced += 1;
            return;
        }
        if !self.bus.coalescing.contains_key(&name)
            && self.bus.coalescing.len() >= self.config.max_active_events
        {
            // Windows are bounded like items: past the bound an event is
            // delivered at once rather than held (never lost).
            self.events.push_back(at_once);
            return;
        }
        if let Some(c) = self.bus.coalescing.get_mut(&name) {
            self.stats.events_coalesced += 1;
            if order > c.order {
                c.order = order;
                c.payload = e.payload.0.to_vec();
                c.expires = expires;
            }
            return;
        }
        self.bus.coalesce_timers.push(Reverse((
            now + self.config.event_coalesce_window,
            name.clone(),
        )));
        self.bus.coalescing.insert(
            name,
            Coalescing {
                order,
                payload: e.payload.0.to_vec(),
                expires,
            },
        );
    }

    // ------------------------------------------------------------------
    // After a datagram.

    /// Forwards what was pushed, pulls what was announced and is lacking,
    /// serves what was pulled, and answers syncs and listings.
    pub(super) fn finish_bus(&mut self, from: SocketAddr, after: AfterBus) {
        // Never more than this node's own fanout: a peer cannot make the
        // whole cluster multiply its traffic.
        let own = self.config.bus_push_fanout;
        if let Some(fanout) = after.push.map(|f| f.min(own)).filter(|f| *f > 0) {
            if !after.new.is_empty() {
                let peers =
                    self.sample_members(usize::from(fanout), |_, r| r.is_live() && r.addr != from);
                for id in peers {
                    let to = self.members.rec(id).addr;
                    self.send_items(to, &after.new, Some(fanout));
                }
            }
        }
        if !after.wants.is_empty() {
            self.stats.bus_wants += after.wants.len() as u64;
            self.send_id_lists(from, &after.wants, false, |ids| {
                Message::BusWant(wire::BusWant { ids })
            });
        }
        if !after.serve.is_empty() {
            self.send_items(from, &after.serve, None);
        }
        if after.sync_mask != 0 {
            self.send_listing(from, after.sync_mask, true);
        }
        if after.reply_mask != 0 {
            self.send_listing(from, after.reply_mask, false);
        }
    }

    /// Sends `to` the ids of every item held in the buckets of `mask`; with
    /// `ask_back`, the first datagram asks for `to`'s list of them (sent
    /// even if this node holds none there).
    fn send_listing(&mut self, to: SocketAddr, mask: u64, ask_back: bool) {
        let ids = self.bus.table.ids_in(mask);
        if ids.is_empty() && !ask_back {
            return;
        }
        let mut first = ask_back;
        self.send_id_lists(to, &ids, true, |ids| {
            let reply_mask = if std::mem::take(&mut first) { mask } else { 0 };
            Message::BusHave(wire::BusHave { reply_mask, ids })
        });
    }

    /// Sends `to` the ids of every live item: a joiner pulls what it lacks.
    pub(super) fn list_bus_items(&mut self, to: SocketAddr) {
        self.send_listing(to, ALL_BUCKETS, false);
    }

    /// Sends `ids` in as many messages made by `wrap` as it takes, one per
    /// datagram (at least one, even for no ids); answers (`budgeted`) stop
    /// when the round budget is spent.
    fn send_id_lists(
        &mut self,
        to: SocketAddr,
        ids: &[u64],
        budgeted: bool,
        mut wrap: impl FnMut(wire::Bytes<'_>) -> Message<'_>,
    ) {
        // Room for the tag, a reply mask (up to 3 bytes here) and a length
        // prefix (up to 3).
        let per = (self.message_budget() - HEADER_LEN - 7) / BUS_ID_LEN;
        let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
        let mut chunks: Vec<&[u8]> = bytes.chunks(per * BUS_ID_LEN).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            if budgeted {
                if self.round_budget_left() == 0 {
                    self.stats.drop("bus_round_budget");
                    return;
                }
                self.bus.round_bytes += chunk.len();
            }
            let msg = wrap(wire::Bytes(chunk));
            let mut b = self.new_builder();
            self.push_counted(&mut b, &msg);
            self.emit_bus(to, b);
        }
    }

    /// Bytes of answers still allowed in the current round (a round is a
    /// gossip interval, counted from the first answer in it).
    fn round_budget_left(&mut self) -> usize {
        let now = self.kv.now;
        if now >= self.bus.round_start + self.config.gossip_interval {
            self.bus.round_start = now;
            self.bus.round_bytes = 0;
        }
        self.config
            .bus_round_budget
            .saturating_sub(self.bus.round_bytes)
    }

    /// Sends the items `keys` (those still held) to `to`, packed: pushed
    /// with `marker` (each datagram headed by a push marker with that
    /// fanout), or, without one, as answers to a pull (within the round
    /// budget).
    pub(super) fn send_items(&mut self, to: SocketAddr, keys: &[u64], marker: Option<u8>) {
        let lead = marker.map(|fanout| {
            wire::encode_message(&Message::BusPush(wire::BusPush {
                fanout: u32::from(fanout),
            }))
        });
        let budget = if marker.is_some() {
            usize::MAX
        } else {
            self.round_budget_left()
        };
        let packed = self.pack_items(keys, lead.as_deref(), budget);
        for _ in 0..packed.too_large {
            self.stats.drop("entry_exceeds_datagram");
        }
        for _ in 0..packed.gone {
            // Died (or was never held): the puller finds it dead too, or
            // gets it from another holder.
            self.stats.drop("bus_want_unknown");
        }
        if packed.over_budget {
            self.stats.drop("bus_round_budget");
        }
        for (kind, bytes) in packed.sent {
            self.count_out(kind, bytes);
            if marker.is_none() && kind != MessageKind::BusPush {
                self.bus.round_bytes += bytes;
                self.stats.bus_served += 1;
            }
        }
        for b in packed.datagrams {
            self.emit_bus(to, b);
        }
    }

    fn pack_items(&self, keys: &[u64], lead: Option<&[u8]>, budget: usize) -> Packed {
        let mut out = Packed {
            datagrams: Vec::new(),
            sent: Vec::new(),
            too_large: 0,
            gone: 0,
            over_budget: false,
        };
        let mut spent = 0;
        let mut b = self.new_builder();
        for item in keys.iter().filter_map(|k| {
            let item = self.bus.table.get(*k).filter(|i| !i.encoded.is_empty());
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
                        .push(std::mem::replace(&mut b, self.new_builder()));
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
    pub(super) fn emit_bus(&mut self, to: SocketAddr, b: DatagramBuilder) {
        if !b.is_empty() {
            self.stats.bus_packets_out += 1;
        }
        self.emit_datagram(to, b);
    }

    // ------------------------------------------------------------------
    // Gossip rounds, timers, anti-entropy.

    /// The bus part of a gossip tick: announce the ids of fresh items to
    /// `gossip_nodes` members.
    pub(super) fn bus_gossip_tick(&mut self, now: Time) {
        let timeout = self.config.gossip_interval;
        self.bus.wanted.retain(|_, t| now < *t + timeout);
        if self.left || !self.bus.table.has_fresh() {
            return;
        }
        let per = (self.message_budget() - HEADER_LEN - 7) / BUS_ID_LEN;
        let ids = self.bus.table.take_fresh(per);
        if ids.is_empty() {
            return;
        }
        let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
        let have = Message::BusHave(wire::BusHave {
            reply_mask: 0,
            ids: wire::Bytes(&bytes),
        });
        let peers = self.sample_members(self.config.gossip_nodes, |_, r| r.is_live());
        for id in peers {
            let to = self.members.rec(id).addr;
            let mut b = self.new_builder();
            self.push_counted(&mut b, &have);
            self.emit_bus(to, b);
        }
    }

    /// Runs the bus timers due at `now`: items die, coalescing windows
    /// close, queries time out, elections expire.
    pub(super) fn run_bus_timers(&mut self, now: Time) {
        for (key, item) in self.bus.table.expire(millis(now)) {
            if item.kind == MessageKind::Query {
                self.forget_answering(key);
            }
        }
        while let Some(Reverse((t, _))) = self.bus.coalesce_timers.peek() {
            if *t > now {
                break;
            }
            let Reverse((_, name)) = self.bus.coalesce_timers.pop().expect("peeked");
            let Some(c) = self.bus.coalescing.remove(&name) else {
                continue;
            };
            if now >= c.expires {
                self.stats.drop("bus_expired");
                continue;
            }
            let (lamport, origin, seq) = c.order;
            let remembered = self.bus.coalesced_last.len() < self.config.max_active_events;
            let until = c.expires.max(now + self.config.event_coalesce_window);
            if remembered || self.bus.coalesced_last.contains_key(&name) {
                self.bus
                    .coalesced_last
                    .insert(name.clone(), (lamport, until));
            }
            self.events.push_back(Event::UserEvent {
                origin: origin.into(),
                seq,
                lamport,
                name: name.into(),
                payload: c.payload,
            });
        }
        self.bus.coalesced_last.retain(|_, (_, until)| now < *until);
        self.run_query_timers(now);
        self.run_election_timers(now);
    }

    /// The bus hash's contribution to the state hash (zero with no settled
    /// item). Items settle and leave on probe-interval boundaries.
    pub(super) fn bus_hash(&self) -> [u8; 4] {
        self.bus
            .table
            .hash32(millis(self.kv.now), self.bus_quantum_ms())
    }

    fn bus_quantum_ms(&self) -> u64 {
        u64::try_from(self.config.probe_interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// The bus part of a sync request: this node's bus-hash buckets (none
    /// if all are zero). `None` while it holds no item at all: a peer
    /// holding some then sees the states differ too, and its own sync
    /// request gets this node's (empty) listing and its pulls.
    pub(super) fn bus_sync_buckets(&self) -> Option<Vec<u8>> {
        if self.bus.table.len() == 0 {
            return None;
        }
        let b = self
            .bus
            .table
            .buckets(millis(self.kv.now), self.bus_quantum_ms());
        if b.iter().all(|h| *h == 0) {
            return Some(Vec::new());
        }
        Some(b.iter().flat_map(|h| h.to_le_bytes()).collect())
    }

    /// The buckets where `theirs` (validated: none, or all of them)
    /// differs from ours.
    fn differing_buckets(&self, theirs: &[u8]) -> u64 {
        let ours = self
            .bus
            .table
            .buckets(millis(self.kv.now), self.bus_quantum_ms());
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

#[cfg(test)]
#[path = "bus_tests.rs"]
mod tests;
