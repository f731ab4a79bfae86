//! Unit tests of the event bus, queries and elections: a few nodes in the
//! simulator on a perfect network, or one endpoint fed crafted datagrams.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::bus::{BusError, QueryFilter};
use crate::sim::{NetworkConfig, NodeId, Sim};
use crate::wire::{
    self, BusHead, Bytes, ClusterTag, DatagramBuilder, Header, Message, WireError, BUS_BUCKETS,
};
use crate::{Config, Endpoint, Event, Time};

const SECOND: Duration = Duration::from_secs(1);

fn cluster(n: usize, config: &Config) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(7, NetworkConfig::ideal());
    let nodes = sim.add_nodes(n, config);
    for &x in &nodes[1..] {
        sim.join(x, &[nodes[0]]);
    }
    sim.wait_until(Duration::from_millis(100), 10 * SECOND, Sim::full_view)
        .expect("a small cluster converges");
    (sim, nodes)
}

type Log = Arc<Mutex<Vec<(Time, NodeId, Event)>>>;

fn record(sim: &mut Sim) -> Log {
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    sim.on_event(move |t, node, e| {
        if e.member().is_none() {
            sink.lock().unwrap().push((t, node, e.clone()));
        }
    });
    log
}

fn user_events(log: &Log, at: NodeId) -> Vec<(Time, String, u64, Vec<u8>)> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(_, n, _)| *n == at)
        .filter_map(|(t, _, e)| match e {
            Event::UserEvent {
                name,
                lamport,
                payload,
                ..
            } => Some((*t, name.clone(), *lamport, payload.clone())),
            _ => None,
        })
        .collect()
}

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], 7000 + i))
}

fn lone(config: Config) -> Endpoint {
    Endpoint::new(config.with_name("me"), addr(0), 1).unwrap()
}

fn datagram(msgs: &[Message<'_>]) -> Vec<u8> {
    let mut b = DatagramBuilder::new(Header::new(ClusterTag::from_name("vinery")), 1400);
    for m in msgs {
        b.push(m).unwrap();
    }
    b.finish()
}

fn head(origin: &str, seq: u64, at: Time, ttl: Duration) -> BusHead<'_> {
    BusHead {
        origin,
        seq,
        lamport: 5,
        at_ms: at.as_millis(),
        ttl_ms: ttl.as_millis() as u64,
    }
}

fn event<'a>(h: BusHead<'a>, payload: &'a [u8]) -> Message<'a> {
    Message::UserEvent(wire::UserEvent {
        head: h,
        name: "e",
        coalesce: false,
        payload: Bytes(payload),
    })
}

fn drained(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

#[test]
fn lamport_time_follows_causality() {
    let (mut sim, n) = cluster(3, &Config::lan());
    let log = record(&mut sim);
    sim.with_endpoint(n[0], |ep, now| ep.say(now, "first", b"", SECOND).unwrap());
    sim.run_for(SECOND / 2);
    let heard = sim.endpoint(n[1]).lamport();
    sim.with_endpoint(n[1], |ep, now| ep.say(now, "second", b"", SECOND).unwrap());
    sim.run_for(SECOND / 2);
    let at_c = user_events(&log, n[2]);
    assert_eq!(at_c.len(), 2);
    let first = at_c.iter().find(|e| e.1 == "first").unwrap().2;
    let second = at_c.iter().find(|e| e.1 == "second").unwrap().2;
    assert!(heard > first, "receiving advances the clock past the event");
    assert!(
        second > first,
        "an event said after hearing another is later: {second} > {first}"
    );
    // Concurrent events (neither origin heard the other) carry no order
    // but still get distinct, rising clocks at each origin.
    let before = sim.endpoint(n[2]).lamport();
    sim.with_endpoint(n[2], |ep, now| ep.say(now, "third", b"", SECOND).unwrap());
    assert_eq!(sim.endpoint(n[2]).lamport(), before + 1);
}

#[test]
fn coalesced_events_deliver_only_the_latest_of_a_name_per_window() {
    let (mut sim, n) = cluster(2, &Config::lan());
    let log = record(&mut sim);
    let t0 = sim.now();
    for v in [b"v1", b"v2", b"v3"] {
        sim.with_endpoint(n[0], |ep, now| {
            ep.say_coalesced(now, "config", v, 10 * SECOND).unwrap()
        });
        sim.run_for(Duration::from_millis(50));
    }
    // Not coalesced: delivered at once, whatever its name.
    sim.with_endpoint(n[0], |ep, now| {
        ep.say(now, "config", b"plain", 10 * SECOND).unwrap()
    });
    sim.run_for(SECOND);
    let got = user_events(&log, n[1]);
    let payloads: Vec<&[u8]> = got.iter().map(|e| e.3.as_slice()).collect();
    assert_eq!(payloads, vec![&b"plain"[..], &b"v3"[..]]);
    let window = sim.endpoint(n[1]).config().event_coalesce_window;
    let delivered_at = got[1].0.saturating_since(t0);
    assert!(delivered_at >= window && delivered_at < window + Duration::from_millis(10));
    assert_eq!(sim.endpoint(n[1]).stats().events_coalesced, 2);
    // A new window after the first closed delivers again.
    sim.with_endpoint(n[0], |ep, now| {
        ep.say_coalesced(now, "config", b"v4", 10 * SECOND).unwrap()
    });
    sim.run_for(SECOND);
    assert_eq!(user_events(&log, n[1]).last().unwrap().3, b"v4");
}

#[test]
fn a_coalesced_event_older_than_the_delivered_one_is_superseded() {
    let mut ep = lone(Config::lan());
    let now = Time::from_secs(100);
    let older = |lamport, payload: &'static [u8]| {
        let mut h = head("peer", lamport, now, 60 * SECOND);
        h.lamport = lamport;
        Message::UserEvent(wire::UserEvent {
            head: h,
            name: "cfg",
            coalesce: true,
            payload: Bytes(payload),
        })
    };
    ep.handle_packet(now, addr(1), &datagram(&[older(10, b"new")]))
        .unwrap();
    ep.handle_timeout(now + SECOND);
    // Arrives after the window closed, but older by Lamport time.
    ep.handle_packet(now + SECOND, addr(1), &datagram(&[older(3, b"old")]))
        .unwrap();
    ep.handle_timeout(now + 3 * SECOND);
    let got: Vec<Vec<u8>> = drained(&mut ep)
        .into_iter()
        .filter_map(|e| match e {
            Event::UserEvent { payload, .. } => Some(payload),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![b"new".to_vec()]);
    assert_eq!(ep.stats().events_coalesced, 1);
}

#[test]
fn duplicates_own_dead_and_oversized_items_are_not_delivered() {
    let config = Config {
        max_event_payload: 16,
        max_active_events: 4,
        ..Config::lan()
    };
    let mut ep = lone(config);
    let now = Time::from_secs(100);
    let life = 10 * SECOND;
    let one = datagram(&[event(head("peer", 1, now, life), b"x")]);
    ep.handle_packet(now, addr(1), &one).unwrap();
    ep.handle_packet(now, addr(2), &one).unwrap();
    let mine = datagram(&[event(head("me", 9, now, life), b"x")]);
    ep.handle_packet(now, addr(1), &mine).unwrap();
    let dead = datagram(&[event(head("peer", 2, Time::from_secs(50), life), b"x")]);
    ep.handle_packet(now, addr(1), &dead).unwrap();
    let forever = datagram(&[event(head("peer", 3, now, 7200 * SECOND), b"x")]);
    ep.handle_packet(now, addr(1), &forever).unwrap();
    let big = datagram(&[event(head("peer", 4, now, life), &[0; 17])]);
    ep.handle_packet(now, addr(1), &big).unwrap();
    let delivered: Vec<Event> = drained(&mut ep);
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert!(matches!(&delivered[0], Event::UserEvent { origin, seq: 1, .. } if origin == "peer"));
    let s = ep.stats();
    assert_eq!(s.bus_duplicates, 1);
    assert_eq!(s.drops_for("bus_expired"), 1);
    assert_eq!(s.drops_for("bus_duration"), 1);
    assert_eq!(s.drops_for("bus_limit"), 1);
    // Held: the peer's event and our own old one (kept, never delivered),
    // and the oversized one by id only (so it is a duplicate next time).
    assert_eq!(ep.active_bus_items(), 3);
    ep.handle_packet(now, addr(1), &big).unwrap();
    assert_eq!(ep.stats().bus_duplicates, 2);
    for seq in 10..12 {
        let d = datagram(&[event(head("peer", seq, now, life), b"x")]);
        ep.handle_packet(now, addr(1), &d).unwrap();
    }
    assert_eq!(ep.stats().drops_for("bus_table_full"), 1);
    // Once dead, everything is forgotten.
    ep.handle_timeout(now + life);
    assert_eq!(ep.active_bus_items(), 0);
}

#[test]
fn refused_calls_name_the_limit() {
    let config = Config {
        max_active_events: 2,
        max_pending_queries: 1,
        max_elections: 1,
        ..Config::lan()
    };
    let mut ep = lone(config);
    let now = Time::from_secs(1);
    let max = ep.config().max_event_payload;
    let err = ep.say(now, "e", &vec![0; max + 1], SECOND).unwrap_err();
    assert_eq!(err, BusError::PayloadTooLarge { len: max + 1, max });
    assert!(err.to_string().contains("max_event_payload"), "{err}");
    let long = "n".repeat(ep.config().max_event_name_len + 1);
    let err = ep.say(now, &long, b"", SECOND).unwrap_err();
    assert!(err.to_string().contains("max_event_name_len"), "{err}");
    assert!(matches!(
        ep.say(now, "", b"", SECOND),
        Err(BusError::BadName { .. })
    ));
    for d in [Duration::ZERO, 7200 * SECOND] {
        let err = ep.say(now, "e", b"", d).unwrap_err();
        assert!(err.to_string().contains("max_event_duration"), "{err}");
    }
    let huge = QueryFilter::nodes((0..20).map(|i| format!("{i:0>200}")));
    assert!(matches!(
        ep.query(now, "q", b"", SECOND, &huge),
        Err(BusError::TooLarge { .. })
    ));
    ep.query(now, "q", b"", SECOND, &QueryFilter::default())
        .unwrap();
    assert_eq!(
        ep.query(now, "q", b"", SECOND, &QueryFilter::default()),
        Err(BusError::TooManyQueries { max: 1 })
    );
    assert_eq!(
        ep.election(now, "t", SECOND, 3, 2),
        Err(BusError::BadQuorum {
            min: 3,
            total: 2,
            max_total: 1024
        })
    );
    ep.election(now, "t", SECOND, 1, 1).unwrap();
    let err = ep.say(now, "e", b"", SECOND).unwrap_err();
    assert_eq!(err, BusError::TooManyEvents { max: 2 });
    assert!(err.to_string().contains("max_active_events"));
    let id = crate::EventId {
        origin: "peer".into(),
        seq: 1,
    };
    assert_eq!(ep.respond(now, &id, b""), Err(BusError::UnknownQuery));
    assert_eq!(ep.vote(now, "nope", true), Err(BusError::UnknownElection));
    // Nothing refused was held.
    assert_eq!(ep.active_bus_items(), 2);
}

#[test]
fn elections_refuse_duplicates_and_second_votes() {
    let mut ep = lone(Config::lan());
    let now = Time::from_secs(1);
    ep.election(now, "leader", 10 * SECOND, 1, 3).unwrap();
    assert_eq!(
        ep.election(now, "leader", 10 * SECOND, 1, 3),
        Err(BusError::ElectionExists)
    );
    ep.vote(now, "leader", true).unwrap();
    assert_eq!(ep.vote(now, "leader", false), Err(BusError::AlreadyVoted));
    let quorum: Vec<Event> = drained(&mut ep);
    assert_eq!(
        quorum,
        vec![Event::Quorum {
            topic: "leader".into(),
            creator: "me".into(),
            voters: vec!["me".into()],
        }]
    );
    // After the expiry the topic is free again, and nothing else fires.
    ep.handle_timeout(now + 10 * SECOND);
    assert!(drained(&mut ep).is_empty());
    ep.election(now + 11 * SECOND, "leader", SECOND, 1, 3)
        .unwrap();
}

#[test]
fn votes_are_counted_once_per_voter_within_the_limits() {
    let config = Config {
        max_votes_per_election: 2,
        max_elections: 2,
        ..Config::lan()
    };
    let mut ep = lone(config);
    let now = Time::from_secs(1);
    let life = 10 * SECOND;
    let election = Message::Election(wire::Election {
        head: head("boss", 1, now, life),
        topic: "t",
        min: 2,
        total: 2,
    });
    let vote = |voter, seq, yes| {
        Message::Vote(wire::Vote {
            head: head(voter, seq, now, life),
            creator: "boss",
            election: 1,
            yes,
        })
    };
    // A vote may arrive before its election.
    ep.handle_packet(now, addr(1), &datagram(&[vote("a", 1, true)]))
        .unwrap();
    ep.handle_packet(now, addr(1), &datagram(&[election]))
        .unwrap();
    let again = datagram(&[vote("a", 2, false), vote("b", 1, false), vote("c", 1, true)]);
    ep.handle_packet(now, addr(1), &again).unwrap();
    assert_eq!(ep.stats().drops_for("vote_repeated"), 1);
    assert_eq!(ep.stats().drops_for("vote_limit"), 1);
    for other in 2..4 {
        let e = Message::Election(wire::Election {
            head: head("boss", other, now, life),
            topic: "u",
            min: 1,
            total: 1,
        });
        ep.handle_packet(now, addr(1), &datagram(&[e])).unwrap();
    }
    assert_eq!(ep.stats().drops_for("election_limit"), 1);
    assert_eq!(ep.elections(), 2);
    // Not the creator: no quorum here, and 1 yes of 2 needed: expired.
    ep.handle_timeout(now + life);
    let events = drained(&mut ep);
    assert!(
        events.contains(&Event::ElectionExpired {
            topic: "t".into(),
            creator: "boss".into(),
            yes: 1,
        }),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Quorum { .. })));
}

#[test]
fn queries_reach_matching_nodes_only_and_replies_are_counted_once() {
    let mut sim = Sim::new(8, NetworkConfig::ideal());
    let metas = ["role=web", "role=db,zone=eu", "role=db,zone=us", ""];
    let nodes: Vec<NodeId> = metas
        .iter()
        .map(|m| {
            sim.add_node(Config {
                meta: m.as_bytes().to_vec(),
                ..Config::lan()
            })
        })
        .collect();
    for &x in &nodes[1..] {
        sim.join(x, &[nodes[0]]);
    }
    sim.wait_until(Duration::from_millis(100), 10 * SECOND, Sim::full_view)
        .unwrap();
    let log = record(&mut sim);
    let filter = QueryFilter::default()
        .with_tag("role", "db")
        .with_tag("zone", "e*");
    let id = sim.with_endpoint(nodes[0], |ep, now| {
        ep.query(now, "q", b"?", SECOND, &filter).unwrap()
    });
    sim.run_for(SECOND / 10);
    let asked: Vec<NodeId> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, e)| e.query_name() == Some("q"))
        .map(|(_, n, _)| *n)
        .collect();
    assert_eq!(asked, vec![nodes[1]]);
    sim.with_endpoint(nodes[1], |ep, now| ep.respond(now, &id, b"42"))
        .unwrap();
    sim.run_for(SECOND);
    let at_asker: Vec<Event> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, n, _)| *n == nodes[0])
        .map(|(_, _, e)| e.clone())
        .collect();
    let responder = sim.name(nodes[1]).to_owned();
    assert_eq!(
        at_asker,
        vec![
            Event::QueryAck {
                id: id.clone(),
                from: responder.clone()
            },
            Event::QueryResponse {
                id: id.clone(),
                from: responder.clone(),
                payload: b"42".to_vec()
            },
            Event::QueryDone {
                id: id.clone(),
                acks: 1,
                responses: 1
            },
        ]
    );
    // A replayed response, and one for an unknown query, are counted.
    let mut ep = lone(Config::lan());
    let reply = Message::QueryReply(wire::QueryReply {
        asker: "me",
        seq: 1,
        from: "x",
        ack: false,
        payload: Bytes(b""),
    });
    ep.handle_packet(Time::ZERO, addr(1), &datagram(&[reply]))
        .unwrap();
    assert_eq!(ep.stats().drops_for("query_unknown"), 1);
}

#[test]
fn bad_bus_messages_are_refused_on_decode() {
    let now = Time::from_secs(1);
    let zero_ttl = event(head("p", 1, now, Duration::ZERO), b"");
    let bad = [
        zero_ttl,
        Message::Election(wire::Election {
            head: head("p", 1, now, SECOND),
            topic: "t",
            min: 3,
            total: 2,
        }),
        Message::Election(wire::Election {
            head: head("p", 1, now, SECOND),
            topic: "",
            min: 1,
            total: 2,
        }),
        Message::QueryReply(wire::QueryReply {
            asker: "a",
            seq: 1,
            from: "b",
            ack: true,
            payload: Bytes(b"x"),
        }),
        Message::BusPush(wire::BusPush { fanout: 17 }),
        Message::BusHave(wire::BusHave {
            reply_mask: 0,
            ids: Bytes(&[0; 7]),
        }),
        Message::BusHave(wire::BusHave {
            reply_mask: 1 << BUS_BUCKETS,
            ids: Bytes(&[]),
        }),
        Message::BusWant(wire::BusWant { ids: Bytes(&[]) }),
        Message::BusSync(wire::BusSync {
            buckets: Bytes(&[0; 8]),
        }),
        Message::Query(wire::Query {
            head: head("p", 1, now, SECOND),
            addr: addr(1),
            name: "q",
            filter: Bytes(&[7, 1, b'x']),
            payload: Bytes(b""),
        }),
    ];
    for msg in bad {
        let bytes = wire::encode_message(&msg);
        assert_eq!(
            wire::decode_message(&bytes).map(|_| ()),
            Err(WireError::BadBus),
            "{msg:?}"
        );
    }
}
