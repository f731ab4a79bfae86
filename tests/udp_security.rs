//! Encryption over real UDP (loopback): an encrypted cluster works and a
//! node with another key cannot join; keys rotate across a running cluster
//! with no false failure (and a restarted node keeps the rotated keyring);
//! and hostile datagrams from a raw socket are dropped, counted by reason,
//! change nothing, and do not stop the node serving its peers.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{
    converged, hosted_cluster_with, node_config, standalone_nodes, state_of, wait_until, DEADLINE,
};
use crossbeam_channel::Receiver;
use vinery::runtime::{EventFilter, Host, Node, NodeError};
use vinery::security::{seal_datagram, KeyError, SecretKey};
use vinery::wire::{self, ClusterTag, Header};
use vinery::{Event, EventKind, MemberState};

fn key(b: u8) -> SecretKey {
    SecretKey::from_bytes([b; 32])
}

/// `n` hosted nodes sealing with `k`.
fn keyed_cluster(host: &Host, prefix: &str, n: usize, k: &SecretKey) -> Vec<Node> {
    hosted_cluster_with(host, prefix, n, |c| c.protocol.keys = vec![k.clone()])
}

fn drops(node: &Node, reason: &str) -> u64 {
    node.stats().unwrap().endpoint.drops_for(reason)
}

#[test]
fn an_encrypted_cluster_works_and_a_wrong_key_cannot_join() {
    let host = Host::new().unwrap();
    let nodes = keyed_cluster(&host, "enc", 5, &key(1));
    assert!(wait_until(DEADLINE, || converged(&nodes)), "no convergence");
    nodes[2].set("k", b"sealed").unwrap();
    assert!(wait_until(DEADLINE, || nodes
        .iter()
        .all(|n| n.name() == "enc02"
            || n.peer_value("enc02", "k").unwrap().as_deref()
                == Some(&b"sealed"[..]))));

    let seed = [nodes[0].local_addr().unwrap()];
    let mut stranger = node_config("stranger", "127.0.0.1", &seed);
    stranger.protocol.keys = vec![key(9)];
    let stranger = host.node(stranger);
    stranger.start().unwrap();
    let plain = host.node(node_config("plain", "127.0.0.1", &seed));
    plain.start().unwrap();
    // Both keep retrying their joins; the seed drops every one.
    assert!(wait_until(DEADLINE, || drops(&nodes[0], "wrong_key") >= 3
        && drops(&nodes[0], "plaintext_refused") >= 3));
    for outsider in [&stranger, &plain] {
        assert!(
            outsider.live_peers().unwrap().is_empty(),
            "an outsider joined"
        );
        assert!(nodes.iter().all(|n| state_of(n, outsider.name()).is_none()));
    }
    // What the seed sends back (nothing: its answers go only to members)
    // never reaches them either: the stranger counts no datagram opened.
    assert_eq!(drops(&stranger, "wrong_key"), 0);
    assert!(converged(&nodes));
}

#[test]
fn keys_rotate_across_a_running_cluster_without_false_failures() {
    let host = Host::new().unwrap();
    let (old, new) = (key(1), key(2));
    let mut nodes = keyed_cluster(&host, "rot", 8, &old);
    assert!(wait_until(DEADLINE, || converged(&nodes)), "no convergence");
    let failures: Vec<Receiver<Event>> = nodes
        .iter()
        .map(|n| n.subscribe_filtered(EventFilter::kinds([EventKind::MemberFailed])))
        .collect();
    // Each step reaches the nodes one by one, as an operator's rollout
    // would, and probes run between steps: at every moment each sender's
    // key must be accepted by every receiver.
    let step = |nodes: &mut [Node], f: &dyn Fn(&mut Node) -> Result<(), NodeError>| {
        for n in nodes.iter_mut() {
            f(n).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        // A few probe intervals (500 ms in the test config) under the new
        // setting everywhere, before the next step.
        std::thread::sleep(Duration::from_secs(2));
    };
    step(&mut nodes, &|n| n.install_key(new.clone()));
    assert!(matches!(
        nodes[0].remove_key(&old),
        Err(NodeError::Key(KeyError::RemovePrimary))
    ));
    step(&mut nodes, &|n| n.use_key(&new));
    step(&mut nodes, &|n| n.remove_key(&old));
    assert!(converged(&nodes), "the rotation broke the cluster");
    for (n, rx) in nodes.iter().zip(&failures) {
        let failed: Vec<_> = rx.try_iter().collect();
        assert!(failed.is_empty(), "{}: false failures {failed:?}", n.name());
        assert_eq!(n.keys().unwrap(), std::slice::from_ref(&new));
        assert_eq!(n.config().protocol.keys, std::slice::from_ref(&new));
    }
    assert!(matches!(
        nodes[0].use_key(&old),
        Err(NodeError::Key(KeyError::NotInstalled))
    ));
    // A node restarted after the rotation comes back with the new key.
    nodes[5].stop();
    nodes[5].start().unwrap();
    assert!(
        wait_until(DEADLINE, || converged(&nodes)),
        "the restarted node did not rejoin with the rotated keyring"
    );
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// Sends `data` to `to` and waits until `target` has counted one more drop
/// for `reason` (the raw socket's datagrams arrive in order, alone).
fn send_counted(raw: &UdpSocket, to: SocketAddr, target: &Node, reason: &str, data: &[u8]) {
    let was = drops(target, reason);
    assert_eq!(raw.send_to(data, to).unwrap(), data.len());
    assert!(
        wait_until(DEADLINE, || drops(target, reason) == was + 1),
        "a {}-byte datagram was not counted as {reason} (drops: {:?})",
        data.len(),
        target.stats().unwrap().endpoint.drops
    );
}

/// What the target knows: members with their states and incarnations,
/// and its state hash.
fn snapshot(n: &Node) -> (Vec<(String, MemberState, u32)>, [u8; 4]) {
    let mut members: Vec<_> = n
        .all_peers()
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.state, m.incarnation))
        .collect();
    members.sort();
    (members, n.state_hash().unwrap())
}

#[test]
fn hostile_datagrams_are_dropped_counted_and_change_nothing() {
    let k = key(7);
    // Standalone nodes, each on its own thread, so that the barrage on one
    // does not slow the others.
    let nodes = standalone_nodes(&["t0", "t1", "t2"], "127.0.0.1", |c| {
        c.protocol.keys = vec![k.clone()]
    });
    assert!(wait_until(DEADLINE, || converged(&nodes)), "no convergence");
    nodes[1].set("k", b"v").unwrap();
    let target = &nodes[0];
    // Quiet first: the write is everywhere and the state hashes agree, so
    // nothing but the barrage could change the target's.
    assert!(wait_until(DEADLINE, || {
        let hashes: Vec<_> = nodes.iter().map(|n| n.state_hash().unwrap()).collect();
        target.peer_value("t1", "k").unwrap().is_some() && hashes.iter().all(|h| *h == hashes[0])
    }));
    let to = target.local_addr().unwrap();
    let watch: Vec<_> = nodes[1..]
        .iter()
        .map(|n| {
            n.subscribe_filtered(EventFilter::kinds([
                EventKind::MemberSuspect,
                EventKind::MemberFailed,
            ]))
        })
        .collect();

    // A genuine datagram an insider could send: the target's own record at
    // its current incarnation (a no-op), sealed now, and its variants.
    let cluster = ClusterTag::from_name(&target.config().protocol.cluster_name);
    let plain = common::noop_alive_datagram(cluster, &target.local_member().unwrap());
    let nonce = |i: u8| [i, 0xee, 0xee, 0xee, 0, 0, 0, 0, 0, 0, 0, 0];
    let sealed = seal_datagram(&k, &plain, now_ms(), nonce(1));
    let stale = seal_datagram(&k, &plain, now_ms() - 600_000, nonce(2));
    let future = seal_datagram(&k, &plain, now_ms() + 600_000, nonce(3));
    let wrong_key = seal_datagram(&key(8), &plain, now_ms(), nonce(4));
    let mut flipped = sealed.clone();
    flipped[30] ^= 0x10;
    let mut wrong_version = sealed.clone();
    wrong_version[2] = wire::PROTOCOL_VERSION + 1;
    let mut wrong_cluster = sealed.clone();
    wrong_cluster[4] ^= 1;
    let mut unknown_flags = sealed.clone();
    unknown_flags[3] |= 0x80;
    // The largest datagram IPv4 loopback carries (65 507 bytes): read
    // whole (no truncation into something else), refused by the seal.
    let mut largest = Header::new(cluster).to_bytes().to_vec();
    largest[3] |= wire::FLAG_ENCRYPTED;
    largest.resize(wire::MAX_DATAGRAM, 0xa5);
    let mut garbage = Header::new(cluster).to_bytes().to_vec();
    garbage[3] |= wire::FLAG_ENCRYPTED;
    garbage.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("too_short", sealed[..5].to_vec()),
        ("too_short", Vec::new()),
        ("wrong_key", sealed[..sealed.len() - 1].to_vec()),
        ("too_short", sealed[..wire::HEADER_LEN + 3].to_vec()),
        ("wrong_key", flipped),
        ("wrong_key", wrong_key),
        ("wrong_key", largest),
        ("wrong_key", garbage),
        ("wrong_cluster", wrong_cluster),
        ("unsupported_version", wrong_version),
        ("unknown_flags", unknown_flags),
        ("stale_timestamp", stale),
        ("stale_timestamp", future),
        ("plaintext_refused", plain.clone()),
        ("bad_magic", (0..100u8).collect()),
    ];

    let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
    let before = snapshot(target);
    let started = std::time::Instant::now();
    let mut rounds = 0;
    // Rounds for at least three probe intervals of the test config, so
    // that the peers probe the target several times during the barrage.
    while rounds < 3 || started.elapsed() < Duration::from_secs(3) {
        for (reason, data) in &cases {
            send_counted(&raw, to, target, reason, data);
        }
        // The genuine datagram, replayed: accepted, and a no-op.
        raw.send_to(&sealed, to).unwrap();
        rounds += 1;
    }
    let stale = drops(target, "stale_timestamp");
    assert_eq!(stale, 2 * rounds, "every stale datagram was counted");
    assert_eq!(snapshot(target), before, "hostile datagrams changed state");
    for (n, rx) in nodes[1..].iter().zip(&watch) {
        let about_target: Vec<_> = rx.try_iter().filter(|e| e.node() == "t0").collect();
        assert!(about_target.is_empty(), "{} saw {about_target:?}", n.name());
    }
    assert!(converged(&nodes));
    let rt = target.stats().unwrap().runtime;
    assert_eq!(rt.recv_errors, 0, "no datagram was too large to read");
}

#[test]
fn a_datagram_above_the_ipv4_limit_is_dropped_as_oversized() {
    // Only IPv6 loopback carries more than 65 507 bytes of UDP payload.
    if let Err(e) = UdpSocket::bind("[::1]:0") {
        println!("skipped: no IPv6 loopback on this machine ({e})");
        return;
    }
    let node = Node::new(node_config("big", "::1", &[]));
    node.start().unwrap();
    let raw = UdpSocket::bind("[::1]:0").unwrap();
    let size = wire::MAX_DATAGRAM + 20;
    match raw.send_to(&vec![0u8; size], node.local_addr().unwrap()) {
        Ok(_) => {
            assert!(wait_until(DEADLINE, || drops(&node, "oversized") == 1));
        }
        Err(e) => println!("skipped: loopback refused a {size}-byte datagram ({e})"),
    }
    node.stop();
}
