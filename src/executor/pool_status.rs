//! Where each pool stands in a run, for `certroll status`: members unavailable now (a step
//! in flight, failed, or cut short by a killed run), the budget, and which ready members
//! wait for which (docs/apply.md#certroll-status).

use serde::Serialize;

use crate::inventory::{Inventory, NodeId};
use crate::journal::RunState;
use crate::plan::restarts::step_disrupts;
use crate::plan::Plan;

/// One member that is unavailable now, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownMember {
    pub node: String,
    /// `restarting` (a step in flight), `failed` or `interrupted`.
    pub why: &'static str,
}

/// One pool of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolStatus {
    pub name: String,
    pub members: usize,
    /// Members allowed unavailable at once.
    pub budget: usize,
    pub down: Vec<DownMember>,
    /// Members with a ready step that cannot go now (the pool is at its budget, or a member
    /// failed or was cut short), and the members they wait for.
    pub waiting: Vec<(String, Vec<String>)>,
}

/// The pools with a member in `plan`, as the journal's `run` tells them; `running` when a
/// process executes the run now (its started steps are in flight, not cut short).
pub fn pool_status(inv: &Inventory, plan: &Plan, run: &RunState, running: bool) -> Vec<PoolStatus> {
    let mut out = Vec::new();
    for (p, pool) in inv.pools.pools.iter().enumerate() {
        let steps: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| inv.pools.pool_of(s.node) == Some(p) && step_disrupts(inv, s))
            .collect();
        if steps.is_empty() {
            continue;
        }
        let mut down: Vec<(NodeId, &'static str)> = Vec::new();
        for s in steps.iter().filter(|s| !run.done.contains(&s.id)) {
            let why = if run.failed.contains_key(&s.id) {
                "failed"
            } else if run.started.contains_key(&s.id) {
                if running {
                    "restarting"
                } else {
                    "interrupted"
                }
            } else {
                continue;
            };
            if !down.iter().any(|(n, _)| *n == s.node) {
                down.push((s.node, why));
            }
        }
        let names: Vec<String> = down
            .iter()
            .map(|(n, _)| inv.nodes[*n].name.clone())
            .collect();
        // At its budget, or stopped by a member that failed: the others wait.
        let full = down.len() >= pool.budget() || down.iter().any(|(_, why)| *why != "restarting");
        let mut waiting = Vec::new();
        for s in &steps {
            let ready = !run.done.contains(&s.id)
                && !run.started.contains_key(&s.id)
                && !run.failed.contains_key(&s.id)
                && s.after.iter().all(|a| run.done.contains(a));
            if ready && full && !down.iter().any(|(n, _)| *n == s.node) {
                waiting.push((inv.nodes[s.node].name.clone(), names.clone()));
            }
        }
        out.push(PoolStatus {
            name: pool.name.clone(),
            members: pool.members.len(),
            budget: pool.budget(),
            down: down
                .into_iter()
                .map(|(n, why)| DownMember {
                    node: inv.nodes[n].name.clone(),
                    why,
                })
                .collect(),
            waiting,
        });
    }
    out
}
