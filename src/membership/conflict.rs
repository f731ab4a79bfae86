//! Name conflicts: another node claims this node's name. Only the
//! application can resolve the clash (rename, or stop a node), so it must
//! hear of it; an established node keeps defending its name, and a young
//! one that finds the name held before it gives it up.

use std::net::SocketAddr;
use std::time::Duration;

use crate::Time;

/// This node's hold on its own name.
#[derive(Debug, Default)]
pub(crate) struct NameClaim {
    /// It found its name held by an older node and gave it up: it no longer
    /// refutes anything said about the name.
    yielded: bool,
    /// The last conflict reported to the application: address and time.
    reported: Option<(SocketAddr, Time)>,
}

/// What to do about a contested name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Contest {
    /// Report the conflict to the application now (at most once per
    /// address per settle period).
    pub(crate) report: bool,
    /// This node has yielded the name: it must not refute.
    pub(crate) yielded: bool,
}

impl NameClaim {
    /// Whether this node gave its name up to an older holder.
    pub(crate) fn yielded(&self) -> bool {
        self.yielded
    }

    /// The holder this node yielded to failed: the name is free, and this
    /// node may take it back by refuting.
    pub(crate) fn reclaim(&mut self) {
        self.yielded = false;
    }

    /// Another node claims the name from `theirs` at `now`. `settle` is how
    /// long a conflict report holds and how long a life counts as young
    /// (from `born`); `from_full_state` says the claim came in a peer's full
    /// state (a join reply, a sync); `takeover` is
    /// `Config::allow_name_takeover`. It yields if young, the claim came
    /// from full state, and takeovers are not allowed.
    pub(crate) fn contest(
        &mut self,
        now: Time,
        theirs: SocketAddr,
        settle: Duration,
        born: Time,
        from_full_state: bool,
        takeover: bool,
    ) -> Contest {
        let repeat = self
            .reported
            .is_some_and(|(addr, at)| addr == theirs && now < at + settle);
        if !repeat {
            self.reported = Some((theirs, now));
        }
        // Only a peer's full state shows the name was held before: a
        // gossiped claim during youth is as likely a forgery meant to make
        // this node give its name up.
        let young = now < born + settle;
        if young && from_full_state && !takeover {
            self.yielded = true;
        }
        Contest {
            report: !repeat,
            yielded: self.yielded,
        }
    }
}
