//! Restart-only nodes (`restarts = true`): as few visits per node as the gates allow, and
//! what each visit costs (docs/plan.md#restart-only-nodes).
//!
//! Every step reloads its node, and for a restart-only node a reload is an outage. After the
//! plan is built with its usual gates, two consecutive steps A then B of such a node are
//! merged into one visit (A's actions, then B's, at B's place, waiting for the prerequisites
//! of both) whenever nothing else in the plan lies between them: no path A → X → … → B.
//! That is safe for any plan the gates made safe: every order of the merged plan is an order
//! of the original one in which A runs just before B (everything that waited for A now waits
//! for the merged visit, so it still comes after A), so it keeps every link up exactly as the
//! original does; `plan --check` proves it all the same. Where a path does lie between
//! them, the visits stay apart and [`costs`] names the step in the way.
//!
//! Fleets without restart-only nodes are not touched.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{actions_label, Action, Plan, Step, StepId};
use crate::inventory::{Inventory, NodeId};

/// Whether `step` reloads its node: every step does, except a lone trust-prune of a
/// restart-only node with `restart_on_prune = false` (written, restart left for later).
pub fn step_reloads(inv: &Inventory, step: &Step) -> bool {
    !(inv.pools.restarts(step.node)
        && !inv.pools.restart_on_prune(step.node)
        && step.actions == [Action::TrustPrune])
}

/// Whether `step` makes its node unavailable for a while: a reload of a restart-only node,
/// except a step that leaves the bundle alone on a node with `reload_trust` (its `reload`
/// then only takes a new leaf; the restart is `reload_trust`'s).
pub fn step_restarts(inv: &Inventory, step: &Step) -> bool {
    inv.pools.restarts(step.node)
        && step_reloads(inv, step)
        && (inv.pools.reload_trust(step.node).is_none()
            || crate::executor::changes_of(&step.actions).starts_with("bundle"))
}

/// Whether `step` counts against its node's pool: any reload of a node that reloads
/// while serving, only a restart of a restart-only node.
pub fn step_disrupts(inv: &Inventory, step: &Step) -> bool {
    if inv.pools.restarts(step.node) {
        step_restarts(inv, step)
    } else {
        step_reloads(inv, step)
    }
}

/// Merges the consecutive steps of every restart-only node wherever no other step lies
/// between them, then renumbers the steps in a topological order (ties by former position).
/// `waves` must be assigned afterwards.
pub(crate) fn merge_visits(plan: &mut Plan, inv: &Inventory) {
    if !inv.pools.any_restarts() || plan.steps.is_empty() {
        return;
    }
    let n = plan.steps.len();
    let mut after: Vec<Vec<StepId>> = plan.steps.iter().map(|s| s.after.clone()).collect();
    let mut actions: Vec<Vec<Action>> = plan.steps.iter().map(|s| s.actions.clone()).collect();
    let mut dependents: Vec<Vec<StepId>> = vec![Vec::new(); n];
    for s in &plan.steps {
        for &a in &s.after {
            dependents[a].push(s.id);
        }
    }
    let mut alive = vec![true; n];
    let mut own: Vec<Vec<StepId>> = vec![Vec::new(); inv.nodes.len()];
    for s in &plan.steps {
        own[s.node].push(s.id);
    }
    for node in visiting_order(plan, inv) {
        let ids = std::mem::take(&mut own[node]);
        for pair in ids.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if reaches_around(a, b, &dependents, &alive) {
                continue;
            }
            // Merge a into b.
            let mut merged = std::mem::take(&mut actions[a]);
            merged.append(&mut actions[b]);
            actions[b] = merged;
            let before_a = std::mem::take(&mut after[a]);
            for &p in &before_a {
                replace(&mut dependents[p], a, b);
            }
            after[b].retain(|&x| x != a);
            after[b].extend(before_a);
            for d in std::mem::take(&mut dependents[a]) {
                if d != b {
                    replace(&mut after[d], a, b);
                    dependents[b].push(d);
                }
            }
            alive[a] = false;
        }
    }
    renumber(plan, &alive, after, actions);
}

/// Restart-only nodes in the order the plan visits them, then the others.
fn visiting_order(plan: &Plan, inv: &Inventory) -> Vec<NodeId> {
    let mut seen = vec![false; inv.nodes.len()];
    let mut out = Vec::new();
    let nodes = plan
        .order
        .iter()
        .copied()
        .chain(plan.steps.iter().map(|s| s.node));
    for node in nodes {
        if inv.pools.restarts(node) && !std::mem::replace(&mut seen[node], true) {
            out.push(node);
        }
    }
    out
}

fn replace(list: &mut Vec<StepId>, from: StepId, to: StepId) {
    for x in list.iter_mut().filter(|x| **x == from) {
        *x = to;
    }
    list.sort_unstable();
    list.dedup();
}

/// Whether `b` can be reached from `a` other than by the direct edge `a → b`.
fn reaches_around(a: StepId, b: StepId, dependents: &[Vec<StepId>], alive: &[bool]) -> bool {
    let starts = dependents[a].iter().copied().filter(|&d| d != b);
    reaches(starts, b, dependents, alive)
}

/// Whether `target` is one of `starts` or waits for one of them, transitively.
fn reaches(
    starts: impl Iterator<Item = StepId>,
    target: StepId,
    dependents: &[Vec<StepId>],
    alive: &[bool],
) -> bool {
    let mut seen = vec![false; dependents.len()];
    let mut stack: Vec<StepId> = starts.collect();
    while let Some(x) = stack.pop() {
        if x == target {
            return true;
        }
        if !alive[x] || std::mem::replace(&mut seen[x], true) {
            continue;
        }
        stack.extend(dependents[x].iter().copied());
    }
    false
}

/// Rebuilds `plan.steps` from the surviving steps, ids in a topological order.
fn renumber(plan: &mut Plan, alive: &[bool], after: Vec<Vec<StepId>>, actions: Vec<Vec<Action>>) {
    let n = alive.len();
    let mut indegree = vec![0usize; n];
    let mut dependents = vec![Vec::new(); n];
    for i in (0..n).filter(|&i| alive[i]) {
        for &a in &after[i] {
            indegree[i] += 1;
            dependents[a].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<StepId>> = (0..n)
        .filter(|&i| alive[i] && indegree[i] == 0)
        .map(Reverse)
        .collect();
    let mut new_id = vec![usize::MAX; n];
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        new_id[i] = order.len();
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    let old = std::mem::take(&mut plan.steps);
    plan.steps = order
        .iter()
        .map(|&i| {
            let mut waits: Vec<StepId> = after[i].iter().map(|&a| new_id[a]).collect();
            waits.sort_unstable();
            waits.dedup();
            Step {
                id: new_id[i],
                node: old[i].node,
                actions: actions[i].clone(),
                after: waits,
                wave: 0,
            }
        })
        .collect();
}

/// One visit of a restart-only node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    pub step: StepId,
    pub actions: Vec<Action>,
    /// Whether the visit restarts the node.
    pub restarts: bool,
    /// Why this visit is one of its own (not merged with the node's previous one), or why
    /// it does not restart.
    pub why: String,
}

/// What a rotation costs one restart-only node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartCost {
    pub node: NodeId,
    pub restarts: usize,
    pub visits: Vec<Visit>,
}

/// Per restart-only node of the plan (ascending), its visits and why they are apart.
pub fn costs(plan: &Plan, inv: &Inventory) -> Vec<RestartCost> {
    if !inv.pools.any_restarts() {
        return Vec::new();
    }
    let mut dependents: Vec<Vec<StepId>> = vec![Vec::new(); plan.steps.len()];
    for s in &plan.steps {
        for &a in &s.after {
            dependents[a].push(s.id);
        }
    }
    let alive = vec![true; plan.steps.len()];
    let mut own: Vec<Vec<StepId>> = vec![Vec::new(); inv.nodes.len()];
    for s in &plan.steps {
        own[s.node].push(s.id);
    }
    let name = |n: NodeId| inv.nodes[n].name.as_str();
    let mut out = Vec::new();
    for (node, ids) in own.iter().enumerate() {
        if ids.is_empty() || !inv.pools.restarts(node) {
            continue;
        }
        let mut visits = Vec::new();
        let mut prev: Option<StepId> = None;
        for &id in ids {
            let step = &plan.steps[id];
            let restarts = step_restarts(inv, step);
            let why = if !step_reloads(inv, step) {
                "written without a restart (restart_on_prune = false): the running process \
                 trusts the old anchor until its next start"
                    .to_string()
            } else if !restarts {
                "leaf only: `reload` takes it without a restart (reload_trust restarts for \
                 trust changes)"
                    .to_string()
            } else if let Some(p) = prev {
                blocker(plan, p, id, &dependents, &alive)
                    .map(|x| {
                        let xs = &plan.steps[x];
                        format!(
                            "apart from {}: waits for {} on {}, which waits for that visit",
                            actions_label(&plan.steps[p].actions),
                            actions_label(&xs.actions),
                            name(xs.node)
                        )
                    })
                    .unwrap_or_else(|| "a visit of its own".to_string())
            } else if step.actions.len() > 1 {
                "one visit: nothing else of the plan has to happen between these actions"
                    .to_string()
            } else {
                "first visit".to_string()
            };
            visits.push(Visit {
                step: id,
                actions: step.actions.clone(),
                restarts,
                why,
            });
            prev = Some(id);
        }
        out.push(RestartCost {
            node,
            restarts: visits.iter().filter(|v| v.restarts).count(),
            visits,
        });
    }
    out
}

/// A prerequisite of `b` (other than `a`) that waits for `a`: what keeps the two apart.
fn blocker(
    plan: &Plan,
    a: StepId,
    b: StepId,
    dependents: &[Vec<StepId>],
    alive: &[bool],
) -> Option<StepId> {
    plan.steps[b]
        .after
        .iter()
        .copied()
        .filter(|&x| x != a)
        .find(|&x| reaches(dependents[a].iter().copied(), x, dependents, alive))
}

#[cfg(test)]
#[path = "restarts_tests.rs"]
mod tests;
