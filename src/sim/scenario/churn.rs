//! The `churn` scenario: nodes keep restarting while the cluster holds
//! keys; at the end, nobody may see a member or a key wrongly.
//!
//! After the cluster converged, every node sets [`KEYS`] keys. Then, each
//! minute ([`ROUND`]) of the run:
//!
//! * [`ScenarioConfig::churn_count`] distinct random nodes crash, each at a
//!   random moment of the minute, and restart with the same name
//!   [`DOWN`] later (joining through three random running nodes); a
//!   restarted node sets [`KEYS`] fresh keys under its new life at once.
//!   Every victim is back before the minute ends.
//! * As many other random nodes each delete one of their keys and set a
//!   fresh one in its place.
//!
//! Then the cluster settles for the longest suspicion timeout plus 30 s
//! with nothing happening, and the views are compared with the truth (see
//! `churn_wrong`).
//!
//! [`ScenarioConfig::churn_count`]: super::ScenarioConfig::churn_count

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::harness::{Outcome, Run, CHECK_STEP};
use crate::sim::{NodeId, NodeStatus, Sim};
use crate::{KeyPattern, MemberState, Time};

/// How often a round of restarts and deletes starts.
pub const ROUND: Duration = Duration::from_secs(60);

/// Keys each node sets at the start, and each restarted node under its new
/// life.
pub const KEYS: usize = 3;

/// How long a restarted node stays down: uniformly from 1 s (well within
/// the suspicion timeout: its old life is still listed alive and must be
/// refuted) to 10 s (longer than the minimum suspicion timeout of small
/// clusters: its old life may already be Dead).
pub const DOWN: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(10));

/// The prefix of every key the scenario writes.
const PREFIX: &str = "churn.";

#[derive(Clone, Copy, Debug)]
enum Act {
    Crash(NodeId),
    Restart(NodeId),
    /// Delete one key, set a fresh one.
    Replace(NodeId),
}

/// The truth about keys: what each node's current life set and did not
/// delete.
struct KeyBook {
    live: Vec<BTreeSet<String>>,
    /// Keys their owner deleted.
    deleted_keys: BTreeSet<(usize, String)>,
    /// Each node's life (restart count).
    life: Vec<u32>,
    /// Per node, the number in its next key's name (never reused, across
    /// lives too, so a name says which write it was).
    next: Vec<u32>,
    written: u64,
    deleted: u64,
    /// Keys that were live when their owner crashed: gone with its life.
    orphaned: u64,
}

impl KeyBook {
    fn new(n: usize) -> KeyBook {
        KeyBook {
            live: vec![BTreeSet::new(); n],
            deleted_keys: BTreeSet::new(),
            life: vec![0; n],
            next: vec![0; n],
            written: 0,
            deleted: 0,
            orphaned: 0,
        }
    }

    /// Node `x` sets one fresh key (its value is its name).
    fn write(&mut self, sim: &mut Sim, x: NodeId) {
        let i = x.index();
        let key = format!("{PREFIX}{}.{}", self.life[i], self.next[i]);
        self.next[i] += 1;
        sim.with_endpoint(x, |ep, now| ep.set(now, &key, key.as_bytes()))
            .expect("a short key with a short value is accepted");
        self.live[i].insert(key);
        self.written += 1;
    }

    /// Node `x` crashed: what it held is of a previous life from now on.
    fn crashed(&mut self, x: NodeId) {
        let i = x.index();
        self.orphaned += self.live[i].len() as u64;
        self.live[i].clear();
        self.life[i] += 1;
    }

    /// Node `x` deletes a random key of its own and sets a fresh one.
    fn replace(&mut self, sim: &mut Sim, x: NodeId, rng: &mut SmallRng) {
        let live = &mut self.live[x.index()];
        if let Some(key) = live
            .iter()
            .nth(rng.random_range(0..live.len().max(1)))
            .cloned()
        {
            live.remove(&key);
            self.deleted_keys.insert((x.index(), key.clone()));
            sim.with_endpoint(x, |ep, now| ep.delete(now, &key))
                .expect("an own key can be deleted");
            self.deleted += 1;
        }
        self.write(sim, x);
    }
}

/// What the views got wrong at the end.
#[derive(Debug, Default, PartialEq, Eq)]
struct Wrong {
    stale_members: u64,
    stale_views: u64,
    resurrected_keys: u64,
    resurrected_deleted: u64,
    missing_keys: u64,
    missing_views: u64,
}

impl Run<'_> {
    pub(super) fn churn(&mut self) -> Outcome {
        let d = self.cfg.phase_length();
        self.converge()?;
        self.settle();
        let mut book = KeyBook::new(self.cfg.nodes);
        for &x in &self.nodes.clone() {
            for _ in 0..KEYS {
                book.write(&mut self.sim, x);
            }
        }
        let plan = self.churn_plan(d);
        let restarts = plan
            .iter()
            .filter(|(_, a)| matches!(a, Act::Restart(_)))
            .count();
        let mut rng = SmallRng::seed_from_u64(self.rng.random());
        let mut next = 0;
        self.run_steps("churning", d, CHECK_STEP, |sim| {
            while let Some(&(at, act)) = plan.get(next) {
                if at > sim.now() {
                    break;
                }
                next += 1;
                match act {
                    Act::Crash(x) => {
                        sim.crash(x);
                        book.crashed(x);
                    }
                    Act::Restart(x) => {
                        let seeds = random_running(sim, x, 3, &mut rng);
                        sim.restart(x, &seeds);
                        for _ in 0..KEYS {
                            book.write(sim, x);
                        }
                    }
                    // Never a node that is down (the plan keeps a round's
                    // victims and replacers apart), but check: a write to a
                    // crashed endpoint would go nowhere.
                    Act::Replace(x) if sim.status(x) != NodeStatus::Crashed => {
                        book.replace(sim, x, &mut rng);
                    }
                    Act::Replace(_) => {}
                }
            }
        });
        let settle = self.cfg.max_suspicion_timeout() + Duration::from_secs(30);
        let converged = self.wait("settling", settle, Sim::converged);
        self.secs(
            "converged_s",
            converged,
            "after the churn, until every node lists the same running nodes",
        );
        let rest = settle.saturating_sub(converged.unwrap_or(settle));
        if !rest.is_zero() {
            self.run_phase("settling", rest, |_| {});
        }
        self.secs("churn_s", Some(d), "time under churn");
        self.int(
            "restarts",
            restarts as u64,
            "",
            "nodes crashed and restarted",
        );
        self.int("keys_written", book.written, "", "keys set, all lives");
        self.int(
            "keys_deleted",
            book.deleted,
            "",
            "keys deleted by their owner",
        );
        self.int(
            "keys_orphaned",
            book.orphaned,
            "",
            "keys live when their owner crashed (gone with that life)",
        );
        self.secs(
            "quiet_s",
            Some(settle),
            "quiet time after the churn before the views are checked",
        );
        let wrong = churn_wrong(&self.sim, &book);
        self.churn_figures(&wrong);
        Ok(())
    }

    /// The rounds' crashes, restarts and replacements, in time order.
    fn churn_plan(&mut self, d: Duration) -> Vec<(Time, Act)> {
        let t0 = self.sim.now();
        let n = self.cfg.nodes;
        let per_round = self.cfg.churn_count();
        let mut plan = Vec::new();
        let mut start = Duration::ZERO;
        while start < d {
            let len = ROUND.min(d - start);
            // Crash early enough in the round to be back before it ends.
            let crash_window = len.saturating_sub(DOWN.1 + CHECK_STEP);
            let at = |rng: &mut SmallRng, within: Duration| {
                t0 + start + within.mul_f64(rng.random::<f64>())
            };
            let mut order: Vec<u32> = (0..n as u32).collect();
            let (picked, _) = order.partial_shuffle(&mut self.rng, 2 * per_round);
            let (victims, replacers) = picked.split_at(per_round.min(picked.len()));
            if !crash_window.is_zero() {
                for &v in victims.iter() {
                    let crash = at(&mut self.rng, crash_window);
                    let down = DOWN.0 + (DOWN.1 - DOWN.0).mul_f64(self.rng.random::<f64>());
                    plan.push((crash, Act::Crash(NodeId(v))));
                    plan.push((crash + down, Act::Restart(NodeId(v))));
                }
            }
            for &x in replacers.iter() {
                plan.push((at(&mut self.rng, len), Act::Replace(NodeId(x))));
            }
            start += ROUND;
        }
        plan.sort_by_key(|(t, _)| *t);
        plan
    }

    fn churn_figures(&mut self, w: &Wrong) {
        self.int(
            "stale_members",
            w.stale_members,
            "",
            "members some running node sees wrongly: a running one not Alive, a crashed one live",
        );
        self.int(
            "stale_views",
            w.stale_views,
            "",
            "(viewer, member) pairs seen wrongly",
        );
        self.int(
            "resurrected_keys",
            w.resurrected_keys,
            "",
            "deleted keys or keys of a previous life visible somewhere (must be 0)",
        );
        self.int(
            "resurrected_deleted",
            w.resurrected_deleted,
            "",
            "of those, keys their owner deleted (the rest are of a previous life)",
        );
        self.int(
            "missing_keys",
            w.missing_keys,
            "",
            "live keys of running nodes not visible on every running node",
        );
        self.int(
            "missing_views",
            w.missing_views,
            "",
            "(viewer, key) pairs missing",
        );
    }
}

/// Up to `k` random running nodes other than `x`.
fn random_running(sim: &Sim, x: NodeId, k: usize, rng: &mut SmallRng) -> Vec<NodeId> {
    let mut up: Vec<NodeId> = sim.running().filter(|&y| y != x).collect();
    up.partial_shuffle(rng, k).0.to_vec()
}

/// Compares every running node's view with the truth.
fn churn_wrong(sim: &Sim, book: &KeyBook) -> Wrong {
    let mut w = Wrong::default();
    let running: Vec<NodeId> = sim.running().collect();
    let mut stale = vec![false; sim.len()];
    for &x in &running {
        let ep = sim.endpoint(x);
        for y in sim.nodes() {
            let state = ep.member(sim.name(y)).map(|m| m.state);
            let wrong = if sim.status(y) == NodeStatus::Crashed {
                matches!(state, Some(MemberState::Alive | MemberState::Suspect))
            } else {
                state != Some(MemberState::Alive)
            };
            if wrong {
                stale[y.index()] = true;
                w.stale_views += 1;
            }
        }
    }
    w.stale_members = stale.iter().filter(|&&s| s).count() as u64;

    let mut visible: HashMap<(usize, &str), u64> = HashMap::new();
    for &x in &running {
        for kv in sim.endpoint(x).scan(&KeyPattern::prefix(PREFIX)) {
            let Some(owner) = sim.node_named(kv.node) else {
                continue;
            };
            *visible.entry((owner.index(), kv.key)).or_insert(0) += 1;
        }
    }
    for &(owner, key) in visible.keys() {
        if !book.live[owner].contains(key) {
            w.resurrected_keys += 1;
            let deleted = book.deleted_keys.contains(&(owner, key.to_owned()));
            w.resurrected_deleted += u64::from(deleted);
        }
    }
    for &y in &running {
        for key in &book.live[y.index()] {
            let seen = visible
                .get(&(y.index(), key.as_str()))
                .copied()
                .unwrap_or(0);
            let missing = running.len() as u64 - seen;
            w.missing_keys += u64::from(missing > 0);
            w.missing_views += missing;
        }
    }
    w
}
