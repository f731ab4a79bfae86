//! Keeping other clusters and attackers out: pre-shared-key encryption with
//! a rotating keyring, a replay window, and a source allow-list.
//!
//! * [`keyring`]: the keys a node accepts (several, so keys rotate without
//!   downtime) and the one it sends with.
//! * [`seal`]: AES-256-GCM over each datagram, the 8-byte header as
//!   associated data, a sender timestamp inside the ciphertext.
//! * [`cidr`]: which source networks may talk to a node at all.
//! * [`gate`]: what every received datagram passes before it is read, and
//!   why one is refused.
//!
//! The cluster name (a tag in every header) separates clusters that share
//! a network by accident; encryption separates them from attackers.

pub mod aead;
pub mod cidr;
pub mod gate;
pub mod keyring;
pub mod seal;

pub use cidr::{Cidr, CidrError};
pub use gate::{PacketError, Refusal};
pub use keyring::{KeyError, Keyring, SecretKey};
pub use seal::{open_datagram, seal_datagram, Sealer, SEAL_OVERHEAD};
