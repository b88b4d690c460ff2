//! Pools: the disruption budgets of services that only restart (`[pools.NAME]`, node keys
//! `pool`, `restarts`, `restart_on_prune`, `reload_trust`).
//!
//! A pool groups the replicas of one service: certroll never has more of its members in
//! their reload + confirm window (and `min_healthy_time` after it) at once than
//! `max_unavailable` allows. The rules that make a pool unusable are refused here, at load,
//! with the position of the offending value (docs/inventory.md#pools).
//! Fleets without pools pay nothing: the per-node tables stay empty.

use std::fmt;
use std::time::Duration;

use super::locate::ValuePath;
use super::nodes::key_at;
use super::raw::{Named, RawBudget, RawNode, RawPool};
use super::validate::{check_name, suggest, Problem};
use super::windows::Window;
use super::{Node, NodeId};
use crate::duration;

/// Index of a pool in [`Pools::pools`].
pub type PoolId = usize;

/// `max_unavailable`: how many members may be unavailable at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Count(u32),
    /// A percentage of the pool's members, rounded down.
    Percent(u32),
}

impl Budget {
    /// Members allowed down at once in a pool of `members`.
    pub fn allowed(self, members: usize) -> usize {
        match self {
            Budget::Count(c) => c as usize,
            Budget::Percent(p) => members * p as usize / 100,
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Count(c) => write!(f, "{c}"),
            Budget::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// One `[pools.NAME]` table with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub max_unavailable: Budget,
    /// How long a restarted member must pass its confirm before it counts as available.
    pub min_healthy_time: Duration,
    /// When a restart may start; empty: at any time.
    pub windows: Vec<Window>,
    /// Every node with `pool = NAME`, ascending.
    pub members: Vec<NodeId>,
}

impl Pool {
    /// Members allowed unavailable at once (at least 1: load refuses a budget of none).
    pub fn budget(&self) -> usize {
        self.max_unavailable.allowed(self.members.len()).max(1)
    }
}

/// The pools of a fleet and, per node, its pool and how its software takes changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pools {
    /// Sorted by name.
    pub pools: Vec<Pool>,
    /// Per node; empty when no node names a pool.
    member_of: Vec<Option<PoolId>>,
    /// Per node `restarts`; empty when no node sets it.
    restarts: Vec<bool>,
    /// Per node `restart_on_prune`; empty when no node sets it (all `true`).
    restart_on_prune: Vec<bool>,
    /// Per node `reload_trust`; empty when no node sets it.
    reload_trust: Vec<Option<String>>,
}

impl Pools {
    /// The pool of node `n`.
    pub fn pool_of(&self, n: NodeId) -> Option<PoolId> {
        self.member_of.get(n).copied().flatten()
    }

    /// Whether node `n`'s reload is a restart (`restarts = true`).
    pub fn restarts(&self, n: NodeId) -> bool {
        self.restarts.get(n).copied().unwrap_or(false)
    }

    /// Whether a trust-prune of node `n` restarts it (`restart_on_prune`, default true).
    pub fn restart_on_prune(&self, n: NodeId) -> bool {
        self.restart_on_prune.get(n).copied().unwrap_or(true)
    }

    /// The command that makes node `n` load a changed trust bundle (`reload_trust`), if any.
    pub fn reload_trust(&self, n: NodeId) -> Option<&str> {
        self.reload_trust.get(n).and_then(Option::as_deref)
    }

    /// No pool and no restart-only node: scheduling and planning are as without this module.
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty() && self.restarts.is_empty()
    }

    /// Whether any node is restart-only.
    pub fn any_restarts(&self) -> bool {
        self.restarts.iter().any(|&r| r)
    }

    /// A fleet's pools in code (tests, benches): `(name, budget, min_healthy_time, members)`;
    /// `restarting` nodes get `restarts = true`.
    pub fn from_parts(
        node_count: usize,
        pools: Vec<(String, Budget, Duration, Vec<NodeId>)>,
        restarting: &[NodeId],
    ) -> Pools {
        let mut out = Pools::default();
        if !pools.is_empty() {
            out.member_of = vec![None; node_count];
        }
        for (id, (name, max_unavailable, min_healthy_time, members)) in
            pools.into_iter().enumerate()
        {
            for &m in &members {
                out.member_of[m] = Some(id);
            }
            out.pools.push(Pool {
                name,
                max_unavailable,
                min_healthy_time,
                windows: Vec::new(),
                members,
            });
        }
        if !restarting.is_empty() {
            out.restarts = vec![false; node_count];
            for &n in restarting {
                out.restarts[n] = true;
            }
        }
        out
    }
}

/// What a node wrote about pools and restarts, merged with `[defaults]`; read before the
/// node's other keys are consumed.
#[derive(Debug, Default)]
pub struct NodeKeys {
    pub pool: Option<String>,
    pub restarts: Option<bool>,
    pub restart_on_prune: Option<bool>,
    pub reload_trust: Option<String>,
}

impl NodeKeys {
    pub fn of(raw: &RawNode, d: &RawNode) -> NodeKeys {
        NodeKeys {
            pool: raw.pool.clone().or_else(|| d.pool.clone()),
            restarts: raw.restarts.or(d.restarts),
            restart_on_prune: raw.restart_on_prune.or(d.restart_on_prune),
            reload_trust: raw.reload_trust.clone().or_else(|| d.reload_trust.clone()),
        }
    }
}

/// Whether `raw` sets any of the keys of this module.
pub fn any_keys(raw: &RawNode) -> bool {
    raw.pool.is_some()
        || raw.restarts.is_some()
        || raw.restart_on_prune.is_some()
        || raw.reload_trust.is_some()
}

/// Builds the pools and checks every rule of docs/inventory.md#pools. `keys` is per node,
/// in the order of `nodes`, or empty when no node sets any of them.
pub fn build(raw: Named<RawPool>, keys: Vec<NodeKeys>, nodes: &[Node]) -> Result<Pools, Problem> {
    let mut raw = raw.0;
    raw.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = Pools::default();
    for (name, pool) in &raw {
        check_name(name, ValuePath::keys(&["pools", name]), "pool")?;
        out.pools.push(pool_spec(name, pool)?);
    }
    let names: Vec<&str> = raw.iter().map(|(n, _)| n.as_str()).collect();
    for (id, k) in keys.into_iter().enumerate() {
        let node = &nodes[id].name;
        if let Some(pool) = k.pool {
            let Ok(p) = names.binary_search(&pool.as_str()) else {
                return Err(Problem {
                    message: format!("node {node} names pool {pool:?}, which is not defined"),
                    ..key_at(node, &["pool"])
                }
                .hint(format!(
                    "{} (pools are [pools.NAME] tables)",
                    suggest(&pool, names.iter().copied(), "pool")
                )));
            };
            out.member_of.resize(nodes.len(), None);
            out.member_of[id] = Some(p);
            out.pools[p].members.push(id);
        }
        if k.restarts == Some(true) {
            out.restarts.resize(nodes.len(), false);
            out.restarts[id] = true;
        }
        if let Some(cmd) = k.reload_trust {
            out.reload_trust.resize(nodes.len(), None);
            out.reload_trust[id] = Some(cmd);
        }
        if k.restart_on_prune == Some(false) {
            out.restart_on_prune.resize(nodes.len(), true);
            out.restart_on_prune[id] = false;
        }
    }
    for pool in &out.pools {
        check_members(pool, nodes)?;
    }
    Ok(out)
}

fn pool_spec(name: &str, raw: &RawPool) -> Result<Pool, Problem> {
    let at = |key: &str| ValuePath::keys(&["pools", name, key]);
    let max_unavailable = match &raw.max_unavailable {
        None => Budget::Count(1),
        Some(b) => budget(b).map_err(|why| {
            Problem::new(
                at("max_unavailable"),
                format!("bad max_unavailable for pool {name}: {why}"),
            )
            .hint("a count of at least 1 (max_unavailable = 2) or a percentage from 1% to 100% (max_unavailable = \"25%\")")
        })?,
    };
    let min_healthy_time = match &raw.min_healthy_time {
        None => Duration::ZERO,
        Some(t) => duration::parse(t).map_err(|e| {
            Problem::new(
                at("min_healthy_time"),
                format!("bad min_healthy_time for pool {name}: {e}"),
            )
        })?,
    };
    let mut windows = Vec::new();
    for (i, w) in raw.windows.iter().flatten().enumerate() {
        windows.push(Window::parse(w).map_err(|why| {
            Problem::new(
                at("windows").index(i),
                format!("unreadable window {w:?} of pool {name}: {why}"),
            )
            .hint("e.g. windows = [\"Sat 02:00-05:00 UTC\", \"Mon-Fri 22:00-02:00 UTC\"]")
        })?);
    }
    Ok(Pool {
        name: name.to_string(),
        max_unavailable,
        min_healthy_time,
        windows,
        members: Vec::new(),
    })
}

fn budget(raw: &RawBudget) -> Result<Budget, String> {
    match raw {
        RawBudget::Count(c) if *c >= 1 => u32::try_from(*c)
            .map(Budget::Count)
            .map_err(|_| format!("{c} is too large")),
        RawBudget::Count(c) => Err(format!(
            "{c} would let no member restart, so the rotation could never finish"
        )),
        RawBudget::Text(t) => {
            let number = t
                .strip_suffix('%')
                .ok_or_else(|| format!("{t:?} is neither a count nor a percentage"))?;
            let p: u32 = number
                .trim()
                .parse()
                .map_err(|_| format!("{t:?} is not a whole percentage"))?;
            match p {
                0 => Err(format!(
                    "{t:?} would let no member restart, so the rotation could never finish"
                )),
                1..=100 => Ok(Budget::Percent(p)),
                _ => Err(format!("{t:?} is over 100%")),
            }
        }
    }
}

/// The rules that need the members: a healthy time the confirm timeout cannot hold, and a
/// percentage that lets none of this many members restart.
fn check_members(pool: &Pool, nodes: &[Node]) -> Result<(), Problem> {
    let at = |key: &str| ValuePath::keys(&["pools", &pool.name, key]);
    for &m in &pool.members {
        let node = &nodes[m];
        if pool.min_healthy_time > node.confirm_timeout {
            return Err(Problem::new(
                at("min_healthy_time"),
                format!(
                    "min_healthy_time {} of pool {} is longer than confirm_timeout {} of its member {}",
                    duration::format(pool.min_healthy_time),
                    pool.name,
                    duration::format(node.confirm_timeout),
                    node.name
                ),
            )
            .hint("a member must pass its confirm for min_healthy_time within confirm_timeout: shorten min_healthy_time or lengthen the member's confirm_timeout"));
        }
    }
    if !pool.members.is_empty() && pool.max_unavailable.allowed(pool.members.len()) == 0 {
        let names: Vec<&str> = pool
            .members
            .iter()
            .map(|&m| nodes[m].name.as_str())
            .collect();
        return Err(Problem::new(
            at("max_unavailable"),
            format!(
                "max_unavailable {} of pool {} lets none of its {} members ({}) restart, so the rotation could never finish",
                pool.max_unavailable,
                pool.name,
                names.len(),
                names.join(", ")
            ),
        )
        .hint("percentages are rounded down: raise the percentage or write a count (max_unavailable = 1)"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "pools_tests.rs"]
mod tests;
