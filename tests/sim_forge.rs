//! Forged membership and key/value messages, in the simulator: an insider
//! (any sender in a plaintext cluster, a key holder in a keyed one) sends
//! claims about other members at extreme counters. Once forging stops, the
//! victim must be alive everywhere at its real address, and its own latest
//! writes must win everywhere, within [`recovery_bound`].

use std::net::SocketAddr;
use std::time::Duration;

use vinery::sim::{NetworkConfig, NodeId, Sim};
use vinery::wire::{self, Bytes, ClusterTag, DatagramBuilder, Header, Message};
use vinery::{Config, Endpoint, Event, MemberState, Time};

const N: usize = 50;
const STEP: Duration = Duration::from_millis(100);

/// How long after the last forged datagram a live member may still be
/// misrepresented anywhere: the forged claim reaches the member (a gossip
/// dissemination, or one anti-entropy sync with a holder), the member's
/// answer spreads back (another dissemination), and a node the forgery made
/// probe a wrong address is corrected by the next sync (one probe and one
/// sync interval). Dissemination is `retransmit_mult · ⌈log10(n+1)⌉`
/// gossip rounds.
fn recovery_bound(c: &Config, n: usize) -> Duration {
    let scale = ((n as f64) + 1.0).log10().ceil() as u32;
    let dissemination = c.gossip_interval * c.retransmit_mult * scale;
    2 * dissemination + 2 * (c.probe_interval + c.sync_interval)
}

fn cluster(seed: u64) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed, NetworkConfig::default());
    let nodes = sim.add_nodes(N, &Config::lan());
    sim.join_all(&nodes, Duration::from_secs(60))
        .expect("the cluster converges");
    (sim, nodes)
}

/// One plaintext datagram of `msgs`, sent by `from` to each of `to`.
fn forge(sim: &mut Sim, from: NodeId, to: &[NodeId], msgs: &[Message<'_>]) {
    let mut b = DatagramBuilder::new(
        Header::new(ClusterTag::from_name("vinery")),
        wire::DEFAULT_DATAGRAM,
    );
    for m in msgs {
        b.push(m).expect("the forged messages fit one datagram");
    }
    let data = b.finish();
    for &x in to {
        sim.send_raw(from, x, data.clone());
    }
    sim.run_for(Duration::from_millis(5));
}

/// Sends `msg` about `about` from `attacker` to ten other nodes, and
/// asserts that `recovered` holds within the recovery bound after it.
fn forge_then_recover(
    sim: &mut Sim,
    nodes: &[NodeId],
    (attacker, about): (NodeId, NodeId),
    msg: Message<'_>,
    recovered: impl Fn(&Sim) -> bool,
) {
    let targets: Vec<NodeId> = nodes.iter().copied().filter(|&x| x != about).collect();
    forge(sim, attacker, &targets[..10], &[msg]);
    let took = assert_recovers(sim, &format!("{msg:?}"), recovered);
    eprintln!("{msg:?}: recovered in {took:?}");
}

/// Whether every running node sees `victim` alive at its real address.
fn alive_everywhere(sim: &Sim, victim: NodeId) -> bool {
    let (name, addr) = (sim.name(victim), sim.addr(victim));
    sim.running().filter(|&x| x != victim).all(|x| {
        sim.endpoint(x)
            .member(name)
            .is_some_and(|m| m.state == MemberState::Alive && m.addr == addr)
    })
}

/// Waits for `cond`, asserting it holds within the recovery bound.
fn assert_recovers(sim: &mut Sim, what: &str, cond: impl Fn(&Sim) -> bool) -> Duration {
    let bound = recovery_bound(&Config::lan(), N);
    let start = sim.now();
    sim.wait_until(STEP, bound, |s| cond(s))
        .unwrap_or_else(|| panic!("{what}: no recovery within {bound:?}"));
    sim.now() - start
}

/// Incarnations a forger would pick: the largest value, and the one
/// furthest ahead of the victim's that still counts as newer.
fn forged_incarnations(current: u32) -> [u32; 2] {
    [u32::MAX, current.wrapping_add((1 << 31) - 1)]
}

#[test]
fn forged_suspect_and_dead_claims_cannot_keep_a_live_member_dead() {
    for (round, forged_dead) in [false, true].into_iter().enumerate() {
        let (mut sim, nodes) = cluster(61 + round as u64);
        let (victim, attacker) = (nodes[7], nodes[3]);
        let name = sim.name(victim).to_owned();
        let attacker_name = sim.name(attacker).to_owned();
        for incarnation in forged_incarnations(sim.endpoint(victim).local_member().incarnation) {
            let msg = if forged_dead {
                Message::Dead(wire::Dead {
                    name: &name,
                    incarnation,
                    from: &attacker_name,
                })
            } else {
                Message::Suspect(wire::Suspect {
                    name: &name,
                    incarnation,
                    from: &attacker_name,
                })
            };
            forge_then_recover(&mut sim, &nodes, (attacker, victim), msg, |s| {
                alive_everywhere(s, victim)
            });
        }
    }
}

#[test]
fn a_forged_alive_at_another_address_does_not_move_a_member_for_good() {
    let (mut sim, nodes) = cluster(63);
    let (victim, attacker) = (nodes[11], nodes[4]);
    let name = sim.name(victim).to_owned();
    let elsewhere = sim.addr(attacker);
    let mut elsewhere = elsewhere;
    elsewhere.set_port(elsewhere.port() + 1);
    for incarnation in forged_incarnations(sim.endpoint(victim).local_member().incarnation) {
        let msg = Message::Alive(wire::Alive {
            name: &name,
            addr: elsewhere,
            incarnation,
            meta: Bytes(b""),
        });
        forge_then_recover(&mut sim, &nodes, (attacker, victim), msg, |s| {
            alive_everywhere(s, victim)
        });
    }
}

#[test]
fn a_forged_generation_cannot_outlast_the_owners_writes() {
    let (mut sim, nodes) = cluster(64);
    let (owner, attacker) = (nodes[5], nodes[9]);
    let name = sim.name(owner).to_owned();
    sim.with_endpoint(owner, |ep, now| ep.set(now, "k", b"real").unwrap());
    sim.wait_until(STEP, Duration::from_secs(10), |s| {
        s.running()
            .all(|x| x == owner || s.endpoint(x).peer_value(&name, "k") == Some(b"real"))
    })
    .expect("the write spreads");
    let current = sim.endpoint(nodes[0]).kv_digest(&name).unwrap().0;
    for generation in [u64::MAX, current.wrapping_add((1 << 63) - 1)] {
        let msg = Message::KvEntry(wire::KvEntry {
            node: &name,
            generation,
            base: 0,
            version: 1,
            key: "k",
            value: Bytes(b"forged"),
            expires_ms: 0,
            deleted: false,
        });
        forge_then_recover(&mut sim, &nodes, (attacker, owner), msg, |s| {
            s.running()
                .all(|x| x == owner || s.endpoint(x).peer_value(&name, "k") == Some(b"real"))
        });
    }
    // The owner's next write wins everywhere too.
    sim.with_endpoint(owner, |ep, now| ep.set(now, "k", b"later").unwrap());
    assert_recovers(&mut sim, "a later write", |s| {
        s.running()
            .all(|x| x == owner || s.endpoint(x).peer_value(&name, "k") == Some(b"later"))
    });
}

/// A hand-wired cluster (the simulator refuses duplicate names): every
/// datagram is delivered after `LATENCY`, by address.
struct Wired {
    eps: Vec<Endpoint>,
    now: Time,
    /// Every `MemberConflict` raised: (endpoint index, ours, theirs).
    conflicts: Vec<(usize, SocketAddr, SocketAddr)>,
}

const LATENCY: Duration = Duration::from_millis(10);

impl Wired {
    fn new() -> Wired {
        Wired {
            eps: Vec::new(),
            now: Time::from_secs(1000),
            conflicts: Vec::new(),
        }
    }

    fn add(&mut self, config: Config) -> usize {
        let i = self.eps.len();
        let addr = SocketAddr::from(([10, 7, 0, i as u8], 7946));
        let mut ep = Endpoint::new(config, addr, 70 + i as u64).unwrap();
        ep.start(self.now);
        if let Some(seed) = self.eps.first().map(Endpoint::addr) {
            ep.join(self.now, &[seed]);
        }
        self.eps.push(ep);
        i
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += LATENCY;
            let mut flying = Vec::new();
            for ep in &mut self.eps {
                ep.handle_timeout(self.now);
                while let Some(t) = ep.poll_transmit() {
                    flying.push((ep.addr(), t.to, t.data));
                }
            }
            for (from, to, data) in flying {
                if let Some(ep) = self.eps.iter_mut().find(|e| e.addr() == to) {
                    let _ = ep.handle_packet(self.now, from, &data);
                }
            }
            for (i, ep) in self.eps.iter_mut().enumerate() {
                while let Some(e) = ep.poll_event() {
                    if let Event::MemberConflict { ours, theirs, .. } = e {
                        self.conflicts.push((i, ours, theirs));
                    }
                }
            }
        }
    }
}

/// Three nodes, the first named "twin", settled past their youth.
fn wired_with_holder() -> Wired {
    let mut w = Wired::new();
    for name in ["twin", "b", "c"] {
        w.add(Config::lan().with_name(name));
    }
    w.run_for(Duration::from_secs(10));
    assert!(
        w.eps.iter().all(|e| e.num_live() == 3),
        "the trio converges"
    );
    w
}

#[test]
fn a_second_node_with_a_taken_name_is_told_and_yields_it() {
    let mut w = wired_with_holder();
    let holder_incarnation = w.eps[0].local_member().incarnation;
    let twin = w.add(Config::lan().with_name("twin"));
    w.run_for(Duration::from_secs(30));
    let (ours, theirs) = (w.eps[twin].addr(), w.eps[0].addr());
    assert!(
        w.conflicts.contains(&(twin, ours, theirs)),
        "the newcomer is told: {:?}",
        w.conflicts
    );
    assert!(w.eps[twin].stats().name_conflicts > 0);
    // The holder keeps its name and address everywhere: no war.
    for ep in &w.eps[1..3] {
        let m = ep.member("twin").unwrap();
        assert_eq!((m.state, m.addr), (MemberState::Alive, theirs));
    }
    // The newcomer joined through the holder, which saw the claim, was told,
    // and answered once; then the newcomer yielded: no war.
    assert!(w.conflicts.iter().any(|c| c.0 == 0), "the holder is told");
    assert!(
        w.eps[0].local_member().incarnation <= holder_incarnation + 1,
        "the holder had to keep refuting"
    );
}

#[test]
fn with_takeover_allowed_both_are_told_and_the_events_stay_rate_limited() {
    let mut w = wired_with_holder();
    let config = Config {
        allow_name_takeover: true,
        ..Config::lan().with_name("twin")
    };
    let twin = w.add(config);
    let span = Duration::from_secs(20);
    w.run_for(span);
    assert!(w.conflicts.iter().any(|c| c.0 == twin), "newcomer told");
    assert!(w.conflicts.iter().any(|c| c.0 == 0), "holder told");
    assert!(w.eps[0].stats().name_conflicts > 0);
    let settle = Config::lan().probe_interval * Config::lan().suspicion_mult;
    let limit = (span.as_millis() / settle.as_millis() + 1) as usize;
    for node in [0, twin] {
        let told = w.conflicts.iter().filter(|c| c.0 == node).count();
        assert!(told <= limit, "node {node} told {told} times");
    }
}

#[test]
fn one_datagram_introduces_a_bounded_number_of_members() {
    let config = Config {
        max_datagram: wire::MAX_DATAGRAM,
        kv_round_budget: wire::MAX_DATAGRAM,
        bus_round_budget: wire::MAX_DATAGRAM,
        ..Config::lan()
    };
    let mut ep = Endpoint::new(
        config.with_name("target"),
        "10.9.0.1:7946".parse().unwrap(),
        5,
    )
    .unwrap();
    let names: Vec<String> = (0..3000).map(|i| format!("fake-{i}")).collect();
    let mut b = DatagramBuilder::new(
        Header::new(ClusterTag::from_name("vinery")),
        wire::MAX_DATAGRAM,
    );
    let mut stuffed = 0u64;
    for (i, name) in names.iter().enumerate() {
        let m = Message::Alive(wire::Alive {
            name,
            addr: SocketAddr::from(([172, 16, (i >> 8) as u8, i as u8], 7946)),
            incarnation: 0,
            meta: Bytes(b""),
        });
        if b.push(&m).is_err() {
            break;
        }
        stuffed += 1;
    }
    let data = b.finish();
    let from = "172.16.0.1:7946".parse().unwrap();
    ep.handle_packet(Time::from_secs(1), from, &data).unwrap();
    let cap = Config::lan().max_introductions_per_datagram;
    assert!(stuffed > 1000, "the datagram is stuffed ({stuffed})");
    assert_eq!(ep.num_known(), 1 + cap, "the introduction cap holds");
    assert_eq!(
        ep.stats().drops_for("introduction_limit"),
        stuffed - cap as u64,
        "every refused introduction is counted"
    );
}

#[test]
fn dead_members_and_their_keys_are_forgotten_after_dead_retention() {
    let retention = Duration::from_secs(30);
    let config = Config {
        dead_retention: retention,
        replay_window: Duration::from_secs(10),
        ..Config::lan()
    };
    let mut sim = Sim::new(67, NetworkConfig::default());
    let nodes = sim.add_nodes(8, &config);
    sim.join_all(&nodes, Duration::from_secs(30))
        .expect("converge");
    let victim = nodes[5];
    let name = sim.name(victim).to_owned();
    sim.with_endpoint(victim, |ep, now| ep.set(now, "k", b"v").unwrap());
    sim.run_for(Duration::from_secs(5));
    sim.crash(victim);
    sim.wait_until(STEP, Duration::from_secs(30), |s| {
        s.running()
            .all(|x| s.endpoint(x).member(&name).map(|m| m.state) == Some(MemberState::Dead))
    })
    .expect("the crash is detected");
    // Kept for a while (a restart may still come back)...
    assert!(sim
        .running()
        .all(|x| sim.endpoint(x).kv_nodes().contains(&name.as_str())));
    // ...then forgotten with its keys, so memory returns: forgetting runs
    // with the reconnect timer, so within one reconnect interval of the
    // retention's end.
    sim.run_for(retention + config.reconnect_interval + Duration::from_secs(1));
    for x in sim.running() {
        let ep = sim.endpoint(x);
        assert!(
            ep.member(&name).is_none(),
            "{x:?} still knows the dead: {:?}",
            ep.member(&name)
        );
        assert!(!ep.kv_nodes().contains(&name.as_str()), "its keys stay");
        assert_eq!(ep.num_known(), 7);
    }
}

#[test]
fn tombstones_are_collected_after_the_grace_period() {
    let grace = Duration::from_secs(20);
    let config = Config {
        kv_tombstone_grace: grace,
        ..Config::lan()
    };
    let mut sim = Sim::new(68, NetworkConfig::default());
    let nodes = sim.add_nodes(6, &config);
    sim.join_all(&nodes, Duration::from_secs(30))
        .expect("converge");
    let owner = nodes[2];
    let name = sim.name(owner).to_owned();
    sim.with_endpoint(owner, |ep, now| ep.set(now, "k", b"v").unwrap());
    sim.run_for(Duration::from_secs(3));
    sim.with_endpoint(owner, |ep, now| ep.delete(now, "k").unwrap());
    sim.run_for(Duration::from_secs(3));
    let collected = |sim: &Sim| {
        sim.running()
            .map(|x| sim.endpoint(x).stats().kv_tombstones_collected)
            .collect::<Vec<_>>()
    };
    assert!(sim
        .running()
        .all(|x| sim.endpoint(x).peer_value(&name, "k").is_none()));
    assert!(collected(&sim).iter().all(|&c| c == 0), "not before grace");
    sim.run_for(grace);
    assert!(
        collected(&sim).iter().all(|&c| c == 1),
        "every node collects the tombstone: {:?}",
        collected(&sim)
    );
}

#[test]
fn a_disallowed_senders_forgeries_have_no_effect() {
    let mut sim = Sim::new(69, NetworkConfig::default());
    let mut nodes = sim.add_nodes(N - 1, &Config::lan());
    // Simulated addresses are 10.0.0.i: the guarded node admits 0..=31.
    let strict = Config {
        allowed_sources: vec!["10.0.0.0/27".parse().unwrap()],
        ..Config::lan()
    };
    let guarded = sim.add_node(strict);
    nodes.push(guarded);
    sim.join_all(&nodes, Duration::from_secs(60))
        .expect("the cluster converges");
    let (victim, outsider) = (nodes[7], nodes[40]);
    assert_eq!(sim.addr(outsider).ip().to_string(), "10.0.0.40");
    let name = sim.name(victim).to_owned();
    let outsider_name = sim.name(outsider).to_owned();
    let before = sim.endpoint(guarded).member(&name).unwrap();
    let forged = [
        Message::Dead(wire::Dead {
            name: &name,
            incarnation: before.incarnation + 1,
            from: &outsider_name,
        }),
        Message::Alive(wire::Alive {
            name: "invented",
            addr: "10.1.2.3:7946".parse().unwrap(),
            incarnation: 0,
            meta: Bytes(b""),
        }),
    ];
    forge(&mut sim, outsider, &[guarded], &forged);
    let ep = sim.endpoint(guarded);
    assert!(ep.stats().drops_for("source_not_allowed") > 0);
    assert_eq!(ep.member(&name), Some(before), "the victim is untouched");
    assert!(ep.member("invented").is_none(), "nobody was introduced");
}

#[path = "../fuzz/src/forge.rs"]
mod forge;

#[test]
fn forged_sequences_from_several_sources_leave_a_cluster_that_recovers() {
    // The fuzz target's check on a few fixed inputs: every kind of forged
    // message, from every sender, at small and extreme counters.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for run in 0..6u8 {
        let mut data = Vec::new();
        for i in 0..forge::MAX_STEPS as u8 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut step = rng.to_le_bytes().to_vec();
            step.extend(match (run + i) % 3 {
                0 => [0xff; 8],
                1 => [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
                _ => rng.rotate_left(9).to_le_bytes(),
            });
            step[2] = i.wrapping_mul(37).wrapping_add(run);
            data.extend(step);
        }
        let answers = forge::check_forge_sequence(&data);
        assert!(answers > 0, "run {run}: the forgeries never landed");
    }
    // And the fuzz target's seed corpus.
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/forge_sequence");
    for entry in std::fs::read_dir(corpus).expect("the seed corpus is there") {
        let path = entry.unwrap().path();
        let answers = forge::check_forge_sequence(&std::fs::read(&path).unwrap());
        assert!(answers > 0, "{path:?}: the forgeries never landed");
    }
}
