//! Five `vinery agent` processes on loopback: one is killed with SIGKILL
//! and the others report it failed through `vinery members --json`; one
//! leaves through `vinery leave`, one on SIGTERM, and both are seen as left.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::agents::{self, kill_all, VINERY};
use common::{wait_until, DEADLINE};
use serde_json::Value as Json;

/// The agents of one test; killed (and their sockets removed) however the
/// test ends.
struct Agents {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Agents {
    fn new() -> Agents {
        let dir = std::env::temp_dir().join(format!("vinery-agents-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Agents {
            dir,
            children: Vec::new(),
        }
    }

    fn control(&self, i: usize) -> PathBuf {
        self.dir.join(format!("a{i}.sock"))
    }

    fn start(&mut self, i: usize, join: Option<&str>) {
        let mut cmd = Command::new(VINERY);
        cmd.args([
            "agent",
            "--bind",
            "127.0.0.1:0",
            "--profile",
            "local",
            "--json",
        ])
        .args(["--name", &format!("a{i}"), "--log-level", "warn"])
        .arg("--control")
        .arg(self.control(i))
        .stdout(Stdio::null());
        if let Some(seed) = join {
            cmd.args(["--join", seed]);
        }
        self.children.push(cmd.spawn().unwrap());
    }

    /// `vinery <cmd> --json` against agent `i`, if it answers.
    fn client(&self, i: usize, cmd: &str) -> Option<Json> {
        agents::client(cmd, &self.control(i))
    }

    fn all_see(&self, observers: &[usize], name: &str, state: &str) -> bool {
        observers
            .iter()
            .all(|&i| agents::state(&self.control(i), name).as_deref() == Some(state))
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        kill_all(&mut self.children);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn agents_detect_a_killed_process_and_see_departures() {
    let mut agents = Agents::new();
    agents.start(0, None);
    let mut seed = None;
    assert!(wait_until(DEADLINE, || {
        seed = agents
            .client(0, "members")
            .map(|m| m["members"][0]["addr"].clone());
        seed.is_some()
    }));
    let seed = seed.unwrap().as_str().unwrap().to_string();
    for i in 1..5 {
        agents.start(i, Some(&seed));
    }
    let everyone = [0, 1, 2, 3, 4];
    assert!(
        wait_until(DEADLINE, || everyone.iter().all(|&i| {
            agents.client(i, "members").is_some_and(|m| {
                let list = m["members"].as_array().unwrap().clone();
                list.len() == 5 && list.iter().all(|m| m["state"] == "alive")
            })
        })),
        "the agents did not converge"
    );

    agents.children[2].kill().unwrap(); // SIGKILL: no leave, a crash
    agents.children[2].wait().unwrap();
    assert!(
        wait_until(2 * DEADLINE, || agents.all_see(&[0, 1, 3, 4], "a2", "dead")),
        "the killed agent was not reported failed"
    );

    let answer = agents.client(3, "leave").expect("vinery leave succeeds");
    assert_eq!(answer["ok"], true);
    assert!(agents.children[3].wait().unwrap().success());
    let pid = agents.children[4].id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(
        agents.children[4].wait().unwrap().success(),
        "SIGTERM ends in a clean exit"
    );
    assert!(
        wait_until(DEADLINE, || agents.all_see(&[0, 1], "a3", "left")
            && agents.all_see(&[0, 1], "a4", "left")),
        "the departures were not seen"
    );
    let stats = agents.client(0, "stats").unwrap();
    assert!(stats["stats"]["runtime"]["recv_buffer"].as_u64().unwrap() > 0);
    assert!(stats["stats"]["endpoint"]["packets_in"].as_u64().unwrap() > 0);
}
