//! `vinery sim`: runs the standard scenarios of `vinery::sim::scenario` and
//! prints their figures as a table, or as one JSON object per line.

use std::hash::BuildHasher;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::{json, Value as Json};
use vinery::sim::scenario::{self, Profile, Progress, Report, Scenario, ScenarioConfig, Value};

/// Scenarios `--scenario all` runs, in order.
const ALL: [Scenario; 4] = [
    Scenario::Join,
    Scenario::Fail,
    Scenario::Loss,
    Scenario::Load,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ScenarioArg {
    /// join, fail, loss and load, one after the other
    All,
    /// N nodes join through one seed at t=0: time until every node lists all N
    Join,
    /// crash --crashes nodes one at a time: first suspicion, first Dead, all Dead
    Fail,
    /// random loss --loss for --duration (default 600 s): healthy nodes suspected / declared Dead
    Loss,
    /// steady state for --duration (default 60 s): bytes and packets per node per second
    Load,
    /// 50/50 partition for --duration (default 60 s), then heal: time to one view
    Part,
    /// one node stalls for --duration (default 3/4 of the suspicion timeout): false Deads
    Pause,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProfileArg {
    /// memberlist's LAN settings on a LAN (200 µs latency)
    Lan,
    /// memberlist's WAN settings on a WAN (40 ms latency)
    Wan,
    /// memberlist's local settings on a LAN
    Local,
}

/// Arguments of `vinery sim`.
#[derive(Debug, Args)]
#[command(after_help = "\
All times are virtual seconds except wall_s. The same --seed with the same \
arguments gives the same run.\n\n\
`--scenario all` runs join, fail, loss and load with their default durations \
(600 s of loss, 60 s of load); a --duration applies to both loss and load.\n\n\
Exit status: 0 when every scenario ran to the end, 1 when one could not (for \
example the cluster did not converge), 2 on bad arguments.")]
pub struct SimArgs {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = ScenarioArg::All)]
    scenario: ScenarioArg,
    /// Cluster size (at least 2).
    #[arg(long, default_value_t = 100, value_parser = parse_nodes)]
    nodes: usize,
    /// Loss probability of the loss scenario, in [0, 1).
    #[arg(long, default_value_t = 0.1, value_parser = parse_loss)]
    loss: f64,
    /// Length in virtual seconds of the measured phase (loss: time under
    /// loss; load: time measured; part: partition; pause: the stall).
    #[arg(long, value_parser = parse_secs)]
    duration: Option<f64>,
    /// Seed of the run (random when not given, and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Endpoint configuration preset and the network it is meant for.
    #[arg(long, value_enum, default_value_t = ProfileArg::Lan)]
    profile: ProfileArg,
    /// Nodes the fail scenario crashes, one after the other (the time to
    /// first suspicion is roughly exponential: the mean needs many crashes).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    crashes: u64,
    /// Turn Lifeguard off (plain SWIM), for comparison.
    #[arg(long)]
    no_lifeguard: bool,
    /// Print one JSON object per scenario per line instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_nodes(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if !(2..=1 << 24).contains(&n) {
        return Err(format!("must be between 2 and {}, got {n}", 1 << 24));
    }
    Ok(n)
}

fn parse_loss(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(0.0..1.0).contains(&p) {
        return Err(format!("must be a probability in [0, 1), got {p}"));
    }
    Ok(p)
}

fn parse_secs(s: &str) -> Result<f64, String> {
    let d: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(d > 0.0 && d <= 1e9) {
        return Err(format!("must be a positive number of seconds, got {s}"));
    }
    Ok(d)
}

fn random_seed() -> u64 {
    // No OS random source is linked in; RandomState is seeded from it.
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Runs `vinery sim`.
pub fn run(args: SimArgs) -> ExitCode {
    let seed = args.seed.unwrap_or_else(random_seed);
    let profile = match args.profile {
        ProfileArg::Lan => Profile::Lan,
        ProfileArg::Wan => Profile::Wan,
        ProfileArg::Local => Profile::Local,
    };
    let scenarios: Vec<Scenario> = match args.scenario {
        ScenarioArg::All => ALL.to_vec(),
        ScenarioArg::Join => vec![Scenario::Join],
        ScenarioArg::Fail => vec![Scenario::Fail],
        ScenarioArg::Loss => vec![Scenario::Loss],
        ScenarioArg::Load => vec![Scenario::Load],
        ScenarioArg::Part => vec![Scenario::Part],
        ScenarioArg::Pause => vec![Scenario::Pause],
    };
    let configs: Vec<ScenarioConfig> = scenarios
        .iter()
        .map(|&sc| {
            let mut c = ScenarioConfig::new(sc, args.nodes, seed).with_profile(profile);
            c.loss = args.loss;
            c.crashes = args.crashes as usize;
            c.lifeguard = !args.no_lifeguard;
            c.duration = args.duration.map(Duration::from_secs_f64);
            c
        })
        .collect();
    for c in &configs {
        if let Err(e) = c.validate() {
            eprintln!("error: {}: {e}", c.scenario);
            return ExitCode::from(2);
        }
    }
    eprintln!(
        "vinery sim: {} on {} nodes, profile {}, seed {seed} (repeat with --seed {seed})",
        scenarios
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", "),
        args.nodes,
        profile,
    );
    let mut failed = false;
    for c in &configs {
        let mut display = ProgressDisplay::new();
        let report = scenario::run(c, &mut |p| display.show(p));
        display.clear();
        failed |= !report.ok();
        let mut out = std::io::stdout().lock();
        let written = if args.json {
            writeln!(out, "{}", to_json(&report))
        } else {
            write_table(&mut out, &report)
        };
        if written.and_then(|()| out.flush()).is_err() {
            // stdout closed (e.g. piped into `head`): nothing more to say.
            return ExitCode::SUCCESS;
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Progress on stderr: one line rewritten in place on a terminal, an
/// occasional line otherwise.
struct ProgressDisplay {
    tty: bool,
    started: Instant,
    last: Option<Instant>,
    last_phase: &'static str,
    drawn: bool,
}

impl ProgressDisplay {
    fn new() -> ProgressDisplay {
        ProgressDisplay {
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
            last_phase: "",
            drawn: false,
        }
    }

    fn show(&mut self, p: Progress) {
        let now = Instant::now();
        let every = if self.tty {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(10)
        };
        let due = self.last.is_none_or(|t| now - t >= every);
        let new_phase = p.phase != self.last_phase;
        if !(due || (new_phase && !self.tty)) {
            return;
        }
        self.last = Some(now);
        self.last_phase = p.phase;
        let line = format!(
            "{}: {} t={:.1}s {:>3.0}%  ({:.1}s wall)",
            p.scenario,
            p.phase,
            p.now.as_secs_f64(),
            p.fraction * 100.0,
            self.started.elapsed().as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            self.drawn = true;
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn clear(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}

fn json_value(v: &Value) -> Json {
    let num = |x: f64| serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number);
    match v {
        Value::Float(x) => num(*x),
        Value::Int(n) => json!(n),
        Value::Floats(xs) => Json::Array(xs.iter().map(|&x| num(x)).collect()),
        Value::Missing => Json::Null,
    }
}

/// One JSON object, keys in a fixed order: the run's identity first, then
/// the figures as the scenario listed them.
fn to_json(r: &Report) -> String {
    let mut fields: Vec<(&str, Json)> = vec![
        ("scenario", json!(r.scenario.name())),
        ("nodes", json!(r.nodes)),
        ("seed", json!(r.seed)),
        ("profile", json!(r.profile.name())),
        ("wall_s", json_value(&Value::Float(r.wall_s))),
        ("ok", json!(r.ok())),
    ];
    if let Some(f) = &r.failure {
        fields.push(("error", json!(f)));
    }
    fields.push(("trace_hash", json!(format!("{:016x}", r.trace_hash))));
    for f in &r.figures {
        fields.push((f.name, json_value(&f.value)));
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Json::from(*k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn write_table(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "{} — {} nodes, profile {}, seed {}, {:.2} s wall",
        r.scenario, r.nodes, r.profile, r.seed, r.wall_s
    )?;
    if let Some(f) = &r.failure {
        writeln!(out, "  FAILED: {f}")?;
    }
    for f in &r.figures {
        let value = match f.unit {
            "" => f.value.to_string(),
            unit => format!("{} {unit}", f.value),
        };
        writeln!(out, "  {:<24} {:>16}   {}", f.name, value, f.help)?;
    }
    writeln!(out)
}
