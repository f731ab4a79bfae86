//! Admission: the gate every received datagram passes before it is read
//! (source allow-list, cluster, unsealing and the replay window), the
//! keyring API, the errors of a dropped datagram, and rate-limited logging
//! of what the gate drops. Sealing on the way out is the context's (it
//! shares the sealer with the way in).

use std::borrow::Cow;
use std::fmt;
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

/// Why the gate refused a datagram before reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The source address is outside `Config::allowed_sources`.
    SourceNotAllowed,
    /// Sealed, and this node has no key to open it.
    NoKey,
    /// Sealed, and no installed key opens it (wrong key, or tampered).
    WrongKey,
    /// Plaintext, but this node requires encryption.
    PlaintextRefused,
    /// Sealed with a timestamp outside the replay window.
    StaleTimestamp,
}

impl Refusal {
    /// A short snake_case name (statistics keys, logs).
    pub fn name(self) -> &'static str {
        match self {
            Refusal::SourceNotAllowed => "source_not_allowed",
            Refusal::NoKey => "encrypted_without_key",
            Refusal::WrongKey => "wrong_key",
            Refusal::PlaintextRefused => "plaintext_refused",
            Refusal::StaleTimestamp => "stale_timestamp",
        }
    }
}

/// Why [`Endpoint::handle_packet`] dropped a datagram (counted in
/// [`Stats::drops`](crate::Stats::drops) under [`PacketError::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketError {
    /// The gate refused it unread.
    Refused(Refusal),
    /// It is not a valid datagram of this cluster.
    Wire(WireError),
}

impl PacketError {
    /// A short snake_case name (statistics keys, logs).
    pub fn name(self) -> &'static str {
        match self {
            PacketError::Refused(r) => r.name(),
            PacketError::Wire(e) => e.name(),
        }
    }
}

impl From<Refusal> for PacketError {
    fn from(r: Refusal) -> PacketError {
        PacketError::Refused(r)
    }
}

impl From<WireError> for PacketError {
    fn from(e: WireError) -> PacketError {
        PacketError::Wire(e)
    }
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::Refused(r) => f.write_str(r.name()),
            PacketError::Wire(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PacketError {}

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
    ) -> Result<Cow<'a, [u8]>, PacketError> {
        let sources = &self.config.allowed_sources;
        if !sources.is_empty() && !sources.iter().any(|c| c.contains(from.ip())) {
            return Err(Refusal::SourceNotAllowed.into());
        }
        let (header, _) = Header::parse(bytes)?;
        if header.cluster != self.cluster {
            return Err(WireError::WrongCluster.into());
        }
        if header.flags & FLAG_ENCRYPTED == 0 {
            if self.out.sealer.can_seal() && !self.config.accept_plaintext {
                return Err(Refusal::PlaintextRefused.into());
            }
            return Ok(Cow::Borrowed(bytes));
        }
        if !self.out.sealer.can_seal() {
            return Err(Refusal::NoKey.into());
        }
        let (plain, stamp) = self.out.sealer.open(bytes).map_err(|e| match e {
            WireError::WrongKey => PacketError::Refused(Refusal::WrongKey),
            other => PacketError::Wire(other),
        })?;
        let window = u64::try_from(self.config.replay_window.as_millis()).unwrap_or(u64::MAX);
        if now.as_millis().abs_diff(stamp) > window {
            return Err(Refusal::StaleTimestamp.into());
        }
        Ok(Cow::Owned(plain))
    }

    /// Counts a dropped datagram and logs it, at most once per source per
    /// minute (a flood must not become a flood of log lines).
    pub(super) fn drop_datagram(&mut self, now: Time, from: SocketAddr, e: PacketError) {
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
