//! A join nobody answers is loud: `vinery agent` pointed at a port nobody
//! listens on warns that no seed answered, naming the seeds, and with
//! `--join-timeout` exits with status 1 once it passes (what a supervisor
//! watches). The same runs check the log lines: timestamped, filtered by
//! `RUST_LOG`, and JSON objects with `--log-json`. Two agents started
//! without seeds form a cluster once `vinery join` points one at the
//! other, at run time, and `vinery info` reports it.

mod common;

use std::net::UdpSocket;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::agents::{Agents, VINERY};
use common::{wait_until, DEADLINE};
use serde_json::Value as Json;

/// A loopback UDP port with nobody on it (bound, then let go).
fn silent_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An agent joining only `seed`, giving up after 5 s, with `extra` flags
/// and `RUST_LOG` as given.
fn lonely_agent(tag: &str, seed: &str, rust_log: Option<&str>, extra: &[&str]) -> Child {
    let control =
        std::env::temp_dir().join(format!("vinery-join-{tag}-{}.sock", std::process::id()));
    let mut cmd = Command::new(VINERY);
    cmd.args(["agent", "--bind", "127.0.0.1:0", "--name", tag])
        .args(["--cluster", &format!("test-join-{tag}")])
        .args(["--join", seed, "--join-timeout", "5s", "--control"])
        .arg(control)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG");
    if let Some(filter) = rust_log {
        cmd.env("RUST_LOG", filter);
    }
    cmd.spawn().unwrap()
}

/// Waits (with the common deadline) for `child` to exit by itself.
fn exited(mut child: Child) -> Output {
    let mut done = false;
    assert!(
        wait_until(DEADLINE, || {
            done = child.try_wait().unwrap().is_some();
            done
        }),
        "the agent did not give up"
    );
    child.wait_with_output().unwrap()
}

#[test]
fn an_unanswered_join_warns_then_exits_at_the_join_timeout() {
    let seed = format!("127.0.0.1:{}", silent_port());
    let started = std::time::Instant::now();
    let human = lonely_agent("human", &seed, Some("warn"), &[]);
    let json = lonely_agent("json", &seed, None, &["--log-json"]);
    let (human, json) = (exited(human), exited(json));
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "gave up before its --join-timeout"
    );

    for out in [&human, &json] {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
    }
    let human = String::from_utf8(human.stderr).unwrap();
    assert!(
        human.contains(&format!("no seed answered yet: tried {seed}")),
        "{human}"
    );
    assert!(
        human.contains(&format!(
            "no seed answered within --join-timeout 5s: tried {seed}"
        )),
        "{human}"
    );
    for line in human.lines() {
        // `[2026-12-05T08:44:29.513Z WARN  vinery::join_watch] …`
        let stamp = line
            .strip_prefix('[')
            .and_then(|l| l.get(..24))
            .unwrap_or("");
        assert!(
            stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "no timestamp: {line}"
        );
        assert!(
            !line.contains(" INFO "),
            "RUST_LOG=warn let info through: {line}"
        );
    }

    let lines: Vec<Json> = String::from_utf8(json.stderr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    for line in &lines {
        assert!(
            line["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        assert!(line["target"].as_str().is_some(), "{line}");
    }
    let said = |level: &str, text: &str| {
        lines
            .iter()
            .any(|l| l["level"] == level && l["msg"].as_str().unwrap().contains(text))
    };
    assert!(said("INFO", "json: bound 127.0.0.1:"), "{lines:?}");
    assert!(said("WARN", "no seed answered yet: tried"), "{lines:?}");
    assert!(
        said("ERROR", "no seed answered within --join-timeout 5s"),
        "{lines:?}"
    );
}

#[test]
fn vinery_join_points_a_running_agent_at_a_cluster() {
    let mut agents = Agents::new("runtime-join");
    agents.start(0, None);
    agents.start(1, None);
    let seed = agents.addr(0);
    assert!(
        agents.run(1, &["join", "nosuch.invalid:7946"]).is_none(),
        "an address that does not resolve is refused"
    );
    let answer = agents.run(1, &["join", &seed]).expect("vinery join");
    assert_eq!(answer["joining"], serde_json::json!([seed]));
    assert!(
        wait_until(DEADLINE, || agents.converged(&[0, 1])),
        "the agents did not meet"
    );
    let info = agents.client(0, "info").expect("vinery info");
    assert_eq!(info["name"], "a0");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["bound"], seed.as_str());
    assert_eq!(info["peers"]["alive"], 1, "{info}");
    assert!(info["stats"]["endpoint"]["packets_in"].as_u64() > Some(0));
}
