//! Fault scripts: a scenario written as data, run by [`run`].
//!
//! A script is a text file (`.vsim`), one statement a line, `#` starting a
//! comment. The header sets up the cluster, the timeline says what happens
//! when:
//!
//! ```text
//! # A 50/50 partition for 60 s, then heal.
//! nodes 100               # cluster size (default 100)
//! profile lan             # lan | wan | local: the endpoint preset (default lan)
//! network lan             # lan | wan | ideal: the network (default: the profile's)
//! variant full            # swim | lifeguard | full (default full)
//! seed 1                  # default 1
//! at 10s partition [0%..50%] [50%..100%]
//! at 70s heal
//! at 130s end
//! report converge_s heal_s
//! ```
//!
//! Every node joins through node 0 at t=0. Times are virtual, from the
//! start of the run (`250ms`, `10s`, `1.5m`). Node sets are a share of the
//! cluster (`5%`), a count (`3`) or a range of node indices, by index or
//! by share (`[0..50]`, `[0%..50%]`, end excluded); shares scale with the
//! cluster, so a script written for 1000 nodes also runs on 30.
//!
//! | step | what it does |
//! |------|--------------|
//! | `partition RANGE RANGE…` | splits the network; nodes in no range form one more group |
//! | `heal` | removes the partition |
//! | `crash SET` | crashes nodes chosen at random among the running ones other than node 0 (or the range) |
//! | `restart SET` | replaces nodes (crashed or not, never node 0) by fresh ones that rejoin through node 0 |
//! | `jitter SHARE DELAY` | that share of the nodes get `DELAY` mean extra delay on all their links, both ways (`jitter 0%` removes it) |
//! | `loss P%` | network-wide loss (links under `jitter` keep theirs) |
//! | `write RATE keys/s for DURATION [size BYTES]` | nodes write keys at `RATE` writes a second in all, spread over the nodes, values of `BYTES` (default 32) |
//! | `end` | the run ends here (default: 60 s after the last step) |
//!
//! `at T STEP` runs the step once at `T`; `every T STEP` at `T`, `2T`, …
//! until the end. `report NAME…` lists the figures to print (default: all;
//! [`FIGURES`] lists them).
//!
//! Errors name the line and the word: `line 7: \`crash 5x\`: expected a
//! share like 5%, a count or a range like [0..10]`.
//!
//! # Example
//!
//! ```
//! use vinery::sim::script::{self, Script};
//!
//! let s: Script = "nodes 12\nat 5s crash 1\nat 20s end".parse().unwrap();
//! let report = script::run(&s, None, &mut |_, _| {}).unwrap();
//! assert!(report.ok());
//! assert!(report.number("detect_s").is_some());
//! ```

mod parse;
mod runner;

use std::fmt;
use std::time::Duration;

use super::scenario::{Profile, Variant};
use super::NetworkConfig;

pub use runner::{run, ScriptReport};

/// The figures a script run reports, in order.
pub const FIGURES: [&str; 17] = [
    "converge_s",
    "heal_s",
    "heal_s_max",
    "detect_s",
    "detect_s_max",
    "undetected",
    "false_dead",
    "false_suspect",
    "suspect_events",
    "bytes_per_node_s",
    "writes",
    "write_lag_p50_s",
    "write_lag_p99_s",
    "write_lag_max_s",
    "writes_unfinished",
    "writes_abandoned",
    "virtual_s",
];

/// A parsed script. Build one with [`str::parse`] (or fill the fields).
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    /// Cluster size.
    pub nodes: usize,
    /// Endpoint preset.
    pub profile: Profile,
    /// The network.
    pub network: NetworkConfig,
    /// Failure-detector variant.
    pub variant: Variant,
    /// Seed of the run.
    pub seed: u64,
    /// The timeline, in the order written.
    pub steps: Vec<Step>,
    /// When the run ends; `None`: 60 s after the last step.
    pub end: Option<Duration>,
    /// The figures to print; empty: all.
    pub report: Vec<String>,
}

impl Default for Script {
    /// 100 LAN nodes, variant full, seed 1, nothing happening.
    fn default() -> Script {
        Script {
            nodes: 100,
            profile: Profile::Lan,
            network: Profile::Lan.network(),
            variant: Variant::Full,
            seed: 1,
            steps: Vec::new(),
            end: None,
            report: Vec::new(),
        }
    }
}

impl Script {
    /// When the run ends: [`Script::end`], or 60 s after the last step
    /// (the last write's end for a write).
    pub fn end_time(&self) -> Duration {
        self.end.unwrap_or_else(|| {
            let last = self
                .steps
                .iter()
                .map(|s| match s.action {
                    Action::Write { length, .. } => s.at + length,
                    _ => s.at,
                })
                .max()
                .unwrap_or_default();
            last + Duration::from_secs(60)
        })
    }

    /// Checks the script against its cluster size (ranges within the
    /// nodes, at least two nodes), naming the line.
    pub fn check(&self) -> Result<(), ScriptError> {
        if self.nodes < 2 || self.nodes > 1 << 24 {
            return Err(ScriptError::new(
                0,
                "nodes",
                format!("the cluster needs 2 to 2^24 nodes, got {}", self.nodes),
            ));
        }
        for s in &self.steps {
            let ranges: Vec<&NodeRange> = match &s.action {
                Action::Partition(rs) => rs.iter().collect(),
                Action::Crash(NodeSet::Range(r)) | Action::Restart(NodeSet::Range(r)) => vec![r],
                _ => Vec::new(),
            };
            for r in ranges {
                let (a, b) = r.resolve(self.nodes);
                if a >= b || b > self.nodes {
                    return Err(ScriptError::new(
                        s.line,
                        &s.text,
                        format!(
                            "the range {r} is {a}..{b}, not a non-empty range of the {} nodes",
                            self.nodes
                        ),
                    ));
                }
            }
            if let Action::Crash(NodeSet::Count(k)) | Action::Restart(NodeSet::Count(k)) = s.action
            {
                if k >= self.nodes {
                    return Err(ScriptError::new(
                        s.line,
                        &s.text,
                        format!("{k} nodes of {}: keep node 0", self.nodes),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One timeline statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Its line in the script (1-based; 0 when built in code).
    pub line: usize,
    /// Its text, for error messages.
    pub text: String,
    /// When it (first) happens.
    pub at: Duration,
    /// `every`: it happens again every `at`.
    pub repeat: bool,
    /// What happens.
    pub action: Action,
}

/// What a step does. See the module docs.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Split the network into these groups.
    Partition(Vec<NodeRange>),
    /// Remove the partition.
    Heal,
    /// Crash these nodes.
    Crash(NodeSet),
    /// Restart these nodes.
    Restart(NodeSet),
    /// Give a share of the nodes a mean extra delay on all their links.
    Jitter {
        /// Share of the nodes, `0.0..=1.0`.
        share: f64,
        /// Mean extra delay (exponentially distributed).
        delay: Duration,
    },
    /// Network-wide loss probability.
    Loss(f64),
    /// Writes spread over all nodes.
    Write {
        /// Writes per second, in all.
        rate: f64,
        /// For how long.
        length: Duration,
        /// Bytes of each value.
        size: usize,
    },
}

/// Which nodes a crash or restart hits.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeSet {
    /// A share of the cluster, chosen at random.
    Share(f64),
    /// This many nodes, chosen at random.
    Count(usize),
    /// These nodes.
    Range(NodeRange),
}

/// One end of a [`NodeRange`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// A node index.
    Index(usize),
    /// A share of the cluster size, `0.0..=1.0`.
    Share(f64),
}

impl Bound {
    fn resolve(self, n: usize) -> usize {
        match self {
            Bound::Index(i) => i,
            Bound::Share(f) => (n as f64 * f).round() as usize,
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Index(i) => write!(f, "{i}"),
            Bound::Share(s) => write!(f, "{}%", s * 100.0),
        }
    }
}

/// Node indices `from..to` (end excluded).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeRange {
    /// First node.
    pub from: Bound,
    /// One past the last node.
    pub to: Bound,
}

impl NodeRange {
    /// The indices on a cluster of `n` nodes.
    pub fn resolve(&self, n: usize) -> (usize, usize) {
        (self.from.resolve(n), self.to.resolve(n))
    }
}

impl fmt::Display for NodeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}..{}]", self.from, self.to)
    }
}

/// A script that cannot be parsed or run, with the line and the words at
/// fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptError {
    /// 1-based line; 0 for the script as a whole.
    pub line: usize,
    /// The statement (or word) at fault.
    pub text: String,
    /// What is wrong.
    pub message: String,
}

impl ScriptError {
    fn new(line: usize, text: &str, message: String) -> ScriptError {
        ScriptError {
            line,
            text: text.to_owned(),
            message,
        }
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "`{}`: {}", self.text, self.message)
        } else {
            write!(f, "line {}: `{}`: {}", self.line, self.text, self.message)
        }
    }
}

impl std::error::Error for ScriptError {}
