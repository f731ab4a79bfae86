//! Agents in separate network namespaces, two groups on two bridges joined
//! by one veth link. Cutting that link partitions the cluster: each side
//! declares the other failed. Restoring it heals: one view again.
//!
//! Needs root (network namespaces); skipped with the reason printed
//! otherwise (failed instead under `CI=true`). Every namespace, link and
//! address is this test's own (names carry the process id, addresses are
//! 10.213.0.0/24 inside the test's namespaces only), and all of it is
//! removed however the test ends.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::agents::{self, kill_all, VINERY};
use common::{wait_until, DEADLINE};
/// Group A is n0, n1 on bridge `bra`; group B is n2, n3 on bridge `brb`.
const NODES: usize = 4;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The test's namespaces and agents, torn down on drop.
struct Lab {
    hub: String,
    nodes: Vec<String>,
    created: Vec<String>,
    dir: PathBuf,
    agents: Vec<Child>,
}

impl Lab {
    fn new() -> Lab {
        let tag = std::process::id();
        let dir = std::env::temp_dir().join(format!("vinery-netns-{tag}"));
        Lab {
            hub: format!("vinery{tag}hub"),
            nodes: (0..NODES).map(|i| format!("vinery{tag}n{i}")).collect(),
            created: Vec::new(),
            dir,
            agents: Vec::new(),
        }
    }

    fn addr(i: usize) -> String {
        format!("10.213.0.{}", i + 1)
    }

    fn add_namespace(&mut self, name: &str) -> Result<(), String> {
        ip(&["netns", "add", name])?;
        self.created.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }

    /// Two bridges in the hub namespace joined by the veth pair `tra`/`trb`;
    /// each node namespace hangs off its group's bridge through a veth pair.
    fn build(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let hub = self.hub.clone();
        self.add_namespace(&hub)?;
        let h = hub.as_str();
        for br in ["bra", "brb"] {
            ip(&["-n", h, "link", "add", br, "type", "bridge"])?;
            ip(&["-n", h, "link", "set", br, "up"])?;
        }
        ip(&[
            "-n", h, "link", "add", "tra", "type", "veth", "peer", "name", "trb",
        ])?;
        for (end, br) in [("tra", "bra"), ("trb", "brb")] {
            ip(&["-n", h, "link", "set", end, "master", br])?;
            ip(&["-n", h, "link", "set", end, "up"])?;
        }
        for i in 0..NODES {
            let ns = self.nodes[i].clone();
            self.add_namespace(&ns)?;
            let port = format!("p{i}");
            let br = if i < NODES / 2 { "bra" } else { "brb" };
            ip(&[
                "-n", h, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["-n", h, "link", "set", &port, "master", br])?;
            ip(&["-n", h, "link", "set", &port, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", Lab::addr(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    fn control(&self, i: usize) -> PathBuf {
        self.dir.join(format!("n{i}.sock"))
    }

    fn start_agents(&mut self) {
        let seed = format!("{}:7946", Lab::addr(0));
        for i in 0..NODES {
            let child = Command::new("ip")
                .args(["netns", "exec", &self.nodes[i], VINERY, "agent"])
                .args(["--bind", &format!("{}:7946", Lab::addr(i)), "--join", &seed])
                .args(["--name", &format!("n{i}"), "--profile", "local"])
                .args(["--log-level", "error", "--control"])
                .arg(self.control(i))
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            self.agents.push(child);
        }
    }

    /// Whether node `i` sees exactly the states `want(j)` for every node j.
    fn sees(&self, i: usize, want: impl Fn(usize) -> &'static str) -> bool {
        agents::view(&self.control(i)).is_some_and(|v| {
            v.len() == NODES
                && (0..NODES).all(|j| v.iter().any(|(n, s)| *n == format!("n{j}") && s == want(j)))
        })
    }

    fn trunk(&self, state: &str) {
        ip(&["-n", &self.hub, "link", "set", "tra", state]).unwrap();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        kill_all(&mut self.agents);
        for ns in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn partition_by_cutting_a_link_then_heal() {
    if std::fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
        common::skip("network namespaces need root");
        return;
    }
    let mut lab = Lab::new();
    if let Err(e) = lab.build() {
        common::skip(&format!("cannot build the namespaces ({e})"));
        return;
    }
    lab.start_agents();
    let side = |i: usize| i < NODES / 2;
    assert!(
        wait_until(DEADLINE, || (0..NODES).all(|i| lab.sees(i, |_| "alive"))),
        "no convergence across namespaces"
    );

    lab.trunk("down");
    assert!(
        wait_until(2 * DEADLINE, || (0..NODES).all(|i| lab.sees(i, |j| {
            if side(i) == side(j) {
                "alive"
            } else {
                "dead"
            }
        }))),
        "each side did not declare the other failed"
    );

    lab.trunk("up");
    assert!(
        wait_until(2 * DEADLINE, || (0..NODES)
            .all(|i| lab.sees(i, |_| "alive"))),
        "no single view after healing"
    );
}
