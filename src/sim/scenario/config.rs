//! What to run: the [`Scenario`] names, the [`Profile`] and [`Variant`]
//! of the nodes, and the whole [`ScenarioConfig`] with its defaults and
//! checks.
//!
//! Kept apart from the harness so that the command line and the tests can
//! read and validate a configuration without knowing how a scenario runs.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::sim::NetworkConfig;
use crate::{suspicion_timeout, Config};

/// `Display` and `FromStr` for an enum of command-line words: each has
/// `ALL` and `name()`, and parsing lists the accepted words when it fails.
macro_rules! named_enum {
    ($ty:ty, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<$ty, String> {
                <$ty>::ALL
                    .into_iter()
                    .find(|x| x.name() == s)
                    .ok_or_else(|| {
                        let names: Vec<&str> = <$ty>::ALL.iter().map(|x| x.name()).collect();
                        format!(
                            "unknown {} {s:?} (expected one of {})",
                            $what,
                            names.join(", ")
                        )
                    })
            }
        }
    };
}

/// One of the standard scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// N nodes join through one seed at t=0; time until every node lists
    /// all N.
    Join,
    /// Crash nodes one at a time; time to first suspicion, first Dead, and
    /// until every node holds the victim as Dead.
    Fail,
    /// Random loss for a while; healthy nodes ever suspected or declared
    /// Dead.
    Loss,
    /// Steady state; bytes and packets per node per second.
    Load,
    /// 50/50 partition, then heal; time until one view again.
    Part,
    /// One node stalls for less than the suspicion timeout; it must never
    /// be declared Dead.
    Pause,
    /// At steady state, [`ScenarioConfig::writes`] random nodes set a key
    /// one after the other; time until 99% and 100% of the nodes hold it.
    Kv,
    /// A share ([`ScenarioConfig::churn`]) of the nodes restart every
    /// minute while nodes write and delete keys; members and keys seen
    /// wrongly at the end.
    Churn,
    /// A share ([`ScenarioConfig::slow`]) of the nodes handle everything
    /// late (see [`SlowConfig`](crate::sim::SlowConfig)) while a few healthy
    /// nodes crash; healthy nodes declared Dead, and detection times.
    Slow,
    /// A share ([`ScenarioConfig::writers`]) of the nodes write keys at
    /// [`ScenarioConfig::rate`] writes a second each; propagation lag,
    /// bytes against the information-theoretic floor, and the backlog of
    /// writes not yet everywhere.
    KvLoad,
    /// A share ([`ScenarioConfig::jitter`]) of the nodes get a mean
    /// [`ScenarioConfig::jitter_delay`] of extra delay on all their links;
    /// a healthy node crashes at half time. False alarms, cost, detection.
    Jitter,
    /// One node hears nobody but can send (the partial-fault figures of
    /// `jitter`).
    Deaf,
    /// One node is cut from half of the cluster, both ways.
    Half,
    /// One node's datagrams to half of the cluster are lost.
    Mute,
    /// One node loses 30% of its datagrams on all its links.
    LossyNode,
    /// One node's links go down and up every few seconds.
    Flap,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 16] = [
        Scenario::Join,
        Scenario::Fail,
        Scenario::Loss,
        Scenario::Load,
        Scenario::Part,
        Scenario::Pause,
        Scenario::Kv,
        Scenario::Churn,
        Scenario::Slow,
        Scenario::KvLoad,
        Scenario::Jitter,
        Scenario::Deaf,
        Scenario::Half,
        Scenario::Mute,
        Scenario::LossyNode,
        Scenario::Flap,
    ];

    /// Its lowercase name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Join => "join",
            Scenario::Fail => "fail",
            Scenario::Loss => "loss",
            Scenario::Load => "load",
            Scenario::Part => "part",
            Scenario::Pause => "pause",
            Scenario::Kv => "kv",
            Scenario::Churn => "churn",
            Scenario::Slow => "slow",
            Scenario::KvLoad => "kv-load",
            Scenario::Jitter => "jitter",
            Scenario::Deaf => "deaf",
            Scenario::Half => "half",
            Scenario::Mute => "mute",
            Scenario::LossyNode => "lossy-node",
            Scenario::Flap => "flap",
        }
    }

    /// The figures that sum the scenario up, for comparison tables (the
    /// `vinery sim --variant all` ablation).
    pub fn headline(self) -> &'static [&'static str] {
        match self {
            Scenario::Join => &["converge_s"],
            Scenario::Fail => &["first_suspect_s", "first_dead_s", "all_dead_s"],
            Scenario::Loss => &["false_dead", "false_suspect", "suspect_events"],
            Scenario::Load => &["bytes_per_node_s", "packets_per_node_s"],
            Scenario::Part => &["heal_s"],
            Scenario::Pause => &["suspected_by", "declared_dead_by", "recovered_s"],
            Scenario::Kv => &["p99_s", "all_s", "all_s_max"],
            Scenario::Churn => &["stale_members", "resurrected_keys", "missing_keys"],
            Scenario::Slow => &[
                "false_dead",
                "false_dead_slow",
                "false_suspect",
                "false_suspect_slow",
                "dead_events",
                "vetoes",
                "detect_s",
                "detect_s_max",
            ],
            Scenario::KvLoad => &[
                "lag_p50_s",
                "lag_p99_s",
                "lag_max_s",
                "floor_ratio",
                "backlog_max",
                "backlog_bounded",
            ],
            Scenario::Jitter
            | Scenario::Deaf
            | Scenario::Half
            | Scenario::Mute
            | Scenario::LossyNode
            | Scenario::Flap => &[
                "suspect_events",
                "suspect_events_faulty",
                "false_dead",
                "faulty_dead",
                "own_view_dead",
                "bytes_per_node_s",
                "all_dead_s",
            ],
        }
    }

    /// The length of its measured phase when [`ScenarioConfig::duration`]
    /// is `None`: `loss` and `slow` 600 s, `churn` 300 s (five rounds of
    /// restarts), `load` 60 s of measuring, `part` a 60 s partition;
    /// `pause` pauses for 3/4 of the suspicion timeout (computed at run
    /// time, so `None` here); `join`, `fail` and `kv` have no fixed phase.
    pub fn default_duration(self) -> Option<Duration> {
        match self {
            Scenario::Loss | Scenario::Slow => Some(Duration::from_secs(600)),
            Scenario::Churn
            | Scenario::Jitter
            | Scenario::Deaf
            | Scenario::Half
            | Scenario::Mute
            | Scenario::LossyNode
            | Scenario::Flap => Some(Duration::from_secs(300)),
            Scenario::Load | Scenario::Part | Scenario::KvLoad => Some(Duration::from_secs(60)),
            Scenario::Join | Scenario::Fail | Scenario::Pause | Scenario::Kv => None,
        }
    }
}

named_enum!(Scenario, "scenario");

/// Which failure-detector extensions the nodes run, for the ablation
/// (`vinery sim --variant all`: e.g. `slow`'s false Deads with and without
/// Lifeguard and phi).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Variant {
    /// Plain SWIM: [`Config::lifeguard`] and [`Config::phi`] off.
    Swim,
    /// SWIM with Lifeguard, without the phi veto.
    Lifeguard,
    /// Lifeguard, the phi veto and local confirmation of suspicions
    /// ([`Config::confirm_suspicion`]): the shipped configuration.
    #[default]
    Full,
}

impl Variant {
    /// Every variant, from plain SWIM to the full protocol.
    pub const ALL: [Variant; 3] = [Variant::Swim, Variant::Lifeguard, Variant::Full];

    /// Its lowercase name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Swim => "swim",
            Variant::Lifeguard => "lifeguard",
            Variant::Full => "full",
        }
    }

    /// Sets [`Config::lifeguard`], [`Config::phi`] and
    /// [`Config::confirm_suspicion`] for this variant.
    pub fn apply(self, config: &mut Config) {
        config.lifeguard = self != Variant::Swim;
        config.phi = self == Variant::Full;
        config.confirm_suspicion = self == Variant::Full;
    }
}

named_enum!(Variant, "variant");

/// A [`Config`] preset, with the network that goes with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// [`Config::lan`] on a LAN ([`NetworkConfig::lan`]).
    #[default]
    Lan,
    /// [`Config::wan`] on a WAN ([`NetworkConfig::wan`]).
    Wan,
    /// [`Config::local`] on a LAN.
    Local,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 3] = [Profile::Lan, Profile::Wan, Profile::Local];

    /// Its lowercase name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Lan => "lan",
            Profile::Wan => "wan",
            Profile::Local => "local",
        }
    }

    /// The endpoint configuration preset (unnamed).
    pub fn config(self) -> Config {
        Config::preset(self.name()).expect("every profile names a preset")
    }

    /// The network the preset is meant for.
    pub fn network(self) -> NetworkConfig {
        match self {
            Profile::Lan | Profile::Local => NetworkConfig::lan(),
            Profile::Wan => NetworkConfig::wan(),
        }
    }
}

named_enum!(Profile, "profile");

/// What to run. Build with [`ScenarioConfig::new`] and change fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioConfig {
    /// Which scenario.
    pub scenario: Scenario,
    /// Cluster size, at least 2 (`fail` needs one more node than crashes).
    pub nodes: usize,
    /// Seed of the whole run: network, endpoints and the scenario's own
    /// choices (which node to crash, …).
    pub seed: u64,
    /// Loss probability during the `loss` scenario's measured phase.
    /// Default 0.1.
    pub loss: f64,
    /// Length of the measured phase; `None` for the scenario's default
    /// ([`Scenario::default_duration`]). For `pause`, how long the node
    /// stalls.
    pub duration: Option<Duration>,
    /// Endpoint configuration preset.
    pub profile: Profile,
    /// Which failure-detector extensions run (Lifeguard, phi). Default
    /// [`Variant::Full`].
    pub variant: Variant,
    /// How many nodes `fail` crashes, one after the other (default 20: the
    /// time to first suspicion is roughly exponential, so its mean needs
    /// many samples), or `slow` crashes during its run (default 5, spread
    /// evenly).
    pub crashes: usize,
    /// How many keys `kv` writes, one after the other. Default 20.
    pub writes: usize,
    /// Share of the nodes `churn` restarts each minute (and, as many
    /// again, nodes that delete a key). Default 0.1.
    pub churn: f64,
    /// Share of the nodes `slow` makes slow. Default 0.1.
    pub slow: f64,
    /// Range of the lateness of `slow`'s slow nodes: each draws its mean
    /// lateness uniformly from it, and is then late by that ± half of it
    /// per input ([`SlowConfig::around`](crate::sim::SlowConfig::around)).
    /// Default 0.5 s to 3 s.
    pub slow_delay: (Duration, Duration),
    /// Share of the nodes `jitter` delays. Default 0.1.
    pub jitter: f64,
    /// Mean of the exponential extra one-way delay on every link of
    /// `jitter`'s delayed nodes. Default 250 ms.
    pub jitter_delay: Duration,
    /// The network. Default: the profile's ([`Profile::network`]).
    pub network: NetworkConfig,
    /// Upper bound on the wait for the initial convergence. Default 120 s.
    pub join_timeout: Duration,
    /// Writes per second of each `kv-load` writer. Default 1.
    pub rate: f64,
    /// Share of the nodes that write in `kv-load`, in `(0, 1]` (at least
    /// one node). Default 1: every node.
    pub writers: f64,
    /// Bytes of each `kv-load` value. Default 32.
    pub value_size: usize,
    /// Collect a [`Timeline`](crate::sim::Timeline) into
    /// [`Report::timeline`](super::Report::timeline), a sample (O(N²)) at
    /// most this often: at the scenario's own steps, so no finer than
    /// [`CHECK_STEP`](super::CHECK_STEP) while waiting and 1 s while
    /// running a phase. Reading does not change the run. Default `None`.
    pub timeline: Option<Duration>,
}

impl ScenarioConfig {
    /// `scenario` on `nodes` nodes with `seed`, LAN profile, and the
    /// defaults documented on each field.
    pub fn new(scenario: Scenario, nodes: usize, seed: u64) -> ScenarioConfig {
        ScenarioConfig {
            scenario,
            nodes,
            seed,
            loss: 0.1,
            duration: None,
            profile: Profile::Lan,
            variant: Variant::Full,
            crashes: if scenario == Scenario::Slow { 5 } else { 20 },
            writes: 20,
            churn: 0.1,
            slow: 0.1,
            slow_delay: (Duration::from_millis(500), Duration::from_secs(3)),
            jitter: 0.1,
            jitter_delay: Duration::from_millis(250),
            network: Profile::Lan.network(),
            join_timeout: Duration::from_secs(120),
            rate: 1.0,
            writers: 1.0,
            value_size: 32,
            timeline: None,
        }
    }

    /// This config with `profile` and its network.
    pub fn with_profile(mut self, profile: Profile) -> ScenarioConfig {
        self.profile = profile;
        self.network = profile.network();
        self
    }

    /// The configuration every node runs (unnamed; the simulator names
    /// them).
    pub fn node_config(&self) -> Config {
        let mut c = self.profile.config();
        self.variant.apply(&mut c);
        c
    }

    /// The longest suspicion timeout of this cluster: the minimum times
    /// [`Config::suspicion_max_timeout_mult`] with Lifeguard, the minimum
    /// itself without (plain SWIM's timeout is fixed).
    pub fn max_suspicion_timeout(&self) -> Duration {
        let c = self.node_config();
        let mult = if c.lifeguard {
            c.suspicion_max_timeout_mult
        } else {
            1
        };
        self.suspicion_timeout() * mult
    }

    /// How many nodes `slow` slows down: the share [`ScenarioConfig::slow`]
    /// of the cluster, rounded, and at least one when the share is not 0.
    pub fn slow_count(&self) -> usize {
        share(self.nodes, self.slow)
    }

    /// How many nodes write in `kv-load`: the share
    /// [`ScenarioConfig::writers`], rounded, at least one.
    pub fn writer_count(&self) -> usize {
        share(self.nodes, self.writers).min(self.nodes)
    }

    /// How many nodes `jitter` delays (rounded like
    /// [`ScenarioConfig::slow_count`]).
    pub fn jitter_count(&self) -> usize {
        share(self.nodes, self.jitter)
    }

    /// How many nodes `churn` restarts each minute (rounded like
    /// [`ScenarioConfig::slow_count`]).
    pub fn churn_count(&self) -> usize {
        share(self.nodes, self.churn)
    }

    /// The measured phase's length: [`ScenarioConfig::duration`], or the
    /// scenario's default.
    ///
    /// # Panics
    ///
    /// If neither is set (`join`, `fail`, `kv`, `pause` have no fixed
    /// phase).
    pub(super) fn phase_length(&self) -> Duration {
        self.duration
            .or(self.scenario.default_duration())
            .unwrap_or_else(|| panic!("{} has no default duration", self.scenario))
    }

    /// The minimum suspicion timeout of this cluster
    /// ([`suspicion_timeout`] with the profile's multiplier, `nodes` and
    /// probe interval).
    pub fn suspicion_timeout(&self) -> Duration {
        let c = self.node_config();
        suspicion_timeout(c.suspicion_mult, self.nodes, c.probe_interval)
    }

    /// Checks the numbers, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes < 2 {
            return Err(format!("nodes must be at least 2, got {}", self.nodes));
        }
        if self.nodes > 1 << 24 {
            return Err(format!("nodes must be at most 2^24, got {}", self.nodes));
        }
        if !(0.0..1.0).contains(&self.loss) {
            return Err(format!("loss must be in 0.0..1.0, got {}", self.loss));
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err("duration must be positive".into());
        }
        if self.scenario == Scenario::Fail {
            if self.crashes == 0 {
                return Err("crashes must be at least 1".into());
            }
            if self.crashes + 2 > self.nodes {
                return Err(format!(
                    "fail crashes {} of {} nodes: keep the seed and at least one other node up",
                    self.crashes, self.nodes
                ));
            }
        }
        if self.scenario == Scenario::Churn && self.churn_count() >= self.nodes {
            return Err(format!(
                "churn restarts {} of {} nodes a minute: keep one up",
                self.churn_count(),
                self.nodes
            ));
        }
        if self.scenario == Scenario::Kv && self.writes == 0 {
            return Err("writes must be at least 1".into());
        }
        if self.scenario == Scenario::KvLoad {
            if !(self.rate > 0.0 && self.rate <= 1e6) {
                return Err(format!(
                    "rate must be a positive number of writes per second (at most 1e6), got {}",
                    self.rate
                ));
            }
            if !(self.writers > 0.0 && self.writers <= 1.0) {
                return Err(format!("writers must be in (0, 1], got {}", self.writers));
            }
        }
        if !(0.0..1.0).contains(&self.churn) {
            return Err(format!("churn must be in 0.0..1.0, got {}", self.churn));
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(format!("jitter must be in 0.0..1.0, got {}", self.jitter));
        }
        if self.scenario == Scenario::Jitter && self.jitter_count() + 2 > self.nodes {
            return Err(format!(
                "jitter delays {} of {} nodes: keep the seed and one more healthy node",
                self.jitter_count(),
                self.nodes
            ));
        }
        if !(0.0..1.0).contains(&self.slow) {
            return Err(format!("slow must be in 0.0..1.0, got {}", self.slow));
        }
        let (low, high) = self.slow_delay;
        if low > high {
            return Err(format!(
                "slow delay range is empty: {low:?} is above {high:?}"
            ));
        }
        if self.scenario == Scenario::Slow && self.slow_count() + self.crashes + 2 > self.nodes {
            return Err(format!(
                "slow makes {} of {} nodes slow and crashes {}: keep the seed and one more \
                 healthy node up",
                self.slow_count(),
                self.nodes,
                self.crashes
            ));
        }
        for (what, p) in [
            ("network loss", self.network.loss),
            ("network duplicate", self.network.duplicate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{what} must be in 0.0..=1.0, got {p}"));
            }
        }
        let mut c = self.node_config();
        if self.scenario == Scenario::KvLoad && self.value_size > c.max_value_len {
            return Err(format!(
                "value size must be at most the profile's max_value_len {}, got {}",
                c.max_value_len, self.value_size
            ));
        }
        c.name = "n".into();
        c.validate().map_err(|e| e.to_string())
    }
}

/// `fraction` of `n`, rounded, but at least one when `fraction` is not 0.
fn share(n: usize, fraction: f64) -> usize {
    if fraction <= 0.0 {
        return 0;
    }
    ((n as f64 * fraction).round() as usize).max(1)
}
