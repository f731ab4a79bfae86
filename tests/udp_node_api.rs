//! The Node handle as a multi-threaded program uses it: shared through an
//! `Arc<Node>`, called from several threads at once, asked about single
//! members without copying the member list, and its subscriptions used
//! through the channel types `vinery::runtime` re-exports.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;

use common::{converged, hosted_cluster, wait_until, DEADLINE};
use vinery::runtime::{EventFilter, Host, Node, NodeError, Receiver, TryRecvError};
use vinery::security::SecretKey;
use vinery::{Event, EventKind, MemberCounts, MemberState};

#[test]
fn handles_are_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Node>();
    shareable::<Host>();
    shareable::<Receiver<Event>>();
}

#[test]
fn single_member_queries_follow_the_cluster() {
    let host = Host::new().unwrap();
    let nodes = hosted_cluster(&host, "q", 3);
    assert!(wait_until(DEADLINE, || converged(&nodes)));
    let (a, c) = (&nodes[0], &nodes[2]);
    assert_eq!(
        a.member_counts().unwrap(),
        MemberCounts {
            alive: 3,
            ..MemberCounts::default()
        }
    );
    let c_record = a.member("q02").unwrap().expect("a knows c");
    assert_eq!(
        (c_record.state, c_record.addr),
        (MemberState::Alive, c.advertise_addr().unwrap())
    );
    assert!(a.is_alive("q02").unwrap());
    assert!(
        a.is_alive("q00").unwrap(),
        "a node is a live member of its own"
    );
    assert_eq!(a.member("nobody").unwrap(), None);
    assert!(!a.is_alive("nobody").unwrap());
    assert_eq!(a.members().unwrap().len(), 3, "members include this node");

    let failed = a.subscribe_filtered(EventFilter::kinds([EventKind::MemberFailed]));
    c.stop();
    let e = failed.recv_timeout(DEADLINE).expect("c declared failed");
    assert_eq!(e.node(), "q02");
    assert!(!a.is_alive("q02").unwrap());
    assert_eq!(
        a.member("q02").unwrap().map(|m| m.state),
        Some(MemberState::Dead)
    );
    let counts = a.member_counts().unwrap();
    assert_eq!((counts.alive, counts.dead, counts.known()), (2, 1, 3));
    assert!(matches!(c.member_counts(), Err(NodeError::NotRunning)));
}

#[test]
fn an_arc_node_is_driven_from_several_threads_at_once() {
    let host = Host::new().unwrap();
    let nodes = hosted_cluster(&host, "t", 2);
    assert!(wait_until(DEADLINE, || converged(&nodes)));
    let mut nodes = nodes.into_iter();
    let (observer, node) = (nodes.next().unwrap(), Arc::new(nodes.next().unwrap()));
    // Keys are installed for receiving only: the pair keeps talking in
    // plaintext while the keyring grows.
    node.set_send_plaintext(true).unwrap();
    node.set_accept_plaintext(true).unwrap();
    let keys: Vec<SecretKey> = (1..=4u8).map(|i| SecretKey::from_bytes([i; 32])).collect();
    const WRITES: usize = 20;

    let barrier = Arc::new(Barrier::new(keys.len() + 3));
    let mut threads = Vec::new();
    for key in keys.clone() {
        let (node, barrier) = (node.clone(), barrier.clone());
        threads.push(thread::spawn(move || {
            barrier.wait();
            node.install_key(key).unwrap();
        }));
    }
    let (writer, barrier_w) = (node.clone(), barrier.clone());
    threads.push(thread::spawn(move || {
        barrier_w.wait();
        for i in 0..WRITES {
            writer.set(&format!("k{i}"), b"v").unwrap();
        }
    }));
    let (tagger, barrier_t) = (node.clone(), barrier.clone());
    threads.push(thread::spawn(move || {
        barrier_t.wait();
        for i in 0..WRITES {
            tagger.set_meta(format!("gen={i}").as_bytes()).unwrap();
        }
    }));
    let (reader, barrier_r) = (node.clone(), barrier.clone());
    threads.push(thread::spawn(move || {
        barrier_r.wait();
        for _ in 0..WRITES {
            assert!(reader.is_alive("t00").unwrap());
            assert_eq!(reader.member_counts().unwrap().live(), 2);
        }
    }));
    for t in threads {
        t.join().unwrap();
    }

    let mut held = node.keys().unwrap();
    held.sort_by_key(SecretKey::fingerprint);
    let mut expected = keys.clone();
    expected.sort_by_key(SecretKey::fingerprint);
    assert_eq!(held, expected, "every install happened");
    assert_eq!(
        node.config().protocol.keys,
        node.keys().unwrap(),
        "the kept config has the keyring in the order the node applied it"
    );
    let last_meta = format!("gen={}", WRITES - 1).into_bytes();
    assert_eq!(node.config().protocol.meta, last_meta);
    assert_eq!(node.local_member().unwrap().meta, last_meta);
    assert!(wait_until(DEADLINE, || {
        observer
            .member("t01")
            .unwrap()
            .is_some_and(|m| m.meta == last_meta)
            && observer.peer_keys("t01").unwrap().len() == WRITES
    }));
}

#[test]
fn concurrent_starts_start_once_and_a_leave_from_another_thread_ends_calls() {
    let host = Host::new().unwrap();
    let nodes = hosted_cluster(&host, "s", 1);
    let seed = nodes[0].local_addr().unwrap();
    let node = Arc::new(host.node(common::node_config("s01", "127.0.0.1", &[seed])));
    let joined = nodes[0].subscribe_filtered(EventFilter::kinds([EventKind::MemberJoined]));
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let node = node.clone();
            thread::spawn(move || node.start())
        })
        .collect();
    let results: Vec<_> = starts.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .all(|r| r.is_ok() || matches!(r, Err(NodeError::AlreadyRunning))));
    assert_eq!(
        joined.recv_timeout(DEADLINE).map(|e| e.node().to_owned()),
        Ok("s01".into())
    );

    let left = nodes[0].subscribe_once(EventFilter::kinds([EventKind::MemberLeft]));
    let leaver = node.clone();
    thread::spawn(move || leaver.leave(DEADLINE))
        .join()
        .unwrap()
        .unwrap();
    assert!(!node.is_running());
    assert!(matches!(node.member("s00"), Err(NodeError::NotRunning)));
    assert_eq!(
        left.recv_timeout(DEADLINE).map(|e| e.node().to_owned()),
        Ok("s01".into())
    );
    assert_eq!(left.try_recv(), Err(TryRecvError::Disconnected));
}
