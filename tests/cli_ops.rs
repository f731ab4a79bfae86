//! The operator's live tools on `vinery agent` processes over loopback:
//! a Prometheus scrape of `--metrics` over TCP; `vinery monitor`
//! streaming events while other clients are served, and ending its
//! subscription when it goes away.

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
