//! The failure detector's design properties under partial faults, in the
//! simulator where time is exact: local confirmation of suspicions keeps a
//! slow or lossy member's false suspicions on the node that had them, and a
//! node that hears nobody accuses nobody.

use std::time::Duration;

use vinery::sim::scenario::{run, Report, Scenario, ScenarioConfig, Variant};

fn scenario(scenario: Scenario, variant: Variant) -> Report {
    let mut cfg = ScenarioConfig::new(scenario, 30, 1);
    cfg.variant = variant;
    cfg.duration = Some(Duration::from_secs(120));
    let r = run(&cfg, &mut |_| {});
    assert!(r.ok(), "{scenario}/{variant}: {:?}", r.failure);
    r
}

fn figure(r: &Report, name: &str) -> f64 {
    r.number(name)
        .unwrap_or_else(|| panic!("{} has no {name}", r.scenario))
}

#[test]
fn jittery_nodes_raise_far_fewer_suspicions_with_local_confirmation() {
    let suspicions = |r: &Report| figure(r, "suspect_events") + figure(r, "suspect_events_faulty");
    let lifeguard = scenario(Scenario::Jitter, Variant::Lifeguard);
    let full = scenario(Scenario::Jitter, Variant::Full);
    assert!(
        suspicions(&lifeguard) >= 100.0 && suspicions(&full) * 20.0 <= suspicions(&lifeguard),
        "suspect events: {} with Lifeguard alone, {} with local confirmation",
        suspicions(&lifeguard),
        suspicions(&full)
    );
    assert_eq!(figure(&full, "false_dead"), 0.0);
    assert_eq!(figure(&full, "faulty_dead"), 0.0);
}

#[test]
fn a_deaf_node_declares_nobody_dead() {
    let lifeguard = scenario(Scenario::Deaf, Variant::Lifeguard);
    assert!(
        figure(&lifeguard, "own_view_dead") > 0.0,
        "without confirmation the deaf node accuses its peers"
    );
    let full = scenario(Scenario::Deaf, Variant::Full);
    assert_eq!(figure(&full, "own_view_dead"), 0.0);
    assert_eq!(figure(&full, "false_dead"), 0.0);
}
