//! Standalone nodes over loopback UDP: the Node API end to end.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{converged, node_config, state_of, test_config, wait_until, DEADLINE};
use vinery::runtime::{EventFilter, Node, NodeConfig, NodeError, Receiver};
use vinery::{Event, EventKind, MemberState};

fn started(name: &str, seeds: &[SocketAddr]) -> Node {
    let node = Node::new(node_config(name, "127.0.0.1", seeds));
    node.start().unwrap();
    node
}

fn addr(node: &Node) -> SocketAddr {
    node.local_addr().unwrap()
}

/// Waits for an event about `name` matching `pred` on `rx`.
fn saw(rx: &Receiver<Event>, name: &str, pred: fn(&Event) -> bool) -> bool {
    let end = std::time::Instant::now() + DEADLINE;
    while let Ok(e) = rx.recv_deadline(end) {
        if e.node() == name && pred(&e) {
            return true;
        }
    }
    false
}

#[test]
fn stop_and_start_keep_subscriptions_and_the_address() {
    let a = started("a", &[]);
    let b = Node::new(node_config("b", "127.0.0.1", &[addr(&a)]));
    let events = b.subscribe();
    b.start().unwrap();
    assert!(saw(&events, "a", |e| matches!(e, Event::MemberJoined(_))));
    let before = addr(&b);
    b.stop();
    assert!(matches!(b.live_peers(), Err(NodeError::NotRunning)));
    b.start().unwrap();
    assert_eq!(addr(&b), before, "a restart keeps its port");
    // The fresh endpoint learns `a` again and tells the same subscription.
    assert!(saw(&events, "a", |e| matches!(e, Event::MemberJoined(_))));
    let nodes = [a, b];
    assert!(wait_until(DEADLINE, || converged(&nodes)));
    assert!(matches!(
        Node::new(node_config("x", "127.0.0.1", &[])).stats(),
        Err(NodeError::NotRunning)
    ));
}

#[test]
fn leave_is_seen_as_left_and_returns_once_the_news_is_out() {
    let a = started("a", &[]);
    let b = started("b", &[addr(&a)]);
    let c = started("c", &[addr(&a)]);
    let left = a.subscribe_filtered(EventFilter::kinds([EventKind::MemberLeft]));
    let nodes = [a, b];
    assert!(wait_until(DEADLINE, || nodes.iter().all(|n| state_of(
        n, "c"
    ) == Some(
        MemberState::Alive
    ))));
    let started_at = std::time::Instant::now();
    c.leave(Duration::from_secs(20)).unwrap();
    assert!(
        started_at.elapsed() < Duration::from_secs(10),
        "did not wait for the timeout"
    );
    assert!(!c.is_running());
    assert!(matches!(
        c.leave(Duration::ZERO),
        Err(NodeError::NotRunning)
    ));
    assert!(wait_until(DEADLINE, || nodes.iter().all(|n| state_of(
        n, "c"
    ) == Some(
        MemberState::Left
    ))));
    // The filtered subscription got the departure and nothing else.
    let e = left.recv_timeout(DEADLINE).unwrap();
    assert!(matches!(&e, Event::MemberLeft(m) if m.name == "c"));
    assert!(left.try_recv().is_err());
    assert_eq!(nodes[0].dead_peers().unwrap().len(), 1);
}

#[test]
fn seeds_by_name_join_and_metadata() {
    let a = started("a", &[]);
    // A name that resolves, and one that never will: the node joins through
    // the first and counts the second.
    let seeds = [
        format!("localhost:{}", addr(&a).port()),
        "no-such-host.invalid:7946".to_string(),
    ];
    let b = Node::new(
        NodeConfig::new(test_config("b"), "127.0.0.1:0".parse().unwrap()).with_seeds(seeds),
    );
    b.start().unwrap();
    assert!(wait_until(DEADLINE, || state_of(&b, "a") == Some(MemberState::Alive)));
    assert!(b.stats().unwrap().runtime.resolve_failures >= 1);

    // A lone node pointed at the cluster later.
    let c = started("c", &[]);
    assert!(matches!(
        c.join(&["no-such-host.invalid:1"]),
        Err(NodeError::Resolve { .. })
    ));
    c.join(&[addr(&a).to_string()]).unwrap();
    let nodes = [a, b, c];
    assert!(wait_until(DEADLINE, || converged(&nodes)));

    let updates = nodes[0].subscribe_filtered(EventFilter::kinds([EventKind::MemberUpdated]));
    nodes[2].set_meta(b"role=cache").unwrap();
    let e = updates.recv_timeout(DEADLINE).unwrap();
    let m = e.member().expect("a membership event");
    assert_eq!((m.name.as_str(), &m.meta[..]), ("c", &b"role=cache"[..]));
    assert!(matches!(
        nodes[2].set_meta(&[0; 600]),
        Err(NodeError::Config(e)) if e.field == "meta"
    ));
    assert_eq!(nodes[2].local_member().unwrap().meta, b"role=cache");

    // A restart keeps the metadata set at run time.
    nodes[2].stop();
    nodes[2].start().unwrap();
    assert_eq!(nodes[2].local_member().unwrap().meta, b"role=cache");
    assert!(wait_until(DEADLINE, || nodes[0]
        .all_peers()
        .unwrap()
        .iter()
        .any(|m| m.name == "c"
            && m.meta == b"role=cache"
            && m.state == MemberState::Alive)));
}

#[test]
fn bad_runtime_config_names_the_field() {
    let wildcard = NodeConfig::new(test_config("w"), "0.0.0.0:0".parse().unwrap());
    let err = Node::new(wildcard.clone()).start().unwrap_err();
    assert!(
        matches!(&err, NodeError::Config(e) if e.field == "advertise"),
        "{err}"
    );
    assert!(err.to_string().contains("advertise"));
    // With an advertise address (port 0: the bound port), it starts.
    let node = Node::new(wildcard.with_advertise("127.0.0.1:0".parse().unwrap()));
    node.start().unwrap();
    let adv = node.advertise_addr().unwrap();
    assert_eq!(
        (adv.ip().to_string(), adv.port()),
        ("127.0.0.1".into(), addr(&node).port())
    );
    assert!(matches!(node.start(), Err(NodeError::AlreadyRunning)));
    let mut family = NodeConfig::new(test_config("f"), "127.0.0.1:0".parse().unwrap());
    family.advertise = Some("[::1]:7946".parse().unwrap());
    assert!(matches!(family.validate(), Err(e) if e.field == "advertise"));
    let mut queue = NodeConfig::new(test_config("q"), "127.0.0.1:0".parse().unwrap());
    queue.event_buffer = 0;
    assert!(matches!(queue.validate(), Err(e) if e.field == "event_buffer"));
}

#[test]
fn a_subscriber_that_never_reads_loses_events_counted_and_blocks_nothing() {
    let mut config = node_config("a", "127.0.0.1", &[]);
    config.event_buffer = 2;
    let a = Node::new(config);
    let stuck = a.subscribe();
    a.start().unwrap();
    let others: Vec<Node> = ["b", "c", "d", "e"]
        .iter()
        .map(|n| started(n, &[addr(&a)]))
        .collect();
    assert!(wait_until(DEADLINE, || a
        .live_peers()
        .is_ok_and(|p| p.len() == others.len())));
    let subs = a.stats().unwrap().runtime.subscribers;
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].delivered, 2);
    assert!(subs[0].dropped >= 2, "{subs:?}");
    assert_eq!(stuck.len(), 2);
    drop(stuck);
    // The next event finds the channel closed and ends the subscription.
    others[0].set_meta(b"x").unwrap();
    assert!(wait_until(DEADLINE, || a
        .stats()
        .is_ok_and(|s| s.runtime.subscribers.is_empty())));
}
