//! What an [`Endpoint`](crate::Endpoint) tells its user.

use std::net::SocketAddr;

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
            Event::KeyUpdated { .. } | Event::KeyDeleted { .. } | Event::KeyExpired { .. } => None,
        }
    }

    /// The node the event is about: the member, or the key's owner.
    pub fn node(&self) -> &str {
        match self {
            Event::KeyUpdated { node, .. }
            | Event::KeyDeleted { node, .. }
            | Event::KeyExpired { node, .. } => node,
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

    /// A short snake_case name of the kind of event.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::MemberJoined(_) => "member_joined",
            Event::MemberRecovered(_) => "member_recovered",
            Event::MemberSuspect(_) => "member_suspect",
            Event::MemberFailed(_) => "member_failed",
            Event::MemberLeft(_) => "member_left",
            Event::MemberUpdated(_) => "member_updated",
            Event::KeyUpdated { .. } => "key_updated",
            Event::KeyDeleted { .. } => "key_deleted",
            Event::KeyExpired { .. } => "key_expired",
        }
    }
}
