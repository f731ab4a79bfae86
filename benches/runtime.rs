//! Runtime benchmark: one node answering a ping flood on loopback.
//!
//! * `ping_flood/vinery`: a standalone [`Node`]; a client thread sends
//!   pings encoded with `vinery::wire` (the node's cluster header, its name
//!   as target, its membership hash, so no anti-entropy is triggered) and
//!   counts the acks, keeping [`WINDOW`] pings in flight.
//! * `ping_flood/vinery_keyed`: the same against a node sealing with a
//!   key (AES-256-GCM); the client seals its pings and opens the acks.
//! * `ping_flood/echo`: the baseline, the same client against a raw UDP
//!   echo loop (socket2 socket, mio poll, read until would-block, send each
//!   datagram back): what the machine's UDP stack allows at all.
//!
//! Throughput is in pings answered (one datagram in, one out). The node's
//! loop runs on one core, the client on the other. After criterion's runs,
//! the three servers are measured again in alternating rounds and the median
//! rates and their ratios are printed (vinery to echo, keyed to plain: the
//! ratios under the same conditions), with pings answered per CPU-second of
//! each server's thread: what one core does, whatever share of it other
//! jobs left.
//!
//! Run: `cargo bench --bench runtime -- --warm-up-time 1 --measurement-time 5`.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mio::{Events, Interest, Poll, Token};
use vinery::runtime::{Node, NodeConfig};
use vinery::security::{open_datagram, Keyring, Sealer, SecretKey};
use vinery::wire::{
    Ack, ClusterTag, Datagram, DatagramBuilder, Header, Message, Ping, DEFAULT_DATAGRAM,
};
use vinery::{Config, Endpoint};

/// Pings in flight: enough to keep both threads busy, far below what the
/// socket buffers hold.
const WINDOW: u64 = 256;
const NAME: &str = "bench";
/// Short: thread names ("vinery <name>") are cut at 15 bytes.
const KEYED_NAME: &str = "bench-k";
/// Alternating rounds of the same-conditions comparison, and their size.
const ROUNDS: usize = 21;
const ROUND_PINGS: u64 = 50_000;
const ECHO_THREAD: &str = "echo server";

/// Encodes one ping to the node (sealed, for a keyed node).
struct Pinger {
    header: Header,
    target: &'static str,
    hash: [u8; 4],
    seq: u32,
    sealer: Option<Sealer>,
}

impl Pinger {
    fn next(&mut self) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut b = DatagramBuilder::new(self.header, DEFAULT_DATAGRAM);
        b.push(&Message::Ping(Ping {
            seq: self.seq,
            target: self.target,
            hash: self.hash,
        }))
        .expect("a ping fits");
        let plain = b.finish();
        match &mut self.sealer {
            Some(s) => s.seal(&plain, now_ms()),
            None => plain,
        }
    }
}

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    since.as_millis() as u64
}

/// What the client counts as an answer.
type IsAnswer = Box<dyn Fn(&[u8]) -> bool>;

fn is_ack(bytes: &[u8], cluster: ClusterTag) -> bool {
    Datagram::parse(bytes, cluster)
        .ok()
        .and_then(|d| d.messages().next())
        .is_some_and(|m| matches!(m, Ok(Message::Ack(Ack { .. }))))
}

/// One server under test.
struct Target {
    name: &'static str,
    /// The server's thread, for its CPU time.
    thread: String,
    addr: SocketAddr,
    pinger: Pinger,
    answer: IsAnswer,
}

/// A node named `name` (sealing with `key`), and how to ping it.
fn node_target(bench: &'static str, name: &'static str, key: Option<SecretKey>) -> (Node, Target) {
    let mut config = Config::lan().with_name(name);
    config.keys = key.iter().cloned().collect();
    let cluster = ClusterTag::from_name(&config.cluster_name);
    let node = Node::new(NodeConfig::new(
        config.clone(),
        "127.0.0.1:0".parse().unwrap(),
    ));
    node.start().unwrap();
    let addr = node.local_addr().unwrap();
    // A lone node's membership hash depends only on its name and
    // incarnation: a reference endpoint computes the one the node has.
    let hash = Endpoint::new(config, addr, 0)
        .unwrap()
        .membership_hash()
        .to_le_bytes();
    let ring = key.map(Keyring::new);
    let pinger = Pinger {
        header: Header::new(cluster),
        target: name,
        hash,
        seq: 0,
        sealer: ring.as_ref().map(|r| Sealer::new(r, [9, 9, 9, 9], 0)),
    };
    let answer: IsAnswer = match ring {
        Some(ring) => Box::new(move |bytes| {
            open_datagram(&ring, bytes).is_ok_and(|(plain, _)| is_ack(&plain, cluster))
        }),
        None => Box::new(move |bytes| is_ack(bytes, cluster)),
    };
    let target = Target {
        name: bench,
        thread: format!("vinery {name}"),
        addr,
        pinger,
        answer,
    };
    (node, target)
}

/// Sends pings to `server` until `n` answers came back, with [`WINDOW`] in
/// flight; a window that goes unanswered for 50 ms counts as lost and is
/// replaced. Returns the elapsed time and the pings lost.
fn flood(client: &UdpSocket, target: &mut Target, n: u64) -> (Duration, u64) {
    let mut buf = vec![0u8; 65_536];
    let (mut got, mut in_flight, mut lost) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    while got < n {
        while in_flight < WINDOW.min(n - got) {
            client
                .send_to(&target.pinger.next(), target.addr)
                .expect("send");
            in_flight += 1;
        }
        match client.recv_from(&mut buf) {
            Ok((len, _)) if (target.answer)(&buf[..len]) => {
                got += 1;
                in_flight -= 1;
            }
            Ok(_) => {}
            Err(_) => {
                lost += in_flight;
                in_flight = 0;
            }
        }
    }
    (start.elapsed(), lost)
}

/// User + system CPU time of this process's thread called `name`, from
/// `/proc/self/task/*/stat` (USER_HZ = 100 ticks per second).
fn thread_cpu(name: &str) -> Duration {
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // utime and stime are fields 14 and 15; the name (field 2) may
        // hold spaces, so count from its closing parenthesis.
        let ticks: u64 = stat[stat.rfind(')').unwrap() + 2..]
            .split(' ')
            .skip(11)
            .take(2)
            .map(|f| f.parse::<u64>().unwrap())
            .sum();
        return Duration::from_millis(ticks * 10);
    }
    panic!("no thread named {name}");
}

/// A socket2 UDP socket on an ephemeral loopback port with the runtime's
/// 4 MiB buffers: a whole window of answers fits in the receive buffer.
fn bound_socket() -> UdpSocket {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    socket.set_recv_buffer_size(4 << 20).unwrap();
    socket.set_send_buffer_size(4 << 20).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.into()
}

fn client_socket() -> UdpSocket {
    let s = bound_socket();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s
}

/// A raw echo server: socket2 socket with the runtime's buffer sizes, mio
/// poll, read until would-block, every datagram sent straight back.
fn echo_server(stop: Arc<AtomicBool>) -> (SocketAddr, JoinHandle<()>) {
    let std_socket = bound_socket();
    std_socket.set_nonblocking(true).unwrap();
    let addr = std_socket.local_addr().unwrap();
    let mut socket = mio::net::UdpSocket::from_std(std_socket);
    let thread = std::thread::Builder::new()
        .name(ECHO_THREAD.into())
        .spawn(move || {
            let mut poll = Poll::new().unwrap();
            poll.registry()
                .register(&mut socket, Token(0), Interest::READABLE)
                .unwrap();
            let mut events = Events::with_capacity(64);
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                poll.poll(&mut events, Some(Duration::from_millis(50)))
                    .unwrap();
                while let Ok((n, from)) = socket.recv_from(&mut buf) {
                    // Dropped on would-block: the client replaces lost pings.
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        })
        .unwrap();
    (addr, thread)
}

fn ping_flood(c: &mut Criterion) {
    let (node, vinery) = node_target("vinery", NAME, None);
    let (keyed_node, keyed) = node_target(
        "vinery_keyed",
        KEYED_NAME,
        Some(SecretKey::from_bytes([5; 32])),
    );
    let client = client_socket();
    let stop = Arc::new(AtomicBool::new(false));
    let (echo_addr, thread) = echo_server(stop.clone());
    let echo = Target {
        name: "echo",
        thread: ECHO_THREAD.into(),
        addr: echo_addr,
        pinger: Pinger {
            header: vinery.pinger.header,
            target: NAME,
            hash: [0; 4],
            seq: 0,
            sealer: None,
        },
        answer: Box::new(|bytes| !bytes.is_empty()),
    };
    let mut targets = [vinery, keyed, echo];

    let mut group = c.benchmark_group("ping_flood");
    group.throughput(Throughput::Elements(1));
    for target in &mut targets {
        let mut lost = 0;
        group.bench_function(target.name, |b| {
            b.iter_custom(|n| {
                let (t, l) = flood(&client, target, n);
                lost += l;
                t
            })
        });
        eprintln!("{}: {lost} pings lost in flight", target.name);
    }
    group.finish();

    // Other jobs on a shared machine move the figures by tens of percent
    // between criterion's runs; alternating short rounds measures the
    // ratios under the same conditions.
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut busy = [Duration::ZERO; 3];
    for _ in 0..ROUNDS {
        for (i, target) in targets.iter_mut().enumerate() {
            let cpu = thread_cpu(&target.thread);
            let (t, _) = flood(&client, target, ROUND_PINGS);
            busy[i] += thread_cpu(&target.thread) - cpu;
            rates[i].push(ROUND_PINGS as f64 / t.as_secs_f64());
        }
    }
    let [plain_rate, keyed_rate, echo_rate] = rates.map(|mut r| {
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    });
    let [plain_cpu, keyed_cpu, echo_cpu] =
        busy.map(|b| (ROUNDS as u64 * ROUND_PINGS) as f64 / b.as_secs_f64());
    eprintln!(
        "interleaved, {ROUNDS} rounds of {ROUND_PINGS} pings (medians, pings/s): vinery {plain_rate:.0}, \
         vinery_keyed {keyed_rate:.0}, echo {echo_rate:.0}; vinery/echo {:.2}, keyed/plain {:.2}",
        plain_rate / echo_rate,
        keyed_rate / plain_rate,
    );
    eprintln!(
        "per CPU-second of the server thread: vinery {plain_cpu:.0}, vinery_keyed {keyed_cpu:.0}, \
         echo {echo_cpu:.0}; vinery/echo {:.2}, keyed/plain {:.2}",
        plain_cpu / echo_cpu,
        keyed_cpu / plain_cpu,
    );

    for node in [&node, &keyed_node] {
        let stats = node.stats().unwrap();
        assert_eq!(
            stats.endpoint.syncs_started, 0,
            "pings carried the node's hash"
        );
        assert!(
            stats.endpoint.drops.is_empty(),
            "{}: {:?}",
            node.name(),
            stats.endpoint.drops
        );
        assert_eq!(
            (stats.runtime.send_errors, stats.runtime.send_queue_drops),
            (0, 0)
        );
    }
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}

criterion_group!(benches, ping_flood);
criterion_main!(benches);
