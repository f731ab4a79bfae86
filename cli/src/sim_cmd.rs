//! `vinery sim`: runs the standard scenarios of `vinery::sim::scenario` and
//! prints their figures as a table, or as one JSON object per line.

use std::hash::BuildHasher;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use serde_json::{json, Value as Json};
use vinery::sim::scenario::{
    self, Figure, Profile, Progress, Report, Scenario, ScenarioConfig, Value, Variant,
};
use vinery::sim::script::{self, Script, ScriptReport};
use vinery::sim::Timeline;

use crate::plot;

use crate::client::parse_duration;

/// Scenarios `--scenario all` runs, in order.
const ALL: [Scenario; 7] = [
    Scenario::Join,
    Scenario::Fail,
    Scenario::Loss,
    Scenario::Load,
    Scenario::Kv,
    Scenario::Churn,
    Scenario::Slow,
];

/// `--scenario`: one of the library's scenarios, or `all` ([`ALL`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ScenarioArg(Option<Scenario>);

impl ScenarioArg {
    const VALUES: [ScenarioArg; Scenario::ALL.len() + 1] = {
        let mut v = [ScenarioArg(None); Scenario::ALL.len() + 1];
        let mut i = 0;
        while i < Scenario::ALL.len() {
            v[i + 1] = ScenarioArg(Some(Scenario::ALL[i]));
            i += 1;
        }
        v
    };
}

impl ValueEnum for ScenarioArg {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::VALUES
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let Some(scenario) = self.0 else {
            return Some(
                PossibleValue::new("all")
                    .help("join, fail, loss, load, kv, churn and slow, one after the other"),
            );
        };
        let help = match scenario {
            Scenario::Join => "N nodes join through one seed at t=0: time until every node lists all N",
            Scenario::Fail => "crash --crashes nodes one at a time: first suspicion, first Dead, all Dead",
            Scenario::Loss => "random loss --loss for --duration (default 600 s): healthy nodes suspected / declared Dead",
            Scenario::Load => "steady state for --duration (default 60 s): bytes and packets per node per second",
            Scenario::Part => "50/50 partition for --duration (default 60 s), then heal: time to one view",
            Scenario::Pause => "one node stalls for --duration (default 3/4 of the suspicion timeout): false Deads",
            Scenario::Kv => "--writes random nodes set a key one after the other: time until 99% / all nodes hold it",
            Scenario::Churn => "--churn of the nodes restart each minute for --duration (default 300 s) while keys are written and deleted: stale members, resurrected and missing keys",
            Scenario::Jitter => "10% of the nodes get 250 ms mean extra delay on all links for --duration (default 300 s), a healthy node crashes at half time: false alarms, bytes, detection",
            Scenario::Deaf => "one node hears nobody but can send (as jitter: default 300 s, a crash at half time)",
            Scenario::Half => "one node cut from half of the cluster both ways (as jitter)",
            Scenario::Mute => "one node's sends to half of the cluster are lost (as jitter)",
            Scenario::LossyNode => "one node with 30% loss on all its links (as jitter)",
            Scenario::Flap => "one node's links go down and up every 3 s (as jitter)",
            Scenario::Slow => "--slow of the nodes handle everything --slow-delay late for --duration (default 600 s) while --crashes (default 5) healthy nodes crash: false Deads, detection time",
            Scenario::KvLoad => "--writers of the nodes each write --rate keys/s of --value-size bytes for --duration (default 60 s): lag p50/p99/max, bytes against the floor, backlog",
        };
        Some(PossibleValue::new(scenario.name()).help(help))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum VariantArg {
    /// plain SWIM: Lifeguard and the phi veto off
    Swim,
    /// SWIM + Lifeguard, phi veto off
    Lifeguard,
    /// SWIM + Lifeguard + phi veto (the shipped configuration)
    Full,
    /// each of swim, lifeguard and full in turn, then a comparison table
    All,
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
`--scenario all` runs join, fail, loss, load, kv, churn and slow with their \
default durations (600 s of loss, 60 s of load, 300 s of churn, 600 s of \
slowness); a --duration applies to each of them.\n\n\
`--variant all` runs each scenario three times (swim, lifeguard, full) and \
prints a comparison table of its main figures after them (in JSON, one line \
per run, each with its `variant`).\n\n\
`--scenario kv-load --find-max-rate` searches the highest --rate at which \
the p99 write lag stays under --max-lag (default 1 s) with a bounded \
backlog: it doubles --rate until a run misses, then bisects three times, \
each run lasting --duration (default 20 s).\n\n\
`--script FILE` runs a fault script: a cluster and a timeline of \
partitions, crashes, restarts, jitter, loss and writes written as data \
(examples/scenarios/*.vsim and their README); --nodes, --seed, --profile \
and --variant override the script's.\n\n\
`--plot FILE.svg` draws the run over virtual time (one sample a second): \
the share of nodes seeing the membership right, suspect and dead members \
per view, bytes/s per node and the write backlog; with `--variant all` \
the variants are overlaid.\n\n\
Exit status: 0 when every scenario ran to the end, 1 when one could not (for \
example the cluster did not converge), 2 on bad arguments.")]
pub struct SimArgs {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = ScenarioArg(None))]
    scenario: ScenarioArg,
    /// Cluster size (at least 2; default 100, or the script's).
    #[arg(long, value_parser = parse_nodes)]
    nodes: Option<usize>,
    /// Loss probability of the loss scenario, in [0, 1).
    #[arg(long, default_value_t = 0.1, value_parser = parse_loss)]
    loss: f64,
    /// Length in virtual time of the measured phase (loss: time under
    /// loss; load: time measured; part: partition; pause: the stall;
    /// churn: time restarting; slow: time slowed), e.g. 600s, 10m, or a
    /// bare number of seconds.
    #[arg(long, value_parser = parse_positive_duration)]
    duration: Option<Duration>,
    /// Seed of the run (random when not given, and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Endpoint configuration preset and the network it is meant for
    /// (default lan, or the script's).
    #[arg(long, value_enum)]
    profile: Option<ProfileArg>,
    /// Nodes the fail scenario crashes one after the other (default 20: the
    /// time to first suspicion is roughly exponential, so the mean needs
    /// many crashes), or the slow scenario crashes during its run (default
    /// 5).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    crashes: Option<u64>,
    /// Keys the kv scenario writes, one after the other.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    writes: u64,
    /// Share of the nodes the churn scenario restarts each minute, in [0, 1).
    #[arg(long, default_value_t = 0.1, value_parser = parse_share)]
    churn: f64,
    /// Share of the nodes the slow scenario slows down, in [0, 1).
    #[arg(long, default_value_t = 0.1, value_parser = parse_share)]
    slow: f64,
    /// Range MIN..MAX of the slow nodes' lateness (e.g. 500ms..3s; bare
    /// numbers are seconds): each draws
    /// its mean lateness from it, then is late by that ± half of it for
    /// every datagram and timer.
    #[arg(long, default_value = "0.5..3", value_parser = parse_range)]
    slow_delay: (Duration, Duration),
    /// Failure-detector variant: Lifeguard and the phi veto switched off
    /// for comparison, or all three in turn (default full, or the
    /// script's).
    #[arg(long, value_enum)]
    variant: Option<VariantArg>,
    /// Same as `--variant swim` (plain SWIM), kept for older scripts.
    #[arg(long, conflicts_with = "variant")]
    no_lifeguard: bool,
    /// Writes per second of each kv-load writer (with --find-max-rate,
    /// where the search starts).
    #[arg(long, default_value_t = 1.0, value_parser = parse_rate)]
    rate: f64,
    /// Share of the nodes that write in kv-load, in (0, 1].
    #[arg(long, default_value_t = 1.0, value_parser = parse_writers)]
    writers: f64,
    /// Bytes of each kv-load value.
    #[arg(long, default_value_t = 32)]
    value_size: usize,
    /// kv-load only: search the highest --rate whose p99 lag stays under
    /// --max-lag with a bounded backlog (doubling from --rate, then
    /// bisecting), with runs of --duration (default 20 s here).
    #[arg(long)]
    find_max_rate: bool,
    /// The p99 lag bound of --find-max-rate (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    max_lag: Duration,
    /// Run a fault script (see examples/scenarios/README.md) instead of
    /// a standard scenario; --nodes, --seed, --profile and --variant
    /// override the script's.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["scenario", "find_max_rate"])]
    script: Option<PathBuf>,
    /// Draw the run over virtual time into an SVG file: the share of
    /// nodes seeing the membership right, suspect and dead members per
    /// view, bytes/s per node, and the write backlog if there are writes;
    /// `--variant all` overlays the variants. One scenario only.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Virtual time between two samples of --plot (each costs O(N²); no
    /// finer than 100ms).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    plot_every: Duration,
    /// Print one JSON object per scenario per line instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(r > 0.0 && r <= 1e6) {
        return Err(format!(
            "must be a positive number of writes per second, got {s}"
        ));
    }
    Ok(r)
}

fn parse_writers(s: &str) -> Result<f64, String> {
    let w: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(w > 0.0 && w <= 1.0) {
        return Err(format!("must be a share in (0, 1], got {s}"));
    }
    Ok(w)
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

fn parse_share(s: &str) -> Result<f64, String> {
    parse_loss(s).map_err(|_| format!("must be a share in [0, 1), got {s}"))
}

fn parse_range(s: &str) -> Result<(Duration, Duration), String> {
    let (low, high) = s
        .split_once("..")
        .ok_or_else(|| format!("expected MIN..MAX, e.g. 500ms..3s, got {s:?}"))?;
    let bounded = |x: &str| -> Result<Duration, String> {
        let d = parse_duration(x)?;
        if d > Duration::from_secs(1_000_000) {
            return Err(format!("{x:?} is over 1e6 seconds"));
        }
        Ok(d)
    };
    let (low, high) = (bounded(low)?, bounded(high)?);
    if low > high {
        return Err(format!("empty range {s:?}"));
    }
    Ok((low, high))
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() || d > Duration::from_secs(1_000_000_000) {
        return Err(format!("must be positive and at most 1e9 seconds, got {s}"));
    }
    Ok(d)
}

fn random_seed() -> u64 {
    // No OS random source is linked in; RandomState is seeded from it.
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Runs `vinery sim`.
pub fn run(args: SimArgs) -> ExitCode {
    if let Some(path) = &args.script {
        return run_script(&args, path);
    }
    let seed = args.seed.unwrap_or_else(random_seed);
    let profile = profile_of(args.profile).unwrap_or(Profile::Lan);
    let nodes = args.nodes.unwrap_or(100);
    let scenarios: Vec<Scenario> = match args.scenario.0 {
        None => ALL.to_vec(),
        Some(one) => vec![one],
    };
    if args.plot.is_some() && scenarios.len() > 1 {
        eprintln!("error: --plot draws one scenario: pick one with --scenario");
        return ExitCode::from(2);
    }
    let variants = variants_of(&args).unwrap_or(vec![Variant::Full]);
    let timeline = timeline_of(&args);
    let configs: Vec<ScenarioConfig> = scenarios
        .iter()
        .flat_map(|&sc| variants.iter().map(move |&v| (sc, v)))
        .map(|(sc, variant)| {
            let mut c = ScenarioConfig::new(sc, nodes, seed).with_profile(profile);
            c.loss = args.loss;
            if let Some(k) = args.crashes {
                c.crashes = k as usize;
            }
            c.writes = args.writes as usize;
            c.churn = args.churn;
            c.slow = args.slow;
            c.slow_delay = args.slow_delay;
            c.variant = variant;
            c.duration = args.duration;
            c.rate = args.rate;
            c.writers = args.writers;
            c.value_size = args.value_size;
            c.timeline = timeline;
            c
        })
        .collect();
    for c in &configs {
        if let Err(e) = c.validate() {
            eprintln!("error: {}: {e}", c.scenario);
            return ExitCode::from(2);
        }
    }
    if args.find_max_rate {
        return find_max_rate(&args, &configs);
    }
    let names = |xs: &mut dyn Iterator<Item = &'static str>| xs.collect::<Vec<_>>().join(", ");
    eprintln!(
        "vinery sim: {} on {} nodes, variant {}, profile {}, seed {seed} (repeat with --seed {seed})",
        names(&mut scenarios.iter().map(|s| s.name())),
        nodes,
        names(&mut variants.iter().map(|v| v.name())),
        profile,
    );
    let mut failed = false;
    for group in configs.chunks(variants.len()) {
        let mut reports = Vec::new();
        for c in group {
            let label = match variants.len() {
                1 => c.scenario.to_string(),
                _ => format!("{}/{}", c.scenario, c.variant),
            };
            let mut display = ProgressDisplay::new(label);
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
            reports.push(report);
        }
        if reports.len() > 1 && !args.json {
            let mut out = std::io::stdout().lock();
            if write_ablation(&mut out, &reports)
                .and_then(|()| out.flush())
                .is_err()
            {
                return ExitCode::SUCCESS;
            }
        }
        if let Some(path) = &args.plot {
            let r0 = &reports[0];
            let what = (r0.scenario.name(), r0.nodes, r0.profile, r0.seed);
            let runs = reports.iter().map(|r| (r.variant, r.timeline.as_ref()));
            if !draw(path, what, runs) {
                return ExitCode::from(1);
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Draws the timelines of `runs` (one per variant) of `what` (name,
/// nodes, profile, seed) into `path`, saying so on stderr; false if it
/// failed.
fn draw<'a>(
    path: &Path,
    what: (&str, usize, Profile, u64),
    runs: impl Iterator<Item = (Variant, Option<&'a Timeline>)>,
) -> bool {
    let (name, nodes, profile, seed) = what;
    let title = format!("{name} — {nodes} nodes, profile {profile}, seed {seed}");
    let series: Vec<(&str, &Timeline)> = runs.filter_map(|(v, t)| Some((v.name(), t?))).collect();
    match plot::draw(path, &title, &series) {
        Ok(()) => {
            eprintln!("vinery sim: plot written to {}", path.display());
            true
        }
        Err(e) => {
            eprintln!("error: --plot {}: {e}", path.display());
            false
        }
    }
}

/// The timeline's resolution, when --plot asks for one.
fn timeline_of(args: &SimArgs) -> Option<Duration> {
    args.plot.as_ref().map(|_| args.plot_every)
}

fn profile_of(arg: Option<ProfileArg>) -> Option<Profile> {
    Some(match arg? {
        ProfileArg::Lan => Profile::Lan,
        ProfileArg::Wan => Profile::Wan,
        ProfileArg::Local => Profile::Local,
    })
}

/// The variants asked for, if any.
fn variants_of(args: &SimArgs) -> Option<Vec<Variant>> {
    if args.no_lifeguard {
        return Some(vec![Variant::Swim]);
    }
    Some(match args.variant? {
        VariantArg::Swim => vec![Variant::Swim],
        VariantArg::Lifeguard => vec![Variant::Lifeguard],
        VariantArg::Full => vec![Variant::Full],
        VariantArg::All => Variant::ALL.to_vec(),
    })
}

/// Runs `--script FILE`, once per variant asked for (the script's own
/// otherwise).
fn run_script(args: &SimArgs, path: &Path) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --script {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let mut base: Script = match text.parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    if let Some(n) = args.nodes {
        base.nodes = n;
    }
    if let Some(seed) = args.seed {
        base.seed = seed;
    }
    if let Some(p) = profile_of(args.profile) {
        base.profile = p;
        base.network = p.network();
    }
    if let Err(e) = base.check() {
        eprintln!("error: {}: {e}", path.display());
        return ExitCode::from(2);
    }
    let variants = variants_of(args).unwrap_or(vec![base.variant]);
    let name = path
        .file_stem()
        .map_or_else(|| "script".into(), |s| s.to_string_lossy().into_owned());
    eprintln!(
        "vinery sim: script {} on {} nodes, profile {}, seed {} (repeat with --seed {})",
        path.display(),
        base.nodes,
        base.profile,
        base.seed,
        base.seed
    );
    let mut reports = Vec::new();
    let mut failed = false;
    for &variant in &variants {
        let mut s = base.clone();
        s.variant = variant;
        let mut display = ProgressDisplay::new(format!("{name}/{variant}"));
        let result = script::run(&s, timeline_of(args), &mut |now, fraction| {
            display.show_at("running", now, fraction);
        });
        display.clear();
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        failed |= !report.ok();
        let mut out = std::io::stdout().lock();
        let id = identity_of_script(&name, &s, &report);
        let written = if args.json {
            writeln!(
                out,
                "{}",
                json_line(
                    &id,
                    report.failure.as_deref(),
                    report.trace_hash,
                    &report.figures
                )
            )
        } else {
            let header = format!(
                "{name} — {} nodes, variant {variant}, profile {}, seed {}, {:.2} s wall",
                s.nodes, s.profile, s.seed, report.wall_s
            );
            write_figures(
                &mut out,
                &header,
                report.failure.as_deref(),
                &report.figures,
            )
        };
        if written.and_then(|()| out.flush()).is_err() {
            return ExitCode::SUCCESS;
        }
        reports.push((variant, report));
    }
    if let Some(plot_path) = &args.plot {
        let what = (name.as_str(), base.nodes, base.profile, base.seed);
        let runs = reports.iter().map(|(v, r)| (*v, r.timeline.as_ref()));
        if !draw(plot_path, what, runs) {
            return ExitCode::from(1);
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn identity_of_script(name: &str, s: &Script, r: &ScriptReport) -> Vec<(&'static str, Json)> {
    vec![
        ("script", json!(name)),
        ("nodes", json!(s.nodes)),
        ("seed", json!(s.seed)),
        ("profile", json!(s.profile.name())),
        ("variant", json!(s.variant.name())),
        ("wall_s", json_value(&Value::Float(r.wall_s))),
        ("ok", json!(r.ok())),
    ]
}

/// Runs `--find-max-rate`: the kv-load rate search, one table row per run.
fn find_max_rate(args: &SimArgs, configs: &[ScenarioConfig]) -> ExitCode {
    let [cfg] = configs else {
        eprintln!("error: --find-max-rate runs one scenario (kv-load) with one variant");
        return ExitCode::from(2);
    };
    if cfg.scenario != Scenario::KvLoad {
        eprintln!("error: --find-max-rate needs --scenario kv-load");
        return ExitCode::from(2);
    }
    let mut cfg = cfg.clone();
    cfg.duration = Some(cfg.duration.unwrap_or(Duration::from_secs(20)));
    eprintln!(
        "vinery sim: kv-load rate search on {} nodes, p99 lag bound {} s, runs of {:?}, seed {}",
        cfg.nodes,
        args.max_lag.as_secs_f64(),
        cfg.duration.unwrap_or_default(),
        cfg.seed
    );
    let mut display = ProgressDisplay::new("kv-load search".into());
    let bound = args.max_lag;
    let search = scenario::find_max_rate(&cfg, bound, 3, &mut |p| display.show(p));
    display.clear();
    let mut out = std::io::stdout().lock();
    if args.json {
        for r in &search.runs {
            let _ = writeln!(out, "{}", to_json(r));
        }
    } else {
        let columns = Scenario::KvLoad.headline();
        let _ = write!(out, "  {:>10}", "rate");
        for c in columns {
            let _ = write!(out, " {c:>16}");
        }
        let _ = writeln!(out);
        for r in &search.runs {
            let rate = r
                .get("rate")
                .map_or_else(|| "-".to_owned(), Value::to_string);
            let _ = write!(out, "  {rate:>10}");
            for c in columns {
                let v = r.get(c).map_or_else(|| "-".to_owned(), Value::to_string);
                let _ = write!(out, " {v:>16}");
            }
            let _ = writeln!(out, "{}", if r.ok() { "" } else { "  (FAILED)" });
        }
    }
    let _ = match search.max_rate {
        Some(r) => writeln!(
            out,
            "max_rate {r} writes/s per writer ({} writers): p99 lag under {} s, backlog bounded",
            cfg.writer_count(),
            args.max_lag.as_secs_f64()
        ),
        None => writeln!(out, "max_rate - (no rate tried held)"),
    };
    ExitCode::SUCCESS
}

/// Progress on stderr: one line rewritten in place on a terminal, an
/// occasional line otherwise.
struct ProgressDisplay {
    label: String,
    tty: bool,
    started: Instant,
    last: Option<Instant>,
    last_phase: &'static str,
    drawn: bool,
}

impl ProgressDisplay {
    fn new(label: String) -> ProgressDisplay {
        ProgressDisplay {
            label,
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
            last_phase: "",
            drawn: false,
        }
    }

    fn show(&mut self, p: Progress) {
        self.show_at(p.phase, p.now, p.fraction);
    }

    fn show_at(&mut self, phase: &'static str, at: vinery::Time, fraction: f64) {
        let now = Instant::now();
        let every = if self.tty {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(10)
        };
        let due = self.last.is_none_or(|t| now - t >= every);
        let new_phase = phase != self.last_phase;
        if !(due || (new_phase && !self.tty)) {
            return;
        }
        self.last = Some(now);
        self.last_phase = phase;
        let line = format!(
            "{}: {} t={:.1}s {:>3.0}%  ({:.1}s wall)",
            self.label,
            phase,
            at.as_secs_f64(),
            fraction * 100.0,
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
    let id = vec![
        ("scenario", json!(r.scenario.name())),
        ("nodes", json!(r.nodes)),
        ("seed", json!(r.seed)),
        ("profile", json!(r.profile.name())),
        ("variant", json!(r.variant.name())),
        ("wall_s", json_value(&Value::Float(r.wall_s))),
        ("ok", json!(r.ok())),
    ];
    json_line(&id, r.failure.as_deref(), r.trace_hash, &r.figures)
}

/// `identity`, then the error if any, the trace hash and the figures, as
/// one JSON object.
fn json_line(
    identity: &[(&str, Json)],
    failure: Option<&str>,
    trace_hash: u64,
    figures: &[Figure],
) -> String {
    let mut fields: Vec<(&str, Json)> = identity.to_vec();
    if let Some(f) = failure {
        fields.push(("error", json!(f)));
    }
    fields.push(("trace_hash", json!(format!("{trace_hash:016x}"))));
    for f in figures {
        fields.push((f.name, json_value(&f.value)));
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Json::from(*k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn write_table(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let header = format!(
        "{} — {} nodes, variant {}, profile {}, seed {}, {:.2} s wall",
        r.scenario, r.nodes, r.variant, r.profile, r.seed, r.wall_s
    );
    write_figures(out, &header, r.failure.as_deref(), &r.figures)
}

fn write_figures(
    out: &mut impl Write,
    header: &str,
    failure: Option<&str>,
    figures: &[Figure],
) -> std::io::Result<()> {
    writeln!(out, "{header}")?;
    if let Some(f) = failure {
        writeln!(out, "  FAILED: {f}")?;
    }
    for f in figures {
        let value = match f.unit {
            "" => f.value.to_string(),
            unit => format!("{} {unit}", f.value),
        };
        writeln!(out, "  {:<24} {:>16}   {}", f.name, value, f.help)?;
    }
    writeln!(out)
}

/// The same scenario under each variant, side by side: one row per
/// variant, one column per headline figure.
fn write_ablation(out: &mut impl Write, reports: &[Report]) -> std::io::Result<()> {
    let r0 = &reports[0];
    writeln!(
        out,
        "ablation: {} — {} nodes, profile {}, seed {}",
        r0.scenario, r0.nodes, r0.profile, r0.seed
    )?;
    let columns = r0.scenario.headline();
    write!(out, "  {:<10}", "variant")?;
    for c in columns {
        write!(out, " {c:>16}")?;
    }
    writeln!(out)?;
    for r in reports {
        write!(out, "  {:<10}", r.variant.name())?;
        for c in columns {
            let v = r.get(c).map_or_else(|| "-".to_owned(), Value::to_string);
            write!(out, " {v:>16}")?;
        }
        writeln!(out, "{}", if r.ok() { "" } else { "  (FAILED)" })?;
    }
    writeln!(out)
}
