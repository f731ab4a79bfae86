//! Anti-entropy bookkeeping: the syncs this node started and may still
//! have to push for, and the requests it answered (so duplicates are not
//! answered twice, and so the pushes that follow are attributed to the
//! requester that named itself).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use compact_str::CompactString;

use crate::Time;

/// Syncs in flight at once; more would only repeat each other.
const MAX_PENDING_SYNCS: usize = 4;
/// Sync requests remembered as answered (duplicates are not answered twice).
const ANSWERED_MEMORY: usize = 64;

/// A sync this node started and may still have to push for.
#[derive(Debug)]
struct PendingSync {
    id: u32,
    peer: SocketAddr,
    started: Time,
    pushed: bool,
}

/// What a sync reply means to the syncs this node started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// No sync of ours with that id and peer is pending.
    Unexpected,
    /// Push our entries in these buckets (the first reply that asks).
    Push(u64),
    /// Nothing (more) to push.
    Done,
}

/// The syncs started and the requests answered.
#[derive(Debug)]
pub(crate) struct SyncBook {
    pending: Vec<PendingSync>,
    next_id: u32,
    answered: VecDeque<(SocketAddr, u32, CompactString)>,
}

impl SyncBook {
    /// Empty; sync ids start after the random `first_id`.
    pub(crate) fn new(first_id: u32) -> SyncBook {
        SyncBook {
            pending: Vec::new(),
            next_id: first_id,
            answered: VecDeque::new(),
        }
    }

    /// Forgets syncs started `expiry` or longer before `now`.
    pub(crate) fn expire(&mut self, now: Time, expiry: Duration) {
        self.pending
            .retain(|s| now.saturating_since(s.started) < expiry);
    }

    /// Whether as many syncs are in flight as are useful.
    pub(crate) fn full(&self) -> bool {
        self.pending.len() >= MAX_PENDING_SYNCS
    }

    /// Records a sync with `peer` started at `now`; returns its id.
    pub(crate) fn start(&mut self, now: Time, peer: SocketAddr) -> u32 {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        self.pending.push(PendingSync {
            id,
            peer,
            started: now,
            pushed: false,
        });
        id
    }

    /// Records request `id` from `from` (calling itself `name`) as
    /// answered; false if it already was.
    pub(crate) fn answer(&mut self, from: SocketAddr, id: u32, name: &str) -> bool {
        if self.answered.iter().any(|(a, i, _)| (*a, *i) == (from, id)) {
            return false;
        }
        if self.answered.len() >= ANSWERED_MEMORY {
            self.answered.pop_front();
        }
        self.answered
            .push_back((from, id, CompactString::from(name)));
        true
    }

    /// A reply from `from` to sync `id` with the differing buckets `mask`.
    pub(crate) fn replied(&mut self, from: SocketAddr, id: u32, mask: u64) -> Reply {
        let Some(at) = self
            .pending
            .iter()
            .position(|s| s.id == id && s.peer == from)
        else {
            return Reply::Unexpected;
        };
        if mask == 0 {
            self.pending.swap_remove(at);
            return Reply::Done;
        }
        if self.pending[at].pushed {
            return Reply::Done;
        }
        self.pending[at].pushed = true;
        Reply::Push(mask)
    }

    /// The name of the latest requester answered at `from`, if any.
    pub(crate) fn requester(&self, from: SocketAddr) -> Option<&CompactString> {
        self.answered
            .iter()
            .rev()
            .find(|(a, _, _)| *a == from)
            .map(|(_, _, n)| n)
    }
}
