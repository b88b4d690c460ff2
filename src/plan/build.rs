//! Building the steps of bootstrap, renew and rotate plans (docs/design.md#safe-order).
//!
//! Rotation gates, per node `n` of the rotated CA:
//! - `trust-add(n)` (only when n verifies someone): no prerequisite;
//! - `leaf-swap(n)`: after `trust-add(p)` for every verifier p of n (plain chains only;
//!   a cross-signed chain validates under the old anchor, which lifts this gate);
//! - `trust-prune(n)`: after `leaf-swap(p)` for every subject p of n; with cross-signed
//!   chains also after `trust-add(v)` for every verifier v of n, because the prune drops
//!   the cross certificate from n's chain (plain chains get that order from n's own
//!   leaf swap).
//!
//! Each node's own steps are also chained (add → swap → prune) so that one node is never
//! changed by two steps at once. Step ids are assigned block by block so that every
//! prerequisite has a smaller id.

use super::order::{discovery_rank, topological_order};
use super::{waves, Action, ChainMode, Mode, Plan, Step, StepId, Strategy};
use crate::inventory::{CaId, Inventory, NodeId};

/// Why no plan could be built.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// `strategy = "ordered"` with plain chains on a graph that has a cycle.
    #[error(
        "strategy \"ordered\" cannot rotate CA {ca}: the client→server graph has a cycle: {cycle}\n  \
         hint: a single visit per node needs every client visited before its servers; use \
         strategy \"phased\" (works for any topology) or chain \"cross-signed\""
    )]
    Cycle { ca: String, cycle: String },
}

/// Bootstrap: install the current bundle and a leaf on `nodes`. No ordering is needed:
/// no link works before both ends hold their files, and every new file is final.
pub fn bootstrap(inv: &Inventory, ca: CaId, nodes: &[NodeId]) -> Plan {
    single_action_plan(inv, ca, nodes, Mode::Bootstrap, Action::Install)
}

/// Renew: a fresh leaf from the current CA on `nodes`; trust does not change, so every
/// step is independent.
pub fn renew(inv: &Inventory, ca: CaId, nodes: &[NodeId]) -> Plan {
    single_action_plan(inv, ca, nodes, Mode::Renew, Action::Renew)
}

fn single_action_plan(
    _inv: &Inventory,
    ca: CaId,
    nodes: &[NodeId],
    mode: Mode,
    action: Action,
) -> Plan {
    let steps = nodes
        .iter()
        .enumerate()
        .map(|(id, &node)| Step {
            id,
            node,
            actions: vec![action],
            after: Vec::new(),
            wave: 0,
        })
        .collect();
    Plan {
        ca,
        mode,
        strategy: Strategy::Phased,
        chain: ChainMode::Plain,
        steps,
        order: nodes.to_vec(),
        notes: Vec::new(),
        needs: Vec::new(),
        unrepaired: Vec::new(),
    }
}

/// Rotate every member of `ca` from the current generation to the next.
pub fn rotate(
    inv: &Inventory,
    ca: CaId,
    strategy: Strategy,
    chain: ChainMode,
) -> Result<Plan, PlanError> {
    let mut plan = match strategy {
        Strategy::Phased => phased(inv, ca, chain),
        Strategy::Ordered => ordered(inv, ca, chain)?,
    };
    super::restarts::merge_visits(&mut plan, inv);
    waves::assign(&mut plan.steps);
    if strategy == Strategy::Phased {
        plan.order = order_by_leaf_wave(&plan);
    }
    Ok(plan)
}

/// Step ids of one kind per node, `usize::MAX` where the node has no such step.
pub(super) struct Slots(pub(super) Vec<StepId>);

impl Slots {
    pub(super) fn new(n: usize) -> Self {
        Slots(vec![usize::MAX; n])
    }
    pub(super) fn get(&self, node: NodeId) -> Option<StepId> {
        Some(self.0[node]).filter(|&id| id != usize::MAX)
    }
}

pub(super) fn push(
    steps: &mut Vec<Step>,
    node: NodeId,
    actions: Vec<Action>,
    mut after: Vec<StepId>,
) -> StepId {
    let id = steps.len();
    after.sort_unstable();
    after.dedup();
    steps.push(Step {
        id,
        node,
        actions,
        after,
        wave: 0,
    });
    id
}

fn phased(inv: &Inventory, ca: CaId, chain: ChainMode) -> Plan {
    let members = inv.members(ca);
    let verifiers = inv.verifiers(ca);
    let subjects = inv.subjects(ca);
    let mut steps = Vec::with_capacity(members.len() * 3);
    let mut add = Slots::new(inv.nodes.len());
    let mut swap = Slots::new(inv.nodes.len());

    for &n in members.iter().filter(|&&n| !subjects[n].is_empty()) {
        add.0[n] = push(&mut steps, n, vec![Action::TrustAdd], Vec::new());
    }
    for &n in &members {
        let mut after: Vec<StepId> = add.get(n).into_iter().collect();
        if chain == ChainMode::Plain {
            // Invariant: a verifier of n has n among its subjects, so it has a trust-add.
            after.extend(verifiers[n].iter().filter_map(|&p| add.get(p)));
        }
        swap.0[n] = push(&mut steps, n, vec![Action::LeafSwap], after);
    }
    for &n in &members {
        let mut after: Vec<StepId> = swap.get(n).into_iter().collect();
        after.extend(subjects[n].iter().filter_map(|&p| swap.get(p)));
        after.extend(cross_drop_gates(chain, &verifiers[n], &subjects[n], &add));
        push(&mut steps, n, vec![Action::TrustPrune], after);
    }
    Plan {
        ca,
        mode: Mode::Rotate,
        strategy: Strategy::Phased,
        chain,
        steps,
        order: Vec::new(),
        notes: Vec::new(),
        needs: Vec::new(),
        unrepaired: Vec::new(),
    }
}

fn ordered(inv: &Inventory, ca: CaId, chain: ChainMode) -> Result<Plan, PlanError> {
    let members = inv.members(ca);
    let verifiers = inv.verifiers(ca);
    let subjects = inv.subjects(ca);
    let rank = discovery_rank(inv, ca);
    // Every node is visited before the subjects it verifies: `subjects` are the edges.
    let order = match topological_order(&members, &subjects, &rank) {
        Ok(order) => order,
        Err(cycle) if chain == ChainMode::Plain => {
            return Err(PlanError::Cycle {
                ca: inv.cas[ca].name.clone(),
                cycle: cycle.render(inv),
            });
        }
        // Cross-signed chains need no precedence: visit in discovery order.
        Err(_) => {
            let mut by_rank = members.clone();
            by_rank.sort_by_key(|&m| rank[m]);
            by_rank
        }
    };

    let mut steps = Vec::with_capacity(members.len() * 2);
    let mut visit = Slots::new(inv.nodes.len());
    for &n in &order {
        let mut actions = Vec::with_capacity(2);
        if !subjects[n].is_empty() {
            actions.push(Action::TrustAdd);
        }
        actions.push(Action::LeafSwap);
        let after = if chain == ChainMode::Plain {
            // Invariant: the order is topological, so every verifier was visited already.
            verifiers[n].iter().filter_map(|&p| visit.get(p)).collect()
        } else {
            Vec::new()
        };
        visit.0[n] = push(&mut steps, n, actions, after);
    }
    for &n in &order {
        let mut after: Vec<StepId> = visit.get(n).into_iter().collect();
        after.extend(subjects[n].iter().filter_map(|&p| visit.get(p)));
        // Invariant: a verifier's visit holds its trust-add (it verifies n).
        after.extend(cross_drop_gates(chain, &verifiers[n], &subjects[n], &visit));
        push(&mut steps, n, vec![Action::TrustPrune], after);
    }
    Ok(Plan {
        ca,
        mode: Mode::Rotate,
        strategy: Strategy::Ordered,
        chain,
        steps,
        order,
        notes: Vec::new(),
        needs: Vec::new(),
        unrepaired: Vec::new(),
    })
}

/// The extra gates of `trust-prune(n)` under cross-signed chains: the prune drops the
/// cross certificate from n's chain, so every verifier of n must trust the new anchor
/// first — its step holding `trust-add` in `adds`. A verifier that is also a subject of n
/// is left out: the prune already waits for its leaf swap, which comes after its
/// trust-add. None under plain chains, where n's own leaf swap waited for them all.
fn cross_drop_gates(
    chain: ChainMode,
    verifiers: &[NodeId],
    subjects: &[NodeId],
    adds: &Slots,
) -> Vec<StepId> {
    if chain == ChainMode::Plain {
        return Vec::new();
    }
    let mut sorted = subjects.to_vec();
    sorted.sort_unstable();
    verifiers
        .iter()
        .filter(|v| sorted.binary_search(v).is_err())
        .filter_map(|&v| adds.get(v))
        .collect()
}

/// Node order for phased plans: by the wave of the node's leaf swap, then by name.
fn order_by_leaf_wave(plan: &Plan) -> Vec<NodeId> {
    let mut keyed: Vec<(usize, NodeId)> = plan
        .steps
        .iter()
        .filter(|s| s.actions.contains(&Action::LeafSwap))
        .map(|s| (s.wave, s.node))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, n)| n).collect()
}
