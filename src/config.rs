//! Endpoint configuration, with documented defaults and named presets.
//!
//! The presets follow HashiCorp memberlist's (`DefaultLANConfig`,
//! `DefaultWANConfig`, `DefaultLocalConfig`) so that an operator who knows
//! those numbers knows ours. Where vinery adds a knob, its doc says why.

use std::fmt;
use std::time::Duration;

use crate::security::{Cidr, SecretKey};
use crate::wire::budget::{BUS_ITEM_OVERHEAD, KV_ENTRY_OVERHEAD};
use crate::wire::{
    MAX_BUS_FANOUT, MAX_DATAGRAM, MAX_EVENT_NAME_LEN, MAX_KEY_LEN, MAX_META_LEN, MAX_NAME_LEN,
    MAX_SYNC_BUCKETS, MIN_DATAGRAM,
};

/// Everything an [`Endpoint`](crate::Endpoint) needs to know before it
/// starts. Build one from a preset and change fields; [`Config::validate`]
/// names the first bad field.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// This node's name, unique in the cluster. Default: empty (must be set).
    pub name: String,
    /// Cluster name; datagrams of other clusters are dropped unread.
    /// Default: `"vinery"`.
    pub cluster_name: String,
    /// Application metadata (tags) gossiped with this node's alive record,
    /// at most 512 bytes. Default: empty.
    pub meta: Vec<u8>,
    /// Byte budget of every datagram sent, header included (512..=65507).
    /// Default: 1400, safe under common MTUs.
    pub max_datagram: usize,
    /// Time between probes of successive members. Default: 1 s.
    pub probe_interval: Duration,
    /// Time to wait for a direct ack before asking others to probe.
    /// Must be below `probe_interval`. Default: 500 ms.
    pub probe_timeout: Duration,
    /// Members asked to probe indirectly (ping-req) when a direct probe
    /// times out. Default: 3.
    pub indirect_checks: usize,
    /// Scales the suspicion timeout: min = mult · max(1, log10 n) · interval.
    /// Default: 4.
    pub suspicion_mult: u32,
    /// Lifeguard: the suspicion timeout starts at this multiple of the
    /// minimum and shrinks with independent confirmations. Default: 6.
    pub suspicion_max_timeout_mult: u32,
    /// Each update is piggybacked at most `retransmit_mult · ⌈log10(n+1)⌉`
    /// times. Default: 4.
    pub retransmit_mult: u32,
    /// Time between gossip ticks, which send pending updates that probe
    /// traffic did not carry. Default: 200 ms.
    pub gossip_interval: Duration,
    /// Members each gossip tick sends to. Default: 3.
    pub gossip_nodes: usize,
    /// How long a dead member still receives gossip, so it can learn it was
    /// declared dead and refute. Default: 30 s.
    pub gossip_to_dead_time: Duration,
    /// Lifeguard: the local health multiplier's ceiling; probe interval and
    /// timeout are scaled by up to this factor while this node is unhealthy.
    /// Default: 8.
    pub awareness_max_multiplier: u32,
    /// Lifeguard switch: local health, dynamic suspicion timeout, the buddy
    /// system and nacks. Off gives plain SWIM (for comparison).
    /// Default: on.
    pub lifeguard: bool,
    /// What a node does when, within its first `probe_interval ×
    /// suspicion_mult` of life, it finds its name alive at another address:
    /// off, it yields (stops answering claims about the name, so the node
    /// that held it first keeps it) and raises
    /// [`Event::MemberConflict`](crate::Event::MemberConflict); on, it takes
    /// the name over as a restarted node on a new address would. A node past
    /// that period always defends its name (and raises the event). Without
    /// this rule two nodes with one name fight silently forever, each
    /// refuting the other. Default: off.
    pub allow_name_takeover: bool,
    /// Anti-entropy buckets (a power of two, 1..=64): a sync exchanges only
    /// the buckets whose hashes differ. Default: 32.
    pub sync_buckets: usize,
    /// Minimum time between two anti-entropy exchanges this node starts.
    /// They only start when a probe revealed a different membership hash.
    /// Default: 200 ms.
    pub sync_interval: Duration,
    /// How often to try to reach one random failed member, which is how two
    /// halves of a healed partition find each other again. Default: 10 s.
    pub reconnect_interval: Duration,
    /// How long failed and departed members are remembered (and, if failed,
    /// retried) before being forgotten. Default: 1 h.
    pub dead_retention: Duration,
    /// How often to resend a join to the seeds until one answers.
    /// Default: 1 s.
    pub join_retry_interval: Duration,
    /// Upper bound on how many members are tracked; beyond it new names are
    /// refused and counted. Default: 65 536.
    pub max_members: usize,
    /// Upper bound on members one datagram may introduce (names not known
    /// before); the rest are counted as `introduction_limit` drops and left
    /// for anti-entropy to bring in from members that really hold them. A
    /// default-size (1400-byte) datagram holds at most ~116 member records
    /// (12 bytes each at the least), fewer than this, so a join reply is
    /// never cut; only an oversized datagram stuffed with invented members
    /// meets it: without it one 64 KiB datagram brought ~3,850 fakes at
    /// once. Default: 128.
    pub max_introductions_per_datagram: usize,
    /// Upper bound on ping-reqs relayed at once for others. Default: 1024.
    pub max_pending_relays: usize,
    /// Upper bound on queued broadcasts; the oldest, most-sent are evicted
    /// first and counted. Default: 8192.
    pub max_queued_broadcasts: usize,

    /// Longest key accepted by `set`, in bytes (1..=255). Default: 128.
    pub max_key_len: usize,
    /// Largest value accepted by `set`, in bytes. A write must also fit one
    /// datagram with its key, which `set` checks separately.
    /// Default: 1024.
    pub max_value_len: usize,
    /// Most live keys one node may own; a peer's entries beyond it are
    /// refused and counted. Default: 1024.
    pub max_keys_per_node: usize,
    /// How long a tombstone (a delete, or an expiry) is kept before it is
    /// collected. Peers that were away longer are reset instead of sent a
    /// delta, so a collected delete never comes back. Default: 1 h.
    pub kv_tombstone_grace: Duration,
    /// Bytes of key/value entries this node sends per gossip interval in
    /// answer to digests; the rest waits for the next interval (flow
    /// control). Default: 16 KiB.
    pub kv_round_budget: usize,
    /// Ceiling of the number of this node's own writes pushed per gossip
    /// interval. The actual rate adapts (AIMD) below it when pushes
    /// overflow; writes beyond it are coalesced by key and pushed later.
    /// Default: 32.
    pub kv_push_rate: u32,

    /// Phi-accrual switch: vetoes a suspicion while evidence of life is
    /// still arriving on the member's usual rhythm. Default: on.
    pub phi: bool,
    /// Suspect locally, then confirm: a failed probe's suspicion is kept to
    /// this node and the member probed again next interval; only if that
    /// probe fails too (and this node heard some ack or nack meanwhile, so
    /// it is not itself cut off) is the suspicion gossiped, with its timer
    /// started at the first failure. Jitter, loss and late acks then cost
    /// one extra probe instead of a cluster-wide suspicion and refutation.
    /// Default: on.
    pub confirm_suspicion: bool,
    /// Phi above which evidence is considered overdue. Default: 8.
    pub phi_threshold: f64,
    /// Inter-arrival times kept per member. Default: 100.
    pub phi_window: usize,
    /// Floor on the standard deviation of inter-arrival times, so a very
    /// regular member is not judged too strictly. Default: 100 ms.
    pub phi_min_std_dev: Duration,
    /// Extra silence tolerated on top of the mean interval (GC pauses,
    /// scheduling). Default: 0.
    pub phi_acceptable_pause: Duration,

    /// Pre-shared AES-256 keys; the first is the primary this node seals
    /// with, all are accepted. Empty: no encryption. Default: empty.
    pub keys: Vec<SecretKey>,
    /// With keys: keep sending plaintext (step 1 of moving a live cluster
    /// to encryption: every node first learns to accept sealed datagrams).
    /// Default: false.
    pub send_plaintext: bool,
    /// With keys: keep accepting plaintext (step 2: nodes seal, but still
    /// hear the ones not switched yet). Default: false.
    pub accept_plaintext: bool,
    /// Sealed datagrams stamped further than this from this node's clock
    /// are dropped as replays (`stale_timestamp`). Must exceed the clock
    /// skew between hosts and stay below `dead_retention`. Default: 5 min.
    pub replay_window: Duration,
    /// Source networks allowed to send to this node; datagrams from others
    /// are dropped before decoding (`source_not_allowed`). Empty: any.
    /// Default: empty.
    pub allowed_sources: Vec<Cidr>,

    /// Longest event name, query name or election topic, in bytes
    /// (1..=255). Default: 128.
    pub max_event_name_len: usize,
    /// Largest payload of a user event, a query or a query response, in
    /// bytes; one event with the longest name must fit a datagram.
    /// Default: 512 (serf's limit).
    pub max_event_payload: usize,
    /// Longest lifetime of an event, query timeout or election expiry;
    /// peers' items living longer are refused. Bounds how long a full
    /// item table stays full. Default: 1 h.
    pub max_event_duration: Duration,
    /// Most bus items (events, queries, elections, votes) held alive at
    /// once; new ones beyond it are refused (`say` returns an error, peers'
    /// items are dropped and counted). Default: 4096.
    pub max_active_events: usize,
    /// Most queries of this node running at once. Default: 256.
    pub max_pending_queries: usize,
    /// Most elections known at once. Default: 256.
    pub max_elections: usize,
    /// Most distinct voters counted per election (and the largest `total`
    /// an election may declare). Default: 1024.
    pub max_votes_per_election: usize,
    /// Coalesced events of one name received within this window are
    /// delivered once, at its end: the latest by Lamport time. Default:
    /// 500 ms.
    pub event_coalesce_window: Duration,
    /// Members a node forwards each bus item to when it first receives it
    /// pushed (infect-and-die); the rest of the cluster pulls it by id.
    /// Default: 2.
    pub bus_push_fanout: u8,
    /// Gossip rounds a node announces the ids of items it learned (to
    /// `gossip_nodes` members each round). Default: 4.
    pub bus_announce_rounds: u32,
    /// Bytes of items and id lists this node sends per gossip interval in
    /// answer to pulls, syncs and joins; the rest is refused and counted
    /// (`bus_round_budget`), and pulled again later. Default: 64 KiB.
    pub bus_round_budget: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config::lan()
    }
}

impl Config {
    /// A data-centre network: memberlist's LAN numbers.
    pub fn lan() -> Config {
        Config {
            name: String::new(),
            cluster_name: "vinery".into(),
            meta: Vec::new(),
            max_datagram: crate::wire::DEFAULT_DATAGRAM,
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_checks: 3,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            retransmit_mult: 4,
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            gossip_to_dead_time: Duration::from_secs(30),
            awareness_max_multiplier: 8,
            lifeguard: true,
            allow_name_takeover: false,
            sync_buckets: 32,
            sync_interval: Duration::from_millis(200),
            reconnect_interval: Duration::from_secs(10),
            dead_retention: Duration::from_secs(3600),
            join_retry_interval: Duration::from_secs(1),
            max_members: 65_536,
            max_introductions_per_datagram: 128,
            max_pending_relays: 1024,
            max_queued_broadcasts: 8192,
            max_key_len: 128,
            max_value_len: 1024,
            max_keys_per_node: 1024,
            kv_tombstone_grace: Duration::from_secs(3600),
            kv_round_budget: 16 * 1024,
            kv_push_rate: 32,
            phi: true,
            confirm_suspicion: true,
            phi_threshold: 8.0,
            phi_window: 100,
            phi_min_std_dev: Duration::from_millis(100),
            phi_acceptable_pause: Duration::ZERO,
            keys: Vec::new(),
            send_plaintext: false,
            accept_plaintext: false,
            replay_window: Duration::from_secs(300),
            allowed_sources: Vec::new(),
            max_event_name_len: 128,
            max_event_payload: 512,
            max_event_duration: Duration::from_secs(3600),
            max_active_events: 4096,
            max_pending_queries: 256,
            max_elections: 256,
            max_votes_per_election: 1024,
            event_coalesce_window: Duration::from_millis(500),
            bus_push_fanout: 2,
            bus_announce_rounds: 4,
            bus_round_budget: 64 * 1024,
        }
    }

    /// Across the internet: slower probes, longer timeouts (memberlist WAN).
    pub fn wan() -> Config {
        Config {
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(3),
            suspicion_mult: 6,
            gossip_interval: Duration::from_millis(500),
            gossip_nodes: 4,
            gossip_to_dead_time: Duration::from_secs(60),
            sync_interval: Duration::from_millis(500),
            reconnect_interval: Duration::from_secs(30),
            ..Config::lan()
        }
    }

    /// One host or a fast local network (memberlist local).
    pub fn local() -> Config {
        Config {
            probe_timeout: Duration::from_millis(200),
            indirect_checks: 1,
            suspicion_mult: 3,
            retransmit_mult: 2,
            gossip_interval: Duration::from_millis(100),
            gossip_to_dead_time: Duration::from_secs(15),
            sync_interval: Duration::from_millis(100),
            reconnect_interval: Duration::from_secs(5),
            ..Config::lan()
        }
    }

    /// The preset named `lan`, `wan` or `local`.
    pub fn preset(name: &str) -> Option<Config> {
        match name {
            "lan" => Some(Config::lan()),
            "wan" => Some(Config::wan()),
            "local" => Some(Config::local()),
            _ => None,
        }
    }

    /// This config with `name` set.
    pub fn with_name(mut self, name: impl Into<String>) -> Config {
        self.name = name.into();
        self
    }

    /// Checks every field, returning the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: String| Err(ConfigError { field, reason });
        if self.name.is_empty() || self.name.len() > MAX_NAME_LEN {
            return bad(
                "name",
                format!("must be 1..={MAX_NAME_LEN} bytes, got {}", self.name.len()),
            );
        }
        if self.cluster_name.is_empty() || self.cluster_name.len() > MAX_NAME_LEN {
            return bad("cluster_name", format!("must be 1..={MAX_NAME_LEN} bytes"));
        }
        check_meta(&self.meta)?;
        if !(MIN_DATAGRAM..=MAX_DATAGRAM).contains(&self.max_datagram) {
            return bad(
                "max_datagram",
                format!(
                    "must be {MIN_DATAGRAM}..={MAX_DATAGRAM}, got {}",
                    self.max_datagram
                ),
            );
        }
        if self.probe_interval.is_zero() {
            return bad("probe_interval", "must be positive".into());
        }
        if self.probe_timeout.is_zero() || self.probe_timeout >= self.probe_interval {
            return bad(
                "probe_timeout",
                format!(
                    "must be positive and below probe_interval ({:?}), got {:?}",
                    self.probe_interval, self.probe_timeout
                ),
            );
        }
        if self.indirect_checks > 16 {
            return bad(
                "indirect_checks",
                format!("must be at most 16, got {}", self.indirect_checks),
            );
        }
        if self.suspicion_mult == 0 {
            return bad("suspicion_mult", "must be at least 1".into());
        }
        if self.suspicion_max_timeout_mult == 0 {
            return bad("suspicion_max_timeout_mult", "must be at least 1".into());
        }
        if self.retransmit_mult == 0 {
            return bad("retransmit_mult", "must be at least 1".into());
        }
        if self.gossip_interval.is_zero() {
            return bad("gossip_interval", "must be positive".into());
        }
        if self.gossip_nodes == 0 {
            return bad("gossip_nodes", "must be at least 1".into());
        }
        if self.awareness_max_multiplier == 0 {
            return bad("awareness_max_multiplier", "must be at least 1".into());
        }
        if !self.sync_buckets.is_power_of_two() || self.sync_buckets > MAX_SYNC_BUCKETS {
            return bad(
                "sync_buckets",
                format!(
                    "must be a power of two up to {MAX_SYNC_BUCKETS}, got {}",
                    self.sync_buckets
                ),
            );
        }
        if self.sync_interval.is_zero() {
            return bad("sync_interval", "must be positive".into());
        }
        if self.reconnect_interval.is_zero() {
            return bad("reconnect_interval", "must be positive".into());
        }
        if self.join_retry_interval.is_zero() {
            return bad("join_retry_interval", "must be positive".into());
        }
        if self.max_members < 2 {
            return bad("max_members", "must be at least 2".into());
        }
        if self.max_queued_broadcasts == 0 {
            return bad("max_queued_broadcasts", "must be at least 1".into());
        }
        if !(1..=MAX_KEY_LEN).contains(&self.max_key_len) {
            return bad(
                "max_key_len",
                format!("must be 1..={MAX_KEY_LEN}, got {}", self.max_key_len),
            );
        }
        let entry_overhead = KV_ENTRY_OVERHEAD + self.name.len();
        if self.max_value_len + self.max_key_len + entry_overhead > self.max_datagram {
            return bad(
                "max_value_len",
                format!(
                    "a {}-byte value with a {}-byte key would not fit one {}-byte datagram \
                     (at most {} bytes here)",
                    self.max_value_len,
                    self.max_key_len,
                    self.max_datagram,
                    self.max_datagram
                        .saturating_sub(self.max_key_len + entry_overhead)
                ),
            );
        }
        if self.max_keys_per_node == 0 {
            return bad("max_keys_per_node", "must be at least 1".into());
        }
        if self.kv_round_budget < self.max_datagram {
            return bad(
                "kv_round_budget",
                format!(
                    "must be at least max_datagram ({}), got {}",
                    self.max_datagram, self.kv_round_budget
                ),
            );
        }
        if self.kv_push_rate == 0 {
            return bad("kv_push_rate", "must be at least 1".into());
        }
        if !(self.phi_threshold.is_finite() && self.phi_threshold > 0.0) {
            return bad(
                "phi_threshold",
                format!("must be a positive number, got {}", self.phi_threshold),
            );
        }
        if !(2..=10_000).contains(&self.phi_window) {
            return bad(
                "phi_window",
                format!("must be 2..=10000, got {}", self.phi_window),
            );
        }
        if self.phi_min_std_dev.is_zero() {
            return bad("phi_min_std_dev", "must be positive".into());
        }
        self.validate_bus()?;
        if self.replay_window.is_zero() || self.replay_window >= self.dead_retention {
            return bad(
                "replay_window",
                format!(
                    "must be positive and below dead_retention ({:?}), got {:?}",
                    self.dead_retention, self.replay_window
                ),
            );
        }
        Ok(())
    }
}

impl Config {
    /// The event bus's fields.
    fn validate_bus(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: String| Err(ConfigError { field, reason });
        if !(1..=MAX_EVENT_NAME_LEN).contains(&self.max_event_name_len) {
            return bad(
                "max_event_name_len",
                format!(
                    "must be 1..={MAX_EVENT_NAME_LEN}, got {}",
                    self.max_event_name_len
                ),
            );
        }
        let overhead = BUS_ITEM_OVERHEAD + self.name.len();
        if self.max_event_payload + self.max_event_name_len + overhead > self.max_datagram {
            return bad(
                "max_event_payload",
                format!(
                    "a {}-byte payload with a {}-byte name would not fit one {}-byte datagram \
                     (at most {} bytes here)",
                    self.max_event_payload,
                    self.max_event_name_len,
                    self.max_datagram,
                    self.max_datagram
                        .saturating_sub(self.max_event_name_len + overhead)
                ),
            );
        }
        if self.max_event_duration.is_zero() {
            return bad("max_event_duration", "must be positive".into());
        }
        let positive = [
            (
                "max_introductions_per_datagram",
                self.max_introductions_per_datagram,
            ),
            ("max_active_events", self.max_active_events),
            ("max_pending_queries", self.max_pending_queries),
            ("max_elections", self.max_elections),
            ("max_votes_per_election", self.max_votes_per_election),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return bad(field, "must be at least 1".into());
        }
        if self.bus_push_fanout > MAX_BUS_FANOUT {
            return bad(
                "bus_push_fanout",
                format!(
                    "must be at most {MAX_BUS_FANOUT}, got {}",
                    self.bus_push_fanout
                ),
            );
        }
        if self.bus_round_budget < self.max_datagram {
            return bad(
                "bus_round_budget",
                format!(
                    "must be at least max_datagram ({}), got {}",
                    self.max_datagram, self.bus_round_budget
                ),
            );
        }
        Ok(())
    }
}

/// Checks node metadata against the wire limit; shared by
/// [`Config::validate`] and [`Endpoint::set_meta`](crate::Endpoint::set_meta).
pub(crate) fn check_meta(meta: &[u8]) -> Result<(), ConfigError> {
    if meta.len() > MAX_META_LEN {
        return Err(ConfigError {
            field: "meta",
            reason: format!("must be at most {MAX_META_LEN} bytes, got {}", meta.len()),
        });
    }
    Ok(())
}

/// A configuration field with a value that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The field's name, as in [`Config`].
    pub field: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config field `{}`: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_once_named() {
        for p in ["lan", "wan", "local"] {
            Config::preset(p)
                .unwrap()
                .with_name("n")
                .validate()
                .unwrap();
        }
        assert!(Config::preset("moon").is_none());
    }

    #[test]
    fn lan_matches_memberlist() {
        let c = Config::lan();
        assert_eq!(c.probe_interval, Duration::from_secs(1));
        assert_eq!(c.probe_timeout, Duration::from_millis(500));
        assert_eq!(c.indirect_checks, 3);
        assert_eq!(c.suspicion_mult, 4);
        assert_eq!(c.gossip_interval, Duration::from_millis(200));
        assert_eq!(c.gossip_nodes, 3);
    }

    #[test]
    fn each_bad_field_is_named() {
        let ok = Config::lan().with_name("n");
        type Breaker = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(&str, Breaker)> = vec![
            ("name", Box::new(|c| c.name.clear())),
            ("name", Box::new(|c| c.name = "x".repeat(256))),
            ("cluster_name", Box::new(|c| c.cluster_name.clear())),
            ("meta", Box::new(|c| c.meta = vec![0; 513])),
            ("max_datagram", Box::new(|c| c.max_datagram = 511)),
            ("max_datagram", Box::new(|c| c.max_datagram = 65_508)),
            (
                "probe_interval",
                Box::new(|c| c.probe_interval = Duration::ZERO),
            ),
            (
                "probe_timeout",
                Box::new(|c| c.probe_timeout = c.probe_interval),
            ),
            (
                "probe_timeout",
                Box::new(|c| c.probe_timeout = Duration::ZERO),
            ),
            ("indirect_checks", Box::new(|c| c.indirect_checks = 17)),
            ("suspicion_mult", Box::new(|c| c.suspicion_mult = 0)),
            (
                "suspicion_max_timeout_mult",
                Box::new(|c| c.suspicion_max_timeout_mult = 0),
            ),
            ("retransmit_mult", Box::new(|c| c.retransmit_mult = 0)),
            (
                "gossip_interval",
                Box::new(|c| c.gossip_interval = Duration::ZERO),
            ),
            ("gossip_nodes", Box::new(|c| c.gossip_nodes = 0)),
            (
                "awareness_max_multiplier",
                Box::new(|c| c.awareness_max_multiplier = 0),
            ),
            ("sync_buckets", Box::new(|c| c.sync_buckets = 3)),
            ("sync_buckets", Box::new(|c| c.sync_buckets = 128)),
            (
                "sync_interval",
                Box::new(|c| c.sync_interval = Duration::ZERO),
            ),
            (
                "reconnect_interval",
                Box::new(|c| c.reconnect_interval = Duration::ZERO),
            ),
            (
                "join_retry_interval",
                Box::new(|c| c.join_retry_interval = Duration::ZERO),
            ),
            ("max_members", Box::new(|c| c.max_members = 1)),
            (
                "max_introductions_per_datagram",
                Box::new(|c| c.max_introductions_per_datagram = 0),
            ),
            (
                "max_queued_broadcasts",
                Box::new(|c| c.max_queued_broadcasts = 0),
            ),
            ("max_key_len", Box::new(|c| c.max_key_len = 0)),
            ("max_key_len", Box::new(|c| c.max_key_len = 256)),
            ("max_value_len", Box::new(|c| c.max_value_len = 1400)),
            ("max_keys_per_node", Box::new(|c| c.max_keys_per_node = 0)),
            ("kv_round_budget", Box::new(|c| c.kv_round_budget = 1399)),
            ("kv_push_rate", Box::new(|c| c.kv_push_rate = 0)),
            ("phi_threshold", Box::new(|c| c.phi_threshold = f64::NAN)),
            ("phi_threshold", Box::new(|c| c.phi_threshold = 0.0)),
            ("phi_window", Box::new(|c| c.phi_window = 1)),
            (
                "phi_min_std_dev",
                Box::new(|c| c.phi_min_std_dev = Duration::ZERO),
            ),
            (
                "replay_window",
                Box::new(|c| c.replay_window = Duration::ZERO),
            ),
            (
                "replay_window",
                Box::new(|c| c.replay_window = c.dead_retention),
            ),
            ("max_event_name_len", Box::new(|c| c.max_event_name_len = 0)),
            (
                "max_event_name_len",
                Box::new(|c| c.max_event_name_len = 256),
            ),
            (
                "max_event_payload",
                Box::new(|c| c.max_event_payload = 1300),
            ),
            (
                "max_event_duration",
                Box::new(|c| c.max_event_duration = Duration::ZERO),
            ),
            ("max_active_events", Box::new(|c| c.max_active_events = 0)),
            (
                "max_pending_queries",
                Box::new(|c| c.max_pending_queries = 0),
            ),
            ("max_elections", Box::new(|c| c.max_elections = 0)),
            (
                "max_votes_per_election",
                Box::new(|c| c.max_votes_per_election = 0),
            ),
            ("bus_push_fanout", Box::new(|c| c.bus_push_fanout = 17)),
            ("bus_round_budget", Box::new(|c| c.bus_round_budget = 1399)),
        ];
        for (field, break_it) in cases {
            let mut c = ok.clone();
            break_it(&mut c);
            let err = c.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.to_string().contains(field));
        }
    }
}
