//! Seeds: `host:port` strings (IP literals, `[v6]:port`, DNS names) turned
//! into addresses. Names are resolved on a helper thread so a slow resolver
//! never stalls the event loop (or, in a host, every other node); while the
//! node has not joined, names that failed are tried again every
//! `join_retry_interval`, so seeds may appear in DNS after the node starts.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::Time;

/// What resolving a list of specs gave.
#[derive(Debug, Default)]
pub(crate) struct Resolution {
    /// Addresses of the socket's family, deduplicated, in spec order.
    pub addrs: Vec<SocketAddr>,
    /// Specs that gave no usable address, with why.
    pub failures: Vec<(String, String)>,
}

/// Whether resolving `specs` needs no DNS (every one is an IP literal).
pub(crate) fn all_literal(specs: &[String]) -> bool {
    specs.iter().all(|s| s.parse::<SocketAddr>().is_ok())
}

/// Resolves every spec, keeping addresses of the socket's family only (an
/// IPv4 socket cannot send to an IPv6 address, and a name such as
/// `localhost` often has both).
pub(crate) fn resolve_all(specs: &[String], ipv6: bool) -> Resolution {
    let mut out = Resolution::default();
    for spec in specs {
        let found = match spec.to_socket_addrs() {
            Ok(addrs) => addrs.filter(|a| a.is_ipv6() == ipv6).collect::<Vec<_>>(),
            Err(e) => {
                out.failures.push((spec.clone(), e.to_string()));
                continue;
            }
        };
        if found.is_empty() {
            let family = if ipv6 { "IPv6" } else { "IPv4" };
            out.failures
                .push((spec.clone(), format!("no {family} address")));
        }
        for a in found {
            if !out.addrs.contains(&a) {
                out.addrs.push(a);
            }
        }
    }
    out
}

/// A node's seeds and how far their resolution got.
pub(crate) struct Seeds {
    pub specs: Vec<String>,
    /// Every address resolved so far: the join goes to all of them.
    pub known: Vec<SocketAddr>,
    /// A resolution is running on a helper thread.
    pub in_flight: bool,
    /// When to resolve again, if some spec failed.
    pub retry_at: Option<Time>,
}

impl Seeds {
    pub(crate) fn new(specs: Vec<String>) -> Seeds {
        Seeds {
            specs,
            known: Vec::new(),
            in_flight: false,
            retry_at: None,
        }
    }

    /// Merges a resolution; returns whether it found new addresses.
    pub(crate) fn merge(&mut self, found: &Resolution) -> bool {
        let before = self.known.len();
        for a in &found.addrs {
            if !self.known.contains(a) {
                self.known.push(*a);
            }
        }
        self.known.len() > before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_names_and_families() {
        let specs: Vec<String> = ["127.0.0.1:7946", "[::1]:7946", "localhost:7000", "nope"]
            .map(String::from)
            .to_vec();
        assert!(!all_literal(&specs));
        assert!(all_literal(&specs[..2]));
        let v4 = resolve_all(&specs, false);
        assert_eq!(v4.addrs[0], "127.0.0.1:7946".parse().unwrap());
        assert!(v4.addrs.contains(&"127.0.0.1:7000".parse().unwrap()));
        assert!(v4.addrs.iter().all(SocketAddr::is_ipv4));
        let failed: Vec<&str> = v4.failures.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(failed, ["[::1]:7946", "nope"]);
        let v6 = resolve_all(&specs[1..2], true);
        assert_eq!(v6.addrs, ["[::1]:7946".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn merge_reports_new_addresses_only() {
        let mut seeds = Seeds::new(Vec::new());
        let r = Resolution {
            addrs: vec!["127.0.0.1:1".parse().unwrap()],
            failures: Vec::new(),
        };
        assert!(seeds.merge(&r));
        assert!(!seeds.merge(&r));
    }
}
