//! Sustained writes (`kv-load`) at small N, against design-level bounds:
//! every write reaches every node within a few gossip intervals, the
//! traffic stays within a fixed multiple of the information-theoretic
//! floor, and the backlog of writes not yet everywhere does not grow.
//!
//! The bounds carry a margin over what the simulator measures (stated at
//! each assertion) so that they catch a protocol that falls behind, not a
//! change of a few percent.

use std::time::Duration;

use vinery::sim::scenario::{self, Report, Scenario, ScenarioConfig};
use vinery::Config;

fn kv_load(nodes: usize, seed: u64, rate: f64, secs: u64) -> Report {
    let mut cfg = ScenarioConfig::new(Scenario::KvLoad, nodes, seed);
    cfg.rate = rate;
    cfg.duration = Some(Duration::from_secs(secs));
    let report = scenario::run(&cfg, &mut |_| {});
    assert!(
        report.ok(),
        "kv-load seed {seed}: {}",
        report.failure.as_deref().unwrap_or_default()
    );
    report
}

fn figure(r: &Report, name: &str) -> f64 {
    r.number(name)
        .unwrap_or_else(|| panic!("kv-load seed {}: no figure {name}", r.seed))
}

#[test]
fn every_write_spreads_within_a_few_gossip_intervals_at_bounded_cost() {
    let gossip = Config::lan().gossip_interval.as_secs_f64();
    for seed in [1, 2] {
        let r = kv_load(30, seed, 1.0, 30);
        let writes = figure(&r, "writes");
        assert_eq!(
            figure(&r, "completed"),
            writes,
            "seed {seed}: every write completes"
        );
        assert!(
            writes >= 30.0 * 29.0,
            "seed {seed}: 30 writers for 30 s issue ~900 writes"
        );
        // Measured ~0.34 s (1.7 intervals); push gossip needs
        // log_(1+f) N + ln N / f ≈ 3.3 rounds at N=30, f=3.
        let p99 = figure(&r, "lag_p99_s");
        assert!(
            p99 < 5.0 * gossip,
            "seed {seed}: p99 lag {p99} s is over 5 gossip intervals"
        );
        // Measured ~13x at N=30 (the per-datagram and digest overheads
        // weigh most at small N); 25x catches a doubling.
        let ratio = figure(&r, "floor_ratio");
        assert!(ratio < 25.0, "seed {seed}: {ratio}x the floor");
        assert_eq!(
            figure(&r, "backlog_bounded"),
            1.0,
            "seed {seed}: backlog grows"
        );
        // The backlog is the writes of about one lag: 30 writes/s x 0.34 s.
        let most = figure(&r, "backlog_max");
        assert!(most <= 30.0, "seed {seed}: backlog reached {most} writes");
    }
}

#[test]
fn a_share_of_writers_has_a_proportional_floor() {
    let mut cfg = ScenarioConfig::new(Scenario::KvLoad, 20, 3);
    cfg.writers = 0.25;
    cfg.duration = Some(Duration::from_secs(15));
    let r = scenario::run(&cfg, &mut |_| {});
    assert!(r.ok(), "{:?}", r.failure);
    assert_eq!(figure(&r, "writers"), 5.0);
    let floor = figure(&r, "floor_bytes_per_node_s");
    let entry = figure(&r, "entry_bytes");
    assert!(
        (floor - 5.0 * entry).abs() < 1e-9,
        "floor {floor} for entry {entry}"
    );
}

#[test]
fn a_timeline_does_not_change_the_run() {
    let mut cfg = ScenarioConfig::new(Scenario::KvLoad, 12, 4);
    cfg.duration = Some(Duration::from_secs(12));
    let plain = scenario::run(&cfg, &mut |_| {});
    cfg.timeline = Some(Duration::from_secs(1));
    let sampled = scenario::run(&cfg, &mut |_| {});
    assert_eq!(plain.trace_hash, sampled.trace_hash);
    assert!(plain.timeline.is_none());
    let timeline = sampled.timeline.expect("asked for");
    let last = timeline.samples.last().expect("samples");
    assert!(timeline.samples.len() >= 12, "about one sample a second");
    assert_eq!(last.running, 12);
    assert_eq!(
        last.view_accuracy, 1.0,
        "a steady cluster sees itself right"
    );
    assert!(
        timeline
            .samples
            .iter()
            .any(|s| s.writes_pending.is_some_and(|p| p > 0)),
        "the backlog is sampled while writing"
    );
}

#[test]
fn bad_rates_and_shares_are_named() {
    let mut cfg = ScenarioConfig::new(Scenario::KvLoad, 10, 1);
    cfg.rate = 0.0;
    assert!(cfg.validate().unwrap_err().contains("rate"));
    cfg.rate = 1.0;
    cfg.writers = 1.5;
    assert!(cfg.validate().unwrap_err().contains("writers"));
    cfg.writers = 1.0;
    cfg.value_size = 1 << 20;
    assert!(cfg.validate().unwrap_err().contains("value size"));
}

#[test]
fn fast_writers_are_not_flattered_by_overwrites() {
    // At 20 writes/s per node a writer cycling over a handful of keys
    // would overwrite a key before it spread, and a lagging replica could
    // skip writes: the traffic would drop below the floor. Every write
    // must arrive, so the traffic stays above it.
    let r = kv_load(10, 5, 20.0, 8);
    assert_eq!(figure(&r, "completed"), figure(&r, "writes"));
    let ratio = figure(&r, "floor_ratio");
    assert!(ratio >= 1.0, "{ratio}x the floor: writes were skipped");
}
