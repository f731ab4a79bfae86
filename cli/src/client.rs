//! The client commands (`vinery members`, `stats`, `leave`, `join`,
//! `info`, `get`, `set`, `delete`, `kv`, `keys`, `event`, `query`,
//! `election`, `vote`): one request to a running agent's control socket,
//! its answer printed (a query's answers as they arrive).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args};
use serde_json::Value as Json;
use vinery::security::SecretKey;

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
    run_with(args, request, render)
}

/// [`run`] with a renderer that needs the command's arguments.
fn run_with(args: ClientArgs, request: Request, render: impl FnOnce(&Json) -> String) -> ExitCode {
    run_streaming(args, request, |_| String::new(), render)
}

/// [`run_with`] for an answer that streams: each line before the response
/// printed as it arrives (`progress` for people, raw JSON with `--json`).
fn run_streaming(
    args: ClientArgs,
    request: Request,
    progress: fn(&Json) -> String,
    render: impl FnOnce(&Json) -> String,
) -> ExitCode {
    let path = args
        .control
        .unwrap_or_else(|| control::default_path(&args.name.unwrap_or_else(control::default_name)));
    let print = |text: String| {
        // stdout closed (piped into `head`): nothing more to say.
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    };
    let json = args.json;
    let shown = |line: &Json| {
        if json {
            line.to_string()
        } else {
            progress(line)
        }
    };
    match control::call(&path, &request, |line| print(shown(line))) {
        Ok(answer) => {
            print(if json {
                answer.to_string()
            } else {
                render(&answer)
            });
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `vinery members` as a table.
fn members_table(answer: &Json) -> String {
    let rows = answer["members"].as_array().into_iter().flatten().map(|m| {
        ["name", "addr", "state", "incarnation", "meta"]
            .map(|k| text(&m[k]))
            .to_vec()
    });
    table(&["NAME", "ADDRESS", "STATE", "INCARNATION", "META"], rows)
}

/// A JSON value as a table cell: strings without quotes.
fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Aligned columns under `header`, two spaces apart.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect())
        .chain(rows)
        .collect();
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

/// `vinery info` as one `name value` line per field (nested ones dotted:
/// `peers.alive 4`, `stats.endpoint.probes 120`).
pub fn info_lines(answer: &Json) -> String {
    let mut fields = answer.clone();
    if let Some(fields) = fields.as_object_mut() {
        fields.remove("ok");
    }
    let mut lines = Vec::new();
    flatten("", &fields, &mut lines);
    lines.join("\n")
}

/// Arguments of `vinery join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Members to join through: ip:port, [ipv6]:port or name:port.
    #[arg(required = true, value_name = "ADDR")]
    addrs: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `vinery join`.
pub fn join(args: JoinArgs) -> ExitCode {
    let request = Request::Join { addrs: args.addrs };
    run(args.client, request, |a| {
        let addrs: Vec<String> = a["joining"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        format!(
            "joining through {}; vinery members shows who answered",
            addrs.join(", ")
        )
    })
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
        other => out.push(format!("{prefix} {}", text(other))),
    }
}

/// `vinery leave`'s confirmation.
pub fn left(_: &Json) -> String {
    "left the cluster".into()
}

/// Parses a duration with its unit, as humantime reads it (`250ms`, `10s`,
/// `5m`, `1h 30m`), or a bare number of seconds (`0.5`, `5`: what older
/// scripts pass). clap names the flag in the error.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(seconds) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?}: {e} (expected e.g. 250ms, 10s, 5m or 1h 30m)"))
}

/// Milliseconds of `d`, as the control protocol carries durations.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Parses `A=B` (split at the first `=`), as `--set`, `--answer` and
/// `--tag` take it; clap's message names the flag and its expected form.
pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("no '=' in {s:?}"))
}

/// Parses `on` or `off`.
fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, got {s:?}")),
    }
}

/// A key in base64 (as `vinery keygen` prints).
pub fn parse_key(s: &str) -> Result<SecretKey, String> {
    SecretKey::from_base64(s).map_err(|e| e.to_string())
}

/// Arguments of `vinery members`.
#[derive(Debug, Args)]
pub struct MembersArgs {
    /// Only members in this state (repeatable: any of them).
    #[arg(long, value_name = "STATE", value_parser = ["alive", "suspect", "dead", "left"])]
    status: Vec<String>,
    /// Only members whose name matches this glob (`*` any run, `?` one
    /// character).
    #[arg(long = "node", value_name = "GLOB")]
    node: Option<String>,
    /// Only members with a tag KEY whose value matches GLOB, e.g.
    /// role=web* (repeatable: all must match).
    #[arg(long = "tag", value_name = "KEY=GLOB", value_parser = parse_pair)]
    tags: Vec<(String, String)>,
    #[command(flatten)]
    client: ClientArgs,
}

/// `KEY=GLOB` conditions as the control protocol carries them.
fn tag_texts(tags: &[(String, String)]) -> Vec<String> {
    tags.iter().map(|(k, g)| format!("{k}={g}")).collect()
}

/// Runs `vinery members`.
pub fn members(args: MembersArgs) -> ExitCode {
    let request = Request::Members {
        status: args.status,
        node: args.node,
        tags: tag_texts(&args.tags),
    };
    run(args.client, request, members_table)
}

/// Arguments of `vinery get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The key.
    key: String,
    /// Whose key [default: the agent's own].
    #[arg(long)]
    node: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `vinery set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The key.
    key: String,
    /// The value (text).
    value: String,
    /// Time to live, e.g. 10s, 5m, 250ms [default: no expiry].
    #[arg(long, value_parser = parse_duration)]
    ttl: Option<Duration>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `vinery delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The key.
    key: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `vinery kv`.
#[derive(Debug, Args)]
pub struct KvArgs {
    /// Only keys starting with this.
    #[arg(long, conflicts_with = "glob")]
    prefix: Option<String>,
    /// Only keys matching this glob (`*` any run, `?` one character).
    #[arg(long)]
    glob: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `vinery keys`: exactly one action.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("action").required(true)))]
pub struct KeysArgs {
    /// Install a key (base64): accepted from now on.
    #[arg(long, value_name = "KEY", value_parser = parse_key, group = "action")]
    install: Option<SecretKey>,
    /// Make an installed key the primary, the one the agent seals with.
    #[arg(long = "use", value_name = "KEY", value_parser = parse_key, group = "action")]
    use_key: Option<SecretKey>,
    /// Remove a key (not the primary).
    #[arg(long, value_name = "KEY", value_parser = parse_key, group = "action")]
    remove: Option<SecretKey>,
    /// List the keyring's fingerprints, primary first.
    #[arg(long, group = "action")]
    list: bool,
    /// Migration switch, live: with keys, keep sending plaintext (on), or
    /// seal everything sent (off).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off, group = "action")]
    send_plaintext: Option<bool>,
    /// Migration switch, live: with keys, keep accepting plaintext (on),
    /// or drop it (off).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off, group = "action")]
    accept_plaintext: Option<bool>,
    /// Install, use, remove or list on this agent only [default: on every
    /// live member; the migration switches are always this agent's].
    #[arg(long)]
    local: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `vinery event`.
#[derive(Debug, Args)]
pub struct EventArgs {
    /// The event's name, e.g. deploy.web. (Not `name`: that is the
    /// `--name` flag's id, and clap refuses two arguments with one id.)
    #[arg(value_name = "NAME")]
    event_name: String,
    /// Its payload (text).
    #[arg(default_value = "")]
    payload: String,
    /// How long it lives: nodes that join meanwhile receive it too.
    #[arg(long = "for", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    lifetime: Duration,
    /// Receivers keep only the latest event of this name per coalescing
    /// window (500 ms), e.g. for "the config changed".
    #[arg(long)]
    coalesce: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `vinery query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The query's name (the answering agents' --answer globs match it).
    #[arg(value_name = "NAME")]
    query_name: String,
    /// Its payload (text).
    #[arg(default_value = "")]
    payload: String,
    /// How long answers are taken; the command returns then, or as soon
    /// as every expected node has answered.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Wait for responses only: acks are neither printed nor waited for
    /// (a node that responded is done even if its ack was lost).
    #[arg(long)]
    no_ack: bool,
    /// Only this node answers (repeatable) [default: every other node].
    #[arg(long = "node", value_name = "NAME")]
    nodes: Vec<String>,
    /// Only nodes with a tag KEY whose value matches GLOB answer, e.g.
    /// role=web* (repeatable: all must match).
    #[arg(long = "tag", value_name = "KEY=GLOB", value_parser = parse_pair)]
    tags: Vec<(String, String)>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `vinery election`.
#[derive(Debug, Args)]
pub struct ElectionArgs {
    /// What is being decided.
    topic: String,
    /// Yes votes that make a quorum.
    #[arg(long)]
    min: u32,
    /// The electorate's size (use min > total / 2 for a majority).
    #[arg(long)]
    total: u32,
    /// How long votes are counted.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    expire: Duration,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `vinery vote`.
#[derive(Debug, Args)]
pub struct VoteArgs {
    /// The election's topic.
    topic: String,
    /// The vote (final: one per node and topic).
    #[arg(value_parser = ["yes", "no"])]
    vote: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `vinery get`.
pub fn get(args: GetArgs) -> ExitCode {
    let request = Request::Get {
        key: args.key,
        node: args.node,
    };
    run(args.client, request, value_text)
}

/// Runs `vinery set`.
pub fn set(args: SetArgs) -> ExitCode {
    let request = Request::Set {
        key: args.key,
        value: args.value,
        ttl_ms: args.ttl.map(millis),
    };
    run(args.client, request, |a| {
        format!("set (v{})", text(&a["version"]))
    })
}

/// Runs `vinery delete`.
pub fn delete(args: DeleteArgs) -> ExitCode {
    let request = Request::Delete { key: args.key };
    run(args.client, request, |a| match &a["version"] {
        Json::Null => "not set: nothing to delete".into(),
        v => format!("deleted (v{})", text(v)),
    })
}

/// Runs `vinery kv`.
pub fn kv(args: KvArgs) -> ExitCode {
    let request = Request::Kv {
        prefix: args.prefix,
        glob: args.glob,
    };
    run(args.client, request, kv_table)
}

/// Runs `vinery keys`.
pub fn keys(args: KeysArgs) -> ExitCode {
    let b64 = |k: Option<SecretKey>| k.map(|k| k.to_base64());
    let switch = args.send_plaintext.is_some() || args.accept_plaintext.is_some();
    let request = Request::Keys {
        install: b64(args.install),
        use_key: b64(args.use_key),
        remove: b64(args.remove),
        send_plaintext: args.send_plaintext,
        accept_plaintext: args.accept_plaintext,
        cluster: !args.local && !switch,
        list: args.list,
    };
    run(args.client, request, |answer| {
        if answer.get("summary").is_some() {
            cluster_keys_lines(answer)
        } else {
            keyring_lines(answer)
        }
    })
}

/// A cluster-wide `vinery keys`: the summary, then each key with the
/// nodes holding it (and sealing with it).
fn cluster_keys_lines(answer: &Json) -> String {
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    let mut holders: std::collections::BTreeMap<String, (Vec<String>, usize)> =
        std::collections::BTreeMap::new();
    for r in &results {
        for k in r["keys"].as_array().into_iter().flatten() {
            let entry = holders.entry(text(&k["fingerprint"])).or_default();
            entry.0.push(text(&r["node"]));
            entry.1 += usize::from(k["primary"] == true);
        }
    }
    let mut lines = vec![text(&answer["summary"])];
    for (print, (nodes, primary)) in holders {
        lines.push(format!(
            "{print}  held by {}/{} ({primary} seal with it): {}",
            nodes.len(),
            results.len(),
            nodes.join(", ")
        ));
    }
    lines.join("\n")
}

/// Runs `vinery event`: prints the event's id.
pub fn event(args: EventArgs) -> ExitCode {
    let request = Request::Event {
        name: args.event_name,
        payload: args.payload,
        duration_ms: millis(args.lifetime),
        coalesce: args.coalesce,
    };
    run(args.client, request, |a| text(&a["id"]))
}

/// Runs `vinery query`: prints the answers as they arrive, then a summary.
pub fn query(args: QueryArgs) -> ExitCode {
    let request = Request::Query {
        name: args.query_name,
        payload: args.payload,
        timeout_ms: millis(args.timeout),
        nodes: args.nodes,
        tags: tag_texts(&args.tags),
        stream: true,
        no_ack: args.no_ack,
    };
    run_streaming(args.client, request, query_answer_line, query_summary)
}

/// Runs `vinery election`.
pub fn election(args: ElectionArgs) -> ExitCode {
    let (min, total) = (args.min, args.total);
    let request = Request::Election {
        topic: args.topic.clone(),
        expire_ms: millis(args.expire),
        min,
        total,
    };
    let topic = args.topic;
    run_with(args.client, request, move |_| {
        format!(
            "election on {topic} created: quorum at {min} of {total} yes votes; the agent \
             prints quorum or election_expired"
        )
    })
}

/// Runs `vinery vote`.
pub fn vote(args: VoteArgs) -> ExitCode {
    let request = Request::Vote {
        topic: args.topic.clone(),
        yes: args.vote == "yes",
    };
    let (vote, topic) = (args.vote, args.topic);
    run_with(args.client, request, move |_| {
        format!("voted {vote} on {topic}")
    })
}

/// Arguments of `vinery force-leave`.
#[derive(Debug, Args)]
pub struct ForceLeaveArgs {
    /// The failed member's name. (Not `name`: that is the `--name` flag's
    /// id.)
    #[arg(value_name = "NAME")]
    member: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `vinery force-leave`.
pub fn force_leave(args: ForceLeaveArgs) -> ExitCode {
    let member = args.member.clone();
    let request = Request::ForceLeave { node: args.member };
    run_with(args.client, request, move |_| {
        format!("{member} marked as left; every member hears it through gossip")
    })
}

/// Arguments of `vinery tags`.
#[derive(Debug, Args)]
pub struct TagsArgs {
    /// Set a tag, e.g. role=db (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Delete a tag (repeatable).
    #[arg(long = "delete", value_name = "KEY")]
    delete: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `vinery tags`: the agent's tags after the change, one `key=value`
/// a line.
pub fn tags(args: TagsArgs) -> ExitCode {
    let request = Request::Tags {
        set: args.set,
        delete: args.delete,
    };
    run(args.client, request, |answer| {
        let tags = answer["tags"].as_object().cloned().unwrap_or_default();
        let lines: Vec<String> = tags
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect();
        lines.join("\n")
    })
}

/// Arguments of `vinery monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Only events of this kind, e.g. member_failed, user_event
    /// (repeatable) [default: every kind].
    #[arg(long = "kind", value_name = "KIND", value_parser = parse_event_kind)]
    kinds: Vec<vinery::EventKind>,
    #[command(flatten)]
    client: ClientArgs,
}

fn parse_event_kind(s: &str) -> Result<vinery::EventKind, String> {
    s.parse()
}

/// Runs `vinery monitor`: the agent's event lines as they happen (JSON
/// objects with `--json`, as the agent's own `--json` prints them) until
/// interrupted or the agent exits.
pub fn monitor(mut args: MonitorArgs) -> ExitCode {
    let request = Request::Monitor {
        kinds: args.kinds.iter().map(|k| k.name().to_string()).collect(),
        json: args.client.json,
    };
    // The agent makes the lines JSON or not: each is printed as it comes.
    args.client.json = false;
    run_streaming(
        args.client,
        request,
        |line| text(&line["line"]),
        |_| "the agent stopped".to_string(),
    )
}

/// One answer to `vinery query` as it arrives: `ack  b`, or
/// `response  b  pong`.
fn query_answer_line(line: &Json) -> String {
    let from = text(&line["from"]);
    match line["event"].as_str() {
        Some("query_response") => format!("response  {from}  {}", bytes_text(line, "payload")),
        Some("query_ack") => format!("ack       {from}"),
        _ => line.to_string(),
    }
}

/// The end of `vinery query`: the counts, and whether every expected node
/// answered or which did not before the timeout.
fn query_summary(answer: &Json) -> String {
    let count = |field: &str| answer[field].as_array().map_or(0, Vec::len);
    let names = |field: &str| -> Vec<String> {
        answer[field]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect()
    };
    let counts = format!("{} acks, {} responses", count("acks"), count("responses"));
    let expected = names("expected");
    if answer["complete"] == true && expected.is_empty() {
        format!("{counts}; no live member matched the query")
    } else if answer["complete"] == true {
        format!(
            "{counts}; every expected node answered ({})",
            expected.join(", ")
        )
    } else {
        format!(
            "{counts}; timed out waiting for {}",
            names("missing").join(", ")
        )
    }
}

/// `vinery get`: the value alone (base64, marked, if it is not text).
fn value_text(answer: &Json) -> String {
    bytes_text(answer, "value")
}

/// The bytes field `field` of `j` as text: as is, or its base64 form
/// (marked) when it is not UTF-8 (see `control::insert_bytes`).
fn bytes_text(j: &Json, field: &str) -> String {
    match j[format!("{field}_base64")].as_str() {
        Some(b) => format!("(not UTF-8; base64) {b}"),
        None => text(&j[field]),
    }
}

/// `vinery kv` as a table; expiries as the time left.
fn kv_table(answer: &Json) -> String {
    let now = control::millis_since_epoch(std::time::SystemTime::now());
    let rows = answer["entries"].as_array().into_iter().flatten().map(|e| {
        let expires = match e["expires_ms"].as_u64() {
            Some(at) => {
                let left = u128::from(at).saturating_sub(now);
                format!("in {:.1}s", left as f64 / 1000.0)
            }
            None => "never".into(),
        };
        vec![
            text(&e["node"]),
            text(&e["key"]),
            value_text(e),
            text(&e["version"]),
            expires,
        ]
    });
    table(&["NODE", "KEY", "VALUE", "VERSION", "EXPIRES"], rows)
}

/// `vinery keys`: one fingerprint per line, the primary marked, then the
/// migration switches (when the agent reports them).
fn keyring_lines(answer: &Json) -> String {
    let lines: Vec<String> = answer["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            let primary = if k["primary"] == true {
                "  (primary)"
            } else {
                ""
            };
            format!("{}{primary}", text(&k["fingerprint"]))
        })
        .chain(
            ["send_plaintext", "accept_plaintext"]
                .iter()
                .filter_map(|switch| {
                    let on = answer[switch].as_bool()?;
                    Some(format!("{switch}: {}", if on { "on" } else { "off" }))
                }),
        )
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        let ok = [
            ("250ms", 250),
            ("10s", 10_000),
            ("10", 10_000),
            ("5m", 300_000),
            ("1m 30s", 90_000),
            ("1.5m", 90_000),
            ("0.5", 500),
            ("1h", 3_600_000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for bad in ["", "s", "10x", "-1s", "-1", "1e400", "inf", "NaN"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
