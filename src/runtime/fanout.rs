//! Event fan-out: every event the endpoint produces goes to every
//! subscription whose filter matches, over bounded channels, so that a slow
//! subscriber never blocks the node; what it cannot take is dropped and
//! counted against it. The answers to one of this node's queries also go
//! to that query's [`QueryHandle`](super::QueryHandle) alone, by id.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::query::QueryEvent;
use super::stats::SubscriberStats;
use super::subscribe::EventFilter;
use crate::{Event, QueryId};

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
    use super::super::subscribe::tests::{member, user_event};
    use super::*;
    use crate::EventKind;
    use crate::KeyPattern;

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
