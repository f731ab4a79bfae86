//! `vinery keys --install|--use|--remove|--list` on every member, as
//! serf's key manager does: the agent applies the change to itself and
//! asks every live member through the internal query [`KEYS_QUERY`],
//! which every agent answers with its result and its keyring; the answer
//! lists each node's result, and the nodes that did not answer.
//!
//! Nothing here isolates a node silently: `--use` is refused unless every
//! live member holds the key (naming those that do not), `--remove` is
//! refused while any member seals with the key, and an agent that accepts
//! plaintext refuses keyring changes from the network (anyone on the
//! network could send them; during a migration to encryption, install
//! with `vinery keys --local` on each agent). Install never makes a key
//! the primary: a node without keys refuses it, as `--local` does, unless
//! its migration switches keep it speaking plaintext. The agents print
//! these queries without their payloads (which carry keys).

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};
use vinery::runtime::{Node, NodeError};
use vinery::security::SecretKey;
use vinery::QueryFilter;

use crate::agent::Settings;
use crate::control;
use crate::control_server::{ClientWriter, Fields};
use crate::requests::{change_keys, expected_answerers, KeysChange, QueryWait};

/// The internal query every agent answers with its keyring change's
/// result (names starting `_vinery.` are the agents' own).
pub const KEYS_QUERY: &str = "_vinery.keys";

/// How long the members have to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// What a keys query asks each member to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum KeyOp {
    /// Report the keyring.
    List,
    /// Install this key (base64) for receiving.
    Install {
        /// The key, base64.
        key: String,
    },
    /// Seal with this installed key (base64).
    Use {
        /// The key, base64.
        key: String,
    },
    /// Remove this key (base64).
    Remove {
        /// The key, base64.
        key: String,
    },
}

impl KeyOp {
    fn key(&self) -> Option<&str> {
        match self {
            KeyOp::List => None,
            KeyOp::Install { key } | KeyOp::Use { key } | KeyOp::Remove { key } => Some(key),
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            KeyOp::List => "listed",
            KeyOp::Install { .. } => "installed",
            KeyOp::Use { .. } => "now seal with",
            KeyOp::Remove { .. } => "removed",
        }
    }
}

/// Answers [`KEYS_QUERY`] on `node`'s behalf (registered before the node
/// starts, so that none arrives unanswered; `node` is weak: the node
/// owns its handlers).
pub fn register(node: &Arc<Node>, settings: Arc<Settings>) -> Result<(), String> {
    let weak: Weak<Node> = Arc::downgrade(node);
    node.on_query(KEYS_QUERY, move |q| {
        let node = weak.upgrade()?;
        let result = serde_json::from_slice::<KeyOp>(&q.payload)
            .map_err(|e| format!("bad keys request: {e}"))
            .and_then(|op| {
                if op.key().is_some() {
                    log::info!("{}: keyring change asked by {}", node.name(), q.from);
                }
                apply(&node, &op, &settings, true)
            });
        Some(control::json_line(&result_json(result)))
    })
    .map_err(|e| e.to_string())
}

/// Applies `op` to this node: its keyring after, or why not. `remote`:
/// asked by another node (refused while plaintext is accepted).
fn apply(node: &Node, op: &KeyOp, settings: &Settings, remote: bool) -> Result<Json, String> {
    let accepts_plaintext = {
        let protocol = node.config().protocol;
        protocol.keys.is_empty() || protocol.accept_plaintext
    };
    if let Some(b64) = op.key() {
        if remote && accepts_plaintext {
            return Err(
                "this node accepts plaintext, so anyone could send keyring changes: \
                 refused from the network (use vinery keys --local on each agent)"
                    .into(),
            );
        }
        let change = match op {
            KeyOp::Install { .. } => KeysChange::Install(b64.to_string()),
            KeyOp::Use { .. } => KeysChange::Use(b64.to_string()),
            _ => KeysChange::Remove(b64.to_string()),
        };
        change_keys(node, change, settings)?;
    }
    let keys = node.keys().map_err(|e: NodeError| e.to_string())?;
    Ok(control::keyring_json(&keys))
}

fn result_json(result: Result<Json, String>) -> Json {
    match result {
        Ok(keys) => json!({"ok": true, "keys": keys}),
        Err(error) => json!({"ok": false, "error": error}),
    }
}

/// Runs `op` on every live member, this node included: each node's
/// result (`results`: `node`, `ok`, `keys` or `error`), the nodes that
/// did not answer (`missing`), a summary line (`summary`), and this
/// agent's keyring and switches as a local `keys` answers them.
pub fn run(
    node: &Node,
    op: KeyOp,
    settings: &Settings,
    client: &mut ClientWriter,
) -> Result<Fields, String> {
    let protocol = node.config().protocol;
    if op.key().is_some()
        && (protocol.keys.is_empty() || protocol.send_plaintext || protocol.accept_plaintext)
    {
        return Err(
            "this agent speaks plaintext (no keys, or a migration switch on): the key \
             would cross the network unsealed; use vinery keys --local on each agent"
                .into(),
        );
    }
    let key = op.key().map(SecretKey::from_base64).transpose();
    let fingerprint = key.map_err(|e| e.to_string())?.map(|k| k.fingerprint());
    if let (Some(print), KeyOp::Use { .. } | KeyOp::Remove { .. }) = (&fingerprint, &op) {
        let (lists, missing) = ask_everyone(node, &KeyOp::List, settings, client)?;
        if !missing.is_empty() {
            return Err(format!(
                "refused: {} did not answer, so it cannot be checked that the change isolates \
                 nobody",
                missing.join(", ")
            ));
        }
        refuse_isolating(&op, print, &lists)?;
    }
    let (results, missing) = ask_everyone(node, &op, settings, client)?;
    let succeeded = results.iter().filter(|(_, r)| r["ok"] == true).count();
    let total = results.len() + missing.len();
    let summary = match &fingerprint {
        Some(print) => format!("{succeeded}/{total} nodes {} key {print}", op.verb()),
        None => format!("{succeeded}/{total} nodes listed their keys"),
    };
    let mut fields = Map::new();
    fields.insert("summary".into(), json!(summary));
    let results: Vec<Json> = results
        .into_iter()
        .map(|(name, mut r)| {
            r["node"] = json!(name);
            r
        })
        .collect();
    fields.insert("results".into(), Json::Array(results));
    fields.insert("missing".into(), json!(missing));
    // This agent's keyring and switches, as a local `keys` answers them.
    let keys = node.keys().map_err(|e| e.to_string())?;
    fields.insert("keys".into(), control::keyring_json(&keys));
    fields.insert("send_plaintext".into(), json!(protocol.send_plaintext));
    fields.insert("accept_plaintext".into(), json!(protocol.accept_plaintext));
    if succeeded < total {
        let failed = fields["results"].as_array().into_iter().flatten();
        let why: Vec<String> = failed
            .filter(|r| r["ok"] != true)
            .map(|r| format!("{}: {}", r["node"].as_str().unwrap_or("?"), r["error"]))
            .chain(missing_lines(&fields))
            .collect();
        return Err(format!("{summary}; {}", why.join("; ")));
    }
    Ok(fields)
}

fn missing_lines(fields: &Fields) -> Vec<String> {
    let missing = fields["missing"].as_array().into_iter().flatten();
    missing
        .map(|n| format!("{}: no answer", n.as_str().unwrap_or("?")))
        .collect()
}

/// `--use` of a key some node lacks, or `--remove` of a key some node
/// seals with, would cut those nodes off: refused, naming them.
fn refuse_isolating(op: &KeyOp, print: &str, lists: &[(String, Json)]) -> Result<(), String> {
    let holds = |r: &Json, primary_only: bool| {
        r["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["fingerprint"] == print && (!primary_only || k["primary"] == true))
    };
    let (blocking, why): (Vec<&String>, &str) = match op {
        KeyOp::Use { .. } => (
            lists
                .iter()
                .filter(|(_, r)| !holds(r, false))
                .map(|(n, _)| n)
                .collect(),
            "do not hold the key (install it everywhere first)",
        ),
        _ => (
            lists
                .iter()
                .filter(|(_, r)| holds(r, true))
                .map(|(n, _)| n)
                .collect(),
            "seal with the key (use another everywhere first)",
        ),
    };
    if blocking.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = blocking.iter().map(|n| n.as_str()).collect();
    Err(format!("refused: key {print}: {} {why}", names.join(", ")))
}

/// Each node's result (name, result JSON), and the members that did not
/// answer.
type Answers = (Vec<(String, Json)>, Vec<String>);

/// Applies `op` here and asks every live member to: each node's result,
/// this node first, and the members that did not answer in time.
fn ask_everyone(
    node: &Node,
    op: &KeyOp,
    settings: &Settings,
    client: &mut ClientWriter,
) -> Result<Answers, String> {
    let mut results = vec![(
        node.name().to_string(),
        result_json(apply(node, op, settings, false)),
    )];
    let filter = QueryFilter::default();
    let expected = expected_answerers(node, &filter).map_err(|e| e.to_string())?;
    let payload = serde_json::to_vec(op).expect("key requests serialize");
    let handle = node
        .query(KEYS_QUERY, &payload, ANSWER_WITHIN, &filter)
        .map_err(|e| e.to_string())?;
    let wait = QueryWait {
        handle,
        expected,
        stream: false,
        no_ack: true,
    };
    let answers = wait.answer(client)?;
    for response in answers["responses"].as_array().into_iter().flatten() {
        let from = response["node"].as_str().unwrap_or("?").to_string();
        let payload = response["payload"].as_str().unwrap_or("");
        let result = serde_json::from_str(payload)
            .unwrap_or_else(|e| json!({"ok": false, "error": format!("bad answer: {e}")}));
        results.push((from, result));
    }
    let missing = answers["missing"].as_array().into_iter().flatten();
    let missing = missing
        .filter_map(|n| n.as_str().map(String::from))
        .collect();
    Ok((results, missing))
}
