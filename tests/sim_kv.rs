//! Replicated key/value state, checked in the deterministic simulator at
//! N=100: writes reach every replica, TTLs expire everywhere (even when the
//! owner crashed first), deletes never come back after a partition heals,
//! a restarted owner's old state is replaced, oversized values are refused
//! at the call, and no datagram exceeds its budget under a write storm.
//!
//! Virtual time only; a failure message names the seed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vinery::sim::{NetworkConfig, NodeId, Sim};
use vinery::{Config, Event, KeyPattern, KvError, Time};

const N: usize = 100;
const STEP: Duration = Duration::from_millis(100);

fn cluster_with(n: usize, seed: u64, config: &Config) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed, NetworkConfig::default());
    let nodes = sim.add_nodes(n, config);
    let at = sim.join_all(&nodes, Duration::from_secs(60));
    assert!(at.is_some(), "seed {seed}: {n} nodes did not converge");
    (sim, nodes)
}

fn cluster(n: usize, seed: u64) -> (Sim, Vec<NodeId>) {
    cluster_with(n, seed, &Config::lan())
}

/// How many running nodes other than the owner see `owner`'s `key` with
/// `value` (`None`: see no such key).
fn holders(sim: &Sim, owner: NodeId, key: &str, value: Option<&[u8]>) -> usize {
    let name = sim.name(owner).to_owned();
    sim.running()
        .filter(|&x| x != owner)
        .filter(|&x| sim.endpoint(x).peer_value(&name, key) == value)
        .count()
}

#[test]
fn a_thousand_keys_from_a_hundred_nodes_reach_every_replica() {
    let seed = 11;
    let (mut sim, nodes) = cluster(N, seed);
    for (i, &x) in nodes.iter().enumerate() {
        sim.with_endpoint(x, |ep, now| {
            for k in 0..10 {
                let key = format!("svc.{i}.{k}");
                ep.set(now, &key, format!("value-{i}-{k}").as_bytes())
                    .expect("valid write");
            }
        });
    }
    let everywhere = |sim: &Sim| {
        sim.running().all(|x| {
            let ep = sim.endpoint(x);
            ep.scan(&KeyPattern::prefix("svc.")).len() == 10 * N
        })
    };
    let at = sim.wait_until(STEP, Duration::from_secs(60), everywhere);
    assert!(
        at.is_some(),
        "seed {seed}: after 60 s the emptiest replica holds {} of {} keys",
        sim.running()
            .map(|x| sim.endpoint(x).scan(&KeyPattern::Any).len())
            .min()
            .unwrap_or(0),
        10 * N
    );
    // Values are the owners', not just the right number of keys.
    let probe = sim.endpoint(nodes[7]);
    let owner = sim.name(nodes[42]).to_owned();
    assert_eq!(
        probe.peer_value(&owner, "svc.42.3"),
        Some(&b"value-42-3"[..])
    );
    assert_eq!(probe.peer_keys(&owner).len(), 10);
    // Once the writes have spread, state is quiet again: every hash agrees,
    // so no digest is exchanged and nothing is pushed.
    sim.run_for(Duration::from_secs(30));
    let hashes: std::collections::BTreeSet<[u8; 4]> = sim
        .running()
        .map(|x| sim.endpoint(x).state_hash())
        .collect();
    assert_eq!(hashes.len(), 1, "seed {seed}: replicas disagree");
    let pulls = |sim: &Sim| -> u64 {
        sim.running()
            .map(|x| sim.endpoint(x).stats().kv_pulls)
            .sum()
    };
    let before = pulls(&sim);
    sim.run_for(Duration::from_secs(30));
    assert_eq!(
        pulls(&sim) - before,
        0,
        "seed {seed}: digests exchanged in a quiet cluster"
    );
}

#[test]
fn a_write_reaches_a_peer_in_one_hop_with_an_event() {
    let mut sim = Sim::new(3, NetworkConfig::ideal());
    let nodes = sim.add_nodes(2, &Config::lan());
    sim.join(nodes[1], &[nodes[0]]);
    sim.wait_until(STEP, Duration::from_secs(10), Sim::full_view)
        .expect("two nodes converge");
    let seen: Arc<Mutex<Vec<(Time, Event)>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let b = nodes[1];
    sim.on_event(move |t, node, e| {
        if node == b && e.key().is_some() {
            sink.lock().unwrap().push((t, e.clone()));
        }
    });
    let t0 = sim.now();
    let version = sim.with_endpoint(nodes[0], |ep, now| ep.set(now, "color", b"green").unwrap());
    sim.run_for(Duration::from_millis(50));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (t, e) = &seen[0];
    assert_eq!(
        *e,
        Event::KeyUpdated {
            node: sim.name(nodes[0]).to_owned(),
            key: "color".into(),
            value: b"green".to_vec(),
            version,
        }
    );
    // The ideal network has a fixed one-way latency; the write must not wait
    // for a gossip tick.
    let hop = sim.network().latency;
    assert!(
        t.saturating_since(t0) <= hop + Duration::from_millis(1),
        "took {:?}, one hop is {hop:?}",
        t.saturating_since(t0)
    );
}

#[test]
fn ttl_expires_everywhere_even_when_the_owner_crashed_first() {
    let seed = 12;
    let (mut sim, nodes) = cluster(N, seed);
    let (owner, other) = (nodes[5], nodes[6]);
    let expired: Arc<Mutex<Vec<(NodeId, String)>>> = Arc::default();
    let sink = Arc::clone(&expired);
    sim.on_event(move |_, node, e| {
        if let Event::KeyExpired { key, .. } = e {
            sink.lock().unwrap().push((node, key.clone()));
        }
    });
    sim.with_endpoint(owner, |ep, now| {
        ep.set_with_ttl(now, "lease", b"mine", Duration::from_secs(20))
            .unwrap()
    });
    sim.with_endpoint(other, |ep, now| {
        ep.set_with_ttl(now, "lease", b"theirs", Duration::from_secs(20))
            .unwrap()
    });
    let spread = sim.wait_until(STEP, Duration::from_secs(15), |s| {
        holders(s, owner, "lease", Some(b"mine")) == N - 1
            && holders(s, other, "lease", Some(b"theirs")) == N - 1
    });
    assert!(spread.is_some(), "seed {seed}: TTL keys did not spread");
    // The owner dies before its key expires: no tombstone will ever come.
    sim.crash(owner);
    sim.run_for(Duration::from_secs(25));
    assert_eq!(
        holders(&sim, owner, "lease", None),
        N - 1,
        "seed {seed}: a crashed owner's expired key is still visible somewhere"
    );
    // Every running node but the writer itself (and the crashed one).
    assert_eq!(holders(&sim, other, "lease", None), N - 2);
    assert_eq!(sim.endpoint(other).get("lease"), None);
    let expired = expired.lock().unwrap();
    // Every live node (the writer included) reports both expiries once.
    assert_eq!(
        expired.len(),
        2 * (N - 1),
        "{} expiry events",
        expired.len()
    );
}

#[test]
fn a_deleted_key_does_not_come_back_after_gc_and_a_partition_heals() {
    let seed = 13;
    let config = Config {
        kv_tombstone_grace: Duration::from_secs(10),
        ..Config::lan()
    };
    let (mut sim, nodes) = cluster_with(N, seed, &config);
    let owner = nodes[0];
    sim.with_endpoint(owner, |ep, now| {
        ep.set(now, "doomed", b"x").unwrap();
        ep.set(now, "kept", b"y").unwrap();
    });
    let spread = sim.wait_until(STEP, Duration::from_secs(15), |s| {
        holders(s, owner, "doomed", Some(b"x")) == N - 1
    });
    assert!(spread.is_some(), "seed {seed}: keys did not spread");
    let (a, b): (Vec<NodeId>, Vec<NodeId>) = nodes.iter().partition(|x| x.index() % 2 == 0);
    sim.partition(&[a.clone(), b.clone()]);
    sim.with_endpoint(owner, |ep, now| ep.delete(now, "doomed").unwrap());
    // Long enough for the delete to spread on the owner's side and for
    // every tombstone there to be collected.
    sim.run_for(Duration::from_secs(60));
    let name = sim.name(owner).to_owned();
    for &x in &b {
        assert_eq!(
            sim.endpoint(x).peer_value(&name, "doomed"),
            Some(&b"x"[..]),
            "the other side cannot have heard of the delete"
        );
    }
    sim.heal();
    let healed = sim.wait_until(STEP, Duration::from_secs(120), |s| {
        holders(s, owner, "doomed", None) == N - 1
    });
    assert!(
        healed.is_some(),
        "seed {seed}: {} nodes still see the deleted key 120 s after healing",
        N - 1 - holders(&sim, owner, "doomed", None)
    );
    // And it stays gone, while the key that was not deleted survived.
    sim.run_for(Duration::from_secs(60));
    assert_eq!(holders(&sim, owner, "doomed", None), N - 1);
    assert_eq!(holders(&sim, owner, "kept", Some(b"y")), N - 1);
    let resets: u64 = sim
        .running()
        .map(|x| sim.endpoint(x).stats().kv_resets)
        .sum();
    assert!(
        resets > 0,
        "the far side must have been reset past the GC horizon"
    );
}

#[test]
fn a_restarted_owner_replaces_its_old_state_with_a_new_generation() {
    let seed = 14;
    let (mut sim, nodes) = cluster(N, seed);
    let owner = nodes[9];
    sim.with_endpoint(owner, |ep, now| {
        for k in 0..5 {
            ep.set(now, &format!("old.{k}"), b"1").unwrap();
        }
    });
    sim.wait_until(STEP, Duration::from_secs(15), |s| {
        holders(s, owner, "old.4", Some(b"1")) == N - 1
    })
    .expect("old state spreads");
    let name = sim.name(owner).to_owned();
    let old_generation = sim.endpoint(nodes[0]).kv_digest(&name).unwrap().0;
    sim.crash(owner);
    sim.run_for(Duration::from_secs(5));
    sim.restart(owner, &[nodes[0]]);
    sim.with_endpoint(owner, |ep, now| ep.set(now, "new", b"2").unwrap());
    let replaced = sim.wait_until(STEP, Duration::from_secs(60), |s| {
        holders(s, owner, "new", Some(b"2")) == N - 1 && holders(s, owner, "old.0", None) == N - 1
    });
    assert!(
        replaced.is_some(),
        "seed {seed}: {} replicas hold the new key, {} still hold old state",
        holders(&sim, owner, "new", Some(b"2")),
        N - 1 - holders(&sim, owner, "old.0", None)
    );
    let (generation, _, _) = sim.endpoint(nodes[0]).kv_digest(&name).unwrap();
    assert!(generation > old_generation);
    assert_eq!(sim.endpoint(nodes[3]).peer_keys(&name), vec!["new"]);
}

#[test]
fn bad_writes_are_refused_at_the_call() {
    let mut sim = Sim::new(15, NetworkConfig::ideal());
    let config = Config {
        max_keys_per_node: 2,
        ..Config::lan()
    };
    let n = sim.add_node(config);
    sim.with_endpoint(n, |ep, now| {
        let max = ep.config().max_value_len;
        assert_eq!(
            ep.set(now, "big", &vec![0; max + 1]),
            Err(KvError::ValueTooLarge { len: max + 1, max })
        );
        assert!(ep.set(now, "big", &vec![0; max]).is_ok());
        assert_eq!(ep.set(now, "", b"v"), Err(KvError::EmptyKey));
        let long = "k".repeat(ep.config().max_key_len + 1);
        assert!(matches!(
            ep.set(now, &long, b"v"),
            Err(KvError::KeyTooLong { .. })
        ));
        assert!(ep.set(now, "second", b"v").is_ok());
        assert_eq!(
            ep.set(now, "third", b"v"),
            Err(KvError::TooManyKeys { max: 2 })
        );
        assert!(ep.set(now, "second", b"overwrite is fine").is_ok());
        assert_eq!(
            ep.set_with_expiry(now, "late", b"v", now),
            Err(KvError::ExpiryInPast)
        );
        assert_eq!(ep.delete(now, "absent"), Ok(None));
        assert!(ep.delete(now, "second").unwrap().is_some());
        assert!(ep.set(now, "third", b"v").is_ok(), "a delete frees a slot");
        // Nothing refused was written.
        assert_eq!(ep.peer_keys(ep.name()).len(), 2);
    });
    // A value limit that cannot fit the datagram budget is a config error
    // naming the field, so no accepted write can be too large to send.
    let config = Config {
        max_datagram: 512,
        ..Config::lan()
    }
    .with_name("small");
    assert_eq!(config.validate().unwrap_err().field, "max_value_len");
}

#[test]
fn a_write_storm_stays_within_the_datagram_budget_and_converges() {
    let seed = 16;
    let (mut sim, nodes) = cluster(N, seed);
    let writers = &nodes[..10];
    // 10 writers, 200 writes each per virtual second over 20 keys, for 10 s.
    for tick in 0..100 {
        for (w, &x) in writers.iter().enumerate() {
            sim.with_endpoint(x, |ep, now| {
                for j in 0..20 {
                    let key = format!("storm.{j}");
                    let value = format!("{w}-{tick}-{j}-{}", "v".repeat(40));
                    ep.set(now, &key, value.as_bytes()).unwrap();
                }
            });
        }
        sim.run_for(Duration::from_millis(100));
    }
    let budget = Config::lan().max_datagram;
    assert!(
        sim.stats().largest_datagram <= budget,
        "seed {seed}: a {}-byte datagram over a {budget}-byte budget",
        sim.stats().largest_datagram
    );
    let overflows: u64 = writers
        .iter()
        .map(|&x| sim.endpoint(x).stats().kv_overflows)
        .sum();
    assert!(overflows > 0, "the storm should have made flow control act");
    // Staleness stays bounded: once the storm stops, every replica holds
    // every writer's last value within a few seconds.
    let last = |sim: &Sim, w: usize, x: NodeId| {
        let name = sim.name(nodes[w]).to_owned();
        let want = format!("{w}-99-19-{}", "v".repeat(40));
        sim.endpoint(x).peer_value(&name, "storm.19") == Some(want.as_bytes())
    };
    let settled = sim.wait_until(STEP, Duration::from_secs(30), |s| {
        (0..writers.len()).all(|w| {
            s.running()
                .filter(|&x| x != nodes[w])
                .all(|x| last(s, w, x))
        })
    });
    assert!(
        settled.is_some(),
        "seed {seed}: replicas still stale 30 s after the storm"
    );
}

#[test]
fn key_events_and_scans_follow_patterns() {
    let mut sim = Sim::new(17, NetworkConfig::ideal());
    let nodes = sim.add_nodes(3, &Config::lan());
    for &x in &nodes[1..] {
        sim.join(x, &[nodes[0]]);
    }
    sim.wait_until(STEP, Duration::from_secs(10), Sim::full_view)
        .expect("converge");
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = Arc::clone(&events);
    let watcher = nodes[2];
    let pattern = KeyPattern::glob("service.*");
    sim.on_event(move |_, node, e| {
        if node == watcher && e.key().is_some_and(|k| pattern.matches(k)) {
            sink.lock().unwrap().push(e.clone());
        }
    });
    sim.with_endpoint(nodes[0], |ep, now| {
        ep.set(now, "service.http", b"80").unwrap();
        ep.set(now, "other", b"1").unwrap();
        ep.set(now, "service.http", b"8080").unwrap();
    });
    sim.run_for(Duration::from_secs(2));
    sim.with_endpoint(nodes[0], |ep, now| ep.delete(now, "service.http").unwrap());
    sim.run_for(Duration::from_secs(2));
    let kinds: Vec<&str> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.kind().name())
        .collect();
    // The two writes may coalesce into one update; the delete follows.
    assert!(
        kinds == ["key_updated", "key_updated", "key_deleted"]
            || kinds == ["key_updated", "key_deleted"],
        "{kinds:?}"
    );
    let ep = sim.endpoint(nodes[1]);
    let all = ep.scan(&KeyPattern::Any);
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].key, all[0].value), ("other", &b"1"[..]));
    assert!(ep.scan(&KeyPattern::glob("service.*")).is_empty());
}

/// Three nodes where A's pings to X are all lost (and nobody relays), while
/// X keeps writing, so its heartbeat reaches A in digests. Returns how many
/// times A suspected X in 30 s, and A's vetoes.
fn one_way_loss(phi: bool) -> (usize, u64, Sim, Vec<NodeId>) {
    let config = Config {
        indirect_checks: 0,
        phi,
        // Isolates the phi veto: a held suspicion would also end on X's
        // heartbeat (evidence of life), hiding whether phi vetoed.
        confirm_suspicion: false,
        ..Config::lan()
    };
    let mut sim = Sim::new(18, NetworkConfig::ideal());
    let nodes = sim.add_nodes(3, &config);
    for &x in &nodes[1..] {
        sim.join(x, &[nodes[0]]);
    }
    sim.wait_until(STEP, Duration::from_secs(10), Sim::full_view)
        .expect("converge");
    let (a, x) = (nodes[0], nodes[2]);
    let lost = vinery::sim::LinkConfig {
        loss: 1.0,
        ..vinery::sim::LinkConfig::default()
    };
    sim.set_link(a, x, lost);
    let suspected: Arc<Mutex<usize>> = Arc::default();
    let sink = Arc::clone(&suspected);
    let x_name = sim.name(x).to_owned();
    sim.on_event(move |_, node, e| {
        if node == a && matches!(e, Event::MemberSuspect(m) if m.name == x_name) {
            *sink.lock().unwrap() += 1;
        }
    });
    for i in 0..300 {
        sim.with_endpoint(x, |ep, now| {
            ep.set(now, "tick", i.to_string().as_bytes()).unwrap()
        });
        sim.run_for(Duration::from_millis(100));
    }
    sim.clear_event_hook();
    let n = *suspected.lock().unwrap();
    let vetoes = sim.endpoint(a).stats().suspicions_vetoed;
    (n, vetoes, sim, nodes)
}

#[test]
fn phi_vetoes_suspicions_while_evidence_flows_and_still_lets_a_crash_be_detected() {
    let (without_phi, vetoes, ..) = one_way_loss(false);
    assert!(without_phi > 0, "plain SWIM must suspect X here");
    assert_eq!(vetoes, 0);
    let (with_phi, vetoes, mut sim, nodes) = one_way_loss(true);
    assert_eq!(with_phi, 0, "phi must veto: X's heartbeat keeps arriving");
    assert!(vetoes > 0);
    let (a, x) = (nodes[0], nodes[2]);
    let phi_now = sim
        .endpoint(a)
        .phi(sim.name(x), sim.now())
        .expect("evidence");
    assert!(phi_now < 8.0, "phi {phi_now} while X is alive");
    // A real crash is still detected: evidence stops, the veto lapses.
    sim.crash(x);
    let crashed = sim.now();
    let x_name = sim.name(x).to_owned();
    let dead = sim.wait_until(STEP, Duration::from_secs(60), |s| {
        s.endpoint(a)
            .member(&x_name)
            .is_some_and(|m| m.state == vinery::MemberState::Dead)
    });
    let took = dead
        .expect("A declares the crashed X dead")
        .saturating_since(crashed);
    // Suspicion within a couple of probes (one extra for a veto), then the
    // Lifeguard timeout at n=3 (at most 6 × 4 s).
    assert!(took <= Duration::from_secs(3 + 24), "took {took:?}");
    assert!(sim.endpoint(a).phi(&x_name, sim.now()).unwrap() > 8.0);
}
