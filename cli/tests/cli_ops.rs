//! The operator's live tools on `vinery agent` processes over loopback:
//! a Prometheus scrape of `--metrics` over TCP; `vinery monitor`
//! streaming events while other clients are served, and ending its
//! subscription when it goes away; cluster-wide key rotation on five
//! encrypted agents with no member ever failed; tags changed live and
//! seen by another node's `members --tag`; a killed member forced out
//! with `force-leave`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::agents::{Agents, VINERY};
use common::{wait_until, DEADLINE};

/// `GET path` on `addr`: the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of the sample `series` (name and labels, as printed).
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_are_scraped_over_http_with_every_family_typed() {
    let mut agents = Agents::new("metrics");
    let extra = ["--metrics".to_string(), "127.0.0.1:0".to_string()];
    agents.start_with(0, None, &extra, std::process::Stdio::null());
    let seed = agents.addr(0);
    for i in 1..3 {
        agents.start(i, Some(&seed));
    }
    assert!(wait_until(DEADLINE, || agents.converged(&[0, 1, 2])));
    let info = agents.client(0, "info").unwrap();
    let addr = info["metrics"]
        .as_str()
        .expect("info shows the metrics address");

    // Counters that a cluster probing itself makes grow.
    let growing = [
        "vinery_packets_in_total",
        "vinery_packets_out_total",
        "vinery_probes_total",
        "vinery_messages_in_total{kind=\"ping\"}",
        "vinery_messages_out_total{kind=\"ack\"}",
        "vinery_control_connections_total",
    ];
    let mut text = String::new();
    assert!(
        wait_until(DEADLINE, || {
            let (status, body) = http_get(addr, "/metrics");
            assert_eq!(status, "HTTP/1.1 200 OK");
            text = body;
            sample(&text, "vinery_members{state=\"alive\"}") == Some(3)
                && growing.iter().all(|c| sample(&text, c) > Some(0))
        }),
        "never three members alive and every counter of {growing:?} above 0:\n{text}"
    );
    for gauge in [
        "vinery_members{state=\"dead\"}",
        "vinery_broadcast_queue",
        "vinery_keys",
        "vinery_health_score",
        "vinery_runtime_send_errors_total",
    ] {
        assert!(sample(&text, gauge).is_some(), "no {gauge}:\n{text}");
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let family = line.split(['{', ' ']).next().unwrap();
        assert!(
            text.contains(&format!("# TYPE {family} "))
                && text.contains(&format!("# HELP {family} ")),
            "{family} has no # TYPE or # HELP"
        );
    }

    let (status, _) = http_get(addr, "/elsewhere");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    // A scraper that connects and says nothing holds no one up.
    let _silent = TcpStream::connect(addr).unwrap();
    let (status, _) = http_get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
}

/// How many subscriptions agent `i` has (its own event printing included).
fn subscriptions(agents: &Agents, i: usize) -> usize {
    let stats = agents.client(i, "stats").unwrap();
    stats["stats"]["runtime"]["subscribers"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn monitor_streams_events_while_other_clients_are_served() {
    let mut agents = Agents::new("monitor");
    agents.start(0, None);
    let seed = agents.addr(0);
    let before = subscriptions(&agents, 0);
    let mut monitor = Command::new(VINERY)
        .args(["monitor", "--kind", "member_joined", "--kind", "user_event"])
        .arg("--control")
        .arg(agents.control(0))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = monitor.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert!(wait_until(DEADLINE, || subscriptions(&agents, 0) == before + 1));

    agents.start(1, Some(&seed));
    let joined = lines.recv_timeout(DEADLINE).expect("a member_joined line");
    assert!(
        joined.starts_with("member_joined") && joined.contains(" a1 "),
        "{joined}"
    );
    // The monitor holds its connection; other clients are answered.
    assert!(wait_until(DEADLINE, || agents.converged(&[0, 1])));
    agents
        .run(1, &["event", "deploy.web", "v2"])
        .expect("the event is said");
    let said = lines.recv_timeout(DEADLINE).expect("a user_event line");
    assert!(
        said.starts_with("user_event")
            && said.contains("name=deploy.web")
            && said.contains("\"v2\""),
        "{said}"
    );
    // Only the kinds asked for: a key update shows nothing.
    agents.run(1, &["set", "color", "blue"]).unwrap();
    agents.run(1, &["event", "deploy.db", "v3"]).unwrap();
    let next = lines.recv_timeout(DEADLINE).expect("the second user_event");
    assert!(next.contains("name=deploy.db"), "{next}");

    // Gone, the monitor's subscription ends (removed at the next event
    // it would have been given).
    monitor.kill().unwrap();
    monitor.wait().unwrap();
    assert!(
        wait_until(DEADLINE, || {
            agents.run(1, &["event", "ping", ""]).unwrap();
            subscriptions(&agents, 0) == before
        }),
        "the monitor's subscription outlived its client"
    );
}

#[test]
fn keys_rotate_cluster_wide_with_no_member_failed() {
    let key = |b: u8| vinery::security::SecretKey::from_bytes([b; 32]);
    let (k1, k2, k3) = (key(1).to_base64(), key(2).to_base64(), key(3).to_base64());
    let mut agents = Agents::new("cluster-keys");
    let ring = agents.dir.join("a4.keys");
    std::fs::write(&ring, format!("{k1}\n")).unwrap();
    let ring_arg = ring.to_str().unwrap().to_string();
    agents.start_logged(0, None, &["--key", &k1]);
    let seed = agents.addr(0);
    for i in 1..4 {
        agents.start_logged(i, Some(&seed), &["--key", &k1]);
    }
    agents.start_logged(4, Some(&seed), &["--keyring-file", &ring_arg]);
    let all = [0, 1, 2, 3, 4];
    assert!(wait_until(DEADLINE, || agents.converged(&all)));

    let installed = agents.run(0, &["keys", "--install", &k2]).unwrap();
    let summary = format!("5/5 nodes installed key {}", key(2).fingerprint());
    assert_eq!(installed["summary"], summary.as_str(), "{installed}");
    // A key some node lacks is never made the primary: refused, naming them.
    let refused = Command::new(VINERY)
        .args(["keys", "--use", &k3, "--control"])
        .arg(agents.control(1))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("do not hold the key") && stderr.contains("a4"),
        "{stderr}"
    );
    let used = agents.run(2, &["keys", "--use", &k2]).unwrap();
    assert_eq!(
        used["summary"],
        format!("5/5 nodes now seal with key {}", key(2).fingerprint()).as_str()
    );
    let removed = agents.run(3, &["keys", "--remove", &k1]).unwrap();
    assert_eq!(
        removed["summary"],
        format!("5/5 nodes removed key {}", key(1).fingerprint()).as_str()
    );
    // The key every node seals with cannot be removed.
    assert!(agents.run(0, &["keys", "--remove", &k2]).is_none());

    let listed = agents.run(4, &["keys", "--list"]).unwrap();
    let results = listed["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "{listed}");
    for r in results {
        let keys = r["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{r}");
        assert_eq!(keys[0]["fingerprint"], key(2).fingerprint().as_str(), "{r}");
    }
    let text = std::fs::read_to_string(&ring).unwrap();
    assert!(text.contains(&k2) && !text.contains(&k1), "{text}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&ring.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    assert!(agents.converged(&all), "the rotation broke the cluster");
    for i in all {
        let failed: Vec<_> = agents
            .events(i)
            .into_iter()
            .filter(|e| e["event"] == "member_failed" || e["event"] == "member_suspect")
            .collect();
        assert!(failed.is_empty(), "a{i} printed {failed:?}");
        let stats = agents.client(i, "stats").unwrap();
        let drops = &stats["stats"]["endpoint"]["drops"];
        assert!(drops.get("plaintext_refused").is_none(), "a{i}: {drops}");
    }
}

#[test]
fn tags_change_live_and_other_nodes_filter_on_them() {
    let mut agents = Agents::new("tags");
    agents.start_with(
        0,
        None,
        &["--meta".into(), "role=web,zone=eu-1".into()],
        std::process::Stdio::null(),
    );
    let seed = agents.addr(0);
    agents.start(1, Some(&seed));
    assert!(wait_until(DEADLINE, || agents.converged(&[0, 1])));
    let names = |answer: Option<serde_json::Value>| -> Vec<String> {
        let members = answer.map(|a| a["members"].clone()).unwrap_or_default();
        let list = members.as_array().cloned().unwrap_or_default();
        list.iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(agents.run(1, &["members", "--tag", "role=web"])),
        ["a0"]
    );

    let changed = agents
        .run(
            0,
            &[
                "tags", "--set", "role=db", "--set", "rack=r7", "--delete", "zone",
            ],
        )
        .unwrap();
    assert_eq!(
        changed["tags"],
        serde_json::json!({"role": "db", "rack": "r7"})
    );
    assert!(
        wait_until(DEADLINE, || names(
            agents.run(1, &["members", "--tag", "role=d*", "--tag", "rack=r7"])
        ) == ["a0"]),
        "a1 never saw a0's new tags"
    );
    assert!(names(agents.run(1, &["members", "--tag", "role=web"])).is_empty());
    assert!(names(agents.run(1, &["members", "--tag", "zone=*"])).is_empty());
    // A tag that would read back differently is refused, naming the flag.
    let refused = Command::new(VINERY)
        .args(["tags", "--set", "role=a,b", "--control"])
        .arg(agents.control(0))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--set"));
    let listed = agents.run(0, &["tags"]).unwrap();
    assert_eq!(
        listed["tags"],
        serde_json::json!({"role": "db", "rack": "r7"})
    );
}

#[test]
fn a_failed_member_forced_out_is_left_everywhere() {
    let mut agents = Agents::new("force-leave");
    agents.start(0, None);
    let seed = agents.addr(0);
    for i in 1..3 {
        agents.start(i, Some(&seed));
    }
    assert!(wait_until(DEADLINE, || agents.converged(&[0, 1, 2])));
    assert!(
        agents.run(0, &["force-leave", "a1"]).is_none(),
        "a live member is not forced out"
    );
    agents.children[2].kill().unwrap();
    agents.children[2].wait().unwrap();
    assert!(
        wait_until(2 * DEADLINE, || agents.all_see(&[0, 1], "a2", "dead")),
        "the killed agent was not reported failed"
    );
    agents
        .run(0, &["force-leave", "a2"])
        .expect("force-leave a2");
    assert!(
        wait_until(DEADLINE, || agents.all_see(&[0, 1], "a2", "left")),
        "a1 did not hear that a2 left"
    );
    let dead = agents.run(1, &["members", "--status", "dead"]).unwrap();
    assert_eq!(dead["members"], serde_json::json!([]));
}
