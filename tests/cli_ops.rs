//! The operator's live tools on `vinery agent` processes over loopback:
//! a Prometheus scrape of `--metrics` over TCP.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::agents::Agents;
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

    let mut text = String::new();
    assert!(
        wait_until(DEADLINE, || {
            let (status, body) = http_get(addr, "/metrics");
            assert_eq!(status, "HTTP/1.1 200 OK");
            text = body;
            sample(&text, "vinery_members{state=\"alive\"}") == Some(3)
                && sample(&text, "vinery_probes_total") > Some(0)
        }),
        "never three members alive, probed:\n{text}"
    );
    for counter in [
        "vinery_packets_in_total",
        "vinery_packets_out_total",
        "vinery_messages_in_total{kind=\"ping\"}",
        "vinery_messages_out_total{kind=\"ack\"}",
        "vinery_control_connections_total",
    ] {
        let n = sample(&text, counter).unwrap_or_else(|| panic!("no {counter}:\n{text}"));
        assert!(n > 0, "{counter} is {n}");
    }
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
