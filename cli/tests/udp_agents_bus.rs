//! The event bus through the command line, over real UDP: ten `vinery
//! agent` processes on loopback. `vinery event` from one is printed exactly
//! once by every other agent and never by the sayer; `vinery query` gathers
//! the responses of the agents started with `--answer` or `--answer-cmd`
//! and the acks of the rest, and `--node` restricts who answers; a query
//! streams its answers as they arrive and returns as soon as every
//! expected node answered (acks and responses, or only responses with
//! `--no-ack`), long before its timeout; an
//! election created with `vinery election` reaches a quorum, printed once
//! by its creator, after `vinery vote yes` on enough agents, and one
//! without enough votes is printed as expired.
//!
//! Durations are short (a 3 s query, a 2 s election) so the file runs in
//! seconds on 2 cores; each condition still waits up to the common
//! deadline.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::agents::{Agents, VINERY};
use common::{wait_until, DEADLINE};
use serde_json::Value as Json;

const N: usize = 10;

/// The events of `kind` agent `i` printed, with `field` equal to `value`.
fn printed(agents: &Agents, i: usize, kind: &str, field: &str, value: &str) -> Vec<Json> {
    agents
        .events(i)
        .into_iter()
        .filter(|e| e["event"] == kind && e[field] == value)
        .collect()
}

/// Whether every agent in `who` has printed at least one such event.
fn all_printed(agents: &Agents, who: &[usize], kind: &str, field: &str, value: &str) -> bool {
    who.iter()
        .all(|&i| !printed(agents, i, kind, field, value).is_empty())
}

/// `vinery query NAME ARGS… --json --timeout 60s` through agent `i`: each
/// line of its output with the moment it arrived.
fn streamed_query(agents: &Agents, i: usize, args: &[&str]) -> Vec<(Instant, Json)> {
    let mut client = Command::new(VINERY)
        .arg("query")
        .args(args)
        .args(["--timeout", "60s", "--json", "--control"])
        .arg(agents.control(i))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(client.stdout.take().unwrap());
    let lines = out
        .lines()
        .map(|l| (Instant::now(), serde_json::from_str(&l.unwrap()).unwrap()))
        .collect();
    assert!(client.wait().unwrap().success(), "vinery query {args:?}");
    lines
}

#[test]
fn ten_agents_carry_events_queries_and_elections_through_the_cli() {
    let mut agents = Agents::new("bus-agents");
    agents.start_logged(0, None, &[]);
    let seed = agents.addr(0);
    for i in 1..N {
        let answer = format!("ping*=pong-a{i}");
        let extra: Vec<&str> = match i {
            1..=4 => vec!["--answer", &answer],
            5 => vec!["--answer-cmd", "ping*=tr a-z A-Z"],
            6 => vec!["--answer-cmd", "ping.slow*=sleep 2; echo late"],
            _ => vec![],
        };
        agents.start_logged(i, Some(&seed), &extra);
    }
    let all: Vec<usize> = (0..N).collect();
    assert!(
        wait_until(2 * DEADLINE, || agents.converged(&all)),
        "the agents did not converge"
    );

    // An event from a3 reaches the nine others, once each.
    let said = agents
        .run(3, &["event", "deploy.web", "v2 \"quoted\"", "--for", "30s"])
        .expect("vinery event");
    let id = said["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("a3/"), "{said}");
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != 3).collect();
    assert!(
        wait_until(DEADLINE, || all_printed(
            &agents,
            &others,
            "user_event",
            "id",
            &id
        )),
        "not every agent printed the event"
    );
    let heard = printed(&agents, 7, "user_event", "id", &id);
    assert_eq!(heard[0]["name"], "deploy.web");
    assert_eq!(heard[0]["from"], "a3");
    assert_eq!(heard[0]["payload"], "v2 \"quoted\"");

    // A query from a0: responses from a1–a4 (--answer) and a5
    // (--answer-cmd), acks from all nine.
    let answer = agents
        .run(0, &["query", "ping.all", "hi", "--timeout", "3s"])
        .expect("vinery query");
    let mut acks: Vec<String> = answer["acks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    acks.sort();
    let names = |r: std::ops::Range<usize>| -> Vec<String> { r.map(|i| format!("a{i}")).collect() };
    assert_eq!(acks, names(1..N), "{answer}");
    let responses: BTreeMap<String, String> = answer["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap().into(),
                r["payload"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut want: BTreeMap<String, String> = (1..=4)
        .map(|i| (format!("a{i}"), format!("pong-a{i}")))
        .collect();
    want.insert("a5".into(), "HI".into());
    assert_eq!(responses, want, "{answer}");
    assert_eq!(answer["complete"], false, "{answer}");
    assert_eq!(
        answer["missing"],
        serde_json::json!(names(6..N)),
        "{answer}"
    );
    assert!(all_printed(&agents, &[1, 6], "query", "name", "ping.all"));

    // Only the named agents answer.
    let named = agents
        .run(
            0,
            &[
                "query",
                "ping.some",
                "x",
                "--timeout",
                "2s",
                "--node",
                "a1",
                "--node",
                "a6",
            ],
        )
        .expect("vinery query --node");
    let mut acks: Vec<&str> = named["acks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .collect();
    acks.sort_unstable();
    assert_eq!(acks, ["a1", "a6"], "{named}");
    assert_eq!(
        named["responses"],
        serde_json::json!([{"node": "a1", "payload": "pong-a1"}])
    );
    assert_eq!(named["missing"], serde_json::json!(["a6"]), "{named}");

    // Answers stream as they arrive, and the query returns once both
    // expected nodes answered: a1 at once, a6 after its command's 2 s.
    let asked = Instant::now();
    let lines = streamed_query(&agents, 0, &["ping.slow", "--node", "a1", "--node", "a6"]);
    let took = asked.elapsed();
    let (last_at, last) = lines.last().unwrap().clone();
    assert_eq!(last["complete"], true, "{lines:?}");
    assert_eq!(last["expected"], serde_json::json!(["a1", "a6"]));
    assert!(
        took < Duration::from_secs(30),
        "waited {took:?} of a 60 s query"
    );
    let event_of = |from: &str, kind: &str| {
        lines
            .iter()
            .find(|(_, l)| l["from"] == from && l["event"] == kind)
            .unwrap_or_else(|| panic!("no {kind} from {from}: {lines:?}"))
            .clone()
    };
    let (fast_at, fast) = event_of("a1", "query_response");
    assert_eq!(fast["payload"], "pong-a1");
    assert_eq!(event_of("a6", "query_response").1["payload"], "late\n");
    event_of("a6", "query_ack");
    assert!(
        last_at.duration_since(fast_at) >= Duration::from_secs(1),
        "a1's response came with the end, not as it arrived: {lines:?}"
    );

    // With --no-ack, a response is enough and acks are not shown.
    let lines = streamed_query(&agents, 0, &["ping.quick", "--node", "a2", "--no-ack"]);
    let events: Vec<&Json> = lines
        .iter()
        .map(|(_, l)| l)
        .filter(|l| l.get("ok").is_none())
        .collect();
    assert_eq!(
        events,
        [&serde_json::json!({"event": "query_response", "from": "a2", "payload": "pong-a2"})]
    );
    assert_eq!(lines.last().unwrap().1["complete"], true, "{lines:?}");

    // An election with three yes votes of the three needed.
    agents
        .run(
            0,
            &[
                "election", "leader", "--min", "3", "--total", "5", "--expire", "60s",
            ],
        )
        .expect("vinery election");
    let voters = [1, 2, 3];
    assert!(
        wait_until(DEADLINE, || all_printed(
            &agents,
            &voters,
            "election_started",
            "topic",
            "leader"
        )),
        "the election did not reach the voters"
    );
    for i in voters {
        assert!(
            agents.run(i, &["vote", "leader", "yes"]).is_some(),
            "a{i} votes"
        );
    }
    assert!(
        agents.run(1, &["vote", "leader", "no"]).is_none(),
        "a second vote is refused"
    );
    assert!(
        wait_until(DEADLINE, || !printed(
            &agents, 0, "quorum", "topic", "leader"
        )
        .is_empty()),
        "no quorum"
    );

    // One yes vote of the three needed: it expires.
    agents
        .run(
            0,
            &[
                "election", "lonely", "--min", "3", "--total", "5", "--expire", "2s",
            ],
        )
        .expect("vinery election");
    assert!(wait_until(DEADLINE, || all_printed(
        &agents,
        &[1],
        "election_started",
        "topic",
        "lonely"
    )));
    assert!(agents.run(1, &["vote", "lonely", "yes"]).is_some());
    assert!(
        wait_until(DEADLINE, || all_printed(
            &agents,
            &[0, 1],
            "election_expired",
            "topic",
            "lonely"
        )),
        "the lonely election did not expire"
    );

    // Seconds later, nothing was printed twice and nobody heard itself.
    let quorums = printed(&agents, 0, "quorum", "topic", "leader");
    assert_eq!(quorums.len(), 1, "{quorums:?}");
    assert_eq!(quorums[0]["voters"], serde_json::json!(["a1", "a2", "a3"]));
    assert!(printed(&agents, 0, "quorum", "topic", "lonely").is_empty());
    for &i in &all {
        let copies = printed(&agents, i, "user_event", "id", &id).len();
        assert_eq!(
            copies,
            usize::from(i != 3),
            "a{i} printed the event {copies} times"
        );
        if i != 0 {
            assert!(
                printed(&agents, i, "quorum", "topic", "leader").is_empty(),
                "a{i}"
            );
        }
    }
}
