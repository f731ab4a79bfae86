//! Helpers for tests that run `vinery agent` processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value as Json;

use super::{wait_until, DEADLINE};

/// The `vinery` binary (built for integration tests).
pub const VINERY: &str = env!("CARGO_BIN_EXE_vinery");

/// `vinery <cmd> --json` against the agent at `control`, if it answers.
pub fn client(cmd: &str, control: &Path) -> Option<Json> {
    client_args(&[cmd], control)
}

/// `vinery <args…> --json` against the agent at `control`, if it answers
/// (exit status 0): its last line, the answer (a query streams its
/// answers on lines before it).
pub fn client_args(args: &[&str], control: &Path) -> Option<Json> {
    let out = Command::new(VINERY)
        .args(args)
        .args(["--json", "--control"])
        .arg(control)
        .output()
        .ok()?;
    let stdout = String::from_utf8(out.stdout).ok()?;
    out.status
        .success()
        .then(|| serde_json::from_str(stdout.lines().last()?).ok())?
}

/// The agent's view: (name, state) of every member it knows.
pub fn view(control: &Path) -> Option<Vec<(String, String)>> {
    let members = client("members", control)?;
    members["members"]
        .as_array()?
        .iter()
        .map(|m| Some((m["name"].as_str()?.into(), m["state"].as_str()?.into())))
        .collect()
}

/// The state the agent at `control` reports for `name`.
pub fn state(control: &Path, name: &str) -> Option<String> {
    view(control)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
}

/// Kills and reaps agents however a test ends.
pub fn kill_all(children: &mut [Child]) {
    for c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The agents of one test; killed (and their sockets removed) however the
/// test ends.
pub struct Agents {
    /// Where their sockets and files live.
    pub dir: PathBuf,
    /// Their cluster's name, the test's own: the tests of one binary run at
    /// once with the same node names, and an agent that got a port another
    /// test's agents still probe must not join their cluster.
    cluster: String,
    /// The agent processes, by index.
    pub children: Vec<Child>,
}

impl Agents {
    /// Agents whose sockets and files live in a directory of their own,
    /// in a cluster of their own (`tag` tells the tests of one process
    /// apart).
    pub fn new(tag: &str) -> Agents {
        let dir = std::env::temp_dir().join(format!("vinery-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Agents {
            dir,
            cluster: format!("test-{tag}"),
            children: Vec::new(),
        }
    }

    /// Agent `i`'s control socket.
    pub fn control(&self, i: usize) -> PathBuf {
        self.dir.join(format!("a{i}.sock"))
    }

    /// Starts agent `i`, joining `join` if given, its events discarded.
    pub fn start(&mut self, i: usize, join: Option<&str>) {
        self.start_with(i, join, &[], Stdio::null());
    }

    /// Starts agent `i` with `extra` arguments, its events going to
    /// `stdout`.
    pub fn start_with(&mut self, i: usize, join: Option<&str>, extra: &[String], stdout: Stdio) {
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
        .args(["--cluster", &self.cluster])
        .arg("--control")
        .arg(self.control(i))
        .args(extra)
        .stdout(stdout);
        if let Some(seed) = join {
            cmd.args(["--join", seed]);
        }
        self.children.push(cmd.spawn().unwrap());
    }

    /// Starts agent `i` with `extra` arguments, its events (JSON lines)
    /// going to a file that [`Agents::events`] reads.
    pub fn start_logged(&mut self, i: usize, join: Option<&str>, extra: &[&str]) {
        let out = std::fs::File::create(self.events_file(i)).unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        self.start_with(i, join, &extra, out.into());
    }

    fn events_file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("a{i}.events"))
    }

    /// The events agent `i` (started with [`Agents::start_logged`]) has
    /// printed so far.
    pub fn events(&self, i: usize) -> Vec<Json> {
        let text = std::fs::read_to_string(self.events_file(i)).unwrap_or_default();
        // A line still being written is not JSON yet: it counts next time.
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The address agent `i` advertises, once it answers.
    pub fn addr(&self, i: usize) -> String {
        let mut addr = None;
        assert!(wait_until(DEADLINE, || {
            addr = self.client(i, "members").and_then(|m| {
                let me = format!("a{i}");
                let list = m["members"].as_array()?.clone();
                let entry = list.into_iter().find(|e| e["name"] == me.as_str())?;
                entry["addr"].as_str().map(String::from)
            });
            addr.is_some()
        }));
        addr.unwrap()
    }

    /// Whether each of `agents` lists them all, alive.
    pub fn converged(&self, agents: &[usize]) -> bool {
        agents.iter().all(|&i| {
            self.client(i, "members").is_some_and(|m| {
                let list = m["members"].as_array().unwrap().clone();
                list.len() == agents.len() && list.iter().all(|m| m["state"] == "alive")
            })
        })
    }

    /// `vinery <args…> --json` against agent `i`, if it answers.
    pub fn run(&self, i: usize, args: &[&str]) -> Option<Json> {
        client_args(args, &self.control(i))
    }

    /// `vinery <cmd> --json` against agent `i`, if it answers.
    pub fn client(&self, i: usize, cmd: &str) -> Option<Json> {
        client(cmd, &self.control(i))
    }

    /// Whether each of `observers` reports `name` in `state`.
    pub fn all_see(&self, observers: &[usize], name: &str, state: &str) -> bool {
        observers
            .iter()
            .all(|&i| self::state(&self.control(i), name).as_deref() == Some(state))
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        kill_all(&mut self.children);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
