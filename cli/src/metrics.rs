//! `vinery agent --metrics ADDR`: the agent's counters and gauges in the
//! Prometheus text format (version 0.0.4), served over HTTP at
//! `GET /metrics`.
//!
//! Every counter of the endpoint (`vinery_<counter>_total`, per message
//! kind with a `kind` label, drops with a `reason` label), of the runtime
//! (`vinery_runtime_<counter>_total`, per subscription with an `id`
//! label) and of the control socket (`vinery_control_<counter>_total`),
//! and the gauges `vinery_members{state}`, `vinery_broadcast_queue`,
//! `vinery_keys`, `vinery_health_score` and the socket buffers. Members
//! suspected are the suspicion timers running: each suspect member has
//! one.
//!
//! The server is a small one on a thread of its own, so that nothing a
//! scraper does reaches the node: at most [`MAX_CONNECTIONS`] scrapes at
//! once (more are closed at once), each request head whole within
//! [`REQUEST_WITHIN`] and [`MAX_HEAD`] bytes, the answer taken within
//! [`ANSWER_WITHIN`]; every connection is closed after its answer.

use std::fmt::Write as _;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vinery::runtime::NodeStats;
use vinery::wire::MessageKind;
use vinery::{MemberCounts, MemberState};

use crate::{control, control_server};

/// Scrapes served at once; more connections are closed unanswered.
pub const MAX_CONNECTIONS: usize = 4;
/// The longest request head (request line and headers), in bytes.
pub const MAX_HEAD: usize = 8 << 10;
/// How long a scraper has to send its whole request head.
pub const REQUEST_WITHIN: Duration = Duration::from_secs(5);
/// How long a scraper has to take the whole answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Everything a scrape shows, read from the node when it is asked for.
pub struct Snapshot {
    /// The endpoint's and the runtime's counters.
    pub stats: NodeStats,
    /// Members by state, this node included.
    pub members: MemberCounts,
    /// Membership updates waiting to be gossiped.
    pub broadcast_queue: usize,
    /// Keys in the keyring.
    pub keys: usize,
    /// Lifeguard's local health score (0: healthy).
    pub health_score: u32,
    /// The control socket's counters.
    pub control: [(&'static str, u64, &'static str); 6],
}

/// Reads a [`Snapshot`] (on the scrape's thread).
pub type Source = dyn Fn() -> Result<Snapshot, String> + Send + Sync;

/// Binds `addr` for the metrics server; errors name `--metrics`.
pub fn listen(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| format!("--metrics {addr}: {e}"))
}

/// Serves scrapes of `listener` from a thread of its own, reading each
/// snapshot from `source`.
pub fn serve(listener: TcpListener, source: Arc<Source>) {
    let spawned = std::thread::Builder::new()
        .name("vinery metrics".into())
        .spawn(move || accept_loop(&listener, &source));
    if let Err(e) = spawned {
        log::error!("metrics: cannot start the server's thread: {e}");
    }
}

fn accept_loop(listener: &TcpListener, source: &Arc<Source>) {
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log::warn!("metrics: {e}");
                // Out of file descriptors, say: let the open ones close
                // rather than spin on the error.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            log::warn!("metrics: {MAX_CONNECTIONS} scrapes in progress; one more closed");
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(open.clone());
        let source = source.clone();
        let spawned = std::thread::Builder::new()
            .name("vinery scrape".into())
            .spawn(move || {
                let _slot = slot;
                if let Err(e) = answer(stream, &*source) {
                    log::debug!("metrics: scrape cut off: {e}");
                }
            });
        if let Err(e) = spawned {
            log::error!("metrics: cannot start a thread for a scrape: {e}");
        }
    }
}

/// One connection's place among [`MAX_CONNECTIONS`], freed when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads one request and writes its answer.
fn answer(mut stream: TcpStream, source: &Source) -> io::Result<()> {
    let head = read_head(&mut stream)?;
    let request_line = head.lines().next().unwrap_or_default();
    let mut words = request_line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET", "/metrics") => match source() {
            Ok(snapshot) => ("200 OK", render(&snapshot)),
            Err(e) => ("503 Service Unavailable", format!("{e}\n")),
        },
        ("GET", _) => ("404 Not Found", "metrics are at /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "only GET\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    control_server::write_within(
        &mut stream,
        response.as_bytes(),
        Instant::now() + ANSWER_WITHIN,
    )
}

/// Reads the request head (up to the blank line), whole within
/// [`REQUEST_WITHIN`] and [`MAX_HEAD`] bytes.
fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let deadline = Instant::now() + REQUEST_WITHIN;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The text format: families with `# HELP` and `# TYPE`, then samples.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family of one sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// A label value escaped as the text format wants.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `snapshot` in the Prometheus text format.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = Exposition::default();
    let e = &snapshot.stats.endpoint;
    for (name, n, help) in control::endpoint_counters(e) {
        out.single(&format!("vinery_{name}_total"), "counter", help, n);
    }
    let per_kind = [
        ("messages_in", &e.messages_in, "Messages received, by kind."),
        ("messages_out", &e.messages_out, "Messages sent, by kind."),
        (
            "message_bytes_out",
            &e.message_bytes_out,
            "Bytes of messages sent, by kind (headers not included).",
        ),
    ];
    for (name, counters, help) in per_kind {
        let family = format!("vinery_{name}_total");
        out.family(&family, "counter", help);
        for kind in MessageKind::ALL {
            let n = counters.get(kind);
            out.sample(&family, &[("kind", kind.name())], n);
        }
    }
    out.family(
        "vinery_drops_total",
        "counter",
        "Datagrams, messages and updates dropped or refused, by reason.",
    );
    for (reason, n) in &e.drops {
        out.sample("vinery_drops_total", &[("reason", reason)], *n);
    }
    let r = &snapshot.stats.runtime;
    for (name, n) in r.by_name() {
        // The socket buffers are sizes, the rest counts.
        if name.ends_with("_buffer") {
            let help = "Socket buffer size the OS granted, in bytes.";
            out.single(&format!("vinery_runtime_{name}_bytes"), "gauge", help, n);
        } else {
            let help = "Runtime counter (see `vinery stats`).";
            out.single(&format!("vinery_runtime_{name}_total"), "counter", help, n);
        }
    }
    let subscriptions = [
        ("delivered", "Events delivered to a subscription."),
        (
            "dropped",
            "Events dropped: the subscription's channel was full.",
        ),
    ];
    for (what, help) in subscriptions {
        let family = format!("vinery_subscription_{what}_total");
        out.family(&family, "counter", help);
        for s in &r.subscribers {
            let n = if what == "delivered" {
                s.delivered
            } else {
                s.dropped
            };
            out.sample(&family, &[("id", &s.id.to_string())], n);
        }
    }
    for (name, n, help) in snapshot.control {
        out.single(&format!("vinery_control_{name}_total"), "counter", help, n);
    }
    out.family(
        "vinery_members",
        "gauge",
        "Members known, by state, this node included (suspect: suspicion timers running).",
    );
    for state in [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ] {
        let n = snapshot.members.of(state) as u64;
        out.sample("vinery_members", &[("state", state.name())], n);
    }
    out.single(
        "vinery_broadcast_queue",
        "gauge",
        "Membership updates waiting to be gossiped.",
        snapshot.broadcast_queue as u64,
    );
    out.single(
        "vinery_keys",
        "gauge",
        "Encryption keys in the keyring.",
        snapshot.keys as u64,
    );
    out.single(
        "vinery_health_score",
        "gauge",
        "Lifeguard local health score (0: healthy; higher: this node is slow or cut off).",
        u64::from(snapshot.health_score),
    );
    out.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_type_and_labels_are_escaped() {
        let mut stats = NodeStats::default();
        stats.endpoint.packets_in = 7;
        stats.endpoint.drops.insert("bad\"reason", 2);
        let snapshot = Snapshot {
            stats,
            members: MemberCounts {
                alive: 3,
                ..MemberCounts::default()
            },
            broadcast_queue: 1,
            keys: 2,
            health_score: 0,
            control: [("connections", 5, "Control connections accepted."); 6],
        };
        let text = render(&snapshot);
        assert!(text.contains("\nvinery_packets_in_total 7\n"), "{text}");
        assert!(
            text.contains("vinery_members{state=\"alive\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("vinery_drops_total{reason=\"bad\\\"reason\"} 2\n"));
        let mut typed = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name), "{name} has no # TYPE line");
            }
        }
    }
}
