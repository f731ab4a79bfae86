//! The event bus, queries and elections, checked in the deterministic
//! simulator: at N=200 with 5% loss, 1000 events from random nodes each
//! reach every live node exactly once within their lifetime and never
//! after (a node joining mid-run included); 100 concurrent elections give
//! exactly one quorum each when reachable and expire everywhere otherwise;
//! a partition never gives two quorums on one topic under a majority rule;
//! queries reach the nodes their filter names, and answers come back.
//!
//! Virtual time only; a failure message names the seed. Durations are
//! kept short (events live 5–9 s, elections 12 s) so the file runs in well
//! under a minute in release: the properties do not depend on them being
//! longer, only on exceeding the repair time (a probe interval to settle,
//! about one more to notice and sync).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vinery::sim::{NetworkConfig, NodeId, Sim};
use vinery::{Config, Event, EventId, KeyPattern, QueryFilter, Time};

const STEP: Duration = Duration::from_millis(100);

fn cluster(n: usize, seed: u64, config: &Config) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed, NetworkConfig::default());
    let nodes = sim.add_nodes(n, config);
    let at = sim.join_all(&nodes, Duration::from_secs(60));
    assert!(at.is_some(), "seed {seed}: {n} nodes did not converge");
    (sim, nodes)
}

/// Every event any node emits, with when and where.
type Log = Arc<Mutex<Vec<(Time, NodeId, Event)>>>;

fn record(sim: &mut Sim, keep: fn(&Event) -> bool) -> Log {
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    sim.on_event(move |t, node, e| {
        if keep(e) {
            sink.lock().unwrap().push((t, node, e.clone()));
        }
    });
    log
}

fn millis(t: Time) -> u64 {
    t.as_nanos() / 1_000_000
}

/// When an event said at `at` for `d` dies: items carry their times in
/// milliseconds.
fn expiry(at: Time, d: Duration) -> Time {
    Time::from_millis(millis(at) + d.as_millis() as u64)
}

#[test]
fn a_thousand_events_reach_every_live_node_exactly_once_within_their_lifetime() {
    let seed = 21;
    let n = 200;
    let (mut sim, nodes) = cluster(n, seed, &Config::lan());
    sim.set_loss(0.05);
    let log = record(&mut sim, |e| matches!(e, Event::UserEvent { .. }));
    let mut rng = SmallRng::seed_from_u64(seed);
    let t0 = sim.now();
    // 1000 events over 20 s (50 per second), each living 5–9 s.
    let mut plan: Vec<(Time, NodeId, Duration)> = (0..1000)
        .map(|_| {
            let at = t0 + Duration::from_millis(rng.random_range(0..20_000));
            let origin = nodes[rng.random_range(0..n)];
            let life = Duration::from_millis(rng.random_range(5_000..9_000));
            (at, origin, life)
        })
        .collect();
    plan.sort_by_key(|p| p.0);
    let join_at = t0 + Duration::from_secs(10);
    let mut joiner = None;
    let mut said: Vec<(EventId, Time, Time, NodeId)> = Vec::new();
    for (i, (at, origin, life)) in plan.into_iter().enumerate() {
        if joiner.is_none() && at >= join_at {
            sim.run_until(join_at);
            let x = sim.add_node(Config::lan());
            sim.join(x, &[nodes[1]]);
            joiner = Some(x);
        }
        sim.run_until(at);
        let id = sim.with_endpoint(origin, |ep, now| {
            ep.say(now, &format!("event.{}", i % 7), &[i as u8; 64], life)
                .expect("a valid event")
        });
        said.push((id, at, expiry(at, life), origin));
    }
    let joiner = joiner.expect("the joiner joined");
    // Everything has died by then.
    sim.run_for(Duration::from_secs(12));
    let mut got: BTreeMap<(String, u64), Vec<(NodeId, Time)>> = BTreeMap::new();
    for (t, node, e) in log.lock().unwrap().iter() {
        if let Event::UserEvent { origin, seq, .. } = e {
            got.entry((origin.clone(), *seq))
                .or_default()
                .push((*node, *t));
        }
    }
    // The joiner must hear every event still alive 2 s after it joined
    // (joining, then pulling the listing, takes a few round trips).
    let joiner_cutoff = join_at + Duration::from_secs(2);
    let mut joiner_heard = 0;
    for (id, at, dies, origin) in &said {
        let deliveries = got.remove(&(id.origin.clone(), id.seq)).unwrap_or_default();
        let mut per_node: BTreeMap<NodeId, usize> = BTreeMap::new();
        for (node, t) in &deliveries {
            assert!(
                t < dies,
                "seed {seed}: {id} (said at {at}, dies at {dies}) delivered to {node} at {t}"
            );
            *per_node.entry(*node).or_default() += 1;
        }
        assert_eq!(per_node.get(origin), None, "{id}: its origin heard it");
        for (node, count) in &per_node {
            assert_eq!(
                *count, 1,
                "seed {seed}: {id} delivered {count} times to {node}"
            );
        }
        let missing: Vec<&NodeId> = nodes
            .iter()
            .filter(|x| *x != origin && !per_node.contains_key(x))
            .collect();
        assert!(
            missing.is_empty(),
            "seed {seed}: {id} (said at {at}) never reached {missing:?}"
        );
        if per_node.contains_key(&joiner) {
            joiner_heard += 1;
        } else {
            assert!(
                *dies <= joiner_cutoff,
                "seed {seed}: {id} (alive until {dies}) never reached the node that joined at {join_at}"
            );
        }
    }
    assert!(got.is_empty(), "deliveries of events nobody said: {got:?}");
    assert!(joiner_heard > 300, "the joiner heard only {joiner_heard}");
    assert!(got.is_empty(), "deliveries of events nobody said: {got:?}");
    assert!(joiner_heard > 300, "the joiner heard only {joiner_heard}");
    let mut total = vinery::Stats::default();
    for x in sim.running() {
        let s = sim.endpoint(x).stats();
        total.bus_items_new += s.bus_items_new;
        total.bus_duplicates += s.bus_duplicates;
        total.bus_wants += s.bus_wants;
        total.bus_served += s.bus_served;
        total.bus_packets_out += s.bus_packets_out;
        total.syncs_started += s.syncs_started;
        for (k, v) in &s.drops {
            *total.drops.entry(k).or_default() += v;
        }
        for k in vinery::wire::MessageKind::ALL {
            total.message_bytes_out.add(k, s.message_bytes_out.get(k));
            total.messages_out.add(k, s.messages_out.get(k));
        }
    }
    eprintln!(
        "new {} dup {} wants {} served {} packets {} syncs {} drops {:?}",
        total.bus_items_new,
        total.bus_duplicates,
        total.bus_wants,
        total.bus_served,
        total.bus_packets_out,
        total.syncs_started,
        total.drops
    );
    let bus_bytes: u64 = ["user_event", "bus_push", "bus_have", "bus_want", "bus_sync"]
        .iter()
        .map(|k| {
            vinery::wire::MessageKind::ALL
                .iter()
                .find(|m| m.name() == *k)
                .map(|m| total.message_bytes_out.get(*m))
                .unwrap()
        })
        .sum::<u64>()
        + 8 * total.bus_packets_out;
    eprintln!(
        "PER NODE-EVENT {:.1} bytes (have {:.1}, event {:.1})",
        bus_bytes as f64 / 200_000.0,
        total
            .message_bytes_out
            .get(vinery::wire::MessageKind::BusHave) as f64
            / 200_000.0,
        total
            .message_bytes_out
            .get(vinery::wire::MessageKind::UserEvent) as f64
            / 200_000.0
    );
    eprintln!(
        "msgs {:?}\nbytes {:?}",
        total.messages_out.nonzero().collect::<Vec<_>>(),
        total.message_bytes_out.nonzero().collect::<Vec<_>>()
    );
    // Nothing is held once everything has died.
    assert!(sim
        .running()
        .all(|x| sim.endpoint(x).active_bus_items() == 0));
}

#[test]
fn an_event_said_during_a_partition_reaches_the_other_side_after_it_heals() {
    let seed = 26;
    let n = 60;
    let (mut sim, nodes) = cluster(n, seed, &Config::lan());
    let log = record(&mut sim, |e| matches!(e, Event::UserEvent { .. }));
    let (a, b) = nodes.split_at(n / 2);
    sim.partition(&[a.to_vec(), b.to_vec()]);
    sim.run_for(Duration::from_secs(1));
    let life = Duration::from_secs(40);
    let said = sim.now();
    sim.with_endpoint(a[0], |ep, now| ep.say(now, "during", b"x", life).unwrap());
    sim.run_for(Duration::from_secs(10));
    let heard = |log: &Log, side: &[NodeId]| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|(_, x, _)| side.contains(x))
            .count()
    };
    assert_eq!(heard(&log, a), n / 2 - 1, "seed {seed}: its own side first");
    assert_eq!(heard(&log, b), 0, "nothing crosses a partition");
    sim.heal();
    // The sides find each other (reconnection), their hashes differ, and
    // anti-entropy moves the event across while it lives.
    sim.run_until(expiry(said, life));
    assert_eq!(
        heard(&log, b),
        n / 2,
        "seed {seed}: the other side hears it once after healing"
    );
    assert_eq!(heard(&log, a), n / 2 - 1, "and nobody twice");
}

#[test]
fn subscriptions_filter_events_by_name_pattern() {
    let (mut sim, nodes) = cluster(10, 22, &Config::lan());
    let log = record(&mut sim, |e| e.user_event_name().is_some());
    for name in ["deploy.web", "deploy.db", "restart.web", "deploy"] {
        sim.with_endpoint(nodes[0], |ep, now| {
            ep.say(now, name, b"x", Duration::from_secs(10)).unwrap()
        });
    }
    sim.run_for(Duration::from_secs(3));
    let log = log.lock().unwrap();
    let heard = |pattern: &KeyPattern| -> BTreeSet<String> {
        log.iter()
            .filter(|(_, node, e)| *node == nodes[5] && e.is_user_event_matching(pattern))
            .filter_map(|(_, _, e)| e.user_event_name().map(str::to_owned))
            .collect()
    };
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        heard(&KeyPattern::glob("deploy.*")),
        set(&["deploy.web", "deploy.db"])
    );
    assert_eq!(
        heard(&KeyPattern::glob("*.web")),
        set(&["deploy.web", "restart.web"])
    );
    assert_eq!(heard(&KeyPattern::prefix("deploy")).len(), 3);
    assert_eq!(heard(&KeyPattern::Any).len(), 4);
}

/// The quorum and expiry events of a run, per (creator, topic).
#[derive(Default)]
struct Outcomes {
    started: BTreeMap<Election, Vec<NodeId>>,
    /// Where each quorum was raised, with the voters it counted.
    quorums: BTreeMap<Election, Vec<(NodeId, Vec<String>)>>,
    expired: BTreeMap<Election, Vec<NodeId>>,
}

/// An election: its creator's name and its topic.
type Election = (String, String);

fn outcomes(log: &Log) -> Outcomes {
    let mut o = Outcomes::default();
    for (_, node, e) in log.lock().unwrap().iter() {
        match e {
            Event::ElectionStarted { topic, creator, .. } => o
                .started
                .entry((creator.clone(), topic.clone()))
                .or_default()
                .push(*node),
            Event::Quorum {
                topic,
                creator,
                voters,
            } => o
                .quorums
                .entry((creator.clone(), topic.clone()))
                .or_default()
                .push((*node, voters.clone())),
            Event::ElectionExpired { topic, creator, .. } => o
                .expired
                .entry((creator.clone(), topic.clone()))
                .or_default()
                .push(*node),
            _ => {}
        }
    }
    o
}

fn is_election_event(e: &Event) -> bool {
    matches!(
        e,
        Event::ElectionStarted { .. } | Event::Quorum { .. } | Event::ElectionExpired { .. }
    )
}

#[test]
fn a_hundred_concurrent_elections_give_one_quorum_each_or_expire_everywhere() {
    let seed = 23;
    let n = 200;
    let (mut sim, nodes) = cluster(n, seed, &Config::lan());
    sim.set_loss(0.05);
    let log = record(&mut sim, is_election_event);
    let mut rng = SmallRng::seed_from_u64(seed);
    let expire = Duration::from_secs(12);
    let mut elections = Vec::new();
    for e in 0..100 {
        let creator = nodes[rng.random_range(0..n)];
        let topic = format!("job-{e}");
        sim.with_endpoint(creator, |ep, now| ep.election(now, &topic, expire, 5, 9))
            .expect("a valid election");
        // 60 reachable: 5–9 yes votes; 40 not: at most 4 yes among 9.
        let yes = if e < 60 {
            rng.random_range(5..=9)
        } else {
            rng.random_range(0..=4)
        };
        let mut voters: Vec<NodeId> = nodes.clone();
        for i in 0..9 {
            let j = rng.random_range(i..voters.len());
            voters.swap(i, j);
        }
        voters.truncate(9);
        elections.push((creator, topic, yes, voters));
        sim.run_for(Duration::from_millis(10));
    }
    // Votes 4–6 s after the elections were created: time for one that
    // pushes and announcements missed to settle and be repaired by
    // anti-entropy (the voters could not vote on it before).
    sim.run_for(Duration::from_secs(3));
    for (_, topic, yes, voters) in &elections {
        for (i, &v) in voters.iter().enumerate() {
            sim.with_endpoint(v, |ep, now| ep.vote(now, topic, i < *yes))
                .expect("the election reached every voter");
        }
        sim.run_for(Duration::from_millis(20));
    }
    sim.run_for(expire);
    let o = outcomes(&log);
    for (creator, topic, yes, voters) in &elections {
        let key = (sim.name(*creator).to_owned(), topic.clone());
        let started: BTreeSet<NodeId> = o.started[&key].iter().copied().collect();
        assert_eq!(
            (started.len(), o.started[&key].len()),
            (n - 1, n - 1),
            "{topic}: every other node learns of it, once"
        );
        assert!(!started.contains(creator));
        let quorums = o.quorums.get(&key).cloned().unwrap_or_default();
        let expired = o.expired.get(&key).cloned().unwrap_or_default();
        if *yes >= 5 {
            assert_eq!(quorums.len(), 1, "seed {seed}: {topic}: {quorums:?}");
            let (at, counted) = &quorums[0];
            assert_eq!(at, creator, "{topic}: the quorum is the creator's");
            let yes_voters: BTreeSet<String> = voters[..*yes]
                .iter()
                .map(|v| sim.name(*v).to_owned())
                .collect();
            assert!(counted.len() >= 5 && counted.iter().all(|v| yes_voters.contains(v)));
            assert!(
                expired.is_empty(),
                "seed {seed}: {topic} reached quorum but {} nodes saw it expire",
                expired.len()
            );
        } else {
            assert!(quorums.is_empty(), "{topic}: {quorums:?}");
            let distinct: BTreeSet<NodeId> = expired.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                expired.len(),
                "{topic}: expired twice somewhere"
            );
            assert_eq!(
                distinct.len(),
                n,
                "seed {seed}: {topic} expired on {} of {n} nodes",
                distinct.len()
            );
        }
    }
    assert!(sim.running().all(|x| sim.endpoint(x).elections() == 0));
}

#[test]
fn a_partition_never_gives_two_quorums_on_one_topic() {
    let seed = 24;
    let n = 100;
    let (mut sim, nodes) = cluster(n, seed, &Config::lan());
    let log = record(&mut sim, is_election_event);
    let expire = Duration::from_secs(20);
    // Majority of 100: 51. Sides of 51 and 49, then 50 and 50.
    for (round, split) in [(0, 51), (1, 50)] {
        let (a, b) = nodes.split_at(split);
        sim.partition(&[a.to_vec(), b.to_vec()]);
        sim.run_for(Duration::from_secs(1));
        let topic = format!("leader-{round}");
        // Both sides elect at once, and every node votes yes on its side.
        for side in [a, b] {
            sim.with_endpoint(side[0], |ep, now| ep.election(now, &topic, expire, 51, 100))
                .unwrap();
        }
        sim.run_for(Duration::from_secs(2));
        for &x in &nodes {
            sim.with_endpoint(x, |ep, now| ep.vote(now, &topic, true))
                .expect("each node knows its side's election");
        }
        sim.run_for(Duration::from_secs(5));
        // Healing mid-election changes nothing: every vote was cast.
        sim.heal();
        sim.run_for(expire);
        for &x in &nodes {
            assert_eq!(
                sim.with_endpoint(x, |ep, now| ep.vote(now, &topic, true)),
                Err(vinery::BusError::UnknownElection),
                "both elections are over"
            );
        }
    }
    let o = outcomes(&log);
    let quorums: Vec<_> = o.quorums.keys().cloned().collect();
    let a0 = sim.name(nodes[0]).to_owned();
    assert_eq!(
        quorums,
        vec![(a0, "leader-0".to_string())],
        "seed {seed}: only the 51-node side reaches a majority, and never both"
    );
    // The 49-node side's election, and both 50-node ones, expired.
    assert_eq!(o.expired.len(), 3, "{:?}", o.expired.keys());
}

#[test]
fn queries_reach_the_filtered_nodes_and_answers_come_back() {
    let seed = 25;
    let n = 20;
    let mut sim = Sim::new(seed, NetworkConfig::default());
    let nodes: Vec<NodeId> = (0..n)
        .map(|i| {
            let role = if i % 4 == 0 { "db" } else { "web" };
            let meta = vinery::bus::encode_tags([("role", role), ("zone", "eu-1")]);
            sim.add_node(Config {
                meta,
                ..Config::lan()
            })
        })
        .collect();
    for &x in &nodes[1..] {
        sim.join(x, &[nodes[0]]);
    }
    sim.wait_until(STEP, Duration::from_secs(30), Sim::full_view)
        .expect("converged");
    let log = record(&mut sim, |e| {
        matches!(
            e,
            Event::Query { .. }
                | Event::QueryAck { .. }
                | Event::QueryResponse { .. }
                | Event::QueryDone { .. }
        )
    });
    let asker = nodes[1];
    let filter = QueryFilter::default().with_tag("role", "d?");
    let id = sim.with_endpoint(asker, |ep, now| {
        ep.query(now, "disk", b"free?", Duration::from_secs(3), &filter)
            .unwrap()
    });
    sim.run_for(Duration::from_millis(500));
    let asked: Vec<NodeId> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::Query { .. }))
        .map(|(_, node, _)| *node)
        .collect();
    let dbs: Vec<NodeId> = nodes
        .iter()
        .copied()
        .filter(|x| x.index() % 4 == 0)
        .collect();
    assert_eq!(
        asked.iter().copied().collect::<BTreeSet<_>>(),
        dbs.iter().copied().collect()
    );
    for &x in &dbs {
        let answer = format!("{} has space", sim.name(x));
        sim.with_endpoint(x, |ep, now| ep.respond(now, &id, answer.as_bytes()))
            .unwrap();
        assert_eq!(
            sim.with_endpoint(x, |ep, now| ep.respond(now, &id, b"again")),
            Err(vinery::BusError::AlreadyResponded)
        );
    }
    sim.run_for(Duration::from_secs(3));
    let log = log.lock().unwrap();
    let at_asker: Vec<&Event> = log
        .iter()
        .filter(|(_, node, _)| *node == asker)
        .map(|(_, _, e)| e)
        .collect();
    let acks = at_asker
        .iter()
        .filter(|e| matches!(e, Event::QueryAck { .. }))
        .count();
    let responses: BTreeSet<String> = at_asker
        .iter()
        .filter_map(|e| match e {
            Event::QueryResponse { payload, .. } => {
                Some(String::from_utf8(payload.clone()).unwrap())
            }
            _ => None,
        })
        .collect();
    assert_eq!(acks, dbs.len());
    assert_eq!(responses.len(), dbs.len());
    assert!(responses.contains(&format!("{} has space", sim.name(dbs[1]))));
    assert_eq!(
        at_asker.last(),
        Some(&&Event::QueryDone {
            id: id.clone(),
            acks: dbs.len(),
            responses: dbs.len()
        })
    );
    // Answers after the timeout are refused at the responder.
    drop(log);
    assert_eq!(
        sim.with_endpoint(dbs[0], |ep, now| ep.respond(now, &id, b"late")),
        Err(vinery::BusError::UnknownQuery)
    );
    // Named nodes only, pushed straight to them.
    let named = [sim.name(nodes[7]).to_owned(), sim.name(nodes[9]).to_owned()];
    let log = record(&mut sim, |e| matches!(e, Event::Query { .. }));
    sim.with_endpoint(asker, |ep, now| {
        ep.query(
            now,
            "ping",
            b"",
            Duration::from_secs(2),
            &QueryFilter::nodes(named),
        )
        .unwrap()
    });
    sim.run_for(Duration::from_millis(50));
    let asked: BTreeSet<NodeId> = log.lock().unwrap().iter().map(|(_, x, _)| *x).collect();
    assert_eq!(asked, [nodes[7], nodes[9]].into_iter().collect());
}
