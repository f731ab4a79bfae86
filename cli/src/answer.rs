//! How `vinery agent` answers queries: `--answer GLOB=TEXT` responds to
//! queries whose name matches GLOB with TEXT; `--answer-cmd GLOB=COMMAND`
//! runs COMMAND with `sh -c` and responds with what it prints.
//!
//! Each becomes a handler of the node ([`Node::on_query`]), so they run on
//! the node's handler thread, never on its loop: a slow command delays the
//! agent's other answers, not its membership. The first flag whose glob
//! matches answers: the `--answer` flags in order, then the `--answer-cmd`
//! flags in order. A query nothing matches is acknowledged, not answered.
//!
//! A command gets the query's payload on stdin and its name, asker and id
//! in `VINERY_QUERY_NAME`, `VINERY_QUERY_FROM` and `VINERY_QUERY_ID`; its
//! stdout is the response, sent if it exits with status 0 within the
//! `--answer-timeout` and prints at most `max_event_payload` bytes (the
//! largest response the protocol carries). Otherwise the command is killed
//! if still running (the `sh` process: what it started in the background
//! is its own business), nothing is sent, and the agent logs why; its
//! stderr goes to the agent's.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use vinery::runtime::{IncomingQuery, Node};

/// How long a command may run and how much it may print.
#[derive(Clone, Copy, Debug)]
pub struct CommandLimits {
    /// Until it is killed.
    pub timeout: Duration,
    /// Bytes of stdout that fit a response.
    pub max_output: usize,
}

/// Registers the agent's answers on `node`: `texts` and `commands` are the
/// `(glob, text)` and `(glob, command)` pairs of `--answer` and
/// `--answer-cmd`. A text too large to send is refused here, naming its
/// flag, rather than failing on every query.
pub fn register(
    node: &Node,
    texts: Vec<(String, String)>,
    commands: Vec<(String, String)>,
    limits: CommandLimits,
) -> Result<(), String> {
    for (glob, text) in texts {
        if text.len() > limits.max_output {
            return Err(format!(
                "--answer {glob}=…: at most {} bytes of text (one query response), got {}",
                limits.max_output,
                text.len()
            ));
        }
        let text = text.into_bytes();
        node.on_query(&glob, move |_| Some(text.clone()))
            .map_err(|e| e.to_string())?;
    }
    for (glob, command) in commands {
        let me = node.name().to_owned();
        node.on_query(&glob, move |q| match run_command(&command, q, limits) {
            Ok(output) => Some(output),
            Err(why) => {
                log::warn!(
                    "{me}: --answer-cmd for query {:?} ({}): {why}; no response sent",
                    q.name,
                    q.id
                );
                None
            }
        })
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Runs `command` for query `q` within `limits`: its stdout if it exits
/// with status 0 in time and prints no more than allowed, else why not.
pub fn run_command(
    command: &str,
    q: &IncomingQuery,
    limits: CommandLimits,
) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + limits.timeout;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("VINERY_QUERY_NAME", &q.name)
        .env("VINERY_QUERY_FROM", &q.from)
        .env("VINERY_QUERY_ID", q.id.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A payload fits the pipe's buffer, so this does not block; a
        // command that exits without reading it is no error.
        let _ = stdin.write_all(&q.payload);
    }
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = crossbeam_channel::bounded(1);
    // Reading on a thread lets this one keep the deadline. One byte more
    // than allowed tells too much output from just enough.
    let max = limits.max_output;
    std::thread::spawn(move || {
        let mut output = Vec::new();
        let read = (&mut stdout).take(max as u64 + 1).read_to_end(&mut output);
        let _ = tx.send(read.map(|_| output));
    });
    let output = match rx.recv_timeout(limits.timeout) {
        Ok(Ok(output)) if output.len() <= max => output,
        Ok(Ok(_)) => {
            kill(&mut child);
            return Err(format!("printed more than max_event_payload ({max} bytes)"));
        }
        Ok(Err(e)) => {
            kill(&mut child);
            return Err(format!("reading its output: {e}"));
        }
        Err(_) => {
            kill(&mut child);
            return Err(format!("still running after {:?}: killed", limits.timeout));
        }
    };
    match wait_until(&mut child, deadline)? {
        status if status.success() => Ok(output),
        status => Err(format!("{status}")),
    }
}

/// Waits for `child` to exit until `deadline`, then kills it. Its output
/// is closed by now, so this is normally immediate; the polling only
/// bounds a command that closed its stdout and went on running.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<ExitStatus, String> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                kill(child);
                return Err("closed its output but did not exit in time: killed".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
    }
}

fn kill(child: &mut Child) {
    // It may have exited meanwhile; either way it is reaped.
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use vinery::QueryId;

    fn query(payload: &[u8]) -> IncomingQuery {
        IncomingQuery {
            id: QueryId {
                origin: "a".into(),
                seq: 9,
            },
            from: "a".into(),
            name: "ping.1".into(),
            payload: payload.to_vec(),
            lamport: 1,
        }
    }

    const LIMITS: CommandLimits = CommandLimits {
        timeout: Duration::from_secs(10),
        max_output: 16,
    };

    #[test]
    fn a_command_reads_the_payload_and_the_query_and_its_stdout_answers() {
        let out = run_command(
            r#"tr a-z A-Z; printf " %s %s %s" "$VINERY_QUERY_NAME" "$VINERY_QUERY_FROM" "$VINERY_QUERY_ID""#,
            &query(b"hi"),
            CommandLimits {
                max_output: 64,
                ..LIMITS
            },
        );
        assert_eq!(out.as_deref(), Ok(&b"HI ping.1 a a/9"[..]));
    }

    #[test]
    fn failing_verbose_or_slow_commands_answer_nothing_and_say_why() {
        let failed = run_command("echo partial; exit 3", &query(b""), LIMITS).unwrap_err();
        assert!(failed.contains("3"), "{failed}");
        let verbose = run_command("yes", &query(b""), LIMITS).unwrap_err();
        assert!(
            verbose.contains("more than max_event_payload (16 bytes)"),
            "{verbose}"
        );
        let quick = CommandLimits {
            timeout: Duration::from_millis(200),
            ..LIMITS
        };
        let started = Instant::now();
        let slow = run_command("sleep 5", &query(b""), quick).unwrap_err();
        assert!(slow.contains("killed"), "{slow}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the timeout bounds it"
        );
        let detached = run_command("exec >&-; sleep 5", &query(b""), quick).unwrap_err();
        assert!(detached.contains("did not exit in time"), "{detached}");
    }
}
