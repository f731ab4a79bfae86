//! Key/value latency over loopback: `set` on node A until
//! `KeyUpdated` arrives on a subscription of node B, sample by sample.
//!
//! Three paths, interleaved sample by sample (in a random order each
//! round) so that they share the machine's conditions:
//!
//! * `vinery`: two standalone nodes (LAN preset), converged. The time runs
//!   from before `Node::set` on A (a command to A's loop, which writes and
//!   pushes the entry at once) until B's subscriber channel yields the
//!   event (B's loop read the datagram, applied it and fanned it out).
//! * `vinery_keyed`: the same with both nodes sealing (AES-256-GCM).
//! * `baseline`: the same three thread hops without vinery: a command over
//!   a crossbeam channel with a `mio::Waker` to a thread that sends one
//!   64-byte UDP datagram to a thread polling its socket with mio, which
//!   hands it to a crossbeam channel the bench thread waits on.
//!
//! Also printed: how long `Node::set` takes to return on the plain pair
//! (the write and its push happen before the reply), and a `Node::get`
//! round trip (a command to the node's loop and back: the runtime's
//! share of any call).
//!
//! Writes are paced below the default push rate (32 per 200 ms gossip
//! interval), so each is pushed at once: the figure is the one-hop push,
//! not flow control.
//!
//! Run: `cargo bench --bench latency` (3000 samples each; `--test`: 100).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Interest, Poll, Token, Waker};
use vinery::runtime::{EventFilter, Node, NodeConfig};
use vinery::security::SecretKey;
use vinery::{Config, Event, EventKind};

const SAMPLES: usize = 3000;
const WARMUP: usize = 100;
/// Between rounds: 7 ms keeps each node's writes at 143/s, under the
/// default push rate of 160/s.
const GAP: Duration = Duration::from_millis(7);

/// Two converged nodes; `b` subscribes to A's key updates.
struct Pair {
    a: Node,
    _b: Node,
    updates: Receiver<Event>,
    set_times: Vec<Duration>,
    seq: u64,
}

impl Pair {
    fn new(tag: &str, keys: Vec<SecretKey>) -> Pair {
        let start = |name: String, seed: Option<SocketAddr>| {
            let mut protocol = Config::lan().with_name(name);
            protocol.keys = keys.clone();
            let config = NodeConfig::new(protocol, "127.0.0.1:0".parse().unwrap())
                .with_seeds(seed.map(|s| s.to_string()));
            let node = Node::new(config);
            node.start().unwrap();
            node
        };
        let a = start(format!("{tag}-a"), None);
        let b = start(format!("{tag}-b"), a.local_addr());
        let updates = b.subscribe_filtered(EventFilter::kinds([EventKind::KeyUpdated]));
        let end = Instant::now() + Duration::from_secs(30);
        while !(a.live_peers().unwrap().len() == 1 && b.live_peers().unwrap().len() == 1) {
            assert!(Instant::now() < end, "{tag}: the pair did not converge");
            std::thread::sleep(Duration::from_millis(10));
        }
        Pair {
            a,
            _b: b,
            updates,
            set_times: Vec::new(),
            seq: 0,
        }
    }

    /// One write on A until B reports it.
    fn sample(&mut self) -> Duration {
        self.seq += 1;
        let value = self.seq.to_le_bytes();
        let t0 = Instant::now();
        let version = self.a.set("latency", &value).unwrap();
        self.set_times.push(t0.elapsed());
        loop {
            let e = self
                .updates
                .recv_timeout(Duration::from_secs(10))
                .expect("B reports the write");
            // A later version would mean this write was coalesced with the
            // next (flow control), which the pacing avoids.
            if matches!(e, Event::KeyUpdated { version: v, .. } if v >= version) {
                return t0.elapsed();
            }
        }
    }
}

/// The same hops without vinery (see the module doc).
struct Baseline {
    commands: Sender<u64>,
    waker: Arc<Waker>,
    arrivals: Receiver<u64>,
    threads: Vec<JoinHandle<()>>,
    seq: u64,
}

impl Baseline {
    fn new() -> Baseline {
        let (commands, command_rx) = crossbeam_channel::unbounded::<u64>();
        let (arrival_tx, arrivals) = crossbeam_channel::unbounded::<u64>();
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_nonblocking(true).unwrap();
        let to = receiver.local_addr().unwrap();
        let mut sender_poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(sender_poll.registry(), Token(0)).unwrap());
        let sending = std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut events = Events::with_capacity(8);
            let mut datagram = [0u8; 64];
            loop {
                sender_poll.poll(&mut events, None).unwrap();
                for seq in command_rx.try_iter() {
                    datagram[..8].copy_from_slice(&seq.to_le_bytes());
                    socket.send_to(&datagram, to).unwrap();
                    if seq == u64::MAX {
                        return;
                    }
                }
            }
        });
        let receiving = std::thread::spawn(move || {
            let mut socket = mio::net::UdpSocket::from_std(receiver);
            let mut poll = Poll::new().unwrap();
            poll.registry()
                .register(&mut socket, Token(0), Interest::READABLE)
                .unwrap();
            let mut events = Events::with_capacity(8);
            let mut buf = [0u8; 64];
            loop {
                poll.poll(&mut events, None).unwrap();
                while let Ok((n, _)) = socket.recv_from(&mut buf) {
                    let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    if n != 64 || arrival_tx.send(seq).is_err() || seq == u64::MAX {
                        return;
                    }
                }
            }
        });
        Baseline {
            commands,
            waker,
            arrivals,
            threads: vec![sending, receiving],
            seq: 0,
        }
    }

    fn sample(&mut self) -> Duration {
        self.seq += 1;
        let t0 = Instant::now();
        self.commands.send(self.seq).unwrap();
        self.waker.wake().unwrap();
        while self.arrivals.recv().unwrap() != self.seq {}
        t0.elapsed()
    }

    fn stop(self) {
        // The sender forwards the end mark, which stops the receiver too.
        self.commands.send(u64::MAX).unwrap();
        self.waker.wake().unwrap();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// p50, p90, p99 and max of `samples`, in microseconds.
fn percentiles(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1e6
    };
    format!(
        "p50 {:6.0} µs  p90 {:6.0} µs  p99 {:6.0} µs  max {:7.0} µs",
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0)
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let samples = if quick { 100 } else { SAMPLES };
    let mut plain = Pair::new("plain", Vec::new());
    let mut keyed = Pair::new("keyed", vec![SecretKey::from_bytes([7; 32])]);
    let mut baseline = Baseline::new();
    let mut results: [Vec<Duration>; 4] = Default::default();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..WARMUP + samples {
        // A fresh random order each round: a sample's latency depends on
        // what ran just before it (the first after the pause pays for
        // waking idle cores; with a rotating order, the path that always
        // came right after the `Node::get` measured ~15 µs slower at p50,
        // whichever pair it was), so a fixed order would favour a path.
        let mut order = [0, 1, 2, 3];
        for k in (1..4).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(k, (rng % (k as u64 + 1)) as usize);
        }
        let mut round = [Duration::ZERO; 4];
        for path in order {
            round[path] = match path {
                0 => plain.sample(),
                1 => keyed.sample(),
                2 => baseline.sample(),
                _ => {
                    let t0 = Instant::now();
                    plain.a.get("latency").unwrap();
                    t0.elapsed()
                }
            };
        }
        if i >= WARMUP {
            for (r, t) in results.iter_mut().zip(round) {
                r.push(t);
            }
        }
        std::thread::sleep(GAP);
    }
    baseline.stop();
    let [mut p, mut k, mut b, mut g] = results;
    println!("set on A -> KeyUpdated on B over loopback, {samples} samples each (interleaved):");
    println!("  vinery        {}", percentiles(&mut p));
    println!("  vinery_keyed  {}", percentiles(&mut k));
    println!("  baseline      {}", percentiles(&mut b));
    for (name, pair) in [("", &mut plain), (", keyed", &mut keyed)] {
        let mut set_calls = pair.set_times.split_off(WARMUP);
        println!("  Node::set call{name:<7} {}", percentiles(&mut set_calls));
    }
    println!("  Node::get call        {}", percentiles(&mut g));
}
