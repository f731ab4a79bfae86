//! `vinery agent` processes on loopback. Five: one is killed with SIGKILL
//! and the others report it failed through `vinery members --json`; one
//! leaves through `vinery leave`, one on SIGTERM, and both are seen as left.
//! Three, encrypted: key/value state through `vinery set`, `get`, `delete`
//! and `kv`, events printed by the agents, and a key rotation through
//! `vinery keys` that leaves the keyring files rewritten. Three, plaintext:
//! moved to encryption live with `vinery keys --send-plaintext` /
//! `--accept-plaintext` and `--install`, with no member ever failed, after
//! which a plaintext newcomer is refused.

mod common;

use std::process::{Command, Stdio};

use common::agents::Agents;
use common::{wait_until, DEADLINE};
use serde_json::Value as Json;
use vinery::security::SecretKey;

#[test]
fn agents_detect_a_killed_process_and_see_departures() {
    let mut agents = Agents::new("agents");
    agents.start(0, None);
    let seed = agents.addr(0);
    for i in 1..5 {
        agents.start(i, Some(&seed));
    }
    assert!(
        wait_until(DEADLINE, || agents.converged(&[0, 1, 2, 3, 4])),
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

fn base64_key(b: u8) -> String {
    SecretKey::from_bytes([b; 32]).to_base64()
}

#[test]
fn encrypted_agents_share_keys_and_rotate_through_the_control_socket() {
    let mut agents = Agents::new("kv-agents");
    let (k1, k2) = (base64_key(1), base64_key(2));
    let keyring = |i: usize| agents.dir.join(format!("a{i}.keys"));
    for i in [0, 2] {
        std::fs::write(keyring(i), format!("# test keyring\n\n{k1}\n")).unwrap();
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(keyring(i), private).unwrap();
    }
    let events = agents.dir.join("a1.events");
    let (ring0, ring2) = (keyring(0), keyring(2));
    let arg = |s: &str| s.to_string();
    agents.start_with(
        0,
        None,
        &[
            arg("--keyring-file"),
            ring0.display().to_string(),
            arg("--set"),
            arg("lease=held"),
            arg("--set"),
            arg("role=seed"),
            arg("--ttl"),
            arg("8s"),
        ],
        Stdio::null(),
    );
    let seed = agents.addr(0);
    let stdout = std::fs::File::create(&events).unwrap();
    agents.start_with(1, Some(&seed), &[arg("--key"), k1.clone()], stdout.into());
    agents.start_with(
        2,
        Some(&seed),
        &[
            arg("--keyring-file"),
            ring2.display().to_string(),
            arg("--allow"),
            arg("127.0.0.0/8"),
        ],
        Stdio::null(),
    );
    let all = [0, 1, 2];
    assert!(
        wait_until(DEADLINE, || agents.converged(&all)),
        "no convergence"
    );

    // Key/value state through the control socket.
    let set = agents
        .run(1, &["set", "color", "blue"])
        .expect("vinery set");
    assert!(set["version"].as_u64().unwrap() >= 1);
    assert!(wait_until(DEADLINE, || agents
        .run(0, &["get", "color", "--node", "a1"])
        .is_some_and(|g| g["value"] == "blue" && g["node"] == "a1")));
    let own = agents.run(1, &["get", "color"]).expect("own key");
    assert_eq!(own["value"], "blue");
    assert!(wait_until(DEADLINE, || agents
        .run(2, &["kv", "--prefix", "co"])
        .is_some_and(|kv| kv["entries"]
            .as_array()
            .is_some_and(|e| e.len() == 1 && e[0]["key"] == "color"))));
    let kv = agents.run(2, &["kv", "--glob", "*"]).unwrap();
    let lease = kv["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "lease")
        .cloned();
    // Set with --ttl at start: it carries its expiry (unless already gone).
    if let Some(lease) = lease {
        assert!(lease["expires_ms"].as_u64().is_some(), "{lease}");
    }
    agents
        .run(1, &["set", "tmp", "x", "--ttl", "300ms"])
        .expect("set with a TTL");
    assert!(agents.run(1, &["delete", "color"]).is_some());
    assert!(
        wait_until(DEADLINE, || agents
            .run(0, &["get", "color", "--node", "a1"])
            .is_none()
            && agents.run(0, &["get", "tmp", "--node", "a1"]).is_none()),
        "the delete and the expiry did not reach a0"
    );
    assert!(
        agents.run(1, &["set", "", "x"]).is_none(),
        "an empty key is refused"
    );

    // Rotation, one step on every agent at a time.
    let fingerprints = |i: usize| -> Vec<(String, bool)> {
        let list = agents
            .run(i, &["keys", "--list"])
            .expect("vinery keys --list");
        list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["fingerprint"].as_str().unwrap().into(),
                    k["primary"] == true,
                )
            })
            .collect()
    };
    let print = |b: u8| SecretKey::from_bytes([b; 32]).fingerprint();
    assert_eq!(fingerprints(1), [(print(1), true)]);
    for step in [["--install", &k2], ["--use", &k2], ["--remove", &k1]] {
        for &i in &all {
            // Each agent on its own (cluster-wide rotation is
            // tests/cli_ops.rs's).
            let answer = agents.run(i, &["keys", step[0], step[1], "--local"]);
            assert!(answer.is_some(), "a{i}: vinery keys {}", step[0]);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    for &i in &all {
        assert_eq!(fingerprints(i), [(print(2), true)], "a{i}");
    }
    assert!(
        agents
            .run(0, &["keys", "--remove", &k2, "--local"])
            .is_none(),
        "the primary cannot be removed"
    );
    for ring in [&ring0, &ring2] {
        let text = std::fs::read_to_string(ring).unwrap();
        assert!(
            text.contains(&k2) && !text.contains(&k1),
            "keyring file not rewritten: {text}"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(&ring.metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "the rewritten keyring is private");
    }
    assert!(agents.converged(&all), "the rotation broke the cluster");
    assert!(all.iter().all(|&i| agents
        .run(i, &["members"])
        .is_some_and(|m| !m.to_string().contains("dead"))));

    // Agent a1 printed the key events it saw, as JSON lines.
    assert!(wait_until(DEADLINE, || {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        let lines: Vec<Json> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let saw = |event: &str, key: &str| {
            lines
                .iter()
                .any(|l| l["event"] == event && l["key"] == key && l["node"] == "a0")
        };
        saw("key_updated", "role") && saw("key_expired", "lease")
    }));
}

#[test]
fn plaintext_agents_move_to_encryption_live_through_the_control_socket() {
    let mut agents = Agents::new("migrate-agents");
    agents.start_logged(0, None, &[]);
    let seed = agents.addr(0);
    for i in [1, 2] {
        agents.start_logged(i, Some(&seed), &[]);
    }
    let all = [0, 1, 2];
    assert!(
        wait_until(DEADLINE, || agents.converged(&all)),
        "no convergence"
    );

    // Each step on every agent before the next: at every moment, what each
    // agent sends is accepted by all the others.
    let key = base64_key(7);
    let steps: [[&str; 2]; 5] = [
        ["--send-plaintext", "on"],
        ["--accept-plaintext", "on"],
        ["--install", &key],
        ["--send-plaintext", "off"],
        ["--accept-plaintext", "off"],
    ];
    for [flag, value] in steps {
        for &i in &all {
            // A plaintext cluster's keys are installed on each agent:
            // cluster-wide, the key would cross the network unsealed.
            let mut args = vec!["keys", flag, value];
            if flag == "--install" {
                args.push("--local");
            }
            let answer = agents
                .run(i, &args)
                .unwrap_or_else(|| panic!("a{i}: vinery keys {flag} {value}"));
            if let Some(switch) = flag.strip_prefix("--") {
                let switch = switch.replace('-', "_");
                if answer.get(&switch).is_some() {
                    assert_eq!(answer[&switch], value == "on", "a{i}: {switch}");
                }
            }
        }
        assert!(
            agents.converged(&all),
            "the step {flag} {value} broke the cluster"
        );
    }
    let print = SecretKey::from_bytes([7; 32]).fingerprint();
    for &i in &all {
        let list = agents.run(i, &["keys", "--list"]).unwrap();
        assert_eq!(list["keys"][0]["fingerprint"], print.as_str(), "a{i}");
        assert_eq!(
            (&list["send_plaintext"], &list["accept_plaintext"]),
            (&Json::Bool(false), &Json::Bool(false)),
            "a{i}"
        );
    }

    // Sealed only now: a plaintext newcomer is refused.
    agents.start(3, Some(&seed));
    let refused = || {
        agents.run(0, &["stats"]).is_some_and(|s| {
            s["stats"]["endpoint"]["drops"]["plaintext_refused"]
                .as_u64()
                .is_some_and(|n| n > 0)
        })
    };
    assert!(wait_until(DEADLINE, refused), "plaintext still accepted");
    assert!(
        agents.converged(&all),
        "the newcomer joined, or a member was lost"
    );
    for &i in &all {
        let failures: Vec<Json> = agents
            .events(i)
            .into_iter()
            .filter(|e| e["event"] == "member_failed")
            .collect();
        assert!(failures.is_empty(), "a{i} saw failures: {failures:?}");
    }
}
