//! Key/value state over real UDP (hosted nodes on loopback): a write, a
//! TTL expiry and a delete reach every one of 10 nodes, each raising its
//! event; a subscription by glob receives only the matching keys' events;
//! the Node API's errors and owned results.

mod common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use common::{converged, hosted_cluster, standalone_nodes, wait_until, DEADLINE};
use vinery::runtime::{EventFilter, Host, Node, NodeError, Receiver};
use vinery::{Event, EventKind, KeyPattern, KvError};

const N: usize = 10;

/// Whether every node but the owner sees `owner`'s `key` as `want`.
fn everyone_sees(nodes: &[Node], owner: &str, key: &str, want: Option<&[u8]>) -> bool {
    nodes
        .iter()
        .filter(|n| n.name() != owner)
        .all(|n| n.peer_value(owner, key).unwrap().as_deref() == want)
}

/// `(kind, node, key)` of every event waiting on `rx`.
fn drain(rx: &Receiver<Event>) -> Vec<(&'static str, String, String)> {
    rx.try_iter()
        .map(|e| {
            (
                e.kind().name(),
                e.node().to_owned(),
                e.key().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn writes_expiries_and_deletes_reach_every_node() {
    let host = Host::new().unwrap();
    let nodes = hosted_cluster(&host, "kv", N);
    assert!(wait_until(DEADLINE, || converged(&nodes)), "no convergence");
    let events: Vec<_> = nodes
        .iter()
        .map(|n| n.subscribe_filtered(EventFilter::keys(KeyPattern::Any)))
        .collect();
    let (owner, o) = ("kv03", &nodes[3]);

    let v1 = o.set("color", b"blue").unwrap();
    let v2 = o
        .set_with_ttl("lease", b"held", Duration::from_secs(2))
        .unwrap();
    assert!(v2 > v1);
    assert_eq!(o.get("color").unwrap().as_deref(), Some(&b"blue"[..]));
    assert!(
        wait_until(DEADLINE, || everyone_sees(
            &nodes,
            owner,
            "color",
            Some(b"blue")
        ) && everyone_sees(
            &nodes,
            owner,
            "lease",
            Some(b"held")
        )),
        "the writes did not reach every node"
    );
    let seen = nodes[0].peer_entry(owner, "lease").unwrap().unwrap();
    assert_eq!((seen.version, seen.value.as_slice()), (v2, &b"held"[..]));
    assert!(seen.expires.unwrap() > SystemTime::now());
    assert_eq!(nodes[7].peer_keys(owner).unwrap(), ["color", "lease"]);

    // The TTL runs out on every node by its own clock.
    assert!(
        wait_until(DEADLINE, || everyone_sees(&nodes, owner, "lease", None)),
        "the TTL did not expire everywhere"
    );
    assert_eq!(o.get("lease").unwrap(), None);
    assert_eq!(o.delete("color").unwrap().map(|v| v > v2), Some(true));
    assert_eq!(o.delete("never-set").unwrap(), None);
    assert!(
        wait_until(DEADLINE, || everyone_sees(&nodes, owner, "color", None)),
        "the delete did not reach every node"
    );

    // Every other node told its subscriber, in order: two updates, the
    // expiry, the delete. (The owner raises no event for its own writes
    // but does for the expiry.)
    for (n, rx) in nodes.iter().zip(&events) {
        let got = drain(rx);
        let mut want = vec![
            ("key_updated", owner.to_string(), "color".to_string()),
            ("key_updated", owner.into(), "lease".into()),
            ("key_expired", owner.into(), "lease".into()),
            ("key_deleted", owner.into(), "color".into()),
        ];
        if n.name() == owner {
            want = vec![want[2].clone()];
        }
        // Updates of two keys may be applied from one datagram in either
        // order; the rest follows in time.
        let (mut head, mut expected) = (got.clone(), want.clone());
        head.truncate(2);
        expected.truncate(2);
        if n.name() != owner {
            head.sort();
            expected.sort();
            assert_eq!(head, expected, "{}: {got:?}", n.name());
            assert_eq!(got[2..], want[2..], "{}", n.name());
        } else {
            assert_eq!(got, want, "{}", n.name());
        }
    }
    let rt = nodes[0].stats().unwrap().runtime;
    assert_eq!((rt.send_errors, rt.send_queue_drops), (0, 0));
}

#[test]
fn the_node_api_returns_owned_results_and_names_refusals() {
    let host = Host::new().unwrap();
    let nodes = hosted_cluster(&host, "api", 3);
    assert!(wait_until(DEADLINE, || converged(&nodes)), "no convergence");
    let (a, b) = (&nodes[0], &nodes[1]);
    b.set("svc.http", b"8080").unwrap();
    b.set("svc.db", b"5432").unwrap();
    b.set("other", b"x").unwrap();
    let far = SystemTime::now() + Duration::from_secs(3600);
    b.set_with_expiry("svc.lease", b"1", far).unwrap();
    assert!(wait_until(DEADLINE, || a
        .peer_value("api01", "svc.lease")
        .unwrap()
        .is_some()));
    let scan = a.scan(&KeyPattern::glob("svc.*")).unwrap();
    let keys: Vec<_> = scan
        .iter()
        .map(|e| (e.node.as_str(), e.key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("api01", "svc.db"),
            ("api01", "svc.http"),
            ("api01", "svc.lease")
        ]
    );
    let lease = &scan[2];
    let left = lease.expires.unwrap().duration_since(SystemTime::now());
    assert!(left.unwrap() > Duration::from_secs(3500), "{lease:?}");
    assert_eq!(a.scan(&KeyPattern::prefix("oth")).unwrap().len(), 1);
    assert!(a.kv_nodes().unwrap().contains(&"api01".to_string()));
    // Phi needs evidence of life; probes bring it within a few intervals.
    assert!(wait_until(DEADLINE, || a
        .phi("api01")
        .unwrap()
        .is_some_and(|p| p.is_finite() && p >= 0.0)));
    assert_eq!(a.phi("nobody").unwrap(), None);

    // Refusals come back as NodeError::Kv with the endpoint's reason.
    let refused = |r: Result<u64, NodeError>| match r {
        Err(NodeError::Kv(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(refused(a.set("", b"v")), KvError::EmptyKey);
    let past = SystemTime::now() - Duration::from_secs(1);
    assert_eq!(
        refused(a.set_with_expiry("k", b"v", past)),
        KvError::ExpiryInPast
    );
    let long = "k".repeat(1000);
    let err = a.set(&long, b"v").unwrap_err();
    assert!(matches!(err, NodeError::Kv(KvError::KeyTooLong { .. })));
    assert!(err.to_string().contains("max_key_len"), "{err}");
    assert!(matches!(
        refused(a.set("big", &[0; 100_000])),
        KvError::ValueTooLarge { .. }
    ));
    assert_eq!(a.get("k").unwrap(), None, "nothing was written");

    // A stopped node answers nothing.
    let c = host.node(nodes[2].config().clone());
    assert!(matches!(c.get("k"), Err(NodeError::NotRunning)));
    c.stop();
}

#[test]
fn a_glob_subscription_receives_only_matching_key_events() {
    let host = Host::new().unwrap();
    let nodes = hosted_cluster(&host, "glob", 3);
    assert!(wait_until(DEADLINE, || converged(&nodes)), "no convergence");
    let (watcher, writer) = (&nodes[0], &nodes[2]);
    let services = watcher.subscribe_filtered(EventFilter::keys(KeyPattern::glob("service.*")));
    let updates = watcher.subscribe_filtered(
        EventFilter::keys(KeyPattern::glob("service.*"))
            .or_key(KeyPattern::prefix("cfg/"))
            .with_kinds([EventKind::KeyUpdated]),
    );
    let everything = watcher.subscribe();
    for (k, v) in [
        ("service.http", "80"),
        ("services", "no"),
        ("cfg/a", "1"),
        ("service.db", "5432"),
        ("svc.x", "no"),
    ] {
        writer.set(k, v.as_bytes()).unwrap();
    }
    writer.delete("service.http").unwrap();
    writer.delete("cfg/a").unwrap();
    let owner = writer.name().to_owned();
    // Once the watcher's state shows every write, every event is out.
    assert!(wait_until(DEADLINE, || {
        let keys = watcher.peer_keys(&owner).unwrap();
        keys == ["service.db", "services", "svc.x"]
    }));
    // Fan-out hands events to every subscription in order, so each
    // filtered one must hold exactly the matching part of the unfiltered
    // one, in the same order.
    let kinds_and_keys = |rx: &Receiver<Event>| -> Vec<(&'static str, String)> {
        drain(rx).into_iter().map(|(k, _, key)| (k, key)).collect()
    };
    let all = kinds_and_keys(&everything);
    let glob = KeyPattern::glob("service.*");
    let want_services: Vec<_> = all
        .iter()
        .filter(|(_, k)| glob.matches(k))
        .cloned()
        .collect();
    let want_updates: Vec<_> = all
        .iter()
        .filter(|(kind, k)| *kind == "key_updated" && (glob.matches(k) || k.starts_with("cfg/")))
        .cloned()
        .collect();
    assert_eq!(kinds_and_keys(&services), want_services, "all: {all:?}");
    assert_eq!(kinds_and_keys(&updates), want_updates, "all: {all:?}");
    // The write of service.db was never superseded, so it was seen; and
    // events the glob refused did happen.
    assert!(want_services.contains(&("key_updated", "service.db".into())));
    assert!(all.iter().any(|(_, k)| k == "services" || k == "svc.x"));
    let stats = watcher.stats().unwrap().runtime.subscribers;
    assert_eq!(stats.len(), 3);
    assert!(stats.iter().all(|s| s.dropped == 0));
}

#[test]
fn every_replica_reports_every_expiry_on_its_own_thread() {
    // Standalone nodes: the owner's expiry tombstone and a replica's own
    // expiry timer race across threads; the replica must still report the
    // expiry (its loop runs due timers before reading datagrams).
    let nodes = standalone_nodes(&["ttl0", "ttl1", "ttl2", "ttl3"], "127.0.0.1", |_| {});
    assert!(wait_until(DEADLINE, || converged(&nodes)), "no convergence");
    let expiries: Vec<_> = nodes[1..]
        .iter()
        .map(|n| n.subscribe_filtered(EventFilter::kinds([EventKind::KeyExpired])))
        .collect();
    const KEYS: u64 = 20;
    for i in 0..KEYS {
        // Staggered by 37 ms: the expiries fall at every phase of the
        // loops' millisecond timer granularity.
        let ttl = Duration::from_millis(500 + 37 * i);
        nodes[0].set_with_ttl(&format!("k{i}"), b"v", ttl).unwrap();
    }
    for (n, rx) in nodes[1..].iter().zip(&expiries) {
        let mut seen = HashSet::new();
        let end = std::time::Instant::now() + DEADLINE;
        while seen.len() < KEYS as usize {
            match rx.recv_deadline(end) {
                Ok(e) => seen.insert(e.key().unwrap().to_owned()),
                Err(_) => panic!("{}: only {} of {KEYS} expiries", n.name(), seen.len()),
            };
        }
    }
}
