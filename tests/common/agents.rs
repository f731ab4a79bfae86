//! Helpers for tests that run `vinery agent` processes.

use std::path::Path;
use std::process::{Child, Command};

use serde_json::Value as Json;

/// The `vinery` binary (built for integration tests).
pub const VINERY: &str = env!("CARGO_BIN_EXE_vinery");

/// `vinery <cmd> --json` against the agent at `control`, if it answers.
pub fn client(cmd: &str, control: &Path) -> Option<Json> {
    client_args(&[cmd], control)
}

/// `vinery <args…> --json` against the agent at `control`, if it answers
/// (exit status 0).
pub fn client_args(args: &[&str], control: &Path) -> Option<Json> {
    let out = Command::new(VINERY)
        .args(args)
        .args(["--json", "--control"])
        .arg(control)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())?
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
