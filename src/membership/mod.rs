//! Membership: the member table, the two Lifeguard mechanisms that shape
//! failure detection (local health and the suspicion timer), and the
//! phi-accrual detectors that can veto a suspicion; and this node's hold
//! on its own name when another claims it; anti-entropy's bookkeeping.

pub(crate) mod awareness;
pub(crate) mod conflict;
pub(crate) mod detector;
pub mod phi;
pub(crate) mod state;
pub mod suspicion;
pub(crate) mod syncs;
