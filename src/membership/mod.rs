//! Membership: the member table and the two Lifeguard mechanisms that shape
//! failure detection (local health and the suspicion timer).

pub(crate) mod awareness;
pub mod phi;
pub(crate) mod state;
pub mod suspicion;
