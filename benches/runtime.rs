//! Runtime benchmark: one node answering a ping flood on loopback.
//!
//! * `ping_flood/vinery`: a standalone [`Node`]; a client thread sends
//!   pings encoded with `vinery::wire` (the node's cluster header, its name
//!   as target, its membership hash, so no anti-entropy is triggered) and
//!   counts the acks, keeping [`WINDOW`] pings in flight.
//! * `ping_flood/echo`: the baseline, the same client against a raw UDP
//!   echo loop (socket2 socket, mio poll, read until would-block, send each
//!   datagram back): what the machine's UDP stack allows at all.
//!
//! Throughput is in pings answered (one datagram in, one out). The node's
//! loop runs on one core, the client on the other. After criterion's runs,
//! the two servers are measured again in alternating rounds and the median
//! rates and their ratio are printed (the ratio under the same conditions),
//! with pings answered per CPU-second of each server's thread: what one
//! core does, whatever share of it other jobs left.
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
use vinery::wire::{
    Ack, ClusterTag, Datagram, DatagramBuilder, Header, Message, Ping, DEFAULT_DATAGRAM,
};
use vinery::{Config, Endpoint};

/// Pings in flight: enough to keep both threads busy, far below what the
/// socket buffers hold.
const WINDOW: u64 = 256;
const NAME: &str = "bench";
/// Alternating rounds of the same-conditions comparison, and their size.
const ROUNDS: usize = 21;
const ROUND_PINGS: u64 = 50_000;
const ECHO_THREAD: &str = "echo server";

/// Encodes one ping to the node.
struct Pinger {
    header: Header,
    hash: [u8; 4],
    seq: u32,
}

impl Pinger {
    fn next(&mut self) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut b = DatagramBuilder::new(self.header, DEFAULT_DATAGRAM);
        b.push(&Message::Ping(Ping {
            seq: self.seq,
            target: NAME,
            hash: self.hash,
        }))
        .expect("a ping fits");
        b.finish()
    }
}

/// What the client counts as an answer.
type IsAnswer = fn(&[u8], ClusterTag) -> bool;

fn is_ack(bytes: &[u8], cluster: ClusterTag) -> bool {
    Datagram::parse(bytes, cluster)
        .ok()
        .and_then(|d| d.messages().next())
        .is_some_and(|m| matches!(m, Ok(Message::Ack(Ack { .. }))))
}

fn is_echo(bytes: &[u8], _: ClusterTag) -> bool {
    !bytes.is_empty()
}

/// Sends pings to `server` until `n` answers came back, with [`WINDOW`] in
/// flight; a window that goes unanswered for 50 ms counts as lost and is
/// replaced. Returns the elapsed time and the pings lost.
fn flood(
    client: &UdpSocket,
    server: SocketAddr,
    pinger: &mut Pinger,
    answer: IsAnswer,
    n: u64,
) -> (Duration, u64) {
    let mut buf = vec![0u8; 65_536];
    let (mut got, mut in_flight, mut lost) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    while got < n {
        while in_flight < WINDOW.min(n - got) {
            client.send_to(&pinger.next(), server).expect("send");
            in_flight += 1;
        }
        match client.recv_from(&mut buf) {
            Ok((len, _)) if answer(&buf[..len], pinger.header.cluster) => {
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
    let config = Config::lan().with_name(NAME);
    let cluster = ClusterTag::from_name(&config.cluster_name);
    let mut node = Node::new(NodeConfig::new(
        config.clone(),
        "127.0.0.1:0".parse().unwrap(),
    ));
    node.start().unwrap();
    let server = node.local_addr().unwrap();
    // A lone node's membership hash depends only on its name and
    // incarnation: a reference endpoint computes the one the node has.
    let hash = Endpoint::new(config, server, 0)
        .unwrap()
        .membership_hash()
        .to_le_bytes();
    let mut pinger = Pinger {
        header: Header::new(cluster),
        hash,
        seq: 0,
    };
    let client = client_socket();
    let stop = Arc::new(AtomicBool::new(false));
    let (echo, thread) = echo_server(stop.clone());
    let targets: [(&str, SocketAddr, IsAnswer); 2] =
        [("vinery", server, is_ack), ("echo", echo, is_echo)];

    let mut group = c.benchmark_group("ping_flood");
    group.throughput(Throughput::Elements(1));
    for (name, addr, answer) in targets {
        let mut lost = 0;
        group.bench_function(name, |b| {
            b.iter_custom(|n| {
                let (t, l) = flood(&client, addr, &mut pinger, answer, n);
                lost += l;
                t
            })
        });
        eprintln!("{name}: {lost} pings lost in flight");
    }
    group.finish();

    // Other jobs on a shared machine move both figures by tens of percent
    // between criterion's two runs; alternating short rounds measures the
    // ratio under the same conditions.
    let threads = [format!("vinery {NAME}"), ECHO_THREAD.to_string()];
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut busy = [Duration::ZERO; 2];
    for _ in 0..ROUNDS {
        for (i, (_, addr, answer)) in targets.iter().enumerate() {
            let cpu = thread_cpu(&threads[i]);
            let (t, _) = flood(&client, *addr, &mut pinger, *answer, ROUND_PINGS);
            busy[i] += thread_cpu(&threads[i]) - cpu;
            rates[i].push(ROUND_PINGS as f64 / t.as_secs_f64());
        }
    }
    let [vinery_rate, echo_rate] = rates.map(|mut r| {
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    });
    let per_cpu = busy.map(|b| (ROUNDS as u64 * ROUND_PINGS) as f64 / b.as_secs_f64());
    eprintln!(
        "interleaved, {ROUNDS} rounds of {ROUND_PINGS} pings: vinery {:.0} pings/s, echo {:.0} pings/s \
         (medians), ratio {:.2}; per CPU-second of the server thread: vinery {:.0}, echo {:.0}, \
         ratio {:.2}",
        vinery_rate,
        echo_rate,
        vinery_rate / echo_rate,
        per_cpu[0],
        per_cpu[1],
        per_cpu[0] / per_cpu[1]
    );

    let stats = node.stats().unwrap();
    assert_eq!(
        stats.endpoint.syncs_started, 0,
        "pings carried the node's hash"
    );
    assert!(
        stats.endpoint.drops.is_empty(),
        "{:?}",
        stats.endpoint.drops
    );
    assert_eq!(
        (stats.runtime.send_errors, stats.runtime.send_queue_drops),
        (0, 0)
    );
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}

criterion_group!(benches, ping_flood);
criterion_main!(benches);
