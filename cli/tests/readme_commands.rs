//! Every command in README.md's ```sh blocks, run as written and in order,
//! as a reader following the README would: the agents it starts
//! (`vinery agent … &`) run in the background on 127.0.0.1, the client
//! commands find them by `--name`, shell variables (`KEY=$(vinery
//! keygen)`) carry over to later lines, and each command's exit status and
//! key output are checked. Two liberties, so that the test runs anywhere
//! and alongside other tests: each port the README names is replaced by a
//! free one (the same one everywhere it appears), and the control sockets
//! live in a directory of the test's own (`XDG_RUNTIME_DIR`). Commands a
//! test cannot run are listed in [`NOT_RUN`] with the reason; a command in
//! the README that this file does not know fails the test, and so does an
//! expectation no README command uses.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use common::agents::VINERY;
use common::{wait_until, DEADLINE};
use serde_json::Value as Json;

/// README commands this test does not run, and why.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "cargo run --release -- sim",
        "minutes of simulation at N = 100; the scenarios are tested in tests/sim_*.rs",
    ),
    (
        "cargo test --release",
        "the test suite this test is part of",
    ),
    (
        "cargo install --path cli",
        "writes to the user's ~/.cargo/bin; the test puts the binary it was built with on PATH",
    ),
];

/// Whether a command's output is as expected.
type OutputCheck = Box<dyn Fn(&str) -> bool>;

/// How a foreground command is checked.
enum Check {
    /// Succeeds the first time, printing what passes.
    Once(OutputCheck),
    /// Succeeds and prints what passes once the cluster has caught up
    /// (retried until then: a read, or a change that a failure leaves
    /// undone, like a vote before the election arrived).
    Until(OutputCheck),
    /// A graceful leave: succeeds, and the agent of that name exits 0.
    Leaves(&'static str),
}

/// A README command, its check, and what an agent prints because of it
/// (agent, substrings of one of its stdout lines).
struct Expect {
    command: &'static str,
    check: Check,
    printed: Vec<(&'static str, &'static [&'static str])>,
}

impl Expect {
    fn new(command: &'static str, check: Check) -> Expect {
        Expect {
            command,
            check,
            printed: Vec::new(),
        }
    }

    /// Then `agent` prints a line with every one of `parts`.
    fn prints(mut self, agent: &'static str, parts: &'static [&'static str]) -> Expect {
        self.printed.push((agent, parts));
        self
    }
}

/// Succeeds at once; the output passes `ok`.
fn once(command: &'static str, ok: impl Fn(&str) -> bool + 'static) -> Expect {
    Expect::new(command, Check::Once(Box::new(ok)))
}

/// Succeeds at once, printing `prefix` first.
fn once_starting(command: &'static str, prefix: &'static str) -> Expect {
    once(command, move |o| o.starts_with(prefix))
}

/// Succeeds, with an output that passes `ok`, once the cluster caught up.
fn until(command: &'static str, ok: impl Fn(&str) -> bool + 'static) -> Expect {
    Expect::new(command, Check::Until(Box::new(ok)))
}

/// Succeeds, printing every one of `parts`, once the cluster caught up.
fn until_printing(command: &'static str, parts: &'static [&'static str]) -> Expect {
    until(command, move |o| parts.iter().all(|p| o.contains(p)))
}

/// `vinery members`' table lists `n` members, all alive.
fn members_alive(command: &'static str, n: usize) -> Expect {
    until(command, move |o| {
        o.lines().skip(1).count() == n && alive(o) == n
    })
}

/// Lines of a `vinery members` table with the member alive.
fn alive(out: &str) -> usize {
    out.lines().filter(|l| l.contains(" alive ")).count()
}

/// The names in a `vinery members` table.
fn listed(out: &str) -> Vec<&str> {
    out.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

/// `vinery keys` on both agents of a loop lists `n` keys in all (one line
/// each; the migration switches are the other lines).
fn keys_listed(command: &'static str, n: usize) -> Expect {
    once(command, move |o| {
        o.lines().filter(|l| !l.contains("plaintext:")).count() == n
    })
}

/// A migration switch reported `on` (or off) by both agents of a loop.
fn switched(command: &'static str, switch: &'static str, on: &'static str) -> Expect {
    once(command, move |o| {
        o.matches(&format!("{switch}: {on}")).count() == 2
    })
}

fn expectations() -> Vec<Expect> {
    let user_event = &["user_event", "name=deploy.web", "from=a"];
    let voted: &[&str] = &["voted yes on leader"];
    vec![
        // Quick start.
        members_alive("vinery members --name c", 3),
        once_starting("vinery set color blue --name b", "set (v"),
        until("vinery get color --name a --node b", |o| o.trim() == "blue"),
        once_starting("vinery event deploy.web v2 --name a", "a/")
            .prints("b", user_event)
            .prints("c", user_event),
        until_printing(
            "vinery query ping hello --name c",
            &[
                "response  a  pong from a",
                "response  b  pong from b",
                "every expected node answered (a, b)",
            ],
        ),
        Expect::new("vinery leave --name c", Check::Leaves("c")),
        Expect::new("vinery leave --name b", Check::Leaves("b")),
        Expect::new("vinery leave --name a", Check::Leaves("a")),
        // Running a cluster: a to e.
        members_alive("vinery members --name b", 5),
        until("vinery members --name b --json", |o| {
            let answer: Json = serde_json::from_str(o).unwrap_or_default();
            let members = answer["members"].as_array().cloned().unwrap_or_default();
            members.len() == 5 && members.iter().all(|m| m["state"] == "alive")
        }),
        until("vinery members --name a --tag 'role=web*'", |o| {
            listed(o) == ["c"]
        }),
        once("vinery stats --name b", |o| {
            ["control.", "endpoint.", "runtime."]
                .iter()
                .all(|group| o.lines().any(|l| l.starts_with(group)))
        }),
        once("vinery info --name b", |o| {
            o.contains("name b\n")
                && o.contains(&format!("version {}\n", env!("CARGO_PKG_VERSION")))
                && o.contains("peers.alive 4")
        }),
        once_starting(
            "vinery join 127.0.0.1:7950 --name a",
            "joining through 127.0.0.1:",
        ),
        once_starting("vinery set color blue --name b --ttl 10m", "set (v"),
        until("vinery kv --name a --prefix col", |o| {
            o.lines().any(|l| l.contains("color") && l.contains("blue"))
        }),
        once_starting("vinery delete color --name b", "deleted (v"),
        Expect::new("vinery leave --name e", Check::Leaves("e")),
        until("vinery members --name a --status left", |o| {
            listed(o) == ["e"] && o.contains(" left ")
        }),
        // The event bus, with f answering.
        until_printing(
            "vinery query ping hello --name a --node f",
            &[
                "ack       f",
                "response  f  pong",
                "every expected node answered (f)",
            ],
        ),
        until_printing(
            "vinery query ping hello --name a --tag 'role=web*' --timeout 2s",
            &["ack       c", "timed out waiting for c"],
        ),
        until("vinery query uptime --name a --node f --no-ack", |o| {
            o.contains("response  f  ")
                && o.contains("load average")
                && !o.contains("ack ")
                && o.contains("every expected node answered (f)")
        }),
        once_starting(
            "vinery election leader --min 3 --total 5 --name a --expire 30s",
            "election on leader created",
        ),
        until_printing("vinery vote leader yes --name b", voted),
        until_printing("vinery vote leader yes --name c", voted),
        until_printing("vinery vote leader yes --name d", voted)
            .prints("a", &["quorum", "topic=leader", "creator=a"]),
        // Operating: key rotation on k1 and k2.
        members_alive("vinery members --name k2", 2),
        until("vinery keys --name k1 --list", |o| {
            o.starts_with("2/2 nodes listed their keys")
                && o.contains("held by 2/2 (2 seal with it)")
        }),
        once_starting(
            r#"vinery keys --name k1 --install "$NEW""#,
            "2/2 nodes installed key",
        ),
        once_starting(
            r#"vinery keys --name k1 --use "$NEW""#,
            "2/2 nodes now seal with key",
        ),
        once_starting(
            r#"vinery keys --name k1 --remove "$KEY""#,
            "2/2 nodes removed key",
        ),
        // Operating: m1 and m2 moved to encryption live.
        members_alive("vinery members --name m1", 2),
        switched(
            "for n in m1 m2; do vinery keys --name $n --send-plaintext on; done",
            "send_plaintext",
            "on",
        ),
        switched(
            "for n in m1 m2; do vinery keys --name $n --accept-plaintext on; done",
            "accept_plaintext",
            "on",
        ),
        keys_listed(
            r#"for n in m1 m2; do vinery keys --name $n --local --install "$KEY"; done"#,
            2,
        ),
        switched(
            "for n in m1 m2; do vinery keys --name $n --send-plaintext off; done",
            "send_plaintext",
            "off",
        ),
        switched(
            "for n in m1 m2; do vinery keys --name $n --accept-plaintext off; done",
            "accept_plaintext",
            "off",
        ),
    ]
}

/// The commands of README.md's ```sh blocks, comments and blank lines
/// left out, in order.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in readme.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            _ if in_sh => {
                let command = without_comment(line);
                if !command.is_empty() {
                    commands.push(command.to_string());
                }
            }
            _ => {}
        }
    }
    commands
}

/// `line` without its shell comment (a `#` outside quotes, at the start
/// or after a blank), trimmed.
fn without_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') if previous.is_whitespace() => return line[..i].trim(),
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            _ => {}
        }
        previous = c;
    }
    line.trim()
}

/// A loopback UDP port nobody uses now, other than those in `taken`.
fn free_port(taken: &BTreeSet<u16>) -> u16 {
    loop {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !taken.contains(&port) {
            return port;
        }
    }
}

/// The README, run: its agents, its shell variables and its ports.
struct Reader {
    /// The control sockets (as `XDG_RUNTIME_DIR`) and the agents' output.
    dir: PathBuf,
    /// `PATH` with the built `vinery` first.
    path: String,
    /// Shell variables set by earlier lines.
    vars: Vec<(String, String)>,
    /// README port → the free port used instead.
    ports: BTreeMap<u16, u16>,
    /// Running agents by name.
    agents: HashMap<String, Child>,
}

impl Reader {
    fn new() -> Reader {
        let dir = std::env::temp_dir().join(format!("vinery-readme-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = Path::new(VINERY).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Reader {
            dir,
            path,
            vars: Vec::new(),
            ports: BTreeMap::new(),
            agents: HashMap::new(),
        }
    }

    /// `command` with each README port replaced by its free port.
    fn with_free_ports(&mut self, command: &str) -> String {
        let mut out = String::new();
        let mut rest = command;
        loop {
            let host = ["127.0.0.1:", "localhost:"]
                .iter()
                .filter_map(|h| rest.find(h).map(|i| i + h.len()))
                .min();
            let Some(at) = host else {
                out.push_str(rest);
                return out;
            };
            let digits = rest[at..].bytes().take_while(u8::is_ascii_digit).count();
            let port: u16 = rest[at..at + digits].parse().expect("a port");
            let taken: BTreeSet<u16> = self.ports.values().copied().collect();
            let free = *self.ports.entry(port).or_insert_with(|| free_port(&taken));
            out.push_str(&rest[..at]);
            out.push_str(&free.to_string());
            rest = &rest[at + digits..];
        }
    }

    fn shell(&self, command: &str) -> Command {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(command)
            .env("PATH", &self.path)
            .env("XDG_RUNTIME_DIR", &self.dir)
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        sh
    }

    fn run(&self, command: &str) -> Output {
        self.shell(command).output().unwrap()
    }

    fn output_file(&self, agent: &str) -> PathBuf {
        self.dir.join(format!("{agent}.out"))
    }

    /// `NAME=$(COMMAND)`: runs COMMAND and keeps its output as NAME.
    fn assign(&mut self, name: &str, command: &str) {
        let out = self.run(command);
        assert!(out.status.success(), "{command}: {out:?}");
        let value = String::from_utf8(out.stdout).unwrap().trim().to_string();
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_string(), value));
    }

    /// `vinery agent … &`: starts the agent and waits until its control
    /// socket answers.
    fn start_agent(&mut self, command: &str) {
        assert!(command.starts_with("vinery agent "), "{command}");
        let words: Vec<&str> = command.split_whitespace().collect();
        let name = words
            .windows(2)
            .find(|w| w[0] == "--name")
            .map(|w| w[1].to_string())
            .unwrap_or_else(|| panic!("README agents have a --name: {command}"));
        if let Some(mut old) = self.agents.remove(&name) {
            assert!(
                old.try_wait().unwrap().is_some(),
                "{name} started again while running"
            );
        }
        let out = std::fs::File::create(self.output_file(&name)).unwrap();
        let err = std::fs::File::create(self.dir.join(format!("{name}.err"))).unwrap();
        let command = self.with_free_ports(command);
        let child = self
            .shell(&format!("exec {command}"))
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        self.agents.insert(name.clone(), child);
        let up = wait_until(DEADLINE, || {
            self.run(&format!("vinery members --name {name}"))
                .status
                .success()
        });
        assert!(up, "{command}: no control socket; {}", self.log(&name));
    }

    fn log(&self, agent: &str) -> String {
        let err = std::fs::read_to_string(self.dir.join(format!("{agent}.err")));
        format!("its log: {}", err.unwrap_or_default())
    }

    /// Runs a foreground command and checks it.
    fn check(&mut self, expect: &Expect) {
        let command = self.with_free_ports(expect.command);
        let passes = |out: &Output, ok: &OutputCheck| {
            out.status.success()
                && out.stderr.is_empty()
                && ok(&String::from_utf8_lossy(&out.stdout))
        };
        match &expect.check {
            Check::Once(ok) => {
                let out = self.run(&command);
                assert!(passes(&out, ok), "{command}: {out:?}");
            }
            Check::Until(ok) => {
                let mut out = None;
                let passed = wait_until(DEADLINE, || {
                    let o = self.run(&command);
                    let good = passes(&o, ok);
                    out = Some(o);
                    good
                });
                assert!(passed, "{command}: {out:?}");
            }
            Check::Leaves(name) => {
                let out = self.run(&command);
                assert!(
                    out.status.success() && out.stdout.starts_with(b"left the cluster"),
                    "{command}: {out:?}"
                );
                let agent = self.agents.get_mut(*name).expect("a running agent");
                let mut status = None;
                assert!(
                    wait_until(DEADLINE, || {
                        status = agent.try_wait().unwrap();
                        status.is_some()
                    }),
                    "{name} did not exit after leaving"
                );
                assert!(status.unwrap().success(), "{name}: {status:?}");
            }
        }
        for &(agent, parts) in &expect.printed {
            let printed = wait_until(DEADLINE, || {
                let out = std::fs::read_to_string(self.output_file(agent)).unwrap_or_default();
                out.lines().any(|l| parts.iter().all(|p| l.contains(p)))
            });
            assert!(printed, "after {command}, {agent} did not print {parts:?}");
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        for agent in self.agents.values_mut() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn every_readme_command_runs_as_written() {
    let commands = readme_commands();
    let first: Vec<&str> = commands.iter().take(2).map(String::as_str).collect();
    assert_eq!(
        first,
        ["cargo run --release -- sim", "cargo test --release"],
        "the README starts with these two"
    );
    let expectations = expectations();
    let mut used = BTreeSet::new();
    let mut reader = Reader::new();
    for command in &commands {
        // Shown with --nocapture, and before a failure's message.
        eprintln!("$ {command}");
        if NOT_RUN.iter().any(|(c, _)| c == command) {
            continue;
        }
        if let Some(agent) = command.strip_suffix('&') {
            reader.start_agent(agent.trim());
            continue;
        }
        if let Some((name, value)) = command.split_once('=') {
            if let Some(inner) = value.strip_prefix("$(").and_then(|v| v.strip_suffix(')')) {
                reader.assign(name, inner);
                continue;
            }
        }
        let expect = expectations
            .iter()
            .find(|e| e.command == command)
            .unwrap_or_else(|| panic!("README command not covered by this test: {command}"));
        reader.check(expect);
        used.insert(expect.command);
    }
    let unused: Vec<&str> = expectations
        .iter()
        .map(|e| e.command)
        .filter(|c| !used.contains(c))
        .collect();
    assert!(unused.is_empty(), "no longer in the README: {unused:?}");
}

#[test]
fn comments_are_cut_outside_quotes_only() {
    assert_eq!(without_comment("vinery x   # note"), "vinery x");
    assert_eq!(
        without_comment("vinery x --tag 'a#b' # c"),
        "vinery x --tag 'a#b'"
    );
    assert_eq!(without_comment("#   a prints"), "");
    assert_eq!(without_comment("a#b"), "a#b");
}
