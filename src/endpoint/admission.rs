//! The endpoint's side of admission: the keyring API and the call into the
//! gate (`crate::security::gate`, which owns the rules) for every received
//! datagram.

use std::borrow::Cow;
use std::net::SocketAddr;

use super::Endpoint;
use crate::security::gate::{Gate, PacketError};
use crate::security::{KeyError, SecretKey};
use crate::Time;

impl Endpoint {
    // ------------------------------------------------------------------
    // Keyring.

    /// Adds `key` to the keyring: sealed datagrams under it are accepted
    /// from now on. The first key installed on a node without keys becomes
    /// the primary, and the node starts sealing (unless `send_plaintext`).
    pub fn install_key(&mut self, key: SecretKey) {
        self.gate.install_key(key);
        self.keys_changed();
    }

    /// Makes the installed `key` the one this node seals with.
    pub fn use_key(&mut self, key: &SecretKey) -> Result<(), KeyError> {
        self.gate.use_key(key)?;
        self.keys_changed();
        Ok(())
    }

    /// Removes `key` (not the primary) from the keyring.
    pub fn remove_key(&mut self, key: &SecretKey) -> Result<(), KeyError> {
        self.gate.remove_key(key)?;
        self.keys_changed();
        Ok(())
    }

    /// The keyring, primary first.
    pub fn keys(&self) -> &[SecretKey] {
        self.gate.keyring().keys()
    }

    /// Migration switch: with keys, keep sending plaintext.
    pub fn set_send_plaintext(&mut self, on: bool) {
        self.config.send_plaintext = on;
    }

    /// Migration switch: with keys, keep accepting plaintext.
    pub fn set_accept_plaintext(&mut self, on: bool) {
        self.config.accept_plaintext = on;
    }

    fn keys_changed(&mut self) {
        self.out.sealer.rekey(self.gate.keyring());
        self.config.keys = self.gate.keyring().keys().to_vec();
    }

    // ------------------------------------------------------------------
    // The way in.

    /// Passes a received datagram through the gate; returns the plaintext
    /// datagram to decode.
    pub(super) fn admit<'a>(
        &self,
        now: Time,
        from: SocketAddr,
        bytes: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, PacketError> {
        Gate::admit(
            &self.config,
            self.cluster,
            &self.out.sealer,
            now,
            from,
            bytes,
        )
    }

    /// Counts a dropped datagram and logs it, as often as the gate allows.
    pub(super) fn drop_datagram(&mut self, now: Time, from: SocketAddr, e: PacketError) {
        self.out.stats.drop(e.name());
        let ip = from.ip();
        if self.gate.log_due(now, ip) {
            log::warn!(
                "{}: dropped a datagram from {from}: {e} (further drops from {ip} are counted \
                 in stats, not logged, for a minute)",
                self.config.name
            );
        }
    }
}
