//! Replicated key/value state: every node's keys, seen by every node.
//!
//! Each node owns its keys; a write gets the next version of its owner, and
//! replicas converge by scuttlebutt (digests of `(generation, heartbeat,
//! max version)` per owner, answered with exactly the missing entries in
//! version order) plus an immediate push of every new entry on the
//! dissemination queue. `docs/PROTOCOL.md` §7 describes the whole
//! algorithm.
//!
//! * `state`: the node's key/value state (`KvState`), which the endpoint
//!   routes key/value messages and timers to;
//! * `local`: this node's own writes and every read;
//! * `replication`: the push of new entries, applying them, generations
//!   and resets;
//! * `digest`: scuttlebutt anti-entropy (digests answered with deltas,
//!   within a round budget; flow control's interval);
//! * `expiry`: where a key's TTL expires, and tombstones are collected;
//! * `store`: the replicas themselves; `flow`: the push rate (AIMD);
//!   `pattern`: key patterns for scans and subscriptions.

mod digest;
mod expiry;
mod flow;
mod local;
mod pattern;
mod replication;
mod state;
mod store;
mod types;

pub use pattern::KeyPattern;
pub(crate) use state::KvState;
pub use types::{KeyValue, KvError};
