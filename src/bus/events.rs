//! User events: said by one node, raised once on every other node while
//! they live. A coalesced event is held until the end of its name's
//! window, and of the events of one name arriving within it only the
//! latest (by Lamport time) is raised, as serf's coalesced user events.

use std::cmp::Reverse;
use std::time::Duration;

use compact_str::CompactString;

use super::state::{BusState, Coalescing};
use super::types::{BusError, EventId};
use crate::context::Ctx;
use crate::event::Event;
use crate::wire::{self, Message};
use crate::Time;

impl BusState {
    /// Says `name` with `payload` to every other live node for `duration`
    /// (see [`Endpoint::say`](crate::Endpoint::say)); receivers coalesce
    /// events of the name if `coalesce`.
    pub(crate) fn say(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        name: &str,
        payload: &[u8],
        duration: Duration,
        coalesce: bool,
    ) -> Result<EventId, BusError> {
        self.check_bus_call(cx, name, payload, duration)?;
        let head = self.new_head(now, duration);
        let msg = Message::UserEvent(wire::UserEvent {
            head,
            name,
            coalesce,
            payload: wire::Bytes(payload),
        });
        let key = self.originate(cx, &msg)?;
        self.push_new(cx, key, None);
        Ok(EventId {
            origin: cx.config.name.clone(),
            seq: head.seq,
        })
    }

    /// A user event new to this node: raised at once, or held until the
    /// end of its name's coalescing window.
    pub(super) fn deliver_user_event(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Time,
        e: &wire::UserEvent<'_>,
    ) {
        if e.head.origin == cx.config.name {
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
            cx.event(at_once);
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
            .coalesced_last
            .get(&name)
            .is_some_and(|(lamport, until)| now < *until && *lamport >= e.head.lamport);
        if superseded {
            cx.out.stats.events_coalesced += 1;
            return;
        }
        if !self.coalescing.contains_key(&name)
            && self.coalescing.len() >= cx.config.max_active_events
        {
            // Windows are bounded like items: past the bound an event is
            // delivered at once rather than held (never lost).
            cx.event(at_once);
            return;
        }
        if let Some(c) = self.coalescing.get_mut(&name) {
            cx.out.stats.events_coalesced += 1;
            if order > c.order {
                c.order = order;
                c.payload = e.payload.0.to_vec();
                c.expires = expires;
            }
            return;
        }
        self.coalesce_timers.push(Reverse((
            now + cx.config.event_coalesce_window,
            name.clone(),
        )));
        self.coalescing.insert(
            name,
            Coalescing {
                order,
                payload: e.payload.0.to_vec(),
                expires,
            },
        );
    }

    /// Raises the latest event of every name whose window closed by `now`.
    pub(super) fn close_windows(&mut self, cx: &mut Ctx<'_>, now: Time) {
        while let Some(Reverse((t, _))) = self.coalesce_timers.peek() {
            if *t > now {
                break;
            }
            let Reverse((_, name)) = self.coalesce_timers.pop().expect("peeked");
            let Some(c) = self.coalescing.remove(&name) else {
                continue;
            };
            if now >= c.expires {
                cx.drop("bus_expired");
                continue;
            }
            let (lamport, origin, seq) = c.order;
            let remembered = self.coalesced_last.len() < cx.config.max_active_events;
            let until = c.expires.max(now + cx.config.event_coalesce_window);
            if remembered || self.coalesced_last.contains_key(&name) {
                self.coalesced_last.insert(name.clone(), (lamport, until));
            }
            cx.event(Event::UserEvent {
                origin: origin.into(),
                seq,
                lamport,
                name: name.into(),
                payload: c.payload,
            });
        }
        self.coalesced_last.retain(|_, (_, until)| now < *until);
    }
}
