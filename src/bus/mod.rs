//! The event bus, queries and elections (`docs/PROTOCOL.md` §11).
//!
//! Everything that travels is a *bus item* (a user event, a query, an
//! election or a vote) identified by its origin's name and a sequence
//! number, alive for a lifetime the origin chose. Every node holds the
//! items still alive, so it can dedupe them, serve them to peers that
//! missed them and to nodes that join while they live.
//!
//! * `state`: the node's bus state (`BusState`), which the endpoint
//!   routes bus messages and timers to;
//! * `dissemination`: how items spread (bounded push, pull by id,
//!   anti-entropy over the bus hash) and who handles a new one;
//! * `events`: user events, coalesced or not; `query`: queries and their
//!   answers; `election`: quorum elections and votes;
//! * `table`: the items held; `types`: the public types and the tag
//!   syntax of member metadata.

mod dissemination;
mod election;
mod events;
mod query;
mod state;
mod table;
mod types;

pub(crate) use dissemination::AfterBus;
pub(crate) use state::BusState;
pub use types::{encode_tags, tags, BusError, EventId, QueryFilter, QueryId};

#[cfg(test)]
mod tests;
