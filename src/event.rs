//! What an [`Endpoint`](crate::Endpoint) tells its user: [`Event`]s about
//! members, keys and the event bus, and their [`EventKind`]s.
//!
//! [`EventKind`] is the one vocabulary of event kinds: the runtime's
//! subscription filters, the simulator's event log and the command line's
//! output all name kinds with it.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::bus::QueryId;

/// Liveness of a member as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberState {
    /// Answering probes, or refuted the last suspicion.
    Alive,
    /// A probe failed; it has until the suspicion timeout to refute.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left on purpose.
    Left,
}

impl MemberState {
    /// Lowercase name, for output.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }
}

/// A snapshot of one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its unique name.
    pub name: String,
    /// The address it advertises.
    pub addr: SocketAddr,
    /// Its incarnation (raised only by the member itself, to refute).
    pub incarnation: u32,
    /// Its state as this node sees it.
    pub state: MemberState,
    /// Its metadata (tags).
    pub meta: Vec<u8>,
}

/// A change in membership or in replicated state, in the order this node
/// learned of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A member was seen for the first time (or came back after leaving).
    MemberJoined(Member),
    /// A suspect or failed member is alive again (it refuted, or restarted).
    MemberRecovered(Member),
    /// A member is suspected of having failed.
    MemberSuspect(Member),
    /// A member was declared failed.
    MemberFailed(Member),
    /// A member left gracefully.
    MemberLeft(Member),
    /// A live member changed its address or metadata.
    MemberUpdated(Member),
    /// Another node's key took a new value (not raised for this node's own
    /// writes: the caller made them).
    KeyUpdated {
        /// The owner.
        node: String,
        /// The key.
        key: String,
        /// The new value.
        value: Vec<u8>,
        /// The owner's version of this write.
        version: u64,
    },
    /// Another node deleted a key this node could see (or its state was
    /// replaced because it restarted).
    KeyDeleted {
        /// The owner.
        node: String,
        /// The key.
        key: String,
        /// The version of the delete (or of the replaced write).
        version: u64,
    },
    /// A key's TTL ran out by this node's clock; raised on every replica
    /// and on the owner, whether or not the owner is still alive.
    KeyExpired {
        /// The owner.
        node: String,
        /// The key.
        key: String,
        /// The version of the write that expired.
        version: u64,
    },
    /// Another node's user event ([`Endpoint::say`](crate::Endpoint::say)),
    /// delivered once per event while it lives.
    UserEvent {
        /// The node that said it.
        origin: String,
        /// Its sequence number there (with `origin`, its
        /// [`EventId`](crate::EventId)).
        seq: u64,
        /// Its Lamport time: an event said after its origin heard another
        /// has a higher one.
        lamport: u64,
        /// Its name.
        name: String,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// Another node's query, whose filter this node matches. Answer with
    /// [`Endpoint::respond`](crate::Endpoint::respond) (the runtime calls
    /// it from the handler registered for the query's name); the ack was
    /// sent already.
    Query {
        /// The query's id (its asker and sequence number).
        id: QueryId,
        /// The asker.
        from: String,
        /// The query's name.
        name: String,
        /// The query's payload.
        payload: Vec<u8>,
        /// The asker's Lamport time when it asked.
        lamport: u64,
    },
    /// A node received this node's query (it matched the filter).
    QueryAck {
        /// The query.
        id: QueryId,
        /// The node that received it.
        from: String,
    },
    /// A node responded to this node's query (once per node).
    QueryResponse {
        /// The query.
        id: QueryId,
        /// The responder.
        from: String,
        /// Its response.
        payload: Vec<u8>,
    },
    /// This node's query timed out; no more acks or responses are taken.
    QueryDone {
        /// The query.
        id: QueryId,
        /// How many nodes acknowledged it.
        acks: usize,
        /// How many nodes responded.
        responses: usize,
    },
    /// Another node created an election: raised once on every other node
    /// that learns of it, so the application can
    /// [`vote`](crate::Endpoint::vote).
    ElectionStarted {
        /// What is being decided.
        topic: String,
        /// Its creator.
        creator: String,
        /// Yes votes it needs.
        min: u32,
        /// The electorate's size as the creator declared it.
        total: u32,
    },
    /// An election this node created counted `min` yes votes before it
    /// expired. Raised on the creator only, once.
    Quorum {
        /// The election's topic.
        topic: String,
        /// The creator (this node).
        creator: String,
        /// The yes voters counted when the quorum was reached, sorted.
        voters: Vec<String>,
    },
    /// An election expired without this node counting `min` yes votes
    /// for it; raised on every node that knew the election.
    ElectionExpired {
        /// The election's topic.
        topic: String,
        /// Its creator.
        creator: String,
        /// Yes votes this node counted.
        yes: usize,
    },
    /// Another live node claims this node's name from another address
    /// (or someone forges it). Raised by this node about itself, at most
    /// once per conflicting address per settle period; see
    /// [`Config::allow_name_takeover`](crate::Config::allow_name_takeover)
    /// for which node keeps the name.
    MemberConflict {
        /// The name both claim.
        name: String,
        /// This node's address.
        ours: SocketAddr,
        /// The address the other claim comes from.
        theirs: SocketAddr,
    },
    /// Another node suspects this node, or declares it dead, at this
    /// node's current incarnation or above; raised by this node about
    /// itself when it refutes the claim (so once per refutation: stale
    /// claims raise nothing). The rest of the cluster only ever sees the
    /// refutation, but being suspected usually means this node's packets
    /// are late or lost (an overloaded host, a saturated link, a firewall
    /// dropping some traffic), which its operators want to know.
    SelfAccused {
        /// This node's name.
        name: String,
        /// The claim: [`MemberState::Suspect`] or [`MemberState::Dead`].
        state: MemberState,
        /// The incarnation the claim was made at (this node refutes it
        /// with a higher one).
        incarnation: u32,
        /// The accuser: the node that sent the claim (for a `Dead` from
        /// a peer's full state, the peer).
        by: String,
    },
}

impl Event {
    /// The member a membership event is about.
    pub fn member(&self) -> Option<&Member> {
        match self {
            Event::MemberJoined(m)
            | Event::MemberRecovered(m)
            | Event::MemberSuspect(m)
            | Event::MemberFailed(m)
            | Event::MemberLeft(m)
            | Event::MemberUpdated(m) => Some(m),
            _ => None,
        }
    }

    /// The node the event is about: the member, or the key's owner.
    pub fn node(&self) -> &str {
        match self {
            Event::KeyUpdated { node, .. }
            | Event::KeyDeleted { node, .. }
            | Event::KeyExpired { node, .. } => node,
            Event::UserEvent { origin, .. } => origin,
            Event::Query { from, .. }
            | Event::QueryAck { from, .. }
            | Event::QueryResponse { from, .. } => from,
            Event::QueryDone { id, .. } => &id.origin,
            Event::ElectionStarted { creator, .. }
            | Event::Quorum { creator, .. }
            | Event::ElectionExpired { creator, .. } => creator,
            Event::MemberConflict { name, .. } | Event::SelfAccused { name, .. } => name,
            other => other.member().map_or("", |m| m.name.as_str()),
        }
    }

    /// The key a key event is about.
    pub fn key(&self) -> Option<&str> {
        match self {
            Event::KeyUpdated { key, .. }
            | Event::KeyDeleted { key, .. }
            | Event::KeyExpired { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The kind of event, without its data.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::MemberJoined(_) => EventKind::MemberJoined,
            Event::MemberRecovered(_) => EventKind::MemberRecovered,
            Event::MemberSuspect(_) => EventKind::MemberSuspect,
            Event::MemberFailed(_) => EventKind::MemberFailed,
            Event::MemberLeft(_) => EventKind::MemberLeft,
            Event::MemberUpdated(_) => EventKind::MemberUpdated,
            Event::KeyUpdated { .. } => EventKind::KeyUpdated,
            Event::KeyDeleted { .. } => EventKind::KeyDeleted,
            Event::KeyExpired { .. } => EventKind::KeyExpired,
            Event::UserEvent { .. } => EventKind::UserEvent,
            Event::Query { .. } => EventKind::Query,
            Event::QueryAck { .. } => EventKind::QueryAck,
            Event::QueryResponse { .. } => EventKind::QueryResponse,
            Event::QueryDone { .. } => EventKind::QueryDone,
            Event::ElectionStarted { .. } => EventKind::ElectionStarted,
            Event::Quorum { .. } => EventKind::Quorum,
            Event::ElectionExpired { .. } => EventKind::ElectionExpired,
            Event::MemberConflict { .. } => EventKind::MemberConflict,
            Event::SelfAccused { .. } => EventKind::SelfAccused,
        }
    }

    /// The name of a user event: what `hear(pattern)`-style subscriptions
    /// match with [`KeyPattern::matches`](crate::KeyPattern::matches).
    pub fn user_event_name(&self) -> Option<&str> {
        match self {
            Event::UserEvent { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The name of a query received: what the runtime picks the registered
    /// handler by.
    pub fn query_name(&self) -> Option<&str> {
        match self {
            Event::Query { name, .. } => Some(name),
            _ => None,
        }
    }

    /// Whether this is a user event whose name `pattern` matches.
    pub fn is_user_event_matching(&self, pattern: &crate::KeyPattern) -> bool {
        self.user_event_name().is_some_and(|n| pattern.matches(n))
    }
}

/// The kind of an [`Event`], without its data: what subscriptions filter
/// on, what the simulator's event log records, and (by [`EventKind::name`])
/// what the command line prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// [`Event::UserEvent`].
    UserEvent,
    /// [`Event::Query`]: another node's query, for this node to answer.
    Query,
    /// [`Event::QueryAck`].
    QueryAck,
    /// [`Event::QueryResponse`].
    QueryResponse,
    /// [`Event::QueryDone`].
    QueryDone,
    /// [`Event::ElectionStarted`].
    ElectionStarted,
    /// [`Event::Quorum`].
    Quorum,
    /// [`Event::ElectionExpired`].
    ElectionExpired,
    /// [`Event::MemberConflict`].
    MemberConflict,
    /// [`Event::SelfAccused`].
    SelfAccused,
}

impl EventKind {
    /// Every kind, in the order of [`Event`]'s variants.
    pub const ALL: [EventKind; 19] = [
        EventKind::MemberJoined,
        EventKind::MemberRecovered,
        EventKind::MemberSuspect,
        EventKind::MemberFailed,
        EventKind::MemberLeft,
        EventKind::MemberUpdated,
        EventKind::KeyUpdated,
        EventKind::KeyDeleted,
        EventKind::KeyExpired,
        EventKind::UserEvent,
        EventKind::Query,
        EventKind::QueryAck,
        EventKind::QueryResponse,
        EventKind::QueryDone,
        EventKind::ElectionStarted,
        EventKind::Quorum,
        EventKind::ElectionExpired,
        EventKind::MemberConflict,
        EventKind::SelfAccused,
    ];

    /// The kinds of the event bus's events (user events, queries and
    /// elections), for a filter that wants all of them.
    pub const BUS: [EventKind; 8] = [
        EventKind::UserEvent,
        EventKind::Query,
        EventKind::QueryAck,
        EventKind::QueryResponse,
        EventKind::QueryDone,
        EventKind::ElectionStarted,
        EventKind::Quorum,
        EventKind::ElectionExpired,
    ];

    /// Its snake_case name (`member_failed`, `key_updated`, …), as the
    /// command line prints it and [`EventKind::from_str`] parses it.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::MemberJoined => "member_joined",
            EventKind::MemberRecovered => "member_recovered",
            EventKind::MemberSuspect => "member_suspect",
            EventKind::MemberFailed => "member_failed",
            EventKind::MemberLeft => "member_left",
            EventKind::MemberUpdated => "member_updated",
            EventKind::KeyUpdated => "key_updated",
            EventKind::KeyDeleted => "key_deleted",
            EventKind::KeyExpired => "key_expired",
            EventKind::UserEvent => "user_event",
            EventKind::Query => "query",
            EventKind::QueryAck => "query_ack",
            EventKind::QueryResponse => "query_response",
            EventKind::QueryDone => "query_done",
            EventKind::ElectionStarted => "election_started",
            EventKind::Quorum => "quorum",
            EventKind::ElectionExpired => "election_expired",
            EventKind::MemberConflict => "member_conflict",
            EventKind::SelfAccused => "self_accused",
        }
    }

    /// This kind as one bit of a set of kinds held in a `u32` (the
    /// runtime's filters and the simulator's log switch).
    pub(crate) fn bit(self) -> u32 {
        1 << self as u32
    }

    /// The set of `kinds`, as [`EventKind::bit`]s.
    pub(crate) fn set(kinds: impl IntoIterator<Item = EventKind>) -> u32 {
        kinds.into_iter().fold(0, |set, k| set | k.bit())
    }
}

impl fmt::Display for EventKind {
    /// The [`EventKind::name`], padded to the formatter's width if any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for EventKind {
    type Err = String;

    /// Parses an [`EventKind::name`]; the error lists the accepted names.
    fn from_str(s: &str) -> Result<EventKind, String> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown event kind {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_back_from_its_name() {
        for kind in EventKind::ALL {
            assert_eq!(kind.name().parse::<EventKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.name());
        }
        let err = "member_dead".parse::<EventKind>().unwrap_err();
        assert!(
            err.contains("member_dead") && err.contains("member_failed"),
            "{err}"
        );
        assert_eq!(format!("{:<14}|", EventKind::Quorum), "quorum        |");
    }

    #[test]
    fn all_lists_every_kind_once_in_variant_order() {
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i);
        }
        assert!(EventKind::BUS.iter().all(|k| EventKind::ALL.contains(k)));
    }
}
