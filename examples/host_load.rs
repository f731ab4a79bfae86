//! Steady-state cost of real UDP nodes on one [`Host`] thread (loopback,
//! LAN preset, quiet cluster): CPU time per node as a share of one core,
//! and memory per known member.
//!
//! `cargo run --release --example host_load -- [NODES] [SECONDS]`
//! (defaults: 256 nodes, 60 s measured).
//!
//! CPU is the process's user + system time from `/proc/self/stat` (in
//! USER_HZ = 100 ticks per second, Linux's fixed ABI value) over the
//! measured window; memory is the growth of the resident set (VmRSS) from
//! before the first node started to after the cluster converged and
//! settled, divided by N × N (every node knows every member).

use std::time::{Duration, Instant};

use vinery::runtime::{Host, Node, NodeConfig};
use vinery::Config;

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .map_or(default, |s| s.parse().expect("a number"))
}

/// User + system CPU time of the whole process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces) start at
    // field 3; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<u64> = rest
        .split(' ')
        .skip(11)
        .take(2)
        .map(|f| f.parse().expect("ticks"))
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

/// Resident set size in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

fn packets_out(nodes: &[Node]) -> u64 {
    nodes
        .iter()
        .map(|n| n.stats().expect("running").endpoint.packets_out)
        .sum()
}

fn main() {
    let n = arg(1, 256) as usize;
    let secs = arg(2, 60);
    let rss_before = rss();
    let host = Host::new().expect("host");
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for i in 0..n {
        let seeds: Vec<String> = nodes
            .iter()
            .take(3)
            .map(|s| s.local_addr().expect("running").to_string())
            .collect();
        let config = NodeConfig::new(
            Config::lan().with_name(format!("node-{i:04}")),
            "127.0.0.1:0".parse().expect("address"),
        )
        .with_seeds(seeds);
        let node = host.node(config);
        node.start().expect("start");
        nodes.push(node);
    }
    let started = Instant::now();
    loop {
        let views: Vec<usize> = nodes
            .iter()
            .map(|n| n.live_peers().expect("running").len())
            .collect();
        if views.iter().all(|&v| v == n - 1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no convergence in 120 s (smallest view {})",
            views.iter().min().unwrap()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let converged = started.elapsed();
    // Broadcast queues drain within a few gossip rounds; 10 s leaves the
    // measured window with steady-state traffic only (reported below).
    std::thread::sleep(Duration::from_secs(10));
    let rss_after = rss();

    let (cpu0, pk0, t0) = (cpu_time(), packets_out(&nodes), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (cpu1, pk1, elapsed) = (cpu_time(), packets_out(&nodes), t0.elapsed());

    let per_node_core = (cpu1 - cpu0).as_secs_f64() / (elapsed.as_secs_f64() * n as f64);
    let per_member = (rss_after.saturating_sub(rss_before)) as f64 / (n * n) as f64;
    println!("nodes: {n} on one host thread, LAN preset; converged in {converged:.1?}");
    println!(
        "cpu: {:.3}% of one core per node ({:.2} s CPU over {:.1} s)",
        100.0 * per_node_core,
        (cpu1 - cpu0).as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "traffic: {:.2} packets/s sent per node",
        (pk1 - pk0) as f64 / elapsed.as_secs_f64() / n as f64
    );
    println!(
        "memory: {:.0} B per known member (RSS {:.1} MiB -> {:.1} MiB)",
        per_member,
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
}
