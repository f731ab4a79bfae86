//! Simulate a cluster and watch it work: 50 nodes join through one seed, one
//! crashes, one leaves, and a 10/40 partition heals. Every line printed is
//! an event some node emitted, with its virtual time.
//!
//! `cargo run --release --example simulate [SEED]`

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vinery::sim::{NetworkConfig, Sim};
use vinery::{Config, Event, MemberState};

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut sim = Sim::new(seed, NetworkConfig::lan());
    let nodes = sim.add_nodes(50, &Config::lan());
    println!(
        "seed {seed}: 50 nodes joining through {}",
        sim.name(nodes[0])
    );
    for &n in &nodes[1..] {
        sim.join(n, &[nodes[0]]);
    }
    let step = Duration::from_millis(100);
    let at = sim.wait_until(step, Duration::from_secs(30), |s| s.converged());
    println!(
        "{}: every node lists all 50 and their views hash equal",
        at.expect("converges")
    );

    // From here on, print what node-1 sees (one observer keeps it short).
    let observer = nodes[1];
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&seen);
    sim.on_event(move |t, node, event: &Event| {
        if node == observer {
            let Some(m) = event.member() else { return };
            sink.lock().expect("not poisoned").push(format!(
                "{t}: node-1 sees {} {} (incarnation {})",
                m.name,
                event.kind(),
                m.incarnation
            ));
        }
    });
    let show = |sim: &mut Sim, what: &str, d: Duration| {
        println!("-- {what}");
        sim.run_for(d);
        for line in seen.lock().expect("not poisoned").drain(..) {
            println!("   {line}");
        }
    };

    sim.crash(nodes[7]);
    show(&mut sim, "node-7 crashes", Duration::from_secs(30));
    assert!(sim.everyone_sees(nodes[7], MemberState::Dead));

    let now = sim.now();
    sim.endpoint_mut(nodes[8]).leave(now);
    show(&mut sim, "node-8 leaves gracefully", Duration::from_secs(5));

    sim.restart(nodes[7], &[nodes[0]]);
    show(
        &mut sim,
        "node-7 restarts with the same name",
        Duration::from_secs(10),
    );

    let (a, b): (Vec<_>, Vec<_>) = nodes.iter().partition(|n| n.index() < 10);
    sim.partition(&[a, b]);
    show(
        &mut sim,
        "partition: nodes 0-9 cut off from 10-49 for 60 s",
        Duration::from_secs(60),
    );
    sim.heal();
    show(&mut sim, "healed", Duration::from_secs(20));
    let live = sim.endpoint(observer).num_live();
    println!("node-1 now counts {live} live members (49 expected: node-8 left)");
    println!(
        "trace hash {:016x} (same seed, same hash)",
        sim.trace_hash()
    );
}
