//! Event fan-out: every event the endpoint produces goes to every
//! subscription whose filter matches, over bounded channels, so that a slow
//! subscriber never blocks the node; what it cannot take is dropped and
//! counted against it.

use std::sync::{Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::stats::SubscriberStats;
use crate::{Event, KeyPattern};

/// The kinds of [`Event`], for filtering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// [`Event::MemberJoined`].
    MemberJoined,
    /// [`Event::MemberRecovered`].
    MemberRecovered,
    /// [`Event::MemberSuspect`].
    MemberSuspect,
    /// [`Event::MemberFailed`].
    MemberFailed,
    /// [`Event::MemberLeft`].
    MemberLeft,
    /// [`Event::MemberUpdated`].
    MemberUpdated,
    /// [`Event::KeyUpdated`].
    KeyUpdated,
    /// [`Event::KeyDeleted`].
    KeyDeleted,
    /// [`Event::KeyExpired`].
    KeyExpired,
    /// Event-bus events: [`Event::UserEvent`], queries, elections.
    Bus,
}

impl EventKind {
    /// The kind of `event`.
    pub fn of(event: &Event) -> EventKind {
        match event {
            Event::MemberJoined(_) => EventKind::MemberJoined,
            Event::MemberRecovered(_) => EventKind::MemberRecovered,
            Event::MemberSuspect(_) => EventKind::MemberSuspect,
            Event::MemberFailed(_) => EventKind::MemberFailed,
            Event::MemberLeft(_) => EventKind::MemberLeft,
            Event::MemberUpdated(_) => EventKind::MemberUpdated,
            Event::KeyUpdated { .. } => EventKind::KeyUpdated,
            Event::KeyDeleted { .. } => EventKind::KeyDeleted,
            Event::KeyExpired { .. } => EventKind::KeyExpired,
            _ => EventKind::Bus,
        }
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// Which events a subscription receives: those of the selected kinds and,
/// when the filter has key patterns, only key events whose key matches one
/// of them. [`EventFilter::all`] (the default) selects everything.
///
/// ```
/// use vinery::runtime::{EventFilter, EventKind};
/// use vinery::KeyPattern;
///
/// // Updates, deletes and expiries of `service.*` keys.
/// let services = EventFilter::keys(KeyPattern::glob("service.*"));
/// // Only updates, of `service.*` or `config/` keys.
/// let updates = services
///     .or_key(KeyPattern::prefix("config/"))
///     .with_kinds([EventKind::KeyUpdated]);
/// # let _ = updates;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFilter {
    kinds: u32,
    /// Empty: any event of the selected kinds. Otherwise the event must be
    /// about a key matching one of these.
    keys: Vec<KeyPattern>,
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

fn kind_set(kinds: impl IntoIterator<Item = EventKind>) -> u32 {
    kinds.into_iter().fold(0, |set, k| set | k.bit())
}

impl EventFilter {
    /// Every event.
    pub fn all() -> EventFilter {
        EventFilter {
            kinds: u32::MAX,
            keys: Vec::new(),
        }
    }

    /// Only events of the given kinds.
    pub fn kinds(kinds: impl IntoIterator<Item = EventKind>) -> EventFilter {
        EventFilter {
            kinds: kind_set(kinds),
            keys: Vec::new(),
        }
    }

    /// Only key events (updated, deleted, expired) whose key matches
    /// `pattern`, of any owner.
    pub fn keys(pattern: KeyPattern) -> EventFilter {
        EventFilter::kinds(KEY_KINDS).or_key(pattern)
    }

    /// This filter, narrowed to the given kinds as well.
    pub fn with_kinds(mut self, kinds: impl IntoIterator<Item = EventKind>) -> EventFilter {
        self.kinds &= kind_set(kinds);
        self
    }

    /// This filter, also passing key events whose key matches `pattern`
    /// (patterns are alternatives; any pattern at all excludes events that
    /// are not about keys).
    pub fn or_key(mut self, pattern: KeyPattern) -> EventFilter {
        self.keys.push(pattern);
        self
    }

    /// Whether `event` passes this filter.
    pub fn matches(&self, event: &Event) -> bool {
        self.kinds & EventKind::of(event).bit() != 0
            && (self.keys.is_empty()
                || event
                    .key()
                    .is_some_and(|k| self.keys.iter().any(|p| p.matches(k))))
    }
}

struct Subscriber {
    id: u64,
    filter: EventFilter,
    tx: Sender<Event>,
    delivered: u64,
    dropped: u64,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    list: Vec<Subscriber>,
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
        let (tx, rx) = crossbeam_channel::bounded(self.capacity);
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.list.push(Subscriber {
            id,
            filter,
            tx,
            delivered: 0,
            dropped: 0,
        });
        rx
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
            inner.list.retain_mut(|s| {
                if !s.filter.matches(&event) {
                    return true;
                }
                match s.tx.try_send(event.clone()) {
                    Ok(()) => s.delivered += 1,
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
