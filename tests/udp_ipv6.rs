//! Nodes on the IPv6 loopback `[::1]`, seeded with bracketed addresses.
//! Skipped, with the reason printed, on a machine without IPv6 loopback
//! (and failed instead under `CI=true`).

mod common;

use std::net::UdpSocket;

use common::{converged, standalone_nodes, wait_until, DEADLINE};

#[test]
fn three_nodes_on_ipv6_loopback_converge() {
    if let Err(e) = UdpSocket::bind("[::1]:0") {
        common::skip(&format!("no IPv6 loopback on this machine ({e})"));
        return;
    }
    let nodes = standalone_nodes(&["v6-a", "v6-b", "v6-c"], "::1", |_| {});
    for n in &nodes {
        assert!(n.config().seeds.iter().all(|s| s.starts_with("[::1]:")));
    }
    assert!(wait_until(DEADLINE, || converged(&nodes)));
    for n in &nodes {
        assert!(n.live_peers().unwrap().iter().all(|m| m.addr.is_ipv6()));
    }
}
