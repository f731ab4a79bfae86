//! Membership: the member table, the two Lifeguard mechanisms that shape
//! failure detection (local health and the suspicion timer), and the
//! phi-accrual detectors that can veto a suspicion.

pub(crate) mod awareness;
pub(crate) mod detector;
pub mod phi;
pub(crate) mod state;
pub mod suspicion;
