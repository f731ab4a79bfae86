//! [`Host`]: one thread running many nodes, so that hundreds of real UDP
//! members fit on a small machine (tests, benchmarks, simulations against
//! the real network stack).

use std::sync::Arc;

use super::error::NodeError;
use super::node::{Node, NodeConfig};
use super::reactor::ReactorHandle;

/// One event-loop thread shared by many [`Node`]s. Each hosted node has its
/// own socket, endpoint and subscriptions, and the same API as a standalone
/// node; they share one `mio::Poll`, one timer heap over all their
/// deadlines, and one command channel.
///
/// ```no_run
/// use vinery::runtime::{Host, NodeConfig};
/// use vinery::Config;
///
/// let host = Host::new()?;
/// let mut nodes = Vec::new();
/// for i in 0..256 {
///     let config = NodeConfig::new(Config::lan().with_name(format!("n{i}")), "127.0.0.1:0".parse()?);
///     let mut node = host.node(config.with_seeds(nodes.first().map(|n: &vinery::runtime::Node| {
///         n.local_addr().unwrap().to_string()
///     })));
///     node.start()?;
///     nodes.push(node);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Host {
    reactor: Arc<ReactorHandle>,
}

impl Host {
    /// Starts the host's thread. It ends when the host and every node
    /// placed on it are dropped.
    pub fn new() -> Result<Host, NodeError> {
        Ok(Host {
            reactor: Arc::new(ReactorHandle::spawn("vinery host".into())?),
        })
    }

    /// A node that runs on this host's thread whenever it is started.
    pub fn node(&self, config: NodeConfig) -> Node {
        Node::placed(config, Some(self.reactor.clone()))
    }
}
