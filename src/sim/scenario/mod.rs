//! The standard scenarios of `DESIGN.md` §5, shared by the `vinery sim`
//! command, the integration tests and the benches.
//!
//! Each scenario builds a fresh [`Sim`] of [`ScenarioConfig::nodes`] nodes
//! that all join through node 0 at t=0, drives it, and returns a [`Report`]
//! of named figures. All times in figures are virtual seconds; only
//! [`Report::wall_s`] is wall-clock time.
//!
//! | scenario | what happens | main figures |
//! |----------|--------------|--------------|
//! | `join` | N nodes join through node 0 at t=0 | `converge_s` |
//! | `fail` | after convergence, crash K random nodes one after the other | `first_suspect_s`, `first_dead_s`, `all_dead_s` |
//! | `loss` | random loss p for a while | `false_dead`, `false_suspect`, `suspect_events` |
//! | `load` | steady state | `bytes_per_node_s`, `packets_per_node_s` |
//! | `part` | 50/50 partition, then heal | `heal_s` |
//! | `pause` | one node stalls for less than the suspicion timeout | `declared_dead_by`, `recovered_s` |
//! | `kv` | at steady state, random nodes write a key one after the other | `p99_s`, `all_s`, `write_bytes_per_node` |
//! | `churn` | a share of the nodes restart every minute; nodes write and delete keys | `stale_members`, `resurrected_keys`, `missing_keys` |
//! | `slow` | some nodes handle everything late (CPU-starved); a few healthy nodes crash | `false_dead`, `false_suspect`, `detect_s` |
//!
//! [`Variant`] switches Lifeguard and the phi veto off, for the ablation
//! (`swim` / `lifeguard` / `full`).
//!
//! Every report also carries `virtual_s` (virtual time simulated),
//! `packets` (datagrams sent), `dropped` (datagrams the network dropped)
//! and `timer_spins` (see [`SimStats::timer_spins`](super::SimStats)).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{EventKind, LoggedEvent, NetworkConfig, NodeId, Sim};
use crate::{suspicion_timeout, Config, MemberState, Time};

mod churn;
mod kv;
mod slow;

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

/// How often convergence and similar conditions are checked.
pub const CHECK_STEP: Duration = Duration::from_millis(100);

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
    /// late (see [`SlowConfig`](super::SlowConfig)) while a few healthy
    /// nodes crash; healthy nodes declared Dead, and detection times.
    Slow,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 9] = [
        Scenario::Join,
        Scenario::Fail,
        Scenario::Loss,
        Scenario::Load,
        Scenario::Part,
        Scenario::Pause,
        Scenario::Kv,
        Scenario::Churn,
        Scenario::Slow,
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
            Scenario::Churn => Some(Duration::from_secs(300)),
            Scenario::Load | Scenario::Part => Some(Duration::from_secs(60)),
            Scenario::Join | Scenario::Fail | Scenario::Pause | Scenario::Kv => None,
        }
    }
}

named_enum!(Scenario, "scenario");

/// Which failure-detector extensions the nodes run: the ablation of
/// `DESIGN.md` §5 (`slow`: false Deads with and without Lifeguard and phi).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Variant {
    /// Plain SWIM: [`Config::lifeguard`] and [`Config::phi`] off.
    Swim,
    /// SWIM with Lifeguard, without the phi veto.
    Lifeguard,
    /// Lifeguard and the phi veto: the shipped configuration.
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

    /// Sets [`Config::lifeguard`] and [`Config::phi`] for this variant.
    pub fn apply(self, config: &mut Config) {
        config.lifeguard = self != Variant::Swim;
        config.phi = self == Variant::Full;
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
    /// per input ([`SlowConfig::around`](super::SlowConfig::around)).
    /// Default 0.5 s to 3 s.
    pub slow_delay: (Duration, Duration),
    /// The network. Default: the profile's ([`Profile::network`]).
    pub network: NetworkConfig,
    /// Upper bound on the wait for the initial convergence. Default 120 s.
    pub join_timeout: Duration,
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
            network: Profile::Lan.network(),
            join_timeout: Duration::from_secs(120),
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
    fn phase_length(&self) -> Duration {
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
        if !(0.0..1.0).contains(&self.churn) {
            return Err(format!("churn must be in 0.0..1.0, got {}", self.churn));
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

/// A value in a report.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A measurement.
    Float(f64),
    /// A count.
    Int(u64),
    /// One measurement per repetition (e.g. per crash).
    Floats(Vec<f64>),
    /// Not measured (the condition never held, or the scenario stopped
    /// early).
    Missing,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Float(x) => write!(f, "{}", fmt_float(*x)),
            Value::Int(n) => write!(f, "{n}"),
            Value::Floats(xs) => {
                f.write_str("[")?;
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(&fmt_float(*x))?;
                }
                f.write_str("]")
            }
            Value::Missing => f.write_str("-"),
        }
    }
}

/// The mean, or [`Value::Missing`] with no sample.
fn mean(xs: &[f64]) -> Value {
    if xs.is_empty() {
        Value::Missing
    } else {
        Value::Float(xs.iter().sum::<f64>() / xs.len() as f64)
    }
}

/// The maximum, or [`Value::Missing`] with no sample.
fn max(xs: &[f64]) -> Value {
    xs.iter()
        .copied()
        .reduce(f64::max)
        .map_or(Value::Missing, Value::Float)
}

fn fmt_float(x: f64) -> String {
    if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// One named figure of a report.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// snake_case name, the JSON key (`converge_s`, …).
    pub name: &'static str,
    /// The value.
    pub value: Value,
    /// Unit, for tables (`s` for virtual seconds, `B/s`, …; empty for
    /// counts).
    pub unit: &'static str,
    /// One line saying what it is.
    pub help: &'static str,
}

/// What a scenario measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Which scenario ran.
    pub scenario: Scenario,
    /// Cluster size.
    pub nodes: usize,
    /// The seed (run again with it to get the same figures).
    pub seed: u64,
    /// The profile used.
    pub profile: Profile,
    /// The failure-detector variant used.
    pub variant: Variant,
    /// Wall-clock seconds the run took.
    pub wall_s: f64,
    /// Why the scenario could not finish (e.g. the cluster never
    /// converged); the figures measured until then are still there.
    pub failure: Option<String>,
    /// The figures, in a stable order.
    pub figures: Vec<Figure>,
    /// The simulation's [`Sim::trace_hash`] at the end.
    pub trace_hash: u64,
}

impl Report {
    /// Whether the scenario ran to the end.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    /// The figure named `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.value)
    }

    /// The figure named `name` as a number (a float or a count), if it was
    /// measured.
    pub fn number(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            Value::Float(x) => Some(*x),
            Value::Int(n) => Some(*n as f64),
            Value::Floats(_) | Value::Missing => None,
        }
    }
}

/// Where a running scenario is, for progress displays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// The scenario running.
    pub scenario: Scenario,
    /// What it is doing (`converging`, `settling`, `measuring`, …).
    pub phase: &'static str,
    /// Virtual time reached.
    pub now: Time,
    /// How far the phase is, `0.0..=1.0` (for a wait, the share of its
    /// deadline used).
    pub fraction: f64,
}

/// Runs one scenario. `progress` is called often (every check step of
/// virtual time); throttle the display on the other side.
///
/// # Panics
///
/// If [`ScenarioConfig::validate`] fails.
pub fn run(cfg: &ScenarioConfig, progress: &mut dyn FnMut(Progress)) -> Report {
    if let Err(e) = cfg.validate() {
        panic!("invalid scenario config: {e}");
    }
    let started = Instant::now();
    let mut run = Run::new(cfg, progress);
    let outcome = match cfg.scenario {
        Scenario::Join => run.join(),
        Scenario::Fail => run.fail(),
        Scenario::Loss => run.loss(),
        Scenario::Load => run.load(),
        Scenario::Part => run.part(),
        Scenario::Pause => run.pause(),
        Scenario::Kv => run.kv(),
        Scenario::Churn => run.churn(),
        Scenario::Slow => run.slow(),
    };
    let s = run.sim.stats().clone();
    run.fig(
        "virtual_s",
        Value::Float(run.sim.now().as_secs_f64()),
        "s",
        "virtual time simulated",
    );
    run.int("packets", s.packets_sent, "", "datagrams sent, all nodes");
    run.int(
        "dropped",
        s.dropped_loss + s.dropped_partition + s.dropped_crashed + s.dropped_unroutable,
        "",
        "datagrams the network dropped (loss, partition, crashed receiver)",
    );
    run.int(
        "peak_in_flight_bytes",
        s.peak_in_flight_bytes,
        "B",
        "most datagram bytes in flight at once (the simulator's own memory)",
    );
    run.int(
        "timer_spins",
        s.timer_spins,
        "",
        "deadlines still due right after the timers ran (should be 0)",
    );
    Report {
        scenario: cfg.scenario,
        nodes: cfg.nodes,
        seed: cfg.seed,
        profile: cfg.profile,
        variant: cfg.variant,
        wall_s: started.elapsed().as_secs_f64(),
        failure: outcome.err(),
        trace_hash: run.sim.trace_hash(),
        figures: run.figures,
    }
}

/// False alarms counted from the event log (suspicions and deaths of nodes
/// that were up).
struct Alarms {
    suspected: Vec<bool>,
    failed: Vec<bool>,
    suspect_events: u64,
    dead_events: u64,
    refutations_before: u64,
}

impl Alarms {
    /// Counts the logged suspicions and deaths except those about nodes
    /// for which `really_down` holds (crashed by the scenario).
    fn count(&mut self, log: Vec<LoggedEvent>, really_down: impl Fn(NodeId) -> bool) {
        for e in log {
            let Some(m) = e.member else { continue };
            if really_down(m) {
                continue;
            }
            if e.kind == EventKind::Suspect {
                self.suspect_events += 1;
                self.suspected[m.index()] = true;
            } else {
                self.dead_events += 1;
                self.failed[m.index()] = true;
            }
        }
    }

    /// Whether `n` was ever declared Dead.
    fn declared_dead(&self, n: NodeId) -> bool {
        self.failed[n.index()]
    }

    /// Whether `n` was ever suspected.
    fn suspected(&self, n: NodeId) -> bool {
        self.suspected[n.index()]
    }
}

/// A scenario being run: the sim, the figures so far, the progress sink.
struct Run<'a> {
    cfg: &'a ScenarioConfig,
    sim: Sim,
    rng: SmallRng,
    nodes: Vec<NodeId>,
    figures: Vec<Figure>,
    progress: &'a mut dyn FnMut(Progress),
}

type Outcome = Result<(), String>;

impl<'a> Run<'a> {
    fn new(cfg: &'a ScenarioConfig, progress: &'a mut dyn FnMut(Progress)) -> Run<'a> {
        let mut sim = Sim::new(cfg.seed, cfg.network);
        let nodes = sim.add_nodes(cfg.nodes, &cfg.node_config());
        Run {
            cfg,
            sim,
            rng: SmallRng::seed_from_u64(super::trace::mix(cfg.seed ^ 0x5343_454e_4152_494f)),
            nodes,
            figures: Vec::new(),
            progress,
        }
    }

    fn fig(&mut self, name: &'static str, value: Value, unit: &'static str, help: &'static str) {
        self.figures.push(Figure {
            name,
            value,
            unit,
            help,
        });
    }

    fn secs(&mut self, name: &'static str, d: Option<Duration>, help: &'static str) {
        let v = d.map_or(Value::Missing, |d| Value::Float(d.as_secs_f64()));
        self.fig(name, v, "s", help);
    }

    fn int(&mut self, name: &'static str, n: u64, unit: &'static str, help: &'static str) {
        self.fig(name, Value::Int(n), unit, help);
    }

    fn report(&mut self, phase: &'static str, fraction: f64) {
        let p = Progress {
            scenario: self.cfg.scenario,
            phase,
            now: self.sim.now(),
            fraction: fraction.clamp(0.0, 1.0),
        };
        (self.progress)(p);
    }

    /// Waits (checking every [`CHECK_STEP`]) until `pred` holds; returns
    /// how long it took.
    fn wait(
        &mut self,
        phase: &'static str,
        timeout: Duration,
        mut pred: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let start = self.sim.now();
        let progress = &mut *self.progress;
        let scenario = self.cfg.scenario;
        let at = self.sim.wait_until(CHECK_STEP, timeout, |sim| {
            let done = pred(sim);
            progress(Progress {
                scenario,
                phase,
                now: sim.now(),
                fraction: if done {
                    1.0
                } else {
                    (sim.now() - start).as_secs_f64() / timeout.as_secs_f64()
                },
            });
            done
        });
        at.map(|t| t - start)
    }

    /// Runs for `d`, reporting progress every second of virtual time and
    /// calling `each` after every step.
    fn run_phase(&mut self, phase: &'static str, d: Duration, each: impl FnMut(&mut Sim)) {
        self.run_steps(phase, d, Duration::from_secs(1), each);
    }

    /// Runs for `d` in steps of `step`, reporting progress and calling
    /// `each` after every step.
    fn run_steps(
        &mut self,
        phase: &'static str,
        d: Duration,
        step: Duration,
        mut each: impl FnMut(&mut Sim),
    ) {
        let start = self.sim.now();
        let end = start + d;
        let step = step.min(d);
        while self.sim.now() < end {
            let next = (self.sim.now() + step).min(end);
            self.sim.run_until(next);
            each(&mut self.sim);
            let f = (self.sim.now() - start).as_secs_f64() / d.as_secs_f64();
            self.report(phase, f);
        }
    }

    /// Every node joins through node 0 at t=0; waits until every node lists
    /// all N as live. Records `converge_s`.
    fn converge(&mut self) -> Outcome {
        let seed = self.nodes[0];
        for i in 1..self.nodes.len() {
            self.sim.join(self.nodes[i], &[seed]);
        }
        let took = self.wait("converging", self.cfg.join_timeout, Sim::full_view);
        self.secs(
            "converge_s",
            took,
            "join: until every node lists all N as live",
        );
        match took {
            Some(_) => Ok(()),
            None => Err(format!(
                "not converged after {:?} of virtual time: the smallest view is {} of {} live",
                self.cfg.join_timeout,
                self.sim.min_live_view().unwrap_or(0),
                self.cfg.nodes
            )),
        }
    }

    /// Waits (at most 60 s) until no node has anything left to gossip.
    /// Records `settle_s`; not settling is not a failure.
    fn settle(&mut self) {
        let took = self.wait("settling", Duration::from_secs(60), |s| {
            s.pending_broadcasts() == 0
        });
        self.secs(
            "settle_s",
            took,
            "after convergence, until every broadcast queue is empty",
        );
    }

    fn random_victim(&mut self) -> NodeId {
        self.pick(|_| true)
    }

    /// A random running node other than node 0 (the seed) for which `ok`
    /// holds.
    ///
    /// # Panics
    ///
    /// If there is none (the configs are validated so that there is).
    fn pick(&mut self, ok: impl Fn(NodeId) -> bool) -> NodeId {
        let candidates: Vec<NodeId> = self
            .sim
            .running()
            .filter(|&n| n != self.nodes[0] && ok(n))
            .collect();
        candidates[self.rng.random_range(0..candidates.len())]
    }

    /// Starts counting false alarms: logs suspicions and deaths from now
    /// on. Returns the refutations so far, for [`Run::alarm_figures`].
    fn watch_alarms(&mut self) -> Alarms {
        self.sim
            .log_events(&[EventKind::Suspect, EventKind::Failed]);
        self.sim.take_event_log();
        Alarms {
            suspected: vec![false; self.sim.len()],
            failed: vec![false; self.sim.len()],
            suspect_events: 0,
            dead_events: 0,
            refutations_before: self.total(|s| s.refutations),
        }
    }

    /// Stops logging and records what `alarms` counted: `false_dead`,
    /// `false_suspect`, `suspect_events`, `dead_events`, `refutations`.
    fn alarm_figures(&mut self, alarms: &Alarms) {
        self.sim.log_events(&[]);
        let count = |v: &[bool]| v.iter().filter(|&&b| b).count() as u64;
        self.int(
            "false_dead",
            count(&alarms.failed),
            "",
            "healthy nodes ever declared Dead by anyone",
        );
        self.int(
            "false_suspect",
            count(&alarms.suspected),
            "",
            "healthy nodes ever suspected by anyone",
        );
        self.int(
            "suspect_events",
            alarms.suspect_events,
            "",
            "MemberSuspect events about healthy nodes, all nodes",
        );
        self.int(
            "dead_events",
            alarms.dead_events,
            "",
            "MemberFailed events about healthy nodes, all nodes",
        );
        let refutations = self.total(|s| s.refutations) - alarms.refutations_before;
        self.int(
            "refutations",
            refutations,
            "",
            "suspicions refuted by their subject",
        );
    }

    /// After a disturbance ends (named in the error), waits up to 120 s
    /// until every node lists all running nodes again; records
    /// `reconverge_s`.
    fn reconverge(&mut self, disturbance: &str) -> Outcome {
        let took = self.wait("reconverging", Duration::from_secs(120), Sim::full_view);
        self.secs(
            "reconverge_s",
            took,
            "after the disturbance ends, until every node lists all running nodes again",
        );
        match took {
            Some(_) => Ok(()),
            None => Err(format!(
                "the cluster did not list all running nodes again within 120 s after {disturbance} \
                 (smallest view {} of {})",
                self.sim.min_live_view().unwrap_or(0),
                self.sim.running_count()
            )),
        }
    }

    fn suspicion_figure(&mut self) -> Duration {
        let d = self.cfg.suspicion_timeout();
        self.secs(
            "suspicion_timeout_s",
            Some(d),
            "minimum suspicion timeout: mult * max(1, log10 N) * probe interval",
        );
        d
    }

    fn join(&mut self) -> Outcome {
        self.converge()?;
        let per_node = self.sim.stats().bytes_sent as f64 / self.cfg.nodes as f64;
        self.fig(
            "join_bytes_per_node",
            Value::Float(per_node),
            "B",
            "bytes sent per node until converged",
        );
        Ok(())
    }

    fn fail(&mut self) -> Outcome {
        self.suspicion_figure();
        let interval = self.cfg.node_config().probe_interval;
        self.fig(
            "theory_first_detect_s",
            Value::Float(
                interval.as_secs_f64() * std::f64::consts::E / (std::f64::consts::E - 1.0),
            ),
            "s",
            "SWIM's expected first detection: e/(e-1) probe intervals",
        );
        self.converge()?;
        self.settle();
        let timeout = self.cfg.max_suspicion_timeout() + Duration::from_secs(60);
        self.sim
            .log_events(&[EventKind::Suspect, EventKind::Failed]);
        let (mut suspect, mut dead, mut all_dead) = (Vec::new(), Vec::new(), Vec::new());
        let mut failure = None;
        for _ in 0..self.cfg.crashes {
            let victim = self.random_victim();
            self.sim.take_event_log();
            let t0 = self.sim.now();
            self.sim.crash(victim);
            let took = self.wait("detecting", timeout, |s| {
                s.everyone_sees(victim, MemberState::Dead)
            });
            let first = |kind: EventKind, log: &[super::LoggedEvent]| {
                log.iter()
                    .filter(|e| e.kind == kind && e.member == Some(victim))
                    .map(|e| (e.time - t0).as_secs_f64())
                    .reduce(f64::min)
            };
            let log = self.sim.take_event_log();
            let (s, d) = (
                first(EventKind::Suspect, &log),
                first(EventKind::Failed, &log),
            );
            suspect.extend(s);
            dead.extend(d);
            match took {
                Some(t) => all_dead.push(t.as_secs_f64()),
                None => {
                    failure = Some(format!(
                        "{} ({}) crashed at {} was not Dead everywhere {:?} later",
                        self.sim.name(victim),
                        victim,
                        t0,
                        timeout
                    ));
                    break;
                }
            }
        }
        self.sim.log_events(&[]);
        self.int(
            "crashes",
            all_dead.len() as u64,
            "",
            "crashes fully detected",
        );
        self.fig(
            "first_suspect_s",
            mean(&suspect),
            "s",
            "mean, crash to the first suspicion anywhere",
        );
        self.fig(
            "first_dead_s",
            mean(&dead),
            "s",
            "mean, crash to the first Dead anywhere",
        );
        self.fig(
            "all_dead_s",
            mean(&all_dead),
            "s",
            "mean, crash until every node holds it Dead",
        );
        self.fig(
            "first_suspect_s_all",
            Value::Floats(suspect),
            "s",
            "per crash",
        );
        self.fig("first_dead_s_all", Value::Floats(dead), "s", "per crash");
        self.fig("all_dead_s_all", Value::Floats(all_dead), "s", "per crash");
        failure.map_or(Ok(()), Err)
    }

    fn loss(&mut self) -> Outcome {
        let d = self.cfg.phase_length();
        self.converge()?;
        self.settle();
        let mut alarms = self.watch_alarms();
        self.sim.set_loss(self.cfg.loss);
        self.run_phase("lossy", d, |sim| {
            alarms.count(sim.take_event_log(), |_| false)
        });
        self.sim.set_loss(self.cfg.network.loss);
        self.fig("loss", Value::Float(self.cfg.loss), "", "loss probability");
        self.secs("loss_s", Some(d), "time under loss");
        self.alarm_figures(&alarms);
        self.reconverge("the loss ended")
    }

    fn total(&self, f: impl Fn(&crate::Stats) -> u64) -> u64 {
        self.sim
            .running()
            .map(|n| f(self.sim.endpoint(n).stats()))
            .sum()
    }

    fn load(&mut self) -> Outcome {
        let d = self.cfg.phase_length();
        self.converge()?;
        self.settle();
        let snapshot = |sim: &Sim| -> Vec<(u64, u64)> {
            sim.nodes()
                .map(|n| {
                    let s = sim.endpoint(n).stats();
                    (s.bytes_out, s.packets_out)
                })
                .collect()
        };
        let before = snapshot(&self.sim);
        self.run_phase("measuring", d, |_| {});
        let after = snapshot(&self.sim);
        let secs = d.as_secs_f64();
        let bytes: Vec<f64> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| (a.0 - b.0) as f64 / secs)
            .collect();
        let packets: Vec<f64> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| (a.1 - b.1) as f64 / secs)
            .collect();
        self.secs("measure_s", Some(d), "time measured");
        self.fig(
            "bytes_per_node_s",
            mean(&bytes),
            "B/s",
            "mean bytes sent per node per second",
        );
        self.fig(
            "packets_per_node_s",
            mean(&packets),
            "pkt/s",
            "mean datagrams sent per node per second",
        );
        self.fig("bytes_per_node_s_max", max(&bytes), "B/s", "busiest node");
        self.fig(
            "packets_per_node_s_max",
            max(&packets),
            "pkt/s",
            "busiest node",
        );
        Ok(())
    }

    fn part(&mut self) -> Outcome {
        let d = self.cfg.phase_length();
        self.converge()?;
        self.settle();
        let half = self.nodes.len() / 2;
        let groups = [self.nodes[..half].to_vec(), self.nodes[half..].to_vec()];
        self.sim.partition(&groups);
        self.run_phase("partitioned", d, |_| {});
        let min_view = self.sim.min_live_view().unwrap_or(0);
        self.sim.heal();
        self.secs("partition_s", Some(d), "partition length");
        self.int(
            "min_live_at_heal",
            min_view as u64,
            "",
            "smallest live view when the partition healed",
        );
        let took = self.wait("healing", Duration::from_secs(600), Sim::full_view);
        self.secs(
            "heal_s",
            took,
            "after heal, until every node lists all N live",
        );
        match took {
            Some(_) => Ok(()),
            None => Err(format!(
                "not one view 600 s after the heal: the smallest view is {} of {}",
                self.sim.min_live_view().unwrap_or(0),
                self.cfg.nodes
            )),
        }
    }

    fn pause(&mut self) -> Outcome {
        let min = self.suspicion_figure();
        let d = self.cfg.duration.unwrap_or(min * 3 / 4);
        self.converge()?;
        self.settle();
        let victim = self.random_victim();
        self.sim
            .log_events(&[EventKind::Suspect, EventKind::Failed]);
        self.sim.take_event_log();
        self.sim.pause(victim, d);
        let max = self.cfg.max_suspicion_timeout();
        self.run_phase("paused", d, |_| {});
        let recovered = self.wait("recovering", max + Duration::from_secs(30), |s| {
            s.everyone_sees(victim, MemberState::Alive)
        });
        // Let any suspicion that was not refuted run out.
        self.run_phase("watching", max, |_| {});
        self.sim.log_events(&[]);
        let log = self.sim.take_event_log();
        let by = |kind: EventKind| {
            let mut who: Vec<NodeId> = log
                .iter()
                .filter(|e| e.kind == kind && e.member == Some(victim))
                .map(|e| e.node)
                .collect();
            who.sort();
            who.dedup();
            who.len() as u64
        };
        let (suspected_by, dead_by) = (by(EventKind::Suspect), by(EventKind::Failed));
        self.secs("pause_s", Some(d), "how long the node stalled");
        self.int(
            "suspected_by",
            suspected_by,
            "",
            "nodes that suspected the paused node",
        );
        self.int(
            "declared_dead_by",
            dead_by,
            "",
            "nodes that declared it Dead (should be 0)",
        );
        self.secs(
            "recovered_s",
            recovered,
            "after resuming, until every node holds it Alive",
        );
        Ok(())
    }
}
