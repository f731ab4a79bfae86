//! Keeping strangers out, in the simulator: encrypted clusters work and
//! refuse wrong keys and plaintext, keys rotate and a live cluster moves to
//! encryption without a false failure, other clusters are never joined,
//! allow-lists hold, replays change nothing, and spoofed join floods cannot
//! grow memory without bound.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vinery::security::{Cidr, SecretKey};
use vinery::sim::{NetworkConfig, NodeId, Sim};
use vinery::wire::{self, Bytes, ClusterTag, DatagramBuilder, Header, Message};
use vinery::{Config, Endpoint, Event, MemberState, PacketError, Refusal, Time};

const N: usize = 100;
const STEP: Duration = Duration::from_millis(100);

fn key(b: u8) -> SecretKey {
    SecretKey::from_bytes([b; 32])
}

fn keyed(keys: &[u8]) -> Config {
    Config {
        keys: keys.iter().map(|&b| key(b)).collect(),
        ..Config::lan()
    }
}

fn join_all(sim: &mut Sim, nodes: &[NodeId]) {
    for &x in &nodes[1..] {
        sim.join(x, &[nodes[0]]);
    }
}

/// Counts `MemberFailed` events from now on.
fn count_failures(sim: &mut Sim) -> Arc<Mutex<Vec<String>>> {
    let failed: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&failed);
    sim.on_event(move |_, _, e| {
        if let Event::MemberFailed(m) = e {
            sink.lock().unwrap().push(m.name.clone());
        }
    });
    failed
}

/// Applies `f` to every node one by one, with time passing in between, as an
/// operator's rollout would, then lets the cluster settle.
fn rollout(sim: &mut Sim, nodes: &[NodeId], f: &dyn Fn(&mut Endpoint)) {
    for &x in nodes {
        sim.with_endpoint(x, |ep, _| f(ep));
        sim.run_for(Duration::from_millis(50));
    }
    sim.run_for(Duration::from_secs(5));
}

fn drops(sim: &Sim, x: NodeId, reason: &str) -> u64 {
    sim.endpoint(x).stats().drops_for(reason)
}

#[test]
fn an_encrypted_cluster_works_and_refuses_wrong_keys_and_plaintext() {
    let mut sim = Sim::new(21, NetworkConfig::default());
    let nodes = sim.add_nodes(N, &keyed(&[1]));
    join_all(&mut sim, &nodes);
    let at = sim.wait_until(STEP, Duration::from_secs(60), Sim::full_view);
    assert!(at.is_some(), "an encrypted cluster converges");
    sim.with_endpoint(nodes[3], |ep, now| ep.set(now, "k", b"v").unwrap());
    let name = sim.name(nodes[3]).to_owned();
    sim.wait_until(STEP, Duration::from_secs(10), |s| {
        s.running()
            .all(|x| x == nodes[3] || s.endpoint(x).peer_value(&name, "k") == Some(b"v"))
    })
    .expect("key/value state spreads sealed");
    assert!(sim.stats().largest_datagram <= Config::lan().max_datagram);

    // A node with another key, and one with none, try to join.
    let stranger = sim.add_node(keyed(&[9]));
    let plain = sim.add_node(Config::lan());
    sim.join(stranger, &[nodes[0]]);
    sim.join(plain, &[nodes[0]]);
    sim.run_for(Duration::from_secs(20));
    for x in [stranger, plain] {
        assert_eq!(sim.endpoint(x).num_live(), 1, "an outsider joined");
        let name = sim.name(x).to_owned();
        assert!(sim.endpoint(nodes[0]).member(&name).is_none());
    }
    assert!(drops(&sim, nodes[0], "wrong_key") > 0);
    assert!(drops(&sim, nodes[0], "plaintext_refused") > 0);
}

#[test]
fn keys_rotate_across_a_running_cluster_without_false_failures() {
    let mut sim = Sim::new(22, NetworkConfig::default());
    let nodes = sim.add_nodes(N, &keyed(&[1]));
    join_all(&mut sim, &nodes);
    sim.wait_until(STEP, Duration::from_secs(60), Sim::full_view)
        .expect("converge");
    let failed = count_failures(&mut sim);
    let step = |sim: &mut Sim, f: &dyn Fn(&mut Endpoint)| rollout(sim, &nodes, f);
    step(&mut sim, &|ep| ep.install_key(key(2)));
    step(&mut sim, &|ep| ep.use_key(&key(2)).unwrap());
    step(&mut sim, &|ep| ep.remove_key(&key(1)).unwrap());
    sim.run_for(Duration::from_secs(30));
    assert!(
        failed.lock().unwrap().is_empty(),
        "false failures during rotation: {:?}",
        failed.lock().unwrap()
    );
    assert!(sim.full_view());
    assert!(sim.running().all(|x| sim.endpoint(x).keys() == [key(2)]));
    // The old key is gone: a node still using it is shut out.
    let old = sim.add_node(keyed(&[1]));
    sim.join(old, &[nodes[0]]);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.endpoint(old).num_live(), 1);
}

#[test]
fn a_live_cluster_moves_from_plaintext_to_encryption_without_downtime() {
    let mut sim = Sim::new(23, NetworkConfig::default());
    let nodes = sim.add_nodes(N, &Config::lan());
    join_all(&mut sim, &nodes);
    sim.wait_until(STEP, Duration::from_secs(60), Sim::full_view)
        .expect("converge");
    let failed = count_failures(&mut sim);
    let step = |sim: &mut Sim, f: &dyn Fn(&mut Endpoint)| rollout(sim, &nodes, f);
    // 1: accept sealed, keep sending and accepting plaintext.
    step(&mut sim, &|ep| {
        ep.set_send_plaintext(true);
        ep.set_accept_plaintext(true);
        ep.install_key(key(5));
    });
    // 2: seal, still accept plaintext from the nodes not switched yet.
    step(&mut sim, &|ep| ep.set_send_plaintext(false));
    // 3: refuse plaintext.
    step(&mut sim, &|ep| ep.set_accept_plaintext(false));
    sim.run_for(Duration::from_secs(30));
    assert!(
        failed.lock().unwrap().is_empty(),
        "false failures during migration: {:?}",
        failed.lock().unwrap()
    );
    assert!(sim.full_view());
    let refused: u64 = sim
        .running()
        .map(|x| drops(&sim, x, "plaintext_refused"))
        .sum();
    assert_eq!(refused, 0, "no plaintext was left in flight at step 3");
    let plain = sim.add_node(Config::lan());
    sim.join(plain, &[nodes[0]]);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(
        sim.endpoint(plain).num_live(),
        1,
        "plaintext is refused now"
    );
}

#[test]
fn a_node_seeded_with_another_clusters_address_never_joins_it() {
    let mut sim = Sim::new(24, NetworkConfig::default());
    let ours = sim.add_nodes(10, &Config::lan());
    join_all(&mut sim, &ours);
    let other = Config {
        cluster_name: "elsewhere".into(),
        ..Config::lan()
    };
    let theirs = sim.add_nodes(3, &other);
    sim.join(theirs[1], &[theirs[0]]);
    sim.join(theirs[2], &[ours[0]]);
    sim.run_for(Duration::from_secs(30));
    assert_eq!(sim.endpoint(theirs[2]).num_live(), 1);
    assert_eq!(sim.endpoint(ours[0]).num_live(), 10);
    assert!(drops(&sim, ours[0], "wrong_cluster") > 0);
    assert_eq!(sim.endpoint(theirs[0]).num_live(), 2);
}

#[test]
fn the_source_allow_list_drops_everyone_else_before_decoding() {
    let mut sim = Sim::new(25, NetworkConfig::default());
    let nodes = sim.add_nodes(4, &Config::lan());
    // Simulated addresses are 10.0.0.i: allow only 10.0.0.0..=10.0.0.1.
    let strict = Config {
        allowed_sources: vec!["10.0.0.0/31".parse::<Cidr>().unwrap()],
        ..Config::lan()
    };
    let guarded = sim.add_node(strict);
    join_all(&mut sim, &nodes);
    sim.join(guarded, &[nodes[0]]);
    sim.run_for(Duration::from_secs(20));
    assert!(drops(&sim, guarded, "source_not_allowed") > 0);
    // Node 0 (10.0.0.0) and node 1 may talk to it, nodes 2 and 3 may not:
    // it still learns of them through the allowed ones.
    assert!(sim.endpoint(guarded).num_live() >= 2);
}

/// A hand-wired pair, to capture and replay exact datagrams.
fn pair(config: &Config) -> (Endpoint, Endpoint) {
    let a = Endpoint::new(
        config.clone().with_name("a"),
        "10.9.0.1:7946".parse().unwrap(),
        1,
    )
    .unwrap();
    let b = Endpoint::new(
        config.clone().with_name("b"),
        "10.9.0.2:7946".parse().unwrap(),
        2,
    )
    .unwrap();
    (a, b)
}

/// Delivers everything `from` wants to send to `to`, returning copies.
fn deliver(from: &mut Endpoint, to: &mut Endpoint, now: Time) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    while let Some(t) = from.poll_transmit() {
        if t.to == to.addr() {
            let _ = to.handle_packet(now, from.addr(), &t.data);
            sent.push(t.data);
        }
    }
    sent
}

/// Every visible key: owner, key, value.
type KvView = Vec<(String, String, Vec<u8>)>;

fn snapshot(ep: &Endpoint) -> (Vec<vinery::Member>, [u8; 4], KvView) {
    let kv = ep
        .scan(&vinery::KeyPattern::Any)
        .iter()
        .map(|k| (k.node.to_owned(), k.key.to_owned(), k.value.to_vec()))
        .collect();
    (ep.members(), ep.state_hash(), kv)
}

#[test]
fn replayed_datagrams_change_nothing_and_old_ones_are_refused() {
    let (mut a, mut b) = pair(&keyed(&[7]));
    let mut now = Time::from_secs(1000);
    b.join(now, &[a.addr()]);
    let mut captured = deliver(&mut b, &mut a, now);
    captured.extend(deliver(&mut a, &mut b, now));
    a.set(now, "k", b"1").unwrap();
    a.set_meta(now, b"role=x").unwrap();
    captured.extend(deliver(&mut a, &mut b, now));
    // Later history: the key changes, then is deleted; a leaves and is
    // forgotten... the replays must not bring any of the past back.
    now += Duration::from_secs(5);
    a.set(now, "k", b"2").unwrap();
    a.delete(now, "k").unwrap();
    deliver(&mut a, &mut b, now);
    a.leave(now);
    deliver(&mut a, &mut b, now);
    while b.poll_event().is_some() {}
    while b.poll_transmit().is_some() {}
    let before = snapshot(&b);
    assert_eq!(b.member("a").unwrap().state, MemberState::Left);

    // Within the window: accepted, but a no-op by precedence and version.
    now += Duration::from_secs(60);
    let accepted = captured
        .iter()
        .filter(|d| b.handle_packet(now, a.addr(), d).is_ok())
        .count();
    assert!(accepted >= 3, "the replays must reach the handlers");
    assert_eq!(snapshot(&b), before, "a replay changed state");
    assert!(b.poll_event().is_none(), "a replay raised an event");

    // Outside it: refused unread.
    now += Config::lan().replay_window;
    for d in &captured {
        assert_eq!(
            b.handle_packet(now, a.addr(), d),
            Err(PacketError::Refused(Refusal::StaleTimestamp))
        );
    }
    assert_eq!(snapshot(&b), before);
    assert_eq!(
        b.stats().drops_for("stale_timestamp"),
        captured.len() as u64
    );
}

/// A datagram of spoofed joins from `count` invented names.
fn spoofed_joins(cluster: &str, start: u32, count: u32) -> Vec<Vec<u8>> {
    let header = Header::new(ClusterTag::from_name(cluster));
    let names: Vec<String> = (start..start + count)
        .map(|i| format!("spoof-{i}"))
        .collect();
    let mut out = Vec::new();
    let mut b = DatagramBuilder::new(header, 1400);
    for (i, n) in names.iter().enumerate() {
        let m = Message::Join(wire::Join {
            member: wire::Alive {
                name: n,
                addr: std::net::SocketAddr::from(([172, 16, (i >> 8) as u8, i as u8], 7946)),
                incarnation: 0,
                meta: Bytes(b""),
            },
        });
        if b.push(&m).is_err() {
            out.push(std::mem::replace(&mut b, DatagramBuilder::new(header, 1400)).finish());
            b.push(&m).unwrap();
        }
    }
    out.push(b.finish());
    out
}

#[test]
fn a_spoofed_join_flood_is_bounded_and_with_keys_adds_nothing() {
    let from = "172.16.0.1:7946".parse().unwrap();
    let capped = Config {
        max_members: 500,
        ..Config::lan()
    };
    let mut ep = Endpoint::new(
        capped.with_name("target"),
        "10.9.0.1:7946".parse().unwrap(),
        3,
    )
    .unwrap();
    for d in spoofed_joins("vinery", 0, 5000) {
        let _ = ep.handle_packet(Time::from_secs(1), from, &d);
    }
    assert_eq!(ep.num_known(), 500, "the member cap holds");
    assert!(ep.stats().drops_for("member_limit") > 0);
    assert!(ep.pending_broadcasts() <= Config::lan().max_queued_broadcasts);

    let mut keyed_ep = Endpoint::new(
        keyed(&[1]).with_name("target"),
        "10.9.0.1:7946".parse().unwrap(),
        3,
    )
    .unwrap();
    for d in spoofed_joins("vinery", 0, 5000) {
        let _ = keyed_ep.handle_packet(Time::from_secs(1), from, &d);
    }
    assert_eq!(keyed_ep.num_known(), 1, "unsealed joins add nothing");
    assert!(keyed_ep.poll_transmit().is_none(), "and get no answer");
}

/// Sends `data` from `from` to `to` and lets it arrive.
fn inject(sim: &mut Sim, from: NodeId, to: NodeId, data: Vec<u8>) {
    sim.send_raw(from, to, data);
    sim.run_for(Duration::from_millis(5));
}

#[test]
fn hostile_datagrams_are_dropped_counted_and_change_nothing_while_the_node_serves() {
    let mut sim = Sim::new(26, NetworkConfig::default());
    let nodes = sim.add_nodes(10, &keyed(&[1]));
    join_all(&mut sim, &nodes);
    sim.wait_until(STEP, Duration::from_secs(30), Sim::full_view)
        .expect("converge");
    sim.with_endpoint(nodes[1], |ep, now| ep.set(now, "k", b"v").unwrap());
    sim.run_for(Duration::from_secs(30)); // quiet again
    let (target, attacker) = (nodes[0], nodes[9]);
    let suspected = Arc::new(Mutex::new(0usize));
    let sink = Arc::clone(&suspected);
    let target_name = sim.name(target).to_owned();
    sim.on_event(move |_, _, e| {
        if matches!(e, Event::MemberSuspect(m) | Event::MemberFailed(m) if m.name == target_name) {
            *sink.lock().unwrap() += 1;
        }
    });
    let cluster = ClusterTag::from_name("vinery");
    let header = Header::new(cluster).to_bytes();
    // A valid datagram an insider could send (the target's own alive
    // record at its current incarnation: a no-op), and its sealed form.
    let plain = common::noop_alive_datagram(cluster, &sim.endpoint(target).local_member());
    let stamp = |sim: &Sim| sim.now().as_nanos() / 1_000_000;
    let sealed = vinery::security::seal_datagram(&key(1), &plain, stamp(&sim), [3; 12]);
    let stale = vinery::security::seal_datagram(&key(1), &plain, stamp(&sim) + 600_000, [4; 12]);
    let wrong_key = vinery::security::seal_datagram(&key(2), &plain, stamp(&sim), [5; 12]);
    let mut flipped = sealed.clone();
    flipped[30] ^= 0x10;
    let mut wrong_version = sealed.clone();
    wrong_version[2] = 99;
    let mut wrong_cluster = sealed.clone();
    wrong_cluster[4] ^= 1;
    let mut garbage = header.to_vec();
    garbage[3] |= wire::FLAG_ENCRYPTED;
    garbage.extend((0..200u32).map(|i| (i * 37) as u8));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("too_short", sealed[..5].to_vec()),
        ("wrong_key", sealed[..sealed.len() - 1].to_vec()),
        ("oversized", vec![0; wire::MAX_DATAGRAM + 1]),
        ("wrong_key", flipped),
        ("wrong_cluster", wrong_cluster),
        ("wrong_key", wrong_key),
        ("unsupported_version", wrong_version),
        ("stale_timestamp", stale),
        ("plaintext_refused", plain.clone()),
        ("wrong_key", garbage),
        ("bad_magic", (0..100u8).collect()),
    ];
    let before = (
        sim.endpoint(target).members(),
        sim.endpoint(target).state_hash(),
    );
    for round in 0..20 {
        for (reason, data) in &cases {
            let was = drops(&sim, target, reason);
            inject(&mut sim, attacker, target, data.clone());
            assert_eq!(
                drops(&sim, target, reason),
                was + 1,
                "round {round}: {reason} not counted"
            );
        }
        // A replay of a genuine datagram within the window is accepted and
        // changes nothing.
        inject(&mut sim, attacker, target, sealed.clone());
        sim.run_for(Duration::from_secs(1));
    }
    let after = (
        sim.endpoint(target).members(),
        sim.endpoint(target).state_hash(),
    );
    assert_eq!(
        after, before,
        "hostile datagrams changed the target's state"
    );
    assert_eq!(*suspected.lock().unwrap(), 0, "the target stopped serving");
    assert!(sim.full_view());
}
