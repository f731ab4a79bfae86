//! The client commands (`vinery members`, `vinery stats`, `vinery leave`):
//! one request to a running agent's control socket, its answer printed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value as Json;

use crate::control::{self, Request};

/// Arguments every client command takes.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The agent's control socket [default: the default socket of --name].
    #[arg(long)]
    control: Option<PathBuf>,
    /// The agent's node name, to find its default control socket
    /// [default: the host name].
    #[arg(long)]
    name: Option<String>,
    /// Print the agent's answer as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Sends `request` to the agent and prints the answer (`render` for
/// people, the raw JSON with `--json`).
pub fn run(args: ClientArgs, request: Request, render: fn(&Json) -> String) -> ExitCode {
    let path = args
        .control
        .unwrap_or_else(|| control::default_path(&args.name.unwrap_or_else(control::default_name)));
    // A leave waits for the agent to finish leaving.
    let timeout = Duration::from_secs(60);
    match control::call(&path, &request, timeout) {
        Ok(answer) => {
            let text = if args.json {
                answer.to_string()
            } else {
                render(&answer)
            };
            // stdout closed (piped into `head`): nothing more to say.
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `vinery members` as a table.
pub fn members_table(answer: &Json) -> String {
    let header = ["NAME", "ADDRESS", "STATE", "INCARNATION", "META"].map(String::from);
    let mut rows = vec![header.to_vec()];
    for m in answer["members"].as_array().into_iter().flatten() {
        let field = |k: &str| match &m[k] {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        rows.push(
            ["name", "addr", "state", "incarnation", "meta"]
                .map(field)
                .to_vec(),
        );
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect();
    lines.join("\n")
}

/// `vinery stats` as one `name value` line per counter.
pub fn stats_lines(answer: &Json) -> String {
    let mut lines = Vec::new();
    flatten("", &answer["stats"], &mut lines);
    lines.join("\n")
}

fn flatten(prefix: &str, v: &Json, out: &mut Vec<String>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Json::Object(fields) => {
            for (k, v) in fields {
                flatten(&key(k), v, out);
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&key(&i.to_string()), v, out);
            }
        }
        other => out.push(format!("{prefix} {other}")),
    }
}

/// `vinery leave`'s confirmation.
pub fn left(_: &Json) -> String {
    "left the cluster".into()
}
