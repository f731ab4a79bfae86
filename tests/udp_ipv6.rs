//! Nodes on the IPv6 loopback `[::1]`, seeded with bracketed addresses.
//! Skipped, with the reason printed, on a machine without IPv6 loopback.

mod common;

use std::net::UdpSocket;

use common::{converged, node_config, wait_until, DEADLINE};
use vinery::runtime::Node;

#[test]
fn three_nodes_on_ipv6_loopback_converge() {
    if let Err(e) = UdpSocket::bind("[::1]:0") {
        println!("skipped: no IPv6 loopback on this machine ({e})");
        return;
    }
    let mut nodes: Vec<Node> = Vec::new();
    for name in ["v6-a", "v6-b", "v6-c"] {
        let seeds: Vec<_> = nodes
            .first()
            .and_then(Node::local_addr)
            .into_iter()
            .collect();
        let mut node = Node::new(node_config(name, "::1", &seeds));
        node.start().unwrap();
        assert!(node.config().seeds.iter().all(|s| s.starts_with("[::1]:")));
        nodes.push(node);
    }
    assert!(wait_until(DEADLINE, || converged(&nodes)));
    for n in &nodes {
        assert!(n.live_peers().unwrap().iter().all(|m| m.addr.is_ipv6()));
    }
}
