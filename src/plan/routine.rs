//! Routine plans of an existing CA (the cron job): install what is missing, renew what
//! expires, repair what is broken — every problem a node's files show that certroll can
//! fix becomes one step, and what it must not touch is held back with the reason.
//!
//! Why no routine step waits for another: a routine step only ever
//! - rewrites a trust bundle that trusts nothing (missing, not PEM, no certificate) to
//!   {current}: no link through that bundle works before, so none can break;
//! - replaces a leaf (with its key) by a fresh one from the current CA: every verifier
//!   either trusts the current CA already (so the new leaf is accepted at once), or trusts
//!   nothing, or trusts something else. In the last case the link works today only if the
//!   old leaf comes from that other CA, so such a leaf is **held back**, never replaced.
//!
//! A bundle that trusts something but not the current CA is never rewritten by a routine
//! run (it may carry a link certroll does not manage); it is named for the operator. With
//! these two rules every repair is independent, and `plan --check` proves it: it starts
//! from files broken the way each node's needs say, and requires that no link that
//! handshakes stops handshaking, in any order, and that every link works at the end
//! unless a node's need explains why not.

use serde::{Deserialize, Serialize};

use super::{waves, Action, ChainMode, Mode, Plan, Step, Strategy};
use crate::inventory::{CaId, Inventory, NodeId};

/// What a node's trust bundle needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BundleNeed {
    /// Trusts the current CA: nothing to do.
    #[default]
    Sound,
    /// Trusts nothing (missing, not PEM, no certificate): rewritten to {current}.
    Broken,
    /// Parses but lacks the current CA, or could not be read: left alone.
    Untrusting,
}

/// What a node's leaf (certificate and key) needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LeafNeed {
    /// Valid, current, matching, covering its names, key private: nothing to do.
    #[default]
    Sound,
    /// Unusable (missing, corrupt, key mismatch, expired, not yet valid): replaced.
    Broken,
    /// Usable, from the current CA, but due (expiring, a name missing, key exposed): replaced.
    Due,
    /// Usable but issued by another CA: replaced unless a verifier relies on that CA.
    Foreign,
    /// Could not be read: left alone.
    Unknown,
}

/// One node's needs and the problems behind them (sentences that name node and file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeNeed {
    pub node: NodeId,
    pub bundle: BundleNeed,
    pub leaf: LeafNeed,
    pub reasons: Vec<String>,
}

impl NodeNeed {
    fn leaf_changes(&self) -> bool {
        matches!(
            self.leaf,
            LeafNeed::Broken | LeafNeed::Due | LeafNeed::Foreign
        ) || self.bundle == BundleNeed::Broken
    }

    /// The actions of this node's step, if it gets one.
    fn actions(&self) -> Option<Action> {
        if self.leaf == LeafNeed::Unknown {
            None
        } else if self.bundle == BundleNeed::Broken {
            Some(Action::Install)
        } else if self.leaf_changes() {
            Some(Action::Renew)
        } else {
            None
        }
    }
}

/// A problem a routine run leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unrepaired {
    pub node: NodeId,
    /// The run cannot be called healthy while this stays (exit non-zero).
    pub critical: bool,
    pub message: String,
}

/// The routine plan for `needs` (one entry per member with something to do; members not
/// listed are sound). Steps come in node order, all independent (see the module
/// documentation); `unrepaired` is carried into the plan and extended with held-back leaves.
pub fn routine(
    inv: &Inventory,
    ca: CaId,
    mut needs: Vec<NodeNeed>,
    mut unrepaired: Vec<Unrepaired>,
) -> Plan {
    needs.sort_by_key(|n| n.node);
    needs.dedup_by_key(|n| n.node);
    let verifiers = inv.verifiers(ca);
    let mut by_node: Vec<Option<usize>> = vec![None; inv.nodes.len()];
    for (i, n) in needs.iter().enumerate() {
        by_node[n.node] = Some(i);
    }
    let bundle_of = |p: NodeId| by_node[p].map_or(BundleNeed::Sound, |i| needs[i].bundle);
    let mut steps = Vec::new();
    let mut order = Vec::new();
    for need in &needs {
        let Some(action) = need.actions() else {
            continue;
        };
        if need.leaf == LeafNeed::Foreign {
            let relying: Vec<&str> = verifiers[need.node]
                .iter()
                .filter(|&&p| bundle_of(p) == BundleNeed::Untrusting)
                .map(|&p| inv.nodes[p].name.as_str())
                .collect();
            if !relying.is_empty() {
                unrepaired.push(Unrepaired {
                    node: need.node,
                    critical: false,
                    message: format!(
                        "leaf of node {} is from another CA but not replaced: {} {} not trust the current CA and may rely on it; repair {} trust bundle first",
                        inv.nodes[need.node].name,
                        relying.join(", "),
                        if relying.len() == 1 { "does" } else { "do" },
                        if relying.len() == 1 { "that" } else { "their" },
                    ),
                });
                continue;
            }
        }
        steps.push(Step {
            id: steps.len(),
            node: need.node,
            actions: vec![action],
            after: Vec::new(),
            wave: 0,
        });
        order.push(need.node);
    }
    waves::assign(&mut steps);
    let mut plan = Plan {
        ca,
        mode: Mode::Renew,
        strategy: Strategy::Phased,
        chain: ChainMode::Plain,
        steps,
        order,
        needs: Vec::new(),
        unrepaired,
        notes: Vec::new(),
    };
    plan.needs = needs;
    plan
}

/// The needs behind a step of a routine plan (`None` for other plans).
pub fn need_of(plan: &Plan, node: NodeId) -> Option<&NodeNeed> {
    // Invariant: `routine` keeps the needs sorted by node, one per node.
    let i = plan.needs.binary_search_by_key(&node, |n| n.node).ok()?;
    plan.needs.get(i)
}

#[cfg(test)]
#[path = "routine_tests.rs"]
mod tests;
