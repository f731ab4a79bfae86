//! vinery: cluster membership and state gossip over raw UDP.
//!
//! The protocol lives in [`Endpoint`], a sans-IO state machine: it owns no
//! socket, thread, clock or global random generator. Bytes and time go in
//! through [`Endpoint::handle_packet`] and [`Endpoint::handle_timeout`];
//! datagrams, events and the next deadline come out of
//! [`Endpoint::poll_transmit`], [`Endpoint::poll_event`] and
//! [`Endpoint::poll_timeout`]. The same inputs always give the same outputs,
//! which is what lets [`sim`] run thousands of nodes deterministically.
//!
//! Membership is SWIM (ping, ping-req, suspect, dead) with Lifeguard's local
//! health, dynamic suspicion timeouts and buddy system; updates ride on
//! probe traffic and on a gossip tick; anti-entropy compares a hash carried
//! on every probe and exchanges state only where it differs. Replicated
//! key/value state ([`kv`]) and an event bus with queries and quorum
//! elections ([`bus`]) run on the same endpoint. The algorithm is described
//! in `docs/PROTOCOL.md`.
//!
//! [`runtime`] runs endpoints over real UDP: a [`runtime::Node`] per thread,
//! or many on one [`runtime::Host`] thread, with a blocking API and event
//! subscriptions.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod broadcast;
pub mod bus;
mod config;
mod context;
mod endpoint;
mod event;
mod hash;
pub mod kv;
mod membership;
pub mod runtime;
pub mod security;
mod serial;
pub mod sim;
mod stats;
mod time;
pub mod wire;

pub use bus::{BusError, EventId, QueryFilter, QueryId};
pub use config::{Config, ConfigError};
pub use endpoint::{Endpoint, ForceLeaveError, MemberCounts, PacketError, Refusal, Transmit};
pub use event::{Event, EventKind, Member, MemberState};
pub use kv::{KeyPattern, KeyValue, KvError};
pub use membership::phi;
pub use membership::suspicion::suspicion_timeout;
pub use stats::Stats;
pub use time::Time;
