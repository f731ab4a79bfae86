//! The event bus, queries and elections through the `Node` API over real
//! UDP (hosted nodes on loopback): `hear` filters user events by name and
//! a node never hears its own; `hear_once` delivers one event and ends;
//! queries gather responses from handlers and from `respond` on another
//! thread, and acks from nodes without a handler; node and tag filters
//! restrict who answers; a blocked or panicking handler costs its own
//! answers only; handlers and subscriptions survive a restart while a
//! stopped node's running queries end; elections reach a quorum on the
//! creator or expire.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{converged, hosted_cluster, hosted_cluster_with, wait_until, DEADLINE};
use vinery::runtime::{
    EventFilter, Host, Node, NodeError, QueryEvent, QueryResult, Receiver, RecvTimeoutError,
};
use vinery::{BusError, Event, EventKind, QueryFilter, QueryId};

/// Long enough for a query to reach every node of a small cluster and its
/// answers to come back on a busy 2-core CI, short enough to keep the file
/// quick: answers arrive in milliseconds; only the end waits for it.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
const EVENT_LIFETIME: Duration = Duration::from_secs(30);

fn converged_cluster(host: &Host, prefix: &str, n: usize) -> Vec<Node> {
    let nodes = hosted_cluster(host, prefix, n);
    assert!(wait_until(DEADLINE, || converged(&nodes)), "no convergence");
    nodes
}

/// The names of the user events waiting on `rx`.
fn names(rx: &Receiver<Event>) -> BTreeSet<String> {
    rx.try_iter()
        .filter_map(|e| e.user_event_name().map(String::from))
        .collect()
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.into_iter().map(String::from).collect()
}

#[test]
fn hear_filters_user_events_by_name_and_a_node_never_hears_itself() {
    let host = Host::new().unwrap();
    let nodes = converged_cluster(&host, "ev", 5);
    let deploys: Vec<_> = nodes.iter().map(|n| n.hear("deploy.*")).collect();
    let everything: Vec<_> = nodes.iter().map(|n| n.hear("*")).collect();
    let once = nodes[2].hear_once("deploy.*");

    let sayer = &nodes[0];
    sayer.say("other.x", b"o", EVENT_LIFETIME).unwrap();
    let web = sayer.say("deploy.web", b"w", EVENT_LIFETIME).unwrap();
    sayer
        .say_coalesced("deploy.cfg", b"v2", EVENT_LIFETIME)
        .unwrap();
    assert_eq!(web.origin, "ev00");

    // Each event reaches every subscription of a node in one delivery:
    // once `*` has all three, `deploy.*` has had its chance at each.
    for (i, all) in everything.iter().enumerate().skip(1) {
        let mut heard = Vec::new();
        assert!(
            wait_until(DEADLINE, || {
                heard.extend(all.try_iter());
                heard.len() >= 3
            }),
            "ev0{i} heard {heard:?}"
        );
        let heard_names: BTreeSet<_> = heard
            .iter()
            .filter_map(|e| e.user_event_name().map(String::from))
            .collect();
        assert_eq!(heard_names, set(["other.x", "deploy.web", "deploy.cfg"]));
        let from_web = heard
            .iter()
            .find(|e| e.user_event_name() == Some("deploy.web"));
        assert!(
            matches!(from_web, Some(Event::UserEvent { origin, seq, payload, .. })
                if *origin == web.origin && *seq == web.seq && payload == b"w"),
            "{from_web:?}"
        );
        assert_eq!(
            names(&deploys[i]),
            set(["deploy.web", "deploy.cfg"]),
            "ev0{i}: a name the glob does not match is not delivered"
        );
    }
    assert!(
        everything[0].is_empty() && deploys[0].is_empty(),
        "the sayer heard itself"
    );

    let first = once.recv_timeout(DEADLINE).expect("hear_once delivers");
    assert!(first.user_event_name().unwrap().starts_with("deploy."));
    assert_eq!(
        once.recv_timeout(DEADLINE),
        Err(RecvTimeoutError::Disconnected),
        "a one-shot subscription ends after its event"
    );
    let live = nodes[2].stats().unwrap().runtime.subscribers;
    assert_eq!(live.len(), 2, "the one-shot subscription removed itself");

    assert!(matches!(
        sayer.say("", b"x", EVENT_LIFETIME),
        Err(NodeError::Bus(BusError::BadName { len: 0, .. }))
    ));
    assert!(matches!(
        sayer.say("big", &[0; 100_000], EVENT_LIFETIME),
        Err(NodeError::Bus(BusError::PayloadTooLarge { .. }))
    ));
}

/// A handler that answers `"<me>:<payload>:<asker>"`.
fn echo(node: &Node) {
    let me = node.name().to_owned();
    node.on_query("ping*", move |q| {
        let payload = String::from_utf8_lossy(&q.payload);
        Some(format!("{me}:{payload}:{}", q.from).into_bytes())
    })
    .unwrap();
}

fn responders(result: &QueryResult) -> BTreeSet<String> {
    result.responses.iter().map(|(n, _)| n.clone()).collect()
}

#[test]
fn queries_gather_responses_from_handlers_and_respond_and_acks_from_the_rest() {
    let host = Host::new().unwrap();
    let nodes = hosted_cluster_with(&host, "q", 5, |c| {
        if c.protocol.name == "q02" {
            c.protocol.meta = b"role=web,zone=eu-1".to_vec();
        }
    });
    assert!(wait_until(DEADLINE, || converged(&nodes)), "no convergence");
    echo(&nodes[1]);
    echo(&nodes[2]);
    // A handler for other names only: q03 acks and does not respond.
    nodes[3]
        .on_query("other.*", |_| Some(b"wrong".to_vec()))
        .unwrap();
    // q04 answers by hand, from another thread.
    let asked = nodes[4].subscribe_filtered(EventFilter::kinds([EventKind::Query]));

    let result = std::thread::scope(|s| {
        let responder = s.spawn(|| {
            let Ok(Event::Query { id, name, .. }) = asked.recv_timeout(DEADLINE) else {
                panic!("q04 did not receive the query");
            };
            assert_eq!(name, "ping.1");
            nodes[4].respond(&id, b"by hand").unwrap();
            assert!(matches!(
                nodes[4].respond(&id, b"again"),
                Err(NodeError::Bus(BusError::AlreadyResponded))
            ));
        });
        let handle = nodes[0]
            .query("ping.1", b"hi", QUERY_TIMEOUT, &QueryFilter::default())
            .unwrap();
        assert_eq!(handle.id().origin, "q00");
        let result = handle.collect().expect("the query runs to its timeout");
        responder.join().unwrap();
        result
    });
    let acks: BTreeSet<_> = result.acks.iter().cloned().collect();
    assert_eq!(acks, set(["q01", "q02", "q03", "q04"]), "{result:?}");
    let mut responses = result.responses.clone();
    responses.sort();
    assert_eq!(
        responses,
        [
            ("q01".to_string(), b"q01:hi:q00".to_vec()),
            ("q02".into(), b"q02:hi:q00".to_vec()),
            ("q04".into(), b"by hand".to_vec()),
        ]
    );

    // Only the named nodes answer; answers stream in, the end comes last.
    let named = nodes[0]
        .query(
            "ping.2",
            b"x",
            QUERY_TIMEOUT,
            &QueryFilter::nodes(["q01", "q03"]),
        )
        .unwrap();
    let mut streamed = Vec::new();
    while let Some(event) = named.recv() {
        streamed.push(event);
    }
    let Some(QueryEvent::Done { acks, responses }) = streamed.pop() else {
        panic!("the end comes last: {streamed:?}");
    };
    let mut want = vec![
        QueryEvent::Ack { from: "q01".into() },
        QueryEvent::Ack { from: "q03".into() },
        QueryEvent::Response {
            from: "q01".into(),
            payload: b"q01:x:q00".to_vec(),
        },
    ];
    streamed.sort_by_key(|e| format!("{e:?}"));
    want.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(streamed, want);
    assert_eq!((acks, responses), (2, 1));

    // Tags: only q02 is role=web.
    let tagged = nodes[0]
        .query(
            "ping.3",
            b"t",
            QUERY_TIMEOUT,
            &QueryFilter::default().with_tag("role", "w*"),
        )
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(tagged.acks, ["q02"]);
    assert_eq!(responders(&tagged), set(["q02"]));

    let unknown = QueryId {
        origin: "q00".into(),
        seq: 1,
    };
    assert!(matches!(
        nodes[1].respond(&unknown, b"x"),
        Err(NodeError::Bus(BusError::UnknownQuery))
    ));
    assert!(matches!(
        nodes[0].query("p", b"", Duration::ZERO, &QueryFilter::default()),
        Err(NodeError::Bus(BusError::BadDuration { .. }))
    ));
    let stats = nodes[1].stats().unwrap().runtime;
    assert_eq!(
        (stats.query_handler_drops, stats.query_handler_failures),
        (0, 0)
    );
}

fn handler_failures(node: &Node) -> u64 {
    node.stats().unwrap().runtime.query_handler_failures
}

#[test]
fn a_blocked_or_panicking_handler_costs_only_its_own_answers() {
    let host = Host::new().unwrap();
    let nodes = converged_cluster(&host, "h", 3);
    let (release, released) = crossbeam_channel::bounded::<()>(0);
    nodes[1]
        .on_query("*", move |q| {
            if q.payload == b"slow" {
                // Blocks until the test lets it go, long after the timeout.
                let _ = released.recv();
            }
            Some(b"h01".to_vec())
        })
        .unwrap();
    nodes[2]
        .on_query("*", |q| {
            assert!(q.payload != b"boom", "a handler bug");
            Some(b"h02".to_vec())
        })
        .unwrap();
    let ask = |payload: &[u8]| {
        nodes[0]
            .query("work", payload, QUERY_TIMEOUT, &QueryFilter::default())
            .unwrap()
            .collect()
            .unwrap()
    };

    // h01's handler blocks: h01 still acks (its loop, shared with h00 and
    // h02 on this host, runs on) and h02 still responds.
    let slow = ask(b"slow");
    let acks: BTreeSet<_> = slow.acks.iter().cloned().collect();
    assert_eq!(acks, set(["h01", "h02"]));
    assert_eq!(responders(&slow), set(["h02"]));
    assert!(
        nodes[1].live_peers().unwrap().len() == 2,
        "h01's loop answers"
    );
    release.send(()).unwrap();
    assert!(
        wait_until(DEADLINE, || handler_failures(&nodes[1]) == 1),
        "the response after the timeout is refused and counted"
    );

    // h02's handler panics: no response, counted; its thread goes on.
    let boom = ask(b"boom");
    assert_eq!(responders(&boom), set(["h01"]));
    assert!(wait_until(DEADLINE, || handler_failures(&nodes[2]) == 1));
    let again = ask(b"again");
    assert_eq!(responders(&again), set(["h01", "h02"]));
    assert_eq!(nodes[2].stats().unwrap().runtime.query_handler_drops, 0);
}

#[test]
fn handlers_and_subscriptions_survive_a_restart_and_a_stop_ends_running_queries() {
    let host = Host::new().unwrap();
    let nodes = converged_cluster(&host, "r", 3);
    echo(&nodes[1]);
    let pings = nodes[1].hear("ping");
    let cut = nodes[1]
        .query(
            "long",
            b"",
            Duration::from_secs(60),
            &QueryFilter::default(),
        )
        .unwrap();
    nodes[1].stop();
    assert!(
        matches!(cut.collect(), Err(NodeError::NotRunning)),
        "a query cut short by a stop is reported, not awaited forever"
    );
    assert!(matches!(
        nodes[1].say("x", b"", EVENT_LIFETIME),
        Err(NodeError::NotRunning)
    ));
    nodes[1].start().unwrap();
    assert!(
        wait_until(DEADLINE, || converged(&nodes)),
        "no convergence after the restart"
    );

    let result = nodes[0]
        .query(
            "ping.r",
            b"back",
            QUERY_TIMEOUT,
            &QueryFilter::nodes(["r01"]),
        )
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(
        result.responses,
        [("r01".to_string(), b"r01:back:r00".to_vec())]
    );
    nodes[0].say("ping", b"", EVENT_LIFETIME).unwrap();
    let heard = pings.recv_timeout(DEADLINE).expect("r01 still hears");
    assert_eq!(heard.node(), "r00");
}

/// The next election outcome (quorum or expiry) `rx` receives.
fn next_outcome(rx: &Receiver<Event>) -> Event {
    rx.recv_timeout(DEADLINE).expect("no election outcome")
}

#[test]
fn elections_reach_a_quorum_on_the_creator_with_enough_votes_and_expire_without() {
    let host = Host::new().unwrap();
    let nodes = converged_cluster(&host, "e", 5);
    let started: Vec<_> = nodes
        .iter()
        .map(|n| n.subscribe_filtered(EventFilter::kinds([EventKind::ElectionStarted])))
        .collect();
    let outcomes: Vec<_> = nodes
        .iter()
        .map(|n| {
            n.subscribe_filtered(EventFilter::kinds([
                EventKind::Quorum,
                EventKind::ElectionExpired,
            ]))
        })
        .collect();
    let wait_started = |voters: &[usize], topic: &str| {
        for &i in voters {
            let e = started[i]
                .recv_timeout(DEADLINE)
                .expect("the election arrives");
            assert!(
                matches!(&e, Event::ElectionStarted { topic: t, creator, min: 3, total: 5 }
                    if t == topic && creator == "e00"),
                "{e:?}"
            );
        }
    };

    // Long-lived, so that no node's expiry of it (one that missed a vote)
    // comes while the test runs.
    let leader_expiry = Duration::from_secs(300);
    let creator = &nodes[0];
    creator.election("leader", leader_expiry, 3, 5).unwrap();
    assert!(matches!(
        creator.election("leader", leader_expiry, 3, 5),
        Err(NodeError::Bus(BusError::ElectionExists))
    ));
    wait_started(&[1, 2, 3, 4], "leader");
    nodes[4].vote("leader", false).unwrap();
    for voter in &nodes[1..4] {
        voter.vote("leader", true).unwrap();
    }
    assert!(matches!(
        nodes[1].vote("leader", false),
        Err(NodeError::Bus(BusError::AlreadyVoted))
    ));
    let quorum = next_outcome(&outcomes[0]);
    assert_eq!(
        quorum,
        Event::Quorum {
            topic: "leader".into(),
            creator: "e00".into(),
            voters: vec!["e01".into(), "e02".into(), "e03".into()],
        }
    );

    // One yes vote of the three needed: it expires, on the creator and on
    // the nodes that knew it.
    creator
        .election("lonely", Duration::from_secs(2), 3, 5)
        .unwrap();
    wait_started(&[1, 2, 3, 4], "lonely");
    nodes[1].vote("lonely", true).unwrap();
    let expired = |yes| Event::ElectionExpired {
        topic: "lonely".into(),
        creator: "e00".into(),
        yes,
    };
    assert_eq!(
        next_outcome(&outcomes[0]),
        expired(1),
        "no second quorum either"
    );
    assert_eq!(next_outcome(&outcomes[1]), expired(1));
    for outcome in &outcomes[2..] {
        assert!(
            matches!(next_outcome(outcome), Event::ElectionExpired { topic, yes: 0 | 1, .. } if topic == "lonely")
        );
    }
    assert!(
        outcomes.iter().all(Receiver::is_empty),
        "the quorum was raised on the creator only"
    );

    assert!(matches!(
        nodes[2].vote("nothing", true),
        Err(NodeError::Bus(BusError::UnknownElection))
    ));
    assert!(matches!(
        creator.election("bad", DEADLINE, 0, 5),
        Err(NodeError::Bus(BusError::BadQuorum { min: 0, .. }))
    ));
}
