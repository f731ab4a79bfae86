//! The endpoint's gate: source allow-list, unsealing and the replay
//! window on the way in, sealing on the way out, the keyring API, and
//! rate-limited logging of what the gate drops.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::Rng;

use super::Endpoint;
use crate::hash::{fixed_map, FixedMap};
use crate::security::seal::Sealer;
use crate::security::{KeyError, Keyring, SecretKey};
use crate::wire::{Header, WireError, FLAG_ENCRYPTED};
use crate::Time;

/// Sources remembered for log rate limiting; past this the memory is
/// cleared (so a flood of spoofed sources costs bounded memory, at worst a
/// burst of log lines).
const LOGGED_SOURCES: usize = 1024;
/// One log line per source and reason kind per this period.
const LOG_PERIOD: Duration = Duration::from_secs(60);

/// The keyring and the drop-log limiter (the sealer, which the way out
/// uses too, lives in the endpoint's outbox).
pub(super) struct Gate {
    keyring: Keyring,
    logged: FixedMap<IpAddr, Time>,
}

impl Gate {
    /// A gate with `keys`, and the sealer for them; both draw their
    /// randomness from `rng`.
    pub(super) fn new(keys: &[SecretKey], rng: &mut SmallRng) -> (Gate, Sealer) {
        let keyring = Keyring::from_keys(keys.to_vec());
        let prefix: [u8; 4] = rng.random();
        let counter: u64 = rng.random();
        let sealer = Sealer::new(&keyring, prefix, counter);
        let gate = Gate {
            keyring,
            logged: fixed_map(rng.random()),
        };
        (gate, sealer)
    }
}

impl Endpoint {
    // ------------------------------------------------------------------
    // Keyring.

    /// Adds `key` to the keyring: sealed datagrams under it are accepted
    /// from now on. The first key installed on a node without keys becomes
    /// the primary, and the node starts sealing (unless `send_plaintext`).
    pub fn install_key(&mut self, key: SecretKey) {
        self.gate.keyring.install(key);
        self.keys_changed();
    }

    /// Makes the installed `key` the one this node seals with.
    pub fn use_key(&mut self, key: &SecretKey) -> Result<(), KeyError> {
        self.gate.keyring.use_key(key)?;
        self.keys_changed();
        Ok(())
    }

    /// Removes `key` (not the primary) from the keyring.
    pub fn remove_key(&mut self, key: &SecretKey) -> Result<(), KeyError> {
        self.gate.keyring.remove(key)?;
        self.keys_changed();
        Ok(())
    }

    /// The keyring, primary first.
    pub fn keys(&self) -> &[SecretKey] {
        self.gate.keyring.keys()
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
        self.out.sealer.rekey(&self.gate.keyring);
        self.config.keys = self.gate.keyring.keys().to_vec();
    }

    // ------------------------------------------------------------------
    // The way in.

    /// Checks a received datagram's source and seal; returns the plaintext
    /// datagram to decode.
    pub(super) fn admit<'a>(
        &mut self,
        now: Time,
        from: SocketAddr,
        bytes: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, WireError> {
        let sources = &self.config.allowed_sources;
        if !sources.is_empty() && !sources.iter().any(|c| c.contains(from.ip())) {
            return Err(WireError::SourceNotAllowed);
        }
        let (header, _) = Header::parse(bytes)?;
        if header.cluster != self.cluster {
            return Err(WireError::WrongCluster);
        }
        if header.flags & FLAG_ENCRYPTED == 0 {
            if self.out.sealer.can_seal() && !self.config.accept_plaintext {
                return Err(WireError::PlaintextRefused);
            }
            return Ok(Cow::Borrowed(bytes));
        }
        if !self.out.sealer.can_seal() {
            return Err(WireError::NoKey);
        }
        let (plain, stamp) = self.out.sealer.open(bytes)?;
        let window = u64::try_from(self.config.replay_window.as_millis()).unwrap_or(u64::MAX);
        if now.as_millis().abs_diff(stamp) > window {
            return Err(WireError::StaleTimestamp);
        }
        Ok(Cow::Owned(plain))
    }

    /// Counts a dropped datagram and logs it, at most once per source per
    /// minute (a flood must not become a flood of log lines).
    pub(super) fn drop_datagram(&mut self, now: Time, from: SocketAddr, e: WireError) {
        self.out.stats.drop(e.name());
        let ip = from.ip();
        let due = self
            .gate
            .logged
            .get(&ip)
            .is_none_or(|t| now.saturating_since(*t) >= LOG_PERIOD);
        if !due {
            return;
        }
        if self.gate.logged.len() >= LOGGED_SOURCES {
            self.gate.logged.clear();
        }
        self.gate.logged.insert(ip, now);
        log::warn!(
            "{}: dropped a datagram from {from}: {e} (further drops from {ip} are counted in \
             stats, not logged, for a minute)",
            self.config.name
        );
    }
}
