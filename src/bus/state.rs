//! A node's bus state: the items it holds, its Lamport clock and sequence,
//! pulls in flight, coalescing windows, its queries and the elections it
//! knows. Its methods live by concern in `dissemination`, `events`,
//! `query` and `election`, each taking the endpoint's shared
//! [`Ctx`](crate::context::Ctx).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;

use compact_str::CompactString;
use hashbrown::HashSet;

use super::table::ItemTable;
use crate::hash::{fixed_map, mix64, FixedMap};
use crate::Time;

/// Everything this node holds and tracks of the event bus.
pub(crate) struct BusState {
    pub(super) table: ItemTable,
    pub(super) lamport: u64,
    pub(super) next_seq: u64,
    /// Ids pulled, and when: not pulled again within a gossip interval.
    pub(super) wanted: FixedMap<u64, Time>,
    /// Bytes sent in answers during the current round, and its start.
    pub(super) round_bytes: usize,
    pub(super) round_start: Time,
    pub(super) coalescing: FixedMap<CompactString, Coalescing>,
    pub(super) coalesce_timers: BinaryHeap<Reverse<(Time, CompactString)>>,
    /// Per coalesced name, the Lamport time delivered last and until when
    /// it is remembered: older events of the name arriving later are
    /// superseded too.
    pub(super) coalesced_last: FixedMap<CompactString, (u64, Time)>,
    pub(super) queries: Queries,
    pub(super) elections: Elections,
}

/// A coalesced event waiting for the end of its name's window.
pub(super) struct Coalescing {
    /// (Lamport time, origin, seq): the latest wins.
    pub(super) order: (u64, CompactString, u64),
    pub(super) payload: Vec<u8>,
    pub(super) expires: Time,
}

pub(super) type Names = HashSet<CompactString, foldhash::fast::FixedState>;

/// A query of this node, waiting for answers.
pub(super) struct Pending {
    pub(super) acks: Names,
    pub(super) responses: Names,
}

/// This node's query bookkeeping.
pub(super) struct Queries {
    /// This node's running queries, by sequence number.
    pub(super) pending: FixedMap<u64, Pending>,
    pub(super) deadlines: BinaryHeap<Reverse<(Time, u64)>>,
    /// Queries this node matched, by item id: the asker's address, and
    /// whether this node responded already. Forgotten when the item dies.
    pub(super) answering: FixedMap<u64, (SocketAddr, bool)>,
    pub(super) seed: u64,
}

/// One election as this node sees it. Votes may arrive before the
/// election itself; until it does, `topic` is `None`.
pub(super) struct Tally {
    pub(super) topic: Option<CompactString>,
    pub(super) creator: CompactString,
    pub(super) seq: u64,
    pub(super) lamport: u64,
    pub(super) min: u32,
    pub(super) expires: Time,
    /// Voter → yes.
    pub(super) votes: BTreeMap<CompactString, bool>,
    /// This endpoint created it (so it alone may raise the quorum).
    pub(super) mine: bool,
    /// `min` yes votes were counted before the expiry.
    pub(super) reached: bool,
}

/// The elections this node knows.
pub(super) struct Elections {
    /// By the election item's id.
    pub(super) tallies: FixedMap<u64, Tally>,
    pub(super) expiries: BinaryHeap<Reverse<(Time, u64)>>,
    /// Topics this node voted on, until when.
    pub(super) voted: FixedMap<CompactString, Time>,
}

impl BusState {
    /// `seed` is random per endpoint; the sequence starts at a random
    /// 32-bit point so a restarted node's ids differ from its previous
    /// life's (ids stay short on the wire).
    pub(crate) fn new(seed: u64) -> BusState {
        let seeds: [u64; 4] = std::array::from_fn(|i| mix64(seed ^ (i as u64 + 1)));
        let (query_seed, election_seed) = (seeds[2] ^ 1, seeds[0] ^ 1);
        BusState {
            table: ItemTable::new(seeds[0]),
            lamport: 0,
            next_seq: seeds[1] >> 32,
            wanted: fixed_map(seeds[2]),
            round_bytes: 0,
            round_start: Time::ZERO,
            coalescing: fixed_map(seeds[3]),
            coalesce_timers: BinaryHeap::new(),
            coalesced_last: fixed_map(seeds[3] ^ 1),
            queries: Queries {
                pending: fixed_map(query_seed),
                deadlines: BinaryHeap::new(),
                answering: fixed_map(query_seed ^ 1),
                seed: query_seed,
            },
            elections: Elections {
                tallies: fixed_map(election_seed),
                expiries: BinaryHeap::new(),
                voted: fixed_map(election_seed ^ 1),
            },
        }
    }

    /// Whether the gossip tick has bus work (ids to announce).
    pub(crate) fn wants_gossip(&self) -> bool {
        self.table.has_fresh()
    }

    /// The earliest bus timer: an item dies, a coalescing window closes, a
    /// query times out, an election expires.
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        [
            self.table.next_expiry().map(Time::from_millis),
            self.coalesce_timers.peek().map(|Reverse((t, _))| *t),
            self.queries.deadlines.peek().map(|Reverse((t, _))| *t),
            self.elections.expiries.peek().map(|Reverse((t, _))| *t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// This node's Lamport clock.
    pub(crate) fn lamport(&self) -> u64 {
        self.lamport
    }

    /// Items alive and held.
    pub(crate) fn items(&self) -> usize {
        self.table.len()
    }

    /// Queries of this node still waiting for answers.
    pub(crate) fn pending_queries(&self) -> usize {
        self.queries.pending.len()
    }

    /// Elections known.
    pub(crate) fn elections(&self) -> usize {
        self.elections.tallies.len()
    }
}
