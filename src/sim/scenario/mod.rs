//! The standard scenarios, shared by the `vinery sim` command, the
//! integration tests and the benches (the figures of `docs/PERFORMANCE.md`
//! come from them).
//!
//! Each scenario builds a fresh [`Sim`](super::Sim) of [`ScenarioConfig::nodes`] nodes
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
//! | `kv-load` | a share of the nodes write keys at a rate R each | `lag_p99_s`, `floor_ratio`, `backlog_max`, `backlog_bounded` |
//! | `jitter`, `deaf`, `half`, `mute`, `lossy-node`, `flap` | a few nodes with a partial fault (slow links, deafness, cut from half, mute to half, 30% loss, flapping links); a healthy node crashes at half time | `suspect_events`, `false_dead`, `own_view_dead`, `bytes_per_node_s`, `all_dead_s` |
//!
//! [`Variant`] switches Lifeguard and the phi veto off, for the ablation
//! (`swim` / `lifeguard` / `full`).
//!
//! Every report also carries `virtual_s` (virtual time simulated),
//! `packets` (datagrams sent), `dropped` (datagrams the network dropped)
//! and `timer_spins` (see
//! [`SimStats::timer_spins`](super::SimStats::timer_spins)).
//!
//! # Files
//!
//! | file | holds |
//! |------|-------|
//! | `config.rs` | [`Scenario`], [`Profile`], [`Variant`], [`ScenarioConfig`] |
//! | `report.rs` | [`Report`], [`Figure`], [`Value`] |
//! | `harness.rs` | the `Run` every scenario runs in, [`Progress`] |
//! | `join.rs`, `fail.rs`, `loss.rs`, `load.rs`, `part.rs`, `pause.rs`, `kv.rs`, `churn.rs`, `slow.rs`, `kv_load.rs` | one scenario each |
//! | `degraded.rs` | what the partial-fault scenarios share |
//! | `jitter.rs`, `deaf.rs`, `half.rs`, `mute.rs`, `lossy_node.rs`, `flap.rs` | one partial fault each |
//!
//! This file only picks the scenario and adds the figures every report
//! carries.

use std::time::Instant;

mod churn;
mod config;
mod deaf;
mod degraded;
mod fail;
mod flap;
mod half;
mod harness;
mod jitter;
mod join;
mod kv;
mod kv_load;
mod load;
mod loss;
mod lossy_node;
mod mute;
mod part;
mod pause;
mod report;
mod slow;

pub use config::{Profile, Scenario, ScenarioConfig, Variant};
pub use harness::{Progress, CHECK_STEP};
pub use kv_load::{find_max_rate, RateSearch};
pub(crate) use report::{mean, number_of};
pub use report::{Figure, Report, Value};

use harness::Run;

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
        Scenario::KvLoad => run.kv_load(),
        Scenario::Jitter => run.jitter(),
        Scenario::Deaf => run.deaf(),
        Scenario::Half => run.half(),
        Scenario::Mute => run.mute(),
        Scenario::LossyNode => run.lossy_node(),
        Scenario::Flap => run.flap(),
    };
    if let Some(r) = &mut run.timeline {
        r.sample(&run.sim, None);
    }
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
        timeline: run.timeline.map(|r| r.finish()),
    }
}
