//! The gate every received datagram passes before it is read: source
//! allow-list, cluster, plaintext switches, unsealing and the replay window;
//! the keyring it opens with; the errors of a dropped datagram; and the
//! rate limit on logging what it drops. Sealing on the way out is the
//! endpoint's outbox's (it shares the sealer with the way in).

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::Rng;

use super::seal::Sealer;
use super::{KeyError, Keyring, SecretKey};
use crate::config::Config;
use crate::hash::{fixed_map, FixedMap};
use crate::wire::{ClusterTag, Header, WireError, FLAG_ENCRYPTED};
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

/// Why [`Endpoint::handle_packet`](crate::Endpoint::handle_packet) dropped
/// a datagram (counted in [`Stats::drops`](crate::Stats::drops) under
/// [`PacketError::name`]).
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
/// uses too, lives in the endpoint's outbox and is passed in).
pub(crate) struct Gate {
    keyring: Keyring,
    logged: FixedMap<IpAddr, Time>,
}

impl Gate {
    /// A gate with `keys`, and the sealer for them; both draw their
    /// randomness from `rng`.
    pub(crate) fn new(keys: &[SecretKey], rng: &mut SmallRng) -> (Gate, Sealer) {
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

    /// The keyring, primary first.
    pub(crate) fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Adds `key` (see `Endpoint::install_key`).
    pub(crate) fn install_key(&mut self, key: SecretKey) {
        self.keyring.install(key);
    }

    /// Makes the installed `key` the primary.
    pub(crate) fn use_key(&mut self, key: &SecretKey) -> Result<(), KeyError> {
        self.keyring.use_key(key)
    }

    /// Removes `key` (not the primary).
    pub(crate) fn remove_key(&mut self, key: &SecretKey) -> Result<(), KeyError> {
        self.keyring.remove(key)
    }

    /// Checks a datagram from `from` against `config`'s allow-list and
    /// plaintext switch, this node's `cluster`, and `sealer`'s keys and the
    /// replay window; returns the plaintext datagram to decode.
    pub(crate) fn admit<'a>(
        config: &Config,
        cluster: ClusterTag,
        sealer: &Sealer,
        now: Time,
        from: SocketAddr,
        bytes: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, PacketError> {
        let sources = &config.allowed_sources;
        if !sources.is_empty() && !sources.iter().any(|c| c.contains(from.ip())) {
            return Err(Refusal::SourceNotAllowed.into());
        }
        let (header, _) = Header::parse(bytes)?;
        if header.cluster != cluster {
            return Err(WireError::WrongCluster.into());
        }
        if header.flags & FLAG_ENCRYPTED == 0 {
            if sealer.can_seal() && !config.accept_plaintext {
                return Err(Refusal::PlaintextRefused.into());
            }
            return Ok(Cow::Borrowed(bytes));
        }
        if !sealer.can_seal() {
            return Err(Refusal::NoKey.into());
        }
        let (plain, stamp) = sealer.open(bytes).map_err(|e| match e {
            WireError::WrongKey => PacketError::Refused(Refusal::WrongKey),
            other => PacketError::Wire(other),
        })?;
        let window = u64::try_from(config.replay_window.as_millis()).unwrap_or(u64::MAX);
        if now.as_millis().abs_diff(stamp) > window {
            return Err(Refusal::StaleTimestamp.into());
        }
        Ok(Cow::Owned(plain))
    }

    /// Whether a drop from `ip` is logged: at most once per source per
    /// minute (a flood must not become a flood of log lines). Remembers it
    /// if so.
    pub(crate) fn log_due(&mut self, now: Time, ip: IpAddr) -> bool {
        let due = self
            .logged
            .get(&ip)
            .is_none_or(|t| now.saturating_since(*t) >= LOG_PERIOD);
        if !due {
            return false;
        }
        if self.logged.len() >= LOGGED_SOURCES {
            self.logged.clear();
        }
        self.logged.insert(ip, now);
        true
    }
}
