//! Event fan-out: every event the endpoint produces goes to every
//! subscription whose filter matches, over bounded channels, so that a slow
//! subscriber never blocks the node; what it cannot take is dropped and
//! counted against it. The answers to one of this node's queries also go
//! to that query's [`QueryHandle`](super::QueryHandle) alone, by id.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::bus::QueryEvent;
use super::stats::SubscriberStats;
use crate::{Event, EventKind, KeyPattern, QueryId};

/// Which events a subscription receives: those of the selected kinds and,
/// when the filter has patterns, only events about something a pattern
/// matches: key events whose key matches one of its key patterns, and user
/// events whose name matches one of its event-name patterns (patterns are
/// alternatives; with any pattern at all, events about neither a key nor
/// an event name are excluded). [`EventFilter::all`] (the default) selects
/// everything.
///
/// ```
/// use vinery::runtime::EventFilter;
/// use vinery::EventKind;
/// use vinery::KeyPattern;
///
/// // Updates, deletes and expiries of `service.*` keys.
/// let services = EventFilter::keys(KeyPattern::glob("service.*"));
/// // Only updates, of `service.*` or `config/` keys.
/// let updates = services
///     .or_key(KeyPattern::prefix("config/"))
///     .with_kinds([EventKind::KeyUpdated]);
/// // User events named `deploy.*` (what `Node::hear("deploy.*")` uses).
/// let deploys = EventFilter::user_events(KeyPattern::glob("deploy.*"));
/// # let _ = (updates, deploys);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFilter {
    kinds: u32,
    /// Key events must be about a key matching one of these (see `matches`).
    keys: Vec<KeyPattern>,
    /// User events must have a name matching one of these.
    names: Vec<KeyPattern>,
}

impl Default for EventFilter {
    fn default() -> EventFilter {
        EventFilter::all()
    }
}

/// The kinds of events about keys.
const KEY_KINDS: [EventKind; 3] = [
    EventKind::KeyUpdated,
    EventKind::KeyDeleted,
    EventKind::KeyExpired,
];

impl EventFilter {
    /// Every event.
    pub fn all() -> EventFilter {
        EventFilter {
            kinds: u32::MAX,
            keys: Vec::new(),
            names: Vec::new(),
        }
    }

    /// Only events of the given kinds.
    pub fn kinds(kinds: impl IntoIterator<Item = EventKind>) -> EventFilter {
        EventFilter {
            kinds: EventKind::set(kinds),
            keys: Vec::new(),
            names: Vec::new(),
        }
    }

    /// Only key events (updated, deleted, expired) whose key matches
    /// `pattern`, of any owner.
    pub fn keys(pattern: KeyPattern) -> EventFilter {
        EventFilter::kinds(KEY_KINDS).or_key(pattern)
    }

    /// Only user events ([`Event::UserEvent`]) whose name matches
    /// `pattern`.
    pub fn user_events(pattern: KeyPattern) -> EventFilter {
        EventFilter::kinds([EventKind::UserEvent]).or_event_name(pattern)
    }

    /// This filter, narrowed to the given kinds as well.
    pub fn with_kinds(mut self, kinds: impl IntoIterator<Item = EventKind>) -> EventFilter {
        self.kinds &= EventKind::set(kinds);
        self
    }

    /// This filter, also passing key events whose key matches `pattern`
    /// (patterns are alternatives; any pattern at all excludes events that
    /// are not about keys).
    pub fn or_key(mut self, pattern: KeyPattern) -> EventFilter {
        self.keys.push(pattern);
        self
    }

    /// This filter, also passing user events whose name matches `pattern`
    /// (patterns are alternatives; any pattern at all excludes events that
    /// are about neither a key nor an event name).
    pub fn or_event_name(mut self, pattern: KeyPattern) -> EventFilter {
        self.names.push(pattern);
        self
    }

    /// Whether `event` passes this filter.
    pub fn matches(&self, event: &Event) -> bool {
        if self.kinds & event.kind().bit() == 0 {
            return false;
        }
        if self.keys.is_empty() && self.names.is_empty() {
            return true;
        }
        let any_match = |patterns: &[KeyPattern], subject: Option<&str>| {
            subject.is_some_and(|s| patterns.iter().any(|p| p.matches(s)))
        };
        any_match(&self.keys, event.key()) || any_match(&self.names, event.user_event_name())
    }
}

struct Subscriber {
    id: u64,
    filter: EventFilter,
    tx: Sender<Event>,
    /// Ends (its sender dropped) after delivering one event.
    once: bool,
    delivered: u64,
    dropped: u64,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    list: Vec<Subscriber>,
    /// This node's running queries whose caller holds a handle: where their
    /// acks, responses and end go. Unbounded, since the endpoint takes at
    /// most one ack and one response per node (payloads within
    /// `max_event_payload`) and the end must never be lost: a handle
    /// waiting for it would wait forever.
    queries: HashMap<QueryId, Sender<QueryEvent>>,
}

/// A node's subscriptions. Owned by the [`Node`](super::Node) handle and
/// shared with whichever thread runs it, so they survive stop and start.
pub(crate) struct Subscribers {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl Subscribers {
    /// No subscriptions yet; each new one buffers up to `capacity` events.
    pub(crate) fn new(capacity: usize) -> Subscribers {
        Subscribers {
            capacity,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Only counters and senders are behind the lock: a panic while
        // holding it leaves nothing half-updated worth refusing.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new subscription to the events `filter` selects.
    pub(crate) fn add(&self, filter: EventFilter) -> Receiver<Event> {
        self.insert(filter, false)
    }

    /// A new subscription to the first event `filter` selects: it ends
    /// once it has delivered one.
    pub(crate) fn add_once(&self, filter: EventFilter) -> Receiver<Event> {
        self.insert(filter, true)
    }

    fn insert(&self, filter: EventFilter, once: bool) -> Receiver<Event> {
        // One slot is all a one-shot subscription ever uses.
        let (tx, rx) = crossbeam_channel::bounded(if once { 1 } else { self.capacity });
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.list.push(Subscriber {
            id,
            filter,
            tx,
            once,
            delivered: 0,
            dropped: 0,
        });
        rx
    }

    /// Sends the acks, responses and end of this node's query `id` to `tx`
    /// (until the end, or until the receiver is dropped). Called on the
    /// node's loop right after the query was made, so nothing of it can
    /// have been delivered yet.
    pub(crate) fn route_query(&self, id: QueryId, tx: Sender<QueryEvent>) {
        self.lock().queries.insert(id, tx);
    }

    /// The endpoint is gone (the node stopped or left): its running queries
    /// will never end, so their handles are disconnected.
    pub(crate) fn end_queries(&self) {
        self.lock().queries.clear();
    }

    /// Hands every event in `events` (emptied) to the matching subscribers.
    /// A full channel drops the event for that subscriber (logged once per
    /// subscriber, counted always); a closed one ends the subscription.
    pub(crate) fn deliver(&self, events: &mut Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for event in events.drain(..) {
            if let Some((id, answer)) = QueryEvent::of(&event) {
                if let Some(tx) = inner.queries.get(id) {
                    let done = matches!(answer, QueryEvent::Done { .. });
                    // An error means the handle was dropped: nobody waits.
                    if tx.send(answer).is_err() || done {
                        inner.queries.remove(id);
                    }
                }
            }
            inner.list.retain_mut(|s| {
                if !s.filter.matches(&event) {
                    return true;
                }
                match s.tx.try_send(event.clone()) {
                    Ok(()) => {
                        s.delivered += 1;
                        return !s.once;
                    }
                    Err(TrySendError::Full(_)) => {
                        if s.dropped == 0 {
                            log::warn!(
                                "event subscriber {} is not keeping up: dropping events \
                                 (counted in its stats)",
                                s.id
                            );
                        }
                        s.dropped += 1;
                    }
                    Err(TrySendError::Disconnected(_)) => return false,
                }
                true
            });
        }
    }

    /// Counters of every live subscription.
    pub(crate) fn stats(&self) -> Vec<SubscriberStats> {
        self.lock()
            .list
            .iter()
            .map(|s| SubscriberStats {
                id: s.id,
                filter: s.filter.clone(),
                delivered: s.delivered,
                dropped: s.dropped,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Member, MemberState};

    fn member() -> Member {
        Member {
            name: "a".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            incarnation: 0,
            state: MemberState::Alive,
            meta: Vec::new(),
        }
    }

    #[test]
    fn filters_select_kinds() {
        let joined = Event::MemberJoined(member());
        let failed = Event::MemberFailed(member());
        let f = EventFilter::kinds([EventKind::MemberFailed, EventKind::MemberLeft]);
        assert!(f.matches(&failed) && !f.matches(&joined));
        assert!(EventFilter::all().matches(&joined));
        assert!(!EventFilter::kinds([]).matches(&joined));
    }

    fn key_event(kind: EventKind, key: &str) -> Event {
        let (node, key) = ("b".to_string(), key.to_string());
        match kind {
            EventKind::KeyUpdated => Event::KeyUpdated {
                node,
                key,
                value: b"v".to_vec(),
                version: 1,
            },
            EventKind::KeyDeleted => Event::KeyDeleted {
                node,
                key,
                version: 2,
            },
            _ => Event::KeyExpired {
                node,
                key,
                version: 1,
            },
        }
    }

    #[test]
    fn key_patterns_select_key_events_by_key() {
        let services = EventFilter::keys(KeyPattern::glob("service.*"));
        for kind in KEY_KINDS {
            assert!(services.matches(&key_event(kind, "service.http")));
            assert!(!services.matches(&key_event(kind, "services.http")));
        }
        assert!(!services.matches(&Event::MemberJoined(member())));
        let updates = services
            .clone()
            .or_key(KeyPattern::prefix("config/"))
            .with_kinds([EventKind::KeyUpdated, EventKind::MemberJoined]);
        assert!(updates.matches(&key_event(EventKind::KeyUpdated, "config/a")));
        assert!(updates.matches(&key_event(EventKind::KeyUpdated, "service.db")));
        assert!(!updates.matches(&key_event(EventKind::KeyDeleted, "config/a")));
        assert!(!updates.matches(&key_event(EventKind::KeyUpdated, "other")));
        assert!(
            !updates.matches(&Event::MemberJoined(member())),
            "a key pattern excludes events without a key"
        );
        let any_key = EventFilter::kinds([EventKind::KeyExpired]).or_key(KeyPattern::Any);
        assert!(any_key.matches(&key_event(EventKind::KeyExpired, "x")));
        assert!(!any_key.matches(&key_event(EventKind::KeyUpdated, "x")));
    }

    fn user_event(name: &str) -> Event {
        Event::UserEvent {
            origin: "b".into(),
            seq: 1,
            lamport: 1,
            name: name.into(),
            payload: Vec::new(),
        }
    }

    #[test]
    fn every_bus_event_has_its_own_kind() {
        let id = QueryId {
            origin: "a".into(),
            seq: 1,
        };
        let (topic, creator) = (String::from("t"), String::from("a"));
        let events = [
            user_event("x"),
            Event::Query {
                id: id.clone(),
                from: "a".into(),
                name: "q".into(),
                payload: Vec::new(),
                lamport: 1,
            },
            Event::QueryAck {
                id: id.clone(),
                from: "b".into(),
            },
            Event::QueryResponse {
                id: id.clone(),
                from: "b".into(),
                payload: Vec::new(),
            },
            Event::QueryDone {
                id,
                acks: 1,
                responses: 1,
            },
            Event::ElectionStarted {
                topic: topic.clone(),
                creator: creator.clone(),
                min: 1,
                total: 1,
            },
            Event::Quorum {
                topic: topic.clone(),
                creator: creator.clone(),
                voters: Vec::new(),
            },
            Event::ElectionExpired {
                topic,
                creator,
                yes: 0,
            },
        ];
        let kinds: Vec<EventKind> = events.iter().map(Event::kind).collect();
        assert_eq!(kinds, EventKind::BUS);
        for (event, kind) in events.iter().zip(EventKind::BUS) {
            assert!(EventFilter::kinds([kind]).matches(event), "{kind:?}");
            let others = EventKind::BUS.into_iter().filter(|&k| k != kind);
            assert!(!EventFilter::kinds(others).matches(event), "{kind:?}");
        }
    }

    #[test]
    fn event_name_patterns_select_user_events_by_name() {
        let deploys = EventFilter::user_events(KeyPattern::glob("deploy.*"));
        assert!(deploys.matches(&user_event("deploy.web")));
        assert!(!deploys.matches(&user_event("deployment")));
        assert!(!deploys.matches(&key_event(EventKind::KeyUpdated, "deploy.web")));
        assert!(!deploys.matches(&Event::MemberJoined(member())));
        // Patterns are alternatives, each applying to its own sort of event.
        let both = EventFilter::kinds([EventKind::KeyUpdated, EventKind::UserEvent])
            .or_key(KeyPattern::glob("svc.*"))
            .or_event_name(KeyPattern::glob("deploy.*"));
        assert!(both.matches(&user_event("deploy.db")));
        assert!(both.matches(&key_event(EventKind::KeyUpdated, "svc.a")));
        assert!(
            !both.matches(&user_event("svc.a")),
            "key patterns are not names"
        );
        assert!(!both.matches(&key_event(EventKind::KeyUpdated, "deploy.db")));
        assert!(EventFilter::user_events(KeyPattern::Any).matches(&user_event("")));
    }

    #[test]
    fn a_one_shot_subscription_ends_after_its_first_event() {
        let subs = Subscribers::new(8);
        let once = subs.add_once(EventFilter::user_events(KeyPattern::glob("d*")));
        let mut events = vec![user_event("x"), user_event("d1"), user_event("d2")];
        subs.deliver(&mut events);
        assert_eq!(
            once.try_recv()
                .map(|e| e.user_event_name().map(String::from)),
            Ok(Some("d1".into()))
        );
        assert_eq!(
            once.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        );
        assert!(subs.stats().is_empty(), "it removed itself");
    }

    #[test]
    fn query_answers_reach_their_handle_only_until_done() {
        let subs = Subscribers::new(8);
        let id = |seq| QueryId {
            origin: "a".into(),
            seq,
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        subs.route_query(id(1), tx);
        let (other_tx, other_rx) = crossbeam_channel::unbounded();
        subs.route_query(id(2), other_tx);
        let everything = subs.add(EventFilter::all());
        let mut events = vec![
            Event::QueryAck {
                id: id(1),
                from: "b".into(),
            },
            Event::QueryDone {
                id: id(1),
                acks: 1,
                responses: 0,
            },
            Event::QueryAck {
                id: id(1),
                from: "late".into(),
            },
        ];
        subs.deliver(&mut events);
        let got: Vec<QueryEvent> = rx.try_iter().collect();
        assert_eq!(
            got,
            [
                QueryEvent::Ack { from: "b".into() },
                QueryEvent::Done {
                    acks: 1,
                    responses: 0
                }
            ]
        );
        assert!(
            rx.is_empty() && rx.try_recv().is_err(),
            "disconnected after done"
        );
        assert!(other_rx.is_empty(), "another query's handle got nothing");
        assert_eq!(everything.len(), 3, "subscribers still see every answer");
        subs.end_queries();
        assert_eq!(
            other_rx.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        );
    }

    #[test]
    fn slow_subscribers_lose_events_counted_and_closed_ones_are_removed() {
        let subs = Subscribers::new(2);
        let slow = subs.add(EventFilter::all());
        let failures = subs.add(EventFilter::kinds([EventKind::MemberFailed]));
        let gone = subs.add(EventFilter::all());
        drop(gone);
        let mut events = vec![Event::MemberJoined(member()); 3];
        events.push(Event::MemberFailed(member()));
        subs.deliver(&mut events);
        assert!(events.is_empty());
        let stats = subs.stats();
        assert_eq!(stats.len(), 2, "the closed subscription is gone");
        assert_eq!((stats[0].delivered, stats[0].dropped), (2, 2));
        assert_eq!((stats[1].delivered, stats[1].dropped), (1, 0));
        assert_eq!(slow.len(), 2);
        assert_eq!(failures.try_recv(), Ok(Event::MemberFailed(member())));
    }
}
