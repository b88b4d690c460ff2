//! The update plan: which node gets which change, and which confirmations each change waits for.
//!
//! The planner is pure: it reads an [`Inventory`] and what is known of the fleet, and returns
//! a [`Plan`], a DAG of [`Step`]s. Why the order is safe is explained in
//! docs/design.md#safe-order and `docs/plan.md`; `simulate` proves it by running the plan
//! against real handshakes.

use serde::{Deserialize, Serialize};

use crate::inventory::{CaId, Inventory, NodeId};
pub use crate::inventory::{ChainMode, Strategy};

mod build;
pub mod expired;
mod order;
pub mod restarts;
mod rollback;
pub mod routine;
pub mod takeover;
mod waves;
mod window_fit;

pub use build::{bootstrap, renew, rotate, PlanError};
pub use order::{topological_order, CycleError};
pub use rollback::{rollback, NodeProgress, Progress, RotationState};
pub use routine::{routine, BundleNeed, LeafNeed, NodeNeed, Unrepaired};
pub use takeover::{is_leaves_only, leaves_only, rotate_from};
pub use window_fit::window_fit;

/// What a plan does to the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The CA was never created: every member gets the current CA bundle and a leaf.
    Bootstrap,
    /// Routine run of an existing CA: install missing files, renew expiring leaves,
    /// repair broken ones (see [`routine`]); trust in the current CA is unchanged.
    Renew,
    /// Roll the fleet from the current CA generation to the next one.
    Rotate,
    /// Return the fleet from an interrupted rotation to the current (old) generation.
    Rollback,
}

/// One change made to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Bootstrap: bundle = {current}, plus a leaf from the current CA.
    Install,
    /// A fresh leaf from the current CA; trust unchanged.
    Renew,
    /// Bundle = {old, new} (and the proof-key certificate beside it, if configured).
    TrustAdd,
    /// A key and leaf from the new CA (with the cross certificate under `cross-signed`).
    LeafSwap,
    /// Bundle = {new}; the proof-key certificate is removed.
    TrustPrune,
    /// Rollback: bundle = {old, new} again (the old anchor back where it was pruned).
    TrustRestore,
    /// Rollback: a fresh key and leaf from the old CA (never a key that was replaced).
    LeafRestore,
    /// Rollback: bundle = {old}; the new anchor and the proof-key certificate are removed.
    TrustDropNew,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Install => "install",
            Action::Renew => "renew",
            Action::TrustAdd => "trust-add",
            Action::LeafSwap => "leaf-swap",
            Action::TrustPrune => "trust-prune",
            Action::TrustRestore => "trust-restore",
            Action::LeafRestore => "leaf-restore",
            Action::TrustDropNew => "trust-drop-new",
        }
    }
}

/// Actions joined with `+`, e.g. `trust-add+leaf-swap`: how a step's work is named in
/// messages, the journal's readers and every rendering.
pub fn actions_label(actions: &[Action]) -> String {
    actions
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// Index of a step in [`Plan::steps`].
pub type StepId = usize;

/// One visit to one node: its actions run in order, then reload and confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: StepId,
    pub node: NodeId,
    pub actions: Vec<Action>,
    /// Steps that must be confirmed before this one starts. Always lower ids.
    pub after: Vec<StepId>,
    /// The earliest parallel layer: 0 for steps with no prerequisite, else 1 + max of `after`.
    pub wave: usize,
}

/// A DAG of steps for one CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub ca: CaId,
    pub mode: Mode,
    pub strategy: Strategy,
    pub chain: ChainMode,
    /// Topologically sorted: every id in `after` is smaller than the step's own id.
    pub steps: Vec<Step>,
    /// Node visiting order (the single-visit order for `ordered`, else by first step).
    pub order: Vec<NodeId>,
    /// What the planner saw and decided that the steps alone do not say (e.g. a
    /// leaves-only rotation, nodes whose files belong to neither generation).
    pub notes: Vec<String>,
    /// Routine plans: what each node needs and why (empty for other plans).
    pub needs: Vec<NodeNeed>,
    /// Routine plans: problems left alone, for the operator.
    pub unrepaired: Vec<Unrepaired>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Number of waves (0 for an empty plan).
    pub fn wave_count(&self) -> usize {
        self.steps.iter().map(|s| s.wave + 1).max().unwrap_or(0)
    }

    /// A stable fingerprint of the plan's content (mode, strategy, chain, node names,
    /// actions and edges), used by the journal to tell whether a resumed run still matches.
    pub fn fingerprint(&self, inv: &Inventory) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(format!(
            "{:?}|{:?}|{:?}|{}\n",
            self.mode, self.strategy, self.chain, inv.cas[self.ca].name
        ));
        for s in &self.steps {
            h.update(format!(
                "{}|{}|{:?}|{:?}\n",
                s.id, inv.nodes[s.node].name, s.actions, s.after
            ));
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
