//! Sustained writes and their spread: [`WriteLoad`] says which node writes
//! when, [`WriteTracker`] follows every write until every running node
//! holds it.
//!
//! Shared by the `kv-load` scenario and the script runner. The tracker is
//! fed by the simulator's event hook ([`Sim::on_event`]), so a write's lag
//! is exact (the instant the last replica applied it), not rounded to a
//! check step.
//!
//! A replica holding version `v` of an owner holds every earlier version
//! of that owner still alive (an entry is only applied on top of the
//! versions before it), so the tracker keeps one number per (replica,
//! owner): the highest version it applied. A jump from `a` to `b` adds one
//! holder to each pending write of that owner in `a+1..=b`; writes of one
//! owner therefore complete in order, and each owner's pending writes are
//! a queue.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::Rng;

use super::{NodeId, Sim};
use crate::wire::{encode_message, Bytes, KvEntry, Message};
use crate::{Event, Time};

/// Who writes when: each writer writes every `period`, at its own random
/// phase inside the period, from `start` until `end`.
#[derive(Clone, Debug)]
pub(crate) struct WriteLoad {
    period: Duration,
    /// (phase, writer), sorted by phase.
    writers: Vec<(Duration, NodeId)>,
    end: Time,
    /// Start of the current period.
    round: Time,
    /// Next writer of the current period.
    next: usize,
    /// Bytes of every value.
    pub(crate) value_size: usize,
    /// Each writer cycles over this many keys.
    pub(crate) keys: u64,
    /// Writes issued so far.
    pub(crate) issued: u64,
}

impl WriteLoad {
    /// `writers` each writing `rate` times a second from `start` for `d`.
    pub(crate) fn new(
        writers: &[NodeId],
        rate: f64,
        start: Time,
        d: Duration,
        rng: &mut SmallRng,
    ) -> WriteLoad {
        let period = Duration::from_secs_f64(1.0 / rate);
        let mut writers: Vec<(Duration, NodeId)> = writers
            .iter()
            .map(|&n| (period.mul_f64(rng.random::<f64>()), n))
            .collect();
        writers.sort_by_key(|&(phase, n)| (phase, n.index()));
        WriteLoad {
            period,
            writers,
            end: start + d,
            round: start,
            next: 0,
            value_size: 32,
            keys: 4,
            issued: 0,
        }
    }

    /// When the next write is due and by whom, or `None` once the load
    /// ended.
    pub(crate) fn peek(&self) -> Option<(Time, NodeId)> {
        let &(phase, n) = self.writers.get(self.next)?;
        let at = self.round + phase;
        (at < self.end).then_some((at, n))
    }

    /// Issues every write due by `sim.now()` through `tracker`; writes of
    /// crashed nodes are skipped. Returns writes the endpoint refused, with
    /// the reason of the first.
    pub(crate) fn issue_due(
        &mut self,
        sim: &mut Sim,
        tracker: &Mutex<WriteTracker>,
    ) -> Result<(), String> {
        while let Some((at, n)) = self.peek() {
            if at > sim.now() {
                break;
            }
            self.next += 1;
            if self.next == self.writers.len() {
                self.next = 0;
                self.round += self.period;
            }
            if sim.status(n) == super::NodeStatus::Crashed {
                continue;
            }
            let seq = self.issued;
            self.issued += 1;
            let key = format!("load.{}", seq % self.keys);
            let value = value_bytes(seq, self.value_size);
            let version = sim
                .with_endpoint(n, |ep, now| ep.set(now, &key, &value))
                .map_err(|e| {
                    format!(
                        "{} refused a {}-byte write: {e}",
                        sim.name(n),
                        self.value_size
                    )
                })?;
            lock(tracker).written(sim, n, version);
        }
        Ok(())
    }
}

/// `size` bytes telling write `seq` apart.
fn value_bytes(seq: u64, size: usize) -> Vec<u8> {
    let mut v = vec![b'.'; size];
    let tag = seq.to_le_bytes();
    let k = tag.len().min(size);
    v[..k].copy_from_slice(&tag[..k]);
    v
}

/// Encoded size of one write's entry on the wire: what every replica must
/// receive at least once.
pub(crate) fn entry_bytes(owner: &str, version: u64, key_len: usize, value_size: usize) -> usize {
    let key = "k".repeat(key_len);
    let value = vec![0u8; value_size];
    encode_message(&Message::KvEntry(KvEntry {
        node: owner,
        generation: 1,
        base: version.saturating_sub(1),
        version,
        key: &key,
        value: Bytes(&value),
        expires_ms: 0,
        deleted: false,
    }))
    .len()
}

fn lock(t: &Mutex<WriteTracker>) -> std::sync::MutexGuard<'_, WriteTracker> {
    t.lock()
        .expect("the event hook never panics while holding the tracker")
}

/// One write not yet everywhere.
#[derive(Clone, Copy, Debug)]
struct Pending {
    version: u64,
    at: Time,
    holders: u32,
    needed: u32,
}

/// Follows writes until every running node holds them. See the module
/// docs.
#[derive(Debug)]
pub(crate) struct WriteTracker {
    n: usize,
    index: HashMap<String, u32>,
    /// `held[replica * n + owner]`: highest version of `owner` applied.
    held: Vec<u64>,
    pending: Vec<VecDeque<Pending>>,
    /// Writes not yet everywhere.
    pub(crate) backlog: u64,
    /// Lag of every completed write, in seconds.
    pub(crate) lags: Vec<f64>,
    /// Writes dropped from tracking because their owner restarted (its
    /// versions start over).
    pub(crate) abandoned: u64,
    /// Owners that restarted: replicas may hold versions of their previous
    /// life, numbered like the new ones, before the new ones are written.
    restarted: Vec<bool>,
}

impl WriteTracker {
    /// A tracker for the nodes of `sim`, installed as its event hook
    /// (replacing any other).
    pub(crate) fn install(sim: &mut Sim) -> Arc<Mutex<WriteTracker>> {
        let n = sim.len();
        let index = sim
            .nodes()
            .map(|x| (sim.name(x).to_owned(), x.index() as u32))
            .collect();
        let tracker = Arc::new(Mutex::new(WriteTracker {
            n,
            index,
            held: vec![0; n * n],
            pending: vec![VecDeque::new(); n],
            backlog: 0,
            lags: Vec::new(),
            abandoned: 0,
            restarted: vec![false; n],
        }));
        let sink = Arc::clone(&tracker);
        sim.on_event(move |t, replica, e| {
            if let Event::KeyUpdated { node, version, .. } = e {
                lock(&sink).applied(t, replica, node, *version);
            }
        });
        tracker
    }

    /// `owner` wrote `version` at `t` on `sim`; every running node must
    /// hold it.
    pub(crate) fn written(&mut self, sim: &Sim, owner: NodeId, version: u64) {
        let (n, o) = (self.n, owner.index());
        self.held[o * n + o] = version;
        let holders = if self.restarted[o] {
            // Counted as holders already: replicas past this version
            // through entries of the owner's previous life.
            sim.running()
                .filter(|r| self.held[r.index() * n + o] >= version)
                .count() as u32
        } else {
            1
        };
        self.backlog += 1;
        self.pending[o].push_back(Pending {
            version,
            at: sim.now(),
            holders,
            needed: sim.running_count() as u32,
        });
        self.complete(sim.now(), o);
    }

    fn applied(&mut self, t: Time, replica: NodeId, owner: &str, version: u64) {
        let Some(&o) = self.index.get(owner) else {
            return;
        };
        let o = o as usize;
        let cell = &mut self.held[replica.index() * self.n + o];
        if version <= *cell {
            return;
        }
        let old = std::mem::replace(cell, version);
        let queue = &mut self.pending[o];
        let first = queue.partition_point(|p| p.version <= old);
        for p in queue.range_mut(first..) {
            if p.version > version {
                break;
            }
            p.holders += 1;
        }
        self.complete(t, o);
    }

    fn complete(&mut self, t: Time, o: usize) {
        while let Some(p) = self.pending[o].front() {
            if p.holders < p.needed {
                break;
            }
            self.lags.push((t - p.at).as_secs_f64());
            self.backlog -= 1;
            self.pending[o].pop_front();
        }
    }

    /// After crashes and restarts: `restarted` nodes hold nothing any more
    /// and their own pending writes are abandoned; every pending write now
    /// needs the nodes running in `sim`, and its holders are counted
    /// again among them.
    ///
    /// A replica may still apply entries of a restarted owner's previous
    /// life after this, numbered like its new writes; it then counts as
    /// holding the new writes up to that number a little early. The lag
    /// of writes right after a restart can be underestimated, never
    /// overestimated.
    pub(crate) fn recount(&mut self, sim: &Sim, restarted: &[NodeId]) {
        let n = self.n;
        for r in restarted {
            let r = r.index();
            self.restarted[r] = true;
            self.held[r * n..(r + 1) * n]
                .iter_mut()
                .for_each(|v| *v = 0);
            for replica in 0..n {
                self.held[replica * n + r] = 0;
            }
            let dropped = self.pending[r].len() as u64;
            self.pending[r].clear();
            self.abandoned += dropped;
            self.backlog -= dropped;
        }
        let running: Vec<usize> = sim.running().map(NodeId::index).collect();
        for o in 0..n {
            for p in self.pending[o].iter_mut() {
                p.needed = running.len() as u32;
                p.holders = running
                    .iter()
                    .filter(|&&r| self.held[r * n + o] >= p.version)
                    .count() as u32;
            }
            self.complete(sim.now(), o);
        }
    }

    /// The write lags' `q`-quantile (nearest rank) in seconds, if any
    /// write completed.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        quantile(&self.lags, q)
    }
}

/// The `q`-quantile (nearest rank) of `xs`, or `None` if empty.
pub(crate) fn quantile(xs: &[f64], q: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}
