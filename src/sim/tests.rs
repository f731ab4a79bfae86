//! Tests of the network model and the event loop. Scenario-level tests
//! (convergence, detection, partitions healing) are in
//! `tests/sim_scenarios.rs`.

use std::time::Duration;

use super::*;

const MS: Duration = Duration::from_millis(1);

/// `n` unjoined nodes on `net`: they only run idle timers, so every packet
/// in flight is one the test sent.
fn idle(n: usize, seed: u64, net: NetworkConfig) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed, net);
    let nodes = sim.add_nodes(n, &Config::lan());
    (sim, nodes)
}

#[test]
fn addresses_are_synthetic_and_resolve_back() {
    assert_eq!(node_addr(0).to_string(), "10.0.0.0:7946");
    assert_eq!(node_addr(0x01_02_03).to_string(), "10.1.2.3:7946");
    let (sim, nodes) = idle(300, 1, NetworkConfig::default());
    for &n in &nodes {
        assert_eq!(sim.node_at(sim.addr(n)), Some(n));
        assert_eq!(sim.node_named(sim.name(n)), Some(n));
    }
    assert_eq!(sim.node_at(node_addr(300)), None, "no such node");
    assert_eq!(sim.node_at("10.0.0.1:80".parse().unwrap()), None);
    assert_eq!(sim.name(nodes[7]), "node-7");
}

#[test]
fn loss_rate_matches_the_configured_probability() {
    let net = NetworkConfig {
        loss: 0.1,
        ..NetworkConfig::default()
    };
    let (mut sim, n) = idle(2, 42, net);
    let sent = 20_000u64;
    for _ in 0..sent {
        sim.send_raw(n[0], n[1], vec![0xde, 0xad]);
    }
    sim.run_for(Duration::from_secs(1));
    let s = sim.stats().clone();
    let rate = s.dropped_loss as f64 / sent as f64;
    assert!((0.09..0.11).contains(&rate), "loss rate {rate}");
    assert_eq!(s.packets_delivered, sent - s.dropped_loss);
    assert_eq!(s.rejected, s.packets_delivered, "garbage is rejected");
    assert_eq!(sim.endpoint(n[1]).stats().packets_in, s.packets_delivered);
    assert_eq!((s.in_flight, s.in_flight_bytes), (0, 0), "all delivered");
    assert_eq!(s.peak_in_flight_bytes, 2 * (sent - s.dropped_loss));

    // set_loss changes it for what follows.
    sim.set_loss(0.5);
    for _ in 0..sent {
        sim.send_raw(n[0], n[1], vec![0]);
    }
    let rate = (sim.stats().dropped_loss - s.dropped_loss) as f64 / sent as f64;
    assert!((0.48..0.52).contains(&rate), "loss rate {rate}");
}

#[test]
fn latency_and_jitter_shape_delays() {
    let net = NetworkConfig {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(2),
        ..NetworkConfig::default()
    };
    let (mut sim, n) = idle(2, 3, net);
    sim.log_packets(true);
    for _ in 0..5000 {
        sim.send_raw(n[0], n[1], vec![1]);
    }
    sim.run_for(Duration::from_secs(1));
    let log = sim.take_packet_log();
    assert_eq!(log.len(), 5000);
    let delays: Vec<f64> = log
        .iter()
        .map(|p| (p.arrived - p.sent).as_secs_f64() * 1e3)
        .collect();
    assert!(delays.iter().all(|&d| d >= 5.0), "never below the base");
    let mean = delays.iter().sum::<f64>() / delays.len() as f64;
    assert!((6.8..7.2).contains(&mean), "mean delay {mean} ms, want ~7");
}

#[test]
fn jitter_reorders_and_zero_jitter_keeps_order() {
    for (jitter, reorders) in [(Duration::from_millis(1), true), (Duration::ZERO, false)] {
        let net = NetworkConfig {
            jitter,
            ..NetworkConfig::default()
        };
        let (mut sim, n) = idle(2, 9, net);
        sim.log_packets(true);
        for i in 0..200u32 {
            sim.send_raw(n[0], n[1], i.to_le_bytes().to_vec());
            sim.run_for(Duration::from_micros(50));
        }
        sim.run_for(Duration::from_secs(1));
        let sent: Vec<Time> = sim.packet_log().iter().map(|p| p.sent).collect();
        let in_order = sent.windows(2).all(|w| w[0] <= w[1]);
        assert_eq!(!in_order, reorders, "jitter {jitter:?}");
    }
}

#[test]
fn duplicates_are_delivered_twice() {
    let net = NetworkConfig {
        duplicate: 1.0,
        ..NetworkConfig::default()
    };
    let (mut sim, n) = idle(2, 5, net);
    for _ in 0..100 {
        sim.send_raw(n[0], n[1], vec![7]);
    }
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.stats().duplicated, 100);
    assert_eq!(sim.stats().packets_delivered, 200);
}

#[test]
fn partitions_drop_between_groups_only() {
    let (mut sim, n) = idle(5, 11, NetworkConfig::default());
    // {0,1} | {2} | unlisted {3,4}.
    sim.partition(&[vec![n[0], n[1]], vec![n[2]]]);
    let pairs = [
        (0, 1, true),
        (1, 0, true),
        (0, 2, false),
        (2, 0, false),
        (0, 3, false),
        (3, 4, true),
        (4, 2, false),
    ];
    for (a, b, ok) in pairs {
        assert_eq!(sim.connected(n[a], n[b]), ok, "{a} -> {b}");
        let before = sim.stats().clone();
        sim.send_raw(n[a], n[b], vec![0]);
        sim.run_for(MS);
        let after = sim.stats();
        assert_eq!(
            after.packets_delivered - before.packets_delivered,
            u64::from(ok),
            "{a} -> {b}"
        );
        assert_eq!(
            after.dropped_partition - before.dropped_partition,
            u64::from(!ok),
            "{a} -> {b}"
        );
    }
    sim.heal();
    sim.send_raw(n[0], n[2], vec![0]);
    sim.run_for(MS);
    assert_eq!(sim.stats().dropped_partition, 4, "healed");
}

#[test]
fn link_overrides_apply_to_one_direction() {
    let (mut sim, n) = idle(2, 13, NetworkConfig::default());
    sim.set_link(
        n[0],
        n[1],
        LinkConfig {
            latency: Duration::from_millis(30),
            jitter: Duration::ZERO,
            loss: 0.0,
        },
    );
    sim.log_packets(true);
    sim.send_raw(n[0], n[1], vec![0]);
    sim.send_raw(n[1], n[0], vec![0]);
    sim.run_for(Duration::from_secs(1));
    let log = sim.take_packet_log();
    assert_eq!(log.len(), 2);
    assert!(log[0].to == n[0], "the fast direction arrives first");
    assert_eq!(log[1].arrived - log[1].sent, Duration::from_millis(30));

    sim.set_link(
        n[0],
        n[1],
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        },
    );
    sim.send_raw(n[0], n[1], vec![0]);
    sim.send_raw(n[1], n[0], vec![0]);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.stats().dropped_loss, 1);
    sim.clear_link(n[0], n[1]);
    sim.send_raw(n[0], n[1], vec![0]);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.stats().dropped_loss, 1);
    assert_eq!(sim.stats().packets_delivered, 4);
}

#[test]
fn pause_buffers_and_replays_in_arrival_order() {
    let (mut sim, n) = idle(3, 17, NetworkConfig::ideal());
    sim.log_packets(true);
    sim.pause(n[1], Duration::from_secs(1));
    assert_eq!(
        sim.status(n[1]),
        NodeStatus::Paused {
            until: Time::from_secs(1)
        }
    );
    for i in 0..10u8 {
        sim.send_raw(n[0], n[1], vec![i]);
        sim.send_raw(n[2], n[1], vec![i, i]);
        sim.run_for(Duration::from_millis(50));
    }
    // Nothing was handled while paused, and the node's timers did not run.
    let fires = sim.stats().timer_fires;
    sim.run_until(Time::from_millis(999));
    assert!(sim.packet_log().is_empty());
    assert_eq!(sim.stats().buffered_paused, 20);
    assert_eq!(sim.endpoint(n[1]).stats().packets_in, 0);
    // Another node keeps running meanwhile (its probe timer fires).
    assert!(sim.stats().timer_fires > fires || fires > 0);

    sim.run_until(Time::from_secs(1));
    assert_eq!(sim.status(n[1]), NodeStatus::Up);
    let log = sim.take_packet_log();
    assert_eq!(log.len(), 20);
    assert!(log.iter().all(|p| p.handled == Time::from_secs(1)));
    assert!(
        log.windows(2).all(|w| w[0].arrived <= w[1].arrived),
        "handled in arrival order"
    );
    let senders: Vec<NodeId> = log.iter().map(|p| p.from).collect();
    let expect: Vec<NodeId> = (0..10).flat_map(|_| [n[0], n[2]]).collect();
    assert_eq!(senders, expect);

    // After the pause, packets are handled as they arrive.
    sim.send_raw(n[0], n[1], vec![0]);
    sim.run_for(Duration::from_millis(1));
    let log = sim.take_packet_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].handled, log[0].arrived);
}

#[test]
fn paused_node_timers_wait_for_the_resume() {
    let (mut sim, n) = idle(2, 19, NetworkConfig::ideal());
    sim.join(n[1], &[n[0]]);
    sim.run_for(Duration::from_secs(5));
    let probes = sim.endpoint(n[1]).stats().probes;
    assert!(probes >= 3, "a joined node probes");
    sim.pause(n[1], Duration::from_secs(10));
    sim.run_for(Duration::from_millis(9_999));
    assert_eq!(
        sim.endpoint(n[1]).stats().probes,
        probes,
        "no probe while paused"
    );
    sim.run_for(Duration::from_millis(2));
    assert_eq!(
        sim.endpoint(n[1]).stats().probes,
        probes + 1,
        "the overdue probe runs at the resume"
    );
}

#[test]
fn crashed_nodes_receive_nothing_and_restart_fresh() {
    let (mut sim, n) = idle(2, 23, NetworkConfig::default());
    sim.join(n[1], &[n[0]]);
    sim.run_for(Duration::from_secs(3));
    assert!(sim.full_view());
    sim.crash(n[1]);
    assert_eq!(sim.running_count(), 1);
    let before = sim.stats().dropped_crashed;
    sim.send_raw(n[0], n[1], vec![0]);
    sim.run_for(Duration::from_secs(1));
    assert!(sim.stats().dropped_crashed > before);
    let probes = sim.endpoint(n[1]).stats().probes;
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.endpoint(n[1]).stats().probes, probes, "no timers");

    sim.restart(n[1], &[n[0]]);
    assert_eq!(sim.status(n[1]), NodeStatus::Up);
    assert_eq!(sim.restarts(n[1]), 1);
    assert_eq!(sim.endpoint(n[1]).stats().probes, 0, "a fresh endpoint");
    assert_eq!(sim.endpoint(n[1]).addr(), sim.addr(n[1]));
    assert_eq!(sim.endpoint(n[1]).name(), "node-1");
}

#[test]
fn event_log_and_hook_see_the_same_events() {
    use std::sync::{Arc, Mutex};
    let (mut sim, n) = idle(4, 29, NetworkConfig::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    sim.on_event(move |t, node, ev| sink.lock().unwrap().push((t, node, ev.kind())));
    sim.log_events(&EventKind::ALL);
    for &x in &n[1..] {
        sim.join(x, &[n[0]]);
    }
    sim.run_for(Duration::from_secs(10));
    let log: Vec<_> = sim
        .event_log()
        .iter()
        .map(|e| (e.time, e.node, e.kind))
        .collect();
    assert_eq!(log, *seen.lock().unwrap());
    // Every node saw the three others join.
    assert_eq!(
        sim.event_log()
            .iter()
            .filter(|e| e.kind == EventKind::MemberJoined)
            .count(),
        12
    );
    assert!(sim
        .event_log()
        .iter()
        .all(|e| e.member.is_some() && e.member != Some(e.node)));
    assert_eq!(sim.stats().events, 12);
}

#[test]
fn same_seed_same_trace() {
    let run = |seed| {
        let mut sim = Sim::new(seed, NetworkConfig::default());
        let n = sim.add_nodes(8, &Config::lan());
        for &x in &n[1..] {
            sim.join(x, &[n[0]]);
        }
        sim.run_for(Duration::from_secs(20));
        sim.crash(n[3]);
        sim.run_for(Duration::from_secs(30));
        (sim.trace_hash(), sim.stats().clone())
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1).0, run(2).0);
}

#[test]
fn slow_node_handles_datagrams_late_and_in_order() {
    let (mut sim, n) = idle(2, 29, NetworkConfig::ideal());
    let slow = SlowConfig {
        delay: Duration::from_millis(500),
        jitter: Duration::from_millis(300),
    };
    sim.set_slow(n[1], Some(slow));
    assert_eq!(sim.slow(n[1]), Some(slow));
    sim.log_packets(true);
    for i in 0..200u8 {
        sim.send_raw(n[0], n[1], vec![i]);
        sim.run_for(MS);
    }
    sim.run_for(Duration::from_secs(2));
    let log = sim.take_packet_log();
    assert_eq!(log.len(), 200);
    let lateness: Vec<Duration> = log.iter().map(|p| p.handled - p.arrived).collect();
    // Never earlier than the draw allows; later only to keep the order.
    assert!(lateness.iter().all(|&d| d >= slow.delay - slow.jitter));
    assert!(
        log.windows(2)
            .all(|w| w[0].arrived <= w[1].arrived && w[0].handled <= w[1].handled),
        "handled in arrival order"
    );
    let mean = lateness.iter().sum::<Duration>() / 200;
    assert!(
        mean > slow.delay,
        "queueing behind late draws adds: {mean:?}"
    );
    assert!(sim.stats().slowed >= 200);

    // Back to normal: handled on arrival.
    sim.set_slow(n[1], None);
    sim.send_raw(n[0], n[1], vec![0]);
    sim.run_for(MS);
    let log = sim.take_packet_log();
    assert_eq!(log[0].handled, log[0].arrived);
}

#[test]
fn slow_node_timers_run_late() {
    let (mut sim, n) = idle(2, 31, NetworkConfig::ideal());
    sim.join(n[1], &[n[0]]);
    sim.run_for(Duration::from_secs(3));
    let delay = Duration::from_secs(2);
    sim.set_slow(
        n[1],
        Some(SlowConfig {
            delay,
            jitter: Duration::ZERO,
        }),
    );
    // Every timer run is at least `delay` after the previous one: the next
    // deadline cannot precede the run that set it, and is handled `delay`
    // after it falls due. Probes are timer-driven.
    let mut runs = Vec::new();
    let mut probes = sim.endpoint(n[1]).stats().probes;
    for _ in 0..2000 {
        sim.run_for(Duration::from_millis(10));
        let now = sim.endpoint(n[1]).stats().probes;
        if now != probes {
            runs.push(sim.now());
            probes = now;
        }
    }
    assert!(runs.len() >= 4, "a slow node still probes: {runs:?}");
    assert!(
        runs.windows(2).all(|w| w[1] - w[0] >= delay),
        "probes closer than the lateness: {runs:?}"
    );
    // A crash discards what was waiting to be handled; a restart keeps the
    // slowness (it belongs to the host).
    sim.crash(n[1]);
    sim.restart(n[1], &[n[0]]);
    assert_eq!(sim.slow(n[1]).map(|s| s.delay), Some(delay));
    sim.run_for(Duration::from_secs(20));
    assert!(sim.full_view(), "a slow node rejoins");
}
