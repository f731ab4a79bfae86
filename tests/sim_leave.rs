//! A graceful leave must reach the live members even when the cluster is
//! small and some of the members the leaver knows are already gone: with a
//! dissemination budget of λ·⌈log(n+1)⌉ sends, random gossip alone can
//! spend every send on dead or departed members.

use std::time::Duration;

use vinery::sim::{NetworkConfig, Sim};
use vinery::{Config, MemberState};

/// Five nodes; one crashes; once it is known dead, two leave at the same
/// instant (neither has heard of the other's departure). The two that stay
/// must hold both leavers as Left, not Dead, at every seed.
#[test]
fn simultaneous_leaves_after_a_crash_are_seen_as_left() {
    let mut wrong = Vec::new();
    for seed in 0..200u64 {
        let mut sim = Sim::new(seed, NetworkConfig::default());
        let nodes = sim.add_nodes(5, &Config::local());
        for &x in &nodes[1..] {
            sim.join(x, &[nodes[0]]);
        }
        sim.run_for(Duration::from_secs(5));
        sim.crash(nodes[2]);
        assert!(
            sim.wait_until(Duration::from_millis(100), Duration::from_secs(30), |s| s
                .everyone_sees(nodes[2], MemberState::Dead))
                .is_some(),
            "seed {seed}: the crash was not detected"
        );
        for &leaver in &nodes[3..5] {
            sim.with_endpoint(leaver, |ep, now| ep.leave(now));
        }
        // A leaver's process exits once its endpoint says the leave is done.
        for _ in 0..200 {
            if nodes[3..5]
                .iter()
                .all(|&n| sim.endpoint(n).leave_finished())
            {
                break;
            }
            sim.run_for(Duration::from_millis(10));
        }
        sim.crash(nodes[3]);
        sim.crash(nodes[4]);
        sim.run_for(Duration::from_secs(30));
        for &stayer in &nodes[0..2] {
            for &leaver in &nodes[3..5] {
                let m = sim.endpoint(stayer).member(sim.name(leaver)).unwrap();
                if m.state != MemberState::Left {
                    wrong.push((seed, sim.name(stayer).to_owned(), m.name, m.state));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{} wrong views: {wrong:?}", wrong.len());
}
