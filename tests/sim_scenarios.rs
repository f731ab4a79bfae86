//! Cluster-level behaviour, checked in the deterministic simulator: joins
//! converge, crashes are detected everywhere, restarts rejoin, loss and
//! short pauses cause no false Deads, partitions heal, and runs are
//! reproducible from their seed.
//!
//! Everything runs in virtual time (no sleeps). A failure message names the
//! seed; `vinery sim --scenario NAME --seed S` replays the scenario ones.

use std::time::Duration;

use vinery::sim::scenario::{self, Report, Scenario, ScenarioConfig, Value, Variant};
use vinery::sim::{NetworkConfig, NodeId, Sim};
use vinery::{suspicion_timeout, Config, EventKind, MemberState};

const N: usize = 100;
const STEP: Duration = Duration::from_millis(100);

/// `n` LAN nodes that all joined through node 0 and converged.
fn cluster(n: usize, seed: u64) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed, NetworkConfig::default());
    let nodes = sim.add_nodes(n, &Config::lan());
    for &x in &nodes[1..] {
        sim.join(x, &[nodes[0]]);
    }
    let at = sim.wait_until(STEP, Duration::from_secs(60), Sim::full_view);
    assert!(
        at.is_some(),
        "seed {seed}: {n} nodes did not converge in 60 s (smallest view {:?})",
        sim.min_live_view()
    );
    (sim, nodes)
}

fn run(cfg: &ScenarioConfig) -> Report {
    let report = scenario::run(cfg, &mut |_| {});
    assert!(
        report.ok(),
        "{} seed {}: {}",
        cfg.scenario,
        cfg.seed,
        report.failure.as_deref().unwrap_or_default()
    );
    report
}

fn secs(r: &Report, name: &str) -> f64 {
    r.number(name)
        .unwrap_or_else(|| panic!("{} seed {}: no figure {name}", r.scenario, r.seed))
}

/// The minimum and maximum suspicion timeouts of a LAN cluster of `n`.
fn suspicion_bounds(n: usize) -> (Duration, Duration) {
    let c = Config::lan();
    let min = suspicion_timeout(c.suspicion_mult, n, c.probe_interval);
    (min, min * c.suspicion_max_timeout_mult)
}

#[test]
fn join_converges_and_every_node_lists_all() {
    let seed = 1;
    let report = run(&ScenarioConfig::new(Scenario::Join, N, seed));
    let converge = secs(&report, "converge_s");
    assert!(converge < 30.0, "seed {seed}: join took {converge} s");

    let (sim, nodes) = cluster(N, seed);
    for &n in &nodes {
        let members = sim.endpoint(n).members();
        assert_eq!(members.len(), N, "seed {seed}: {n} knows {}", members.len());
        for &m in &nodes {
            let name = sim.name(m);
            let rec = members.iter().find(|r| r.name == name);
            assert!(
                rec.is_some_and(|r| r.state == MemberState::Alive && r.addr == sim.addr(m)),
                "seed {seed}: {n} holds {name} as {rec:?}"
            );
        }
    }
}

#[test]
fn crashed_node_is_declared_dead_by_all_others() {
    let seed = 2;
    let (mut sim, nodes) = cluster(N, seed);
    let (min, max) = suspicion_bounds(N);
    let victim = nodes[37];
    sim.log_events(&[EventKind::MemberSuspect, EventKind::MemberFailed]);
    let t0 = sim.now();
    sim.crash(victim);
    let all = sim.wait_until(STEP, max + Duration::from_secs(30), |s| {
        s.everyone_sees(victim, MemberState::Dead)
    });
    assert!(all.is_some(), "seed {seed}: {victim} not Dead everywhere");
    let about = |kind| {
        sim.event_log()
            .iter()
            .filter(|e| e.kind == kind && e.member == Some(victim))
            .map(|e| e.time)
            .min()
            .expect("at least one event")
    };
    let (suspect, dead) = (
        about(EventKind::MemberSuspect),
        about(EventKind::MemberFailed),
    );
    assert!(t0 < suspect && suspect < dead, "seed {seed}");
    assert!(
        dead - t0 >= min,
        "seed {seed}: declared Dead after {:?}, before the minimum suspicion timeout {min:?}",
        dead - t0
    );
    // Nobody else was ever suspected.
    assert!(
        sim.event_log().iter().all(|e| e.member == Some(victim)),
        "seed {seed}: false suspicions: {:?}",
        sim.event_log()
            .iter()
            .filter(|e| e.member != Some(victim))
            .collect::<Vec<_>>()
    );
}

#[test]
fn fail_scenario_reports_ordered_detection_times() {
    let seed = 3;
    let mut cfg = ScenarioConfig::new(Scenario::Fail, N, seed);
    cfg.crashes = 3;
    let r = run(&cfg);
    assert_eq!(r.get("crashes"), Some(&Value::Int(3)));
    let (first_suspect, first_dead, all_dead) = (
        secs(&r, "first_suspect_s"),
        secs(&r, "first_dead_s"),
        secs(&r, "all_dead_s"),
    );
    let min = secs(&r, "suspicion_timeout_s");
    assert!(
        first_suspect > 0.0 && first_suspect < first_dead,
        "seed {seed}: {r:?}"
    );
    assert!(
        first_dead >= min && first_dead <= all_dead,
        "seed {seed}: {r:?}"
    );
    let Some(Value::Floats(per_crash)) = r.get("all_dead_s_all") else {
        panic!("seed {seed}: no per-crash values")
    };
    assert_eq!(per_crash.len(), 3);
}

#[test]
fn restarted_node_rejoins_at_a_higher_incarnation() {
    let seed = 4;
    let (mut sim, nodes) = cluster(N, seed);
    let (_, max) = suspicion_bounds(N);
    let victim = nodes[61];
    let name = sim.name(victim).to_string();
    sim.crash(victim);
    let dead = sim.wait_until(STEP, max + Duration::from_secs(30), |s| {
        s.everyone_sees(victim, MemberState::Dead)
    });
    assert!(dead.is_some(), "seed {seed}: {victim} not Dead everywhere");
    let old = sim
        .endpoint(nodes[0])
        .member(&name)
        .expect("known")
        .incarnation;

    sim.restart(victim, &[nodes[0]]);
    let back = sim.wait_until(STEP, Duration::from_secs(60), |s| {
        s.nodes().all(|n| {
            s.endpoint(n)
                .member(&name)
                .is_some_and(|m| m.state == MemberState::Alive && m.incarnation > old)
        })
    });
    assert!(
        back.is_some(),
        "seed {seed}: restarted {victim} not Alive above incarnation {old} everywhere: {:?}",
        sim.nodes()
            .map(|n| sim.endpoint(n).member(&name))
            .filter(|m| !m
                .as_ref()
                .is_some_and(|m| m.state == MemberState::Alive && m.incarnation > old))
            .take(5)
            .collect::<Vec<_>>()
    );
    let full = sim.wait_until(STEP, Duration::from_secs(30), Sim::full_view);
    assert!(
        full.is_some(),
        "seed {seed}: the restarted node does not list everyone: {} live",
        sim.endpoint(victim).num_live()
    );
}

#[test]
fn five_minutes_of_ten_percent_loss_declare_no_healthy_node_dead() {
    let seed = 5;
    let mut cfg = ScenarioConfig::new(Scenario::Loss, N, seed);
    cfg.loss = 0.1;
    cfg.duration = Some(Duration::from_secs(300));
    let r = run(&cfg);
    assert_eq!(
        r.get("false_dead"),
        Some(&Value::Int(0)),
        "seed {seed}: healthy nodes declared Dead under 10% loss: {r:?}"
    );
    // The loss was real: the network dropped about a tenth of the datagrams.
    let (dropped, packets) = (secs(&r, "dropped"), secs(&r, "packets"));
    assert!(dropped > 0.05 * packets, "seed {seed}: {r:?}");
}

#[test]
fn half_and_half_partition_heals_into_one_view() {
    let seed = 6;
    let cfg = ScenarioConfig::new(Scenario::Part, N, seed);
    let r = run(&cfg);
    // Each half had written the other off.
    assert_eq!(
        r.get("min_live_at_heal"),
        Some(&Value::Int((N / 2) as u64)),
        "seed {seed}: {r:?}"
    );
    let heal = secs(&r, "heal_s");
    assert!(
        heal <= 60.0,
        "seed {seed}: one view only {heal} s after the heal"
    );
}

#[test]
fn partition_heal_restores_one_agreed_view() {
    let seed = 7;
    let (mut sim, nodes) = cluster(N, seed);
    sim.partition(&[nodes[..N / 2].to_vec()]);
    sim.run_for(Duration::from_secs(60));
    sim.heal();
    let t = sim.wait_until(STEP, Duration::from_secs(120), Sim::converged);
    assert!(
        t.is_some(),
        "seed {seed}: no agreed view 120 s after the heal (smallest view {:?})",
        sim.min_live_view()
    );
}

#[test]
fn node_paused_for_less_than_the_suspicion_timeout_is_never_declared_dead() {
    let (min, _) = suspicion_bounds(N);
    for seed in [8, 9] {
        let mut cfg = ScenarioConfig::new(Scenario::Pause, N, seed);
        cfg.duration = Some(min * 3 / 4);
        let r = run(&cfg);
        assert_eq!(
            r.get("declared_dead_by"),
            Some(&Value::Int(0)),
            "seed {seed}: paused node declared Dead: {r:?}"
        );
        assert!(
            secs(&r, "suspected_by") > 0.0,
            "seed {seed}: the pause went unnoticed, the test proves nothing: {r:?}"
        );
        assert!(r.number("recovered_s").is_some(), "seed {seed}: {r:?}");
    }
}

#[test]
fn same_seed_same_run_different_seed_different_run() {
    let mut cfg = ScenarioConfig::new(Scenario::Fail, N, 10);
    cfg.crashes = 1;
    let a = run(&cfg);
    let b = run(&cfg);
    assert_eq!(a.trace_hash, b.trace_hash, "seed 10 twice");
    assert_eq!(a.figures, b.figures, "seed 10 twice");
    cfg.seed = 11;
    let c = run(&cfg);
    assert_ne!(a.trace_hash, c.trace_hash, "seeds 10 and 11");

    // The same through the Sim API, with loss, duplicates and a restart.
    let trace = |seed| {
        let net = NetworkConfig {
            loss: 0.05,
            duplicate: 0.02,
            ..NetworkConfig::default()
        };
        let mut sim = Sim::new(seed, net);
        let nodes = sim.add_nodes(30, &Config::lan());
        for &x in &nodes[1..] {
            sim.join(x, &[nodes[0]]);
        }
        sim.run_for(Duration::from_secs(20));
        sim.crash(nodes[5]);
        sim.pause(nodes[6], Duration::from_secs(3));
        sim.run_for(Duration::from_secs(20));
        sim.restart(nodes[5], &[nodes[1]]);
        sim.run_for(Duration::from_secs(20));
        sim.trace_hash()
    };
    assert_eq!(trace(12), trace(12));
    assert_ne!(trace(12), trace(13));
}

/// An endpoint whose next deadline is still due right after it ran its
/// timers makes a real event loop spin; the simulator counts each such
/// wake-up ([`vinery::sim::SimStats::timer_spins`]). A partition heal
/// triggers many anti-entropy exchanges, which is where it showed up.
#[test]
fn endpoints_never_ask_to_be_woken_in_the_past() {
    let seed = 6;
    let r = run(&ScenarioConfig::new(Scenario::Part, N, seed));
    assert_eq!(
        r.get("timer_spins"),
        Some(&Value::Int(0)),
        "seed {seed}: poll_timeout() was still due right after handle_timeout() \
         (replay: vinery sim --scenario part --seed {seed})"
    );
}

/// A figure that is a count.
fn count(r: &Report, name: &str) -> u64 {
    match r.get(name) {
        Some(Value::Int(n)) => *n,
        other => panic!("{} seed {}: {name} is {other:?}", r.scenario, r.seed),
    }
}

/// Push gossip with fanout f = 3 every 200 ms reaches N = 100 in about
/// log_4(100) + ln(100)/3 ≈ 4.9 rounds ≈ 1 s (`theory_all_s`). The
/// endpoint does better: a write is pushed at once, and every replica that
/// applies it forwards it at once too, so a spread takes network hops
/// (milliseconds) and, for the few nodes the pushes missed, one gossip tick
/// or one probe's digest exchange. 5 s is five times the round-based
/// estimate: a spread that slow means pushes stopped working.
#[test]
fn a_write_at_steady_state_reaches_every_node_within_five_seconds() {
    let seed = 20;
    let r = run(&ScenarioConfig::new(Scenario::Kv, N, seed));
    assert_eq!(count(&r, "writes"), 20, "seed {seed}: {r:?}");
    let (p99, all, worst) = (secs(&r, "p99_s"), secs(&r, "all_s"), secs(&r, "all_s_max"));
    assert!(
        0.0 < p99 && p99 <= all && all <= worst,
        "seed {seed}: {r:?}"
    );
    assert!(
        worst <= 5.0,
        "seed {seed}: a write took {worst} s to reach every node (theory {} s)",
        secs(&r, "theory_all_s")
    );
    // Once a write has spread, the cluster is quiet again: the cost of one
    // write (its pushes, their retransmissions, 2.4 s of digest exchanges)
    // measured about 1.8 KB per node. A state hash that never agrees again
    // keeps every probe starting a sync, which cost four times that.
    let cost = secs(&r, "write_bytes_per_node");
    assert!(
        cost < 4096.0,
        "seed {seed}: one write cost {cost} B per node"
    );
}

/// Two virtual minutes of churn: 10 nodes a minute crash and come back a
/// few seconds later under the same name. After the settling period every
/// running node lists every running node as Alive.
#[test]
fn after_churn_no_member_is_seen_wrongly() {
    let seed = 21;
    let mut cfg = ScenarioConfig::new(Scenario::Churn, N, seed);
    cfg.duration = Some(Duration::from_secs(120));
    let r = run(&cfg);
    assert_eq!(count(&r, "restarts"), 20, "seed {seed}: {r:?}");
    assert_eq!(
        count(&r, "stale_members"),
        0,
        "seed {seed}: members seen wrongly after the churn settled \
         (replay: vinery sim --scenario churn --duration 120 --seed {seed}): {r:?}"
    );
}

/// The same churn: no deleted key and no key of a previous life may be
/// visible at the end, and every live key must be everywhere.
///
/// This failed while a restarted node started again at key/value
/// generation 1 and moved on only when it heard of a higher version of its
/// own state: a new life that wrote as many versions as the old one looked
/// like the old one to replicas. A life's generation is now its start time.
#[test]
fn after_churn_no_key_is_resurrected_or_missing() {
    let seed = 21;
    let mut cfg = ScenarioConfig::new(Scenario::Churn, N, seed);
    cfg.duration = Some(Duration::from_secs(120));
    let r = run(&cfg);
    assert_eq!(count(&r, "resurrected_keys"), 0, "seed {seed}: {r:?}");
    assert_eq!(count(&r, "missing_keys"), 0, "seed {seed}: {r:?}");
}

/// Ten minutes with 10 nodes handling everything 0.5–3 s late, and five
/// healthy nodes crashing. With Lifeguard, no node that was not slow is
/// ever declared Dead, and every crash is detected by every running node
/// (the slow ones too) within the suspicion bounds: not before the minimum
/// timeout (8 s at N = 100), and at most the longest one (48 s) plus 10 s
/// for the first probe to fail, the Dead to spread, and the slow nodes to
/// handle it (up to 1.5 × 3 s late).
#[test]
fn with_slow_nodes_lifeguard_declares_no_healthy_node_dead_and_detects_crashes() {
    let seed = 22;
    let r = run(&ScenarioConfig::new(Scenario::Slow, N, seed));
    let healthy_dead = count(&r, "false_dead") - count(&r, "false_dead_slow");
    assert_eq!(healthy_dead, 0, "seed {seed}: {r:?}");
    assert_eq!(count(&r, "crashes"), 5, "seed {seed}: {r:?}");
    let (min, max) = suspicion_bounds(N);
    let (mean, worst) = (secs(&r, "detect_s"), secs(&r, "detect_s_max"));
    assert!(
        min.as_secs_f64() <= mean && worst <= (max + Duration::from_secs(10)).as_secs_f64(),
        "seed {seed}: detection {mean} s on average, {worst} s at worst, outside \
         [{min:?}, {max:?} + 10 s]"
    );
}

/// The ablation: slow nodes running plain SWIM fail their probes of healthy
/// nodes (the acks reach them late) and accuse them; with Lifeguard a slow
/// node's failed probes raise its own health score and slow it down
/// instead, so (nearly) only the slow nodes themselves are suspected.
#[test]
fn lifeguard_stops_slow_nodes_from_accusing_healthy_ones() {
    let seed = 22;
    let healthy_suspected = |variant| {
        let mut cfg = ScenarioConfig::new(Scenario::Slow, N, seed);
        cfg.variant = variant;
        let r = run(&cfg);
        count(&r, "false_suspect") - count(&r, "false_suspect_slow")
    };
    let (swim, full) = (
        healthy_suspected(Variant::Swim),
        healthy_suspected(Variant::Full),
    );
    assert!(
        swim >= 5 && full * 5 <= swim,
        "seed {seed}: healthy nodes suspected: {swim} with SWIM, {full} with Lifeguard + phi"
    );
}

/// Slow nodes are alive: they must not be declared Dead either.
///
/// A slow node is suspected again and again, and refutes each time at a
/// higher incarnation. A node still holding it Suspect at incarnation i
/// that hears `Suspect` at i + 1 must take it as a new suspicion (the old
/// one was refuted), not as a confirmation of its own stale one, which is
/// what memberlist does and what made this test fail before
/// `merge.rs` restarted the timer instead.
#[test]
fn with_slow_nodes_lifeguard_rarely_declares_a_slow_node_dead() {
    // Slow nodes 0.5–3 s late are still declared Dead now and then in a
    // 600 s run (seeds 22–26: 0, 1, 2, 1, 0 before local confirmation of
    // suspicions, 1, 2, 0, 1, 0 with it): the bound is on the class, over
    // five seeds, not on one lucky seed. Before the fix above, every run
    // killed slow nodes several times over.
    let per_seed: Vec<u64> = (22..=26)
        .map(|seed| {
            count(
                &run(&ScenarioConfig::new(Scenario::Slow, N, seed)),
                "false_dead",
            )
        })
        .collect();
    let total: u64 = per_seed.iter().sum();
    assert!(
        total <= 5 && per_seed.iter().all(|&d| d <= 2),
        "slow nodes declared Dead per seed (22..=26): {per_seed:?}"
    );
}
