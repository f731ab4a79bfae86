//! 32 real UDP nodes on one host thread (loopback): they converge; one
//! stopped without leaving is declared failed by all the others; restarted
//! under the same name it is alive again everywhere; a graceful leave is
//! seen as Left everywhere. And 256 hosted nodes converge.

mod common;

use std::time::Duration;

use common::{converged, hosted_cluster, state_of, wait_until, DEADLINE};
use vinery::runtime::{Host, Node};
use vinery::MemberState;

const N: usize = 32;

fn all_others_see(nodes: &[Node], name: &str, want: MemberState) -> bool {
    nodes
        .iter()
        .filter(|n| n.name() != name && n.is_running())
        .all(|n| state_of(n, name) == Some(want))
}

#[test]
fn cluster_of_256_on_one_thread_converges() {
    let host = Host::new().unwrap();
    let nodes = hosted_cluster(&host, "n", 256);
    assert!(wait_until(DEADLINE, || converged(&nodes)), "no convergence");
}

#[test]
fn cluster_of_32_converges_detects_a_crash_and_a_rejoin_and_a_leave() {
    let host = Host::new().unwrap();
    let nodes = hosted_cluster(&host, "n", N);
    assert!(wait_until(DEADLINE, || converged(&nodes)), "no convergence");

    let victim = "n17";
    nodes[17].stop();
    assert!(
        wait_until(DEADLINE, || all_others_see(
            &nodes,
            victim,
            MemberState::Dead
        )),
        "the crash was not detected everywhere"
    );

    nodes[17].start().unwrap();
    assert!(
        wait_until(DEADLINE, || converged(&nodes)),
        "the restarted node did not rejoin everywhere"
    );
    let reborn = nodes[17].local_member().unwrap();
    assert!(reborn.incarnation > 0, "it refuted its old record");

    let leaver = "n05";
    let events = nodes[0].subscribe();
    nodes[5].leave(Duration::from_secs(10)).unwrap();
    assert!(!nodes[5].is_running());
    assert!(
        wait_until(DEADLINE, || all_others_see(
            &nodes,
            leaver,
            MemberState::Left
        )),
        "the leave was not seen everywhere"
    );
    assert!(events
        .try_iter()
        .any(|e| matches!(&e, vinery::Event::MemberLeft(m) if m.name == leaver)));
    // Loopback never refuses a datagram: anything lost would be a runtime bug.
    for n in nodes.iter().filter(|n| n.is_running()) {
        let rt = n.stats().unwrap().runtime;
        assert_eq!(
            (rt.send_errors, rt.send_queue_drops, rt.recv_errors),
            (0, 0, 0)
        );
        assert!(rt.recv_buffer > 0 && rt.subscribers.len() <= 1);
    }
}
