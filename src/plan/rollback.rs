//! Rolling a rotation back from wherever it stopped (docs/design.md#rollback).
//!
//! A rotation leaves each node somewhere between "nothing done" and "pruned". The rollback
//! plan is the rotation run backwards, with the gates mirrored, per node `n` of the CA:
//! - `trust-restore(n)` (bundle {old, new}) when n verifies someone and its bundle may lack
//!   the old anchor (pruned, or a trust step was interrupted): no prerequisite;
//! - `leaf-restore(n)` (a fresh key and leaf from the old CA, never a replaced key) when n's
//!   leaf may be new (swapped, or the swap was interrupted): after `trust-restore(p)` for
//!   every verifier p of n that has one. No cross certificate lifts this gate: an old leaf
//!   validates only under the old anchor;
//! - `trust-drop-new(n)` (bundle {old}) when n's bundle may hold the new anchor: after
//!   `leaf-restore(p)` for every subject p of n that has one.
//!
//! What is unknown is treated as the worse case: an interrupted step may or may not have
//! reached the node, so its node gets every rollback step either outcome would need. The
//! planner is pure: the state comes in as [`RotationState`], read by the caller from the
//! journal of the interrupted run and the nodes' real files.

use serde::{Deserialize, Serialize};

use super::build::{push, Slots};
use super::{waves, Action, ChainMode, Mode, Plan, StepId, Strategy};
use crate::inventory::{CaId, Inventory, NodeId};

/// How far one rotation action got on one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Progress {
    /// Never started: the node holds what it held before.
    #[default]
    NotStarted,
    /// Started but not confirmed (interrupted): either outcome is possible.
    Unknown,
    /// Confirmed.
    Done,
}

impl Progress {
    /// True unless the action certainly never touched the node.
    pub fn maybe(self) -> bool {
        self != Progress::NotStarted
    }

    /// Combines two sources of knowledge about one action: the most advanced wins.
    pub fn max(self, other: Progress) -> Progress {
        let rank = |p: Progress| match p {
            Progress::NotStarted => 0,
            Progress::Unknown => 1,
            Progress::Done => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// How far the rotation got on one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeProgress {
    pub trust_add: Progress,
    pub leaf_swap: Progress,
    pub trust_prune: Progress,
}

impl NodeProgress {
    /// Marks `action` (a rotation action) as `p`, keeping what is already more advanced.
    pub fn record(&mut self, action: Action, p: Progress) {
        let slot = match action {
            Action::TrustAdd => &mut self.trust_add,
            Action::LeafSwap => &mut self.leaf_swap,
            Action::TrustPrune => &mut self.trust_prune,
            _ => return,
        };
        *slot = slot.max(p);
    }

    /// The bundle may lack the old anchor: the prune may have happened.
    fn may_lack_old(&self) -> bool {
        self.trust_prune.maybe()
    }

    /// The bundle's content is not known for sure.
    fn bundle_unknown(&self) -> bool {
        self.trust_add == Progress::Unknown || self.trust_prune == Progress::Unknown
    }

    /// The bundle may hold the new anchor.
    fn may_hold_new(&self) -> bool {
        self.trust_add.maybe() || self.trust_prune.maybe()
    }

    /// The node may present a new-generation leaf (or a half-swapped pair).
    fn may_have_new_leaf(&self) -> bool {
        self.leaf_swap.maybe()
    }
}

/// The state a rotation stopped in: per node (indexed by [`NodeId`]), how far each of its
/// actions got. Nodes outside the CA are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationState {
    pub nodes: Vec<NodeProgress>,
}

impl RotationState {
    /// Nothing started anywhere, for an inventory of `n` nodes.
    pub fn untouched(n: usize) -> Self {
        RotationState {
            nodes: vec![NodeProgress::default(); n],
        }
    }

    /// The state after the rotation `plan`: steps in `done` confirmed, steps in `started`
    /// interrupted, every other step never started.
    pub fn from_run(
        plan: &Plan,
        nodes: usize,
        done: impl Fn(StepId) -> bool,
        started: impl Fn(StepId) -> bool,
    ) -> Self {
        let mut state = RotationState::untouched(nodes);
        for s in &plan.steps {
            let p = if done(s.id) {
                Progress::Done
            } else if started(s.id) {
                Progress::Unknown
            } else {
                continue;
            };
            for &a in &s.actions {
                state.nodes[s.node].record(a, p);
            }
        }
        state
    }

    fn node(&self, n: NodeId) -> NodeProgress {
        self.nodes.get(n).copied().unwrap_or_default()
    }

    /// The rotation actions on each node's files, for proving a rollback by simulation
    /// (`simulate::check_from`): confirmed ones, and interrupted ones when
    /// `interrupted_reached` (check both ways to cover either outcome).
    pub fn start_files(&self, interrupted_reached: bool) -> Vec<Vec<Action>> {
        let reached = |p: Progress| p == Progress::Done || (interrupted_reached && p.maybe());
        self.nodes
            .iter()
            .map(|p| {
                [
                    (p.trust_add, Action::TrustAdd),
                    (p.leaf_swap, Action::LeafSwap),
                    (p.trust_prune, Action::TrustPrune),
                ]
                .into_iter()
                .filter(|&(p, _)| reached(p))
                .map(|(_, a)| a)
                .collect()
            })
            .collect()
    }

    /// True when nothing of the rotation may have reached any node.
    pub fn is_untouched(&self) -> bool {
        self.nodes.iter().all(|p| *p == NodeProgress::default())
    }
}

/// The plan that returns every member of `ca` from `state` to the old generation.
/// `strategy` and `chain` are the interrupted rotation's: they are recorded, and `chain`
/// tells what the swapped nodes present today. The rollback itself is always phased.
pub fn rollback(
    inv: &Inventory,
    ca: CaId,
    strategy: Strategy,
    chain: ChainMode,
    state: &RotationState,
) -> Plan {
    let members = inv.members(ca);
    let verifiers = inv.verifiers(ca);
    let subjects = inv.subjects(ca);
    let mut steps = Vec::with_capacity(members.len() * 3);
    let mut restore = Slots::new(inv.nodes.len());
    let mut leaf = Slots::new(inv.nodes.len());

    for &n in &members {
        let p = state.node(n);
        if !subjects[n].is_empty() && (p.may_lack_old() || p.bundle_unknown()) {
            restore.0[n] = push(&mut steps, n, vec![Action::TrustRestore], Vec::new());
        }
    }
    for &n in members
        .iter()
        .filter(|&&n| state.node(n).may_have_new_leaf())
    {
        let mut after: Vec<StepId> = restore.get(n).into_iter().collect();
        after.extend(verifiers[n].iter().filter_map(|&p| restore.get(p)));
        leaf.0[n] = push(&mut steps, n, vec![Action::LeafRestore], after);
    }
    for &n in &members {
        if !(state.node(n).may_hold_new() || restore.get(n).is_some()) {
            continue;
        }
        let mut after: Vec<StepId> = restore.get(n).into_iter().collect();
        after.extend(leaf.get(n));
        after.extend(subjects[n].iter().filter_map(|&p| leaf.get(p)));
        push(&mut steps, n, vec![Action::TrustDropNew], after);
    }
    waves::assign(&mut steps);
    let mut plan = Plan {
        ca,
        mode: Mode::Rollback,
        strategy,
        chain,
        steps,
        order: Vec::new(),
        notes: Vec::new(),
        needs: Vec::new(),
        unrepaired: Vec::new(),
    };
    plan.order = first_visit_order(&plan);
    plan
}

/// Nodes by the wave of their first step, then by id.
fn first_visit_order(plan: &Plan) -> Vec<NodeId> {
    let mut keyed: Vec<(usize, NodeId)> = Vec::new();
    for s in &plan.steps {
        match keyed.iter_mut().find(|(_, n)| *n == s.node) {
            Some(k) => k.0 = k.0.min(s.wave),
            None => keyed.push((s.wave, s.node)),
        }
    }
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, n)| n).collect()
}

#[cfg(test)]
#[path = "rollback_tests.rs"]
mod tests;
