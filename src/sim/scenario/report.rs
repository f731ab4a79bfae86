//! What a scenario measured: a [`Report`] of named [`Figure`]s, each a
//! [`Value`].
//!
//! Kept apart from the harness that fills it so that readers of reports
//! (the command line, the tests, the benches) depend on the data only.

use std::fmt;

use super::config::{Profile, Scenario, Variant};
use crate::sim::Timeline;

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
pub(crate) fn mean(xs: &[f64]) -> Value {
    if xs.is_empty() {
        Value::Missing
    } else {
        Value::Float(xs.iter().sum::<f64>() / xs.len() as f64)
    }
}

/// The maximum, or [`Value::Missing`] with no sample.
pub(crate) fn max(xs: &[f64]) -> Value {
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
    /// The simulation's [`Sim::trace_hash`](crate::sim::Sim::trace_hash) at the end.
    pub trace_hash: u64,
    /// Samples over time, if [`ScenarioConfig::timeline`](super::ScenarioConfig::timeline)
    /// asked for them.
    pub timeline: Option<Timeline>,
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
        number_of(&self.figures, name)
    }
}

/// The figure named `name` among `figures` as a number (a float or a
/// count), if it was measured.
pub(crate) fn number_of(figures: &[Figure], name: &str) -> Option<f64> {
    match &figures.iter().find(|f| f.name == name)?.value {
        Value::Float(x) => Some(*x),
        Value::Int(n) => Some(*n as f64),
        Value::Floats(_) | Value::Missing => None,
    }
}
