//! What a subscription selects: the kinds of events ([`EventKind`]) and
//! [`EventFilter`]s over kinds, keys and event names. Plain values at the
//! bottom of the runtime's layers; the fan-out that applies them is
//! `fanout`.

use crate::{Event, EventKind, KeyPattern};

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
/// use vinery::{EventKind, KeyPattern};
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::{Member, MemberState, QueryId};

    pub(in super::super) fn member() -> Member {
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

    pub(in super::super) fn user_event(name: &str) -> Event {
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
}
