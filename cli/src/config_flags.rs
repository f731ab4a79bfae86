//! The agent's configuration errors in the user's terms: each names the
//! flag that was typed, not the library's field (`--name`, not
//! `max_value_len`, which the command line does not expose).

use std::net::SocketAddr;

use vinery::runtime::{NodeConfig, NodeError};
use vinery::{ConfigError, KvError};

/// Checks `config` as [`NodeConfig::validate`] does, blaming the flag,
/// and that every `--join` has the form a seed can ever resolve from.
pub fn validate(config: &NodeConfig) -> Result<(), String> {
    config.validate().map_err(|e| blame(&e, config))?;
    match config.seeds.iter().find(|s| !seed_form(s)) {
        // The runtime would log it on every join retry, never joining.
        Some(seed) => Err(format!(
            "--join {seed}: expected ip:port, [ipv6]:port or name:port"
        )),
        None => Ok(()),
    }
}

/// Whether `seed` is an address or a `name:port` (a name that does not
/// resolve yet may later: the runtime retries it). A host with a colon
/// that is not a bracketed IPv6 address is no name.
fn seed_form(seed: &str) -> bool {
    seed.parse::<SocketAddr>().is_ok()
        || seed.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok()
        })
}

/// `error` in terms of the agent's flags.
fn blame(error: &ConfigError, config: &NodeConfig) -> String {
    let reason = &error.reason;
    match error.field {
        // The only limit on the name the command line can break besides
        // its own: a key/value entry carries the owner's name, and the
        // preset's largest value must still fit a datagram with it.
        "name" | "max_value_len" => {
            let name = &config.protocol.name;
            if name.is_empty() {
                "--name: must not be empty".into()
            } else {
                format!(
                    "--name: at most {} bytes, got {}",
                    longest_name(config),
                    name.len()
                )
            }
        }
        "cluster_name" => format!(
            "--cluster: {reason}, got {}",
            config.protocol.cluster_name.len()
        ),
        "meta" => format!("--meta: {reason}"),
        "advertise" => format!("--advertise: {reason}"),
        // The rest come from --profile's preset, which is valid: only a
        // library change reaches here.
        _ => format!("--profile: {error}"),
    }
}

/// The longest name `config` accepts (every other field as it is).
fn longest_name(config: &NodeConfig) -> usize {
    let fits = |len: usize| {
        let mut c = config.protocol.clone();
        c.name = "n".repeat(len);
        !matches!(c.validate(), Err(e) if e.field == "name" || e.field == "max_value_len")
    };
    // `fits` holds up to the limit and not beyond: find the edge.
    let (mut lo, mut hi) = (0, config.protocol.name.len());
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// A failed start of the node, naming the flag when one is to blame.
pub fn start_error(error: NodeError, config: &NodeConfig) -> String {
    match error {
        NodeError::Config(e) => blame(&e, config),
        NodeError::Io { what, source } if what.starts_with("bind") => {
            format!("--bind {}: {source}", config.bind)
        }
        other => other.to_string(),
    }
}

/// A refused `--set KEY=VALUE` (or its `--ttl`), in the flags' terms.
pub fn set_error(key: &str, error: NodeError) -> String {
    match error {
        NodeError::Kv(KvError::EmptyKey) => "--set: the key must not be empty".into(),
        NodeError::Kv(KvError::KeyTooLong { len, max }) => {
            format!("--set {key}=…: the key is at most {max} bytes, got {len}")
        }
        NodeError::Kv(KvError::ValueTooLarge { len, max }) => {
            format!("--set {key}=…: the value is at most {max} bytes with this key, got {len}")
        }
        NodeError::Kv(KvError::TooManyKeys { max }) => {
            format!("--set: at most {max} keys")
        }
        NodeError::Kv(KvError::ExpiryInPast) => "--ttl: must be positive".into(),
        other => format!("--set {key}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_need_a_host_and_a_port() {
        for ok in [
            "127.0.0.1:7946",
            "[::1]:7946",
            "seed.example:7946",
            "localhost:1",
        ] {
            assert!(seed_form(ok), "{ok}");
        }
        for bad in ["seed.example", ":7946", "host:", "host:99999", "::1"] {
            assert!(!seed_form(bad), "{bad}");
        }
    }

    #[test]
    fn a_name_too_long_for_a_datagram_is_blamed_on_name() {
        let protocol = vinery::Config::lan().with_name("n".repeat(200));
        let config = NodeConfig::loopback(protocol);
        let error = validate(&config).unwrap_err();
        assert!(error.starts_with("--name: at most "), "{error}");
        assert!(error.ends_with("bytes, got 200"), "{error}");
        let longest: usize = error["--name: at most ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut fits = config.clone();
        fits.protocol.name = "n".repeat(longest);
        assert_eq!(validate(&fits), Ok(()));
        fits.protocol.name.push('n');
        assert!(validate(&fits).is_err());
    }
}
