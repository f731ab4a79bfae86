//! Helpers shared by the real-UDP tests: condition waits with deadlines and
//! protocol timers fast enough for tests yet tolerant of a busy 2-core CI.

// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use vinery::runtime::{Host, Node, NodeConfig};
use vinery::wire::{self, Bytes, ClusterTag, DatagramBuilder, Header, Message};
use vinery::{Config, Member, MemberState};

/// How long any condition may take before the test fails: generous, since
/// CI runs tests in parallel on 2 cores.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `cond` until it holds (true) or `deadline` passes (false).
pub fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The local preset with twice-as-fast probes: a crash is declared in a few
/// seconds, while Lifeguard still absorbs scheduling delays.
pub fn test_config(name: &str) -> Config {
    let mut c = Config::local().with_name(name);
    c.probe_interval = Duration::from_millis(500);
    c.probe_timeout = Duration::from_millis(200);
    c.gossip_interval = Duration::from_millis(100);
    c.reconnect_interval = Duration::from_secs(2);
    c.join_retry_interval = Duration::from_millis(300);
    c
}

/// A node on an ephemeral loopback port, joining `seeds`.
pub fn node_config(name: &str, ip: &str, seeds: &[SocketAddr]) -> NodeConfig {
    NodeConfig::new(test_config(name), SocketAddr::new(ip.parse().unwrap(), 0))
        .with_seeds(seeds.iter().map(ToString::to_string))
}

/// `n` nodes named `{prefix}00`, `{prefix}01`… on `host`, started, each
/// seeded with the first three (as a real deployment would be).
pub fn hosted_cluster(host: &Host, prefix: &str, n: usize) -> Vec<Node> {
    hosted_cluster_with(host, prefix, n, |_| {})
}

/// [`hosted_cluster`] with each node's config changed by `tweak` first.
pub fn hosted_cluster_with(
    host: &Host,
    prefix: &str,
    n: usize,
    tweak: impl Fn(&mut NodeConfig),
) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let seeds: Vec<_> = nodes.iter().take(3).filter_map(Node::local_addr).collect();
        let mut config = node_config(&format!("{prefix}{i:02}"), "127.0.0.1", &seeds);
        tweak(&mut config);
        let node = host.node(config);
        node.start().unwrap();
        nodes.push(node);
    }
    nodes
}

/// Standalone nodes (each on its own thread) named `names`, on `ip`, each
/// seeded with the first and changed by `tweak` before it starts.
pub fn standalone_nodes(names: &[&str], ip: &str, tweak: impl Fn(&mut NodeConfig)) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for name in names {
        let seeds: Vec<_> = nodes
            .first()
            .and_then(Node::local_addr)
            .into_iter()
            .collect();
        let mut config = node_config(name, ip, &seeds);
        tweak(&mut config);
        let node = Node::new(config);
        node.start().unwrap();
        nodes.push(node);
    }
    nodes
}

/// The state `observer` has for `name`, if it knows it (and is running).
pub fn state_of(observer: &Node, name: &str) -> Option<MemberState> {
    let peers = observer.all_peers().ok()?;
    peers.into_iter().find(|m| m.name == name).map(|m| m.state)
}

/// Whether every node in `nodes` sees every other as alive.
pub fn converged(nodes: &[Node]) -> bool {
    nodes.iter().all(|n| {
        n.live_peers().is_ok_and(|p| {
            p.len() == nodes.len() - 1 && p.iter().all(|m| m.state == MemberState::Alive)
        })
    })
}

/// A valid datagram an insider could send: `me`'s own alive record at its
/// current incarnation, a no-op for `me` (the hostile-input suites seal,
/// replay and corrupt it).
pub fn noop_alive_datagram(cluster: ClusterTag, me: &Member) -> Vec<u8> {
    let mut b = DatagramBuilder::new(Header::new(cluster), wire::DEFAULT_DATAGRAM);
    b.push(&Message::Alive(wire::Alive {
        name: &me.name,
        addr: me.addr,
        incarnation: me.incarnation,
        meta: Bytes(&me.meta),
    }))
    .expect("one alive record fits a datagram");
    b.finish()
}

/// A test that cannot run here (not root, no IPv6, no namespaces): prints
/// why and passes, except under `CI=true`, where it fails, so that CI
/// (which runs as root, with IPv6) cannot skip what it is there to check.
pub fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("cannot run under CI=true: {reason}");
    }
    println!("skipped: {reason}");
}
