//! What a user event costs: how long until every node has it, and how many
//! bytes each node sends for it, at N nodes on the LAN preset.
//!
//! ```sh
//! cargo run --release --example bus_cost -- [NODES] [LOSS] [SEED] [ROUNDS]
//! ```
//!
//! (defaults: 1000 nodes, no loss, seed 1, `bus_announce_rounds` of the
//! LAN preset).
//!
//! Forms the cluster, lets it settle, then says 20 events from random
//! nodes, 3 s apart, at each of three payload sizes (64, 256 and 512
//! bytes), each living 10 s. Reports per payload size: the slowest and mean
//! time until every other node delivered an event, and the bytes of bus
//! traffic (items, push markers, id lists, pulls, bus syncs, and the 8-byte
//! header of every bus datagram) sent per event per node, split into the
//! event messages themselves and the rest. Figures in docs/PERFORMANCE.md.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vinery::sim::{NetworkConfig, NodeId, Sim};
use vinery::wire::MessageKind;
use vinery::{Config, Event, Time};

const EVENTS: usize = 20;

/// Per event id (origin, seq): how many nodes delivered it, and when the
/// last one did.
type Deliveries = Arc<Mutex<HashMap<(String, u64), (usize, Time)>>>;
const GAP: Duration = Duration::from_secs(3);
const LIFE: Duration = Duration::from_secs(10);

/// Bus bytes sent by every node so far: (event messages, everything else
/// including datagram headers), and bus-triggered syncs.
fn bus_bytes(sim: &Sim) -> (u64, u64, u64) {
    let mut event = 0;
    let mut rest = 0;
    let mut syncs = 0;
    for x in sim.running() {
        let s = sim.endpoint(x).stats();
        event += s.message_bytes_out.get(MessageKind::UserEvent);
        rest += [
            MessageKind::BusPush,
            MessageKind::BusHave,
            MessageKind::BusWant,
            MessageKind::BusSync,
        ]
        .iter()
        .map(|k| s.message_bytes_out.get(*k))
        .sum::<u64>()
            + 8 * s.bus_packets_out;
        syncs += s.syncs_started;
    }
    (event, rest, syncs)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(1000, |a| a.parse().expect("NODES"));
    let loss: f64 = args.next().map_or(0.0, |a| a.parse().expect("LOSS"));
    let seed: u64 = args.next().map_or(1, |a| a.parse().expect("SEED"));
    let mut config = Config::lan();
    if let Some(r) = args.next() {
        config.bus_announce_rounds = r.parse().expect("ROUNDS");
    }
    let mut sim = Sim::new(seed, NetworkConfig::lan());
    let nodes = sim.add_nodes(n, &config);
    for &x in &nodes[1..] {
        sim.join(x, &[nodes[0]]);
    }
    sim.wait_until(
        Duration::from_millis(100),
        Duration::from_secs(60),
        Sim::full_view,
    )
    .expect("the cluster converges");
    // Let the join's gossip drain, so the figures are the events' alone.
    sim.run_for(Duration::from_secs(20));
    sim.set_loss(loss);
    let delivered: Deliveries = Arc::default();
    let sink = Arc::clone(&delivered);
    sim.on_event(move |t, _, e| {
        if let Event::UserEvent { origin, seq, .. } = e {
            let mut got = sink.lock().unwrap();
            let entry = got.entry((origin.clone(), *seq)).or_insert((0, t));
            entry.0 += 1;
            entry.1 = t;
        }
    });
    let mut rng = SmallRng::seed_from_u64(seed);
    println!(
        "N={n} loss={loss} seed={seed} (LAN preset: bus_push_fanout {}, bus_announce_rounds {}, gossip_nodes {})",
        config.bus_push_fanout, config.bus_announce_rounds, config.gossip_nodes
    );
    println!("payload  all_reached  slowest_s  mean_s  event_B/node  other_B/node  total_B/node  total/payload  syncs");
    for payload in [64usize, 256, 512] {
        let before = bus_bytes(&sim);
        let mut said: Vec<(String, u64, Time)> = Vec::new();
        for _ in 0..EVENTS {
            let origin: NodeId = nodes[rng.random_range(0..n)];
            let id = sim.with_endpoint(origin, |ep, now| {
                ep.say(now, "bench", &vec![7u8; payload], LIFE).unwrap()
            });
            said.push((id.origin, id.seq, sim.now()));
            sim.run_for(GAP);
        }
        // The last events' repairs and expiries.
        sim.run_for(LIFE);
        let after = bus_bytes(&sim);
        let got = delivered.lock().unwrap();
        let mut all = 0;
        let mut slowest: f64 = 0.0;
        let mut sum = 0.0;
        for (origin, seq, at) in &said {
            let (count, last) = got
                .get(&(origin.clone(), *seq))
                .copied()
                .unwrap_or((0, *at));
            if count == n - 1 {
                all += 1;
            }
            let took = last.saturating_since(*at).as_secs_f64();
            slowest = slowest.max(took);
            sum += took;
        }
        let per = (EVENTS * n) as f64;
        let event_b = (after.0 - before.0) as f64 / per;
        let other_b = (after.1 - before.1) as f64 / per;
        println!(
            "{payload:>7}  {all:>5}/{EVENTS:<5}  {slowest:>9.3}  {:>6.3}  {event_b:>12.1}  {other_b:>12.1}  {:>12.1}  {:>13.2}  {:>5}",
            sum / EVENTS as f64,
            event_b + other_b,
            (event_b + other_b) / payload as f64,
            after.2 - before.2,
        );
    }
}
