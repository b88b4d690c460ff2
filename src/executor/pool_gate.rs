//! The pool gate of the scheduler: never more of a pool's members unavailable at once than
//! its budget allows (docs/inventory.md#pools, docs/apply.md#pools).
//!
//! A member is unavailable while a step that reloads it is in flight (the step holds it
//! through its reload, its confirm and its `min_healthy_time`), and while its last step
//! failed or was cut short — in this run or, read from the journal, in the run being
//! resumed — until a step of it is confirmed again. A member that failed stops its pool: no
//! other member starts, only the failed ones may be tried again (on a resumed run), within
//! the budget.
//! Fleets without pools have no gate: the scheduler then runs exactly as before.

use std::collections::{BTreeMap, BTreeSet};

use crate::inventory::{Inventory, NodeId, PoolId};
use crate::journal::RunState;
use crate::plan::restarts::step_disrupts;
use crate::plan::{Plan, StepId};

/// A failed member: the step that failed and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    pub step: StepId,
    pub message: String,
}

/// Why a step may not start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Held {
    /// The pool is at its budget: these members are unavailable.
    Busy {
        pool: String,
        down: Vec<String>,
        budget: usize,
    },
    /// The pool's restart windows are all closed; the first opens at `opens`.
    Closed {
        pool: String,
        opens: time::OffsetDateTime,
    },
    /// A member failed: nothing else of the pool restarts in this run.
    Stopped {
        pool: String,
        node: String,
        failure: Failure,
    },
}

pub(super) struct PoolGate<'a> {
    inv: &'a Inventory,
    /// Per step, the pool it counts against.
    pool_of_step: Vec<Option<PoolId>>,
    node_of_step: Vec<NodeId>,
    /// Per pool, members with a step in flight.
    running: Vec<BTreeSet<NodeId>>,
    /// Per pool, members whose last step failed or was cut short.
    failed: Vec<BTreeMap<NodeId, Failure>>,
}

impl<'a> PoolGate<'a> {
    /// The gate of `plan`, or `None` when no step counts against a pool.
    pub fn new(plan: &Plan, inv: &'a Inventory, resume: &RunState) -> Option<PoolGate<'a>> {
        if inv.pools.pools.is_empty() {
            return None;
        }
        let pool_of_step: Vec<Option<PoolId>> = plan
            .steps
            .iter()
            .map(|s| inv.pools.pool_of(s.node).filter(|_| step_disrupts(inv, s)))
            .collect();
        if pool_of_step.iter().all(Option::is_none) {
            return None;
        }
        let pools = inv.pools.pools.len();
        let mut gate = PoolGate {
            inv,
            node_of_step: plan.steps.iter().map(|s| s.node).collect(),
            pool_of_step,
            running: vec![BTreeSet::new(); pools],
            failed: vec![BTreeMap::new(); pools],
        };
        // The journal: a step that failed, or started and never ended (kill -9), leaves its
        // node unavailable as far as anyone knows.
        let cut_short = resume
            .started
            .keys()
            .filter(|id| !resume.failed.contains_key(id))
            .map(|&id| {
                (
                    id,
                    "its step was cut short (the run was killed)".to_string(),
                )
            });
        let failed = resume.failed.iter().map(|(&id, m)| (id, m.clone()));
        for (id, message) in failed.chain(cut_short) {
            if resume.done.contains(&id) || id >= plan.steps.len() {
                continue;
            }
            if let Some(p) = gate.pool_of_step[id] {
                let node = gate.node_of_step[id];
                gate.failed[p].insert(node, Failure { step: id, message });
            }
        }
        Some(gate)
    }

    /// Whether step `id` may start now; `Err` says why not.
    pub fn check(&self, id: StepId) -> Result<(), Held> {
        let Some(p) = self.pool_of_step[id] else {
            return Ok(());
        };
        let node = self.node_of_step[id];
        let pool = &self.inv.pools.pools[p];
        // A failed member may go again (it is down already); any other member waits for
        // every failed one to be back.
        let failed_itself = self.failed[p].contains_key(&node);
        let other = self.failed[p].iter().find(|(&n, _)| n != node);
        if let (false, Some((&who, failure))) = (failed_itself, other) {
            return Err(Held::Stopped {
                pool: pool.name.clone(),
                node: self.inv.nodes[who].name.clone(),
                failure: failure.clone(),
            });
        }
        if !pool.windows.is_empty() {
            let now = time::OffsetDateTime::now_utc();
            let opens = crate::inventory::windows::next_open(&pool.windows, now);
            if opens > now {
                return Err(Held::Closed {
                    pool: pool.name.clone(),
                    opens,
                });
            }
        }
        let mut down: BTreeSet<NodeId> = self.running[p].clone();
        down.extend(self.failed[p].keys().copied());
        let busy = down.len() + usize::from(!down.contains(&node));
        if busy <= pool.budget() {
            return Ok(());
        }
        Err(Held::Busy {
            pool: pool.name.clone(),
            down: down
                .iter()
                .map(|&n| self.inv.nodes[n].name.clone())
                .collect(),
            budget: pool.budget(),
        })
    }

    /// Step `id` was sent to a worker.
    pub fn start(&mut self, id: StepId) {
        if let Some(p) = self.pool_of_step[id] {
            self.running[p].insert(self.node_of_step[id]);
        }
    }

    /// Step `id` ended: confirmed (and healthy) when `failure` is `None`.
    pub fn finish(&mut self, id: StepId, failure: Option<String>) {
        let Some(p) = self.pool_of_step[id] else {
            return;
        };
        let node = self.node_of_step[id];
        self.running[p].remove(&node);
        match failure {
            None => {
                self.failed[p].remove(&node);
            }
            Some(message) => {
                self.failed[p].insert(node, Failure { step: id, message });
            }
        }
    }

    /// Whether any pool has restart windows (the scheduler then looks at the clock).
    pub fn has_windows(&self) -> bool {
        self.inv.pools.pools.iter().any(|p| !p.windows.is_empty())
    }

    /// The pool step `id` counts against, if any.
    pub fn pool_of(&self, id: StepId) -> Option<PoolId> {
        self.pool_of_step[id]
    }
}

#[cfg(test)]
#[path = "pool_gate_tests.rs"]
mod tests;
