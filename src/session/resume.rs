//! The plan of an earlier run, rebuilt from its journal header and today's inventory, so
//! that a resumed run carries out the very same plan (`apply`) and `status` can say where
//! it stands: a rotation from its strategy and chain, a rollback from the state it
//! recorded, a bootstrap from its nodes, a routine run from the needs its header recorded.
//! Whether `apply` may resume it ([`resumption`]): the same plan, and nodes whose stores
//! are still usable ([`super::store_check`]), or `--replan` (whose new run carries over
//! the steps the old one confirmed: [`carry_over`]).

use super::store_check::{self, Before, StoresUsable};
use super::CommandError;
use crate::console::plural;
use crate::inventory::{CaId, Inventory};
use crate::journal::{Journal, NeedRecord, RunParams, RunState};
use crate::plan::{self, BundleNeed, LeafNeed, Mode, NodeNeed, Plan};
use crate::transport::Connector;

/// How an unfinished run goes on.
#[derive(Debug)]
pub enum Resumption {
    /// The very same plan, under the run's own id; its nodes' stores were checked again (a
    /// store can break between two runs).
    Same(Plan, StoresUsable),
    /// `--replan`: the plan recomputed from today's inventory, carried out as a new run
    /// (whose start checks the stores).
    Replanned(Plan),
}

impl Resumption {
    /// The plan the run goes on with.
    pub fn plan(&self) -> &Plan {
        match self {
            Resumption::Same(plan, _) | Resumption::Replanned(plan) => plan,
        }
    }
}

/// With `--replan`: steps of the new plan identical (node and actions) to steps the old
/// run `prev` confirmed are recorded done in `journal`, so they are not repeated.
pub fn carry_over(
    inv: &Inventory,
    journal: &Journal,
    plan: &Plan,
    prev: &RunState,
) -> Result<(), CommandError> {
    for s in &plan.steps {
        let name = &inv.nodes[s.node].name;
        let was_done = prev.steps.iter().any(|(id, (node, actions))| {
            prev.done.contains(id) && node == name && *actions == s.actions
        });
        if was_done {
            journal.step_start(s, name, &[])?;
            journal.step_done(s.id)?;
        }
    }
    Ok(())
}

/// Whether and how the unfinished run `prev` of CA `ca` resumes: refused (exit 64) when the
/// inventory changed its plan and `replan` is not given, refused (exit 78) when a node's
/// store or password file is no longer usable; nothing is changed by either.
pub fn resumption(
    inv: &Inventory,
    ca: CaId,
    prev: &RunState,
    replan: bool,
    connector: &dyn Connector,
) -> Result<Resumption, CommandError> {
    let plan = rebuild(inv, ca, prev)?;
    if plan.fingerprint(inv) == prev.header.fingerprint {
        let usable = store_check::check(inv, ca, &plan, connector, Before::Resume(&prev.run))?;
        return Ok(Resumption::Same(plan, usable));
    }
    if replan {
        return Ok(Resumption::Replanned(plan));
    }
    Err(CommandError::Usage(format!(
        "the inventory changed since run {} started, and its plan no longer matches ({} now); \
         nothing was changed\n  hint: restore the inventory to finish the run, or pass --replan to \
         recompute the plan from the current inventory (steps already confirmed are kept)",
        prev.run,
        plural(plan.steps.len(), "step")
    )))
}

/// The plan of an earlier run, rebuilt from its journal header and today's inventory.
pub(crate) fn rebuild(inv: &Inventory, ca: CaId, prev: &RunState) -> Result<Plan, CommandError> {
    let h = &prev.header;
    match h.mode {
        Mode::Rotate if h.params.leaves_only => Ok(plan::leaves_only(inv, ca, h.strategy, h.chain)),
        Mode::Rotate => plan::rotate(inv, ca, h.strategy, h.chain)
            .map_err(|e| CommandError::Usage(e.to_string())),
        Mode::Rollback => Ok(super::rollback::rebuild(inv, ca, prev)),
        Mode::Bootstrap => {
            let ids: Vec<usize> = h
                .params
                .install
                .iter()
                .filter_map(|n| inv.node_id(n))
                .collect();
            Ok(plan::bootstrap(inv, ca, &ids))
        }
        Mode::Renew => Ok(rebuild_routine(inv, ca, &h.params)),
    }
}

/// The routine plan of an earlier run, from the needs recorded in its header (or, for a
/// journal written before needs were recorded, from its `install` and `renew` lists).
fn rebuild_routine(inv: &Inventory, ca: CaId, params: &RunParams) -> Plan {
    let legacy = |names: &[String], bundle, leaf| -> Vec<NeedRecord> {
        names
            .iter()
            .map(|node| NeedRecord {
                node: node.clone(),
                bundle,
                leaf,
                reasons: Vec::new(),
            })
            .collect()
    };
    let recorded = if params.routine.is_empty() {
        let mut r = legacy(&params.install, BundleNeed::Broken, LeafNeed::Broken);
        r.extend(legacy(&params.renew, BundleNeed::Sound, LeafNeed::Due));
        r
    } else {
        params.routine.clone()
    };
    let needs = recorded
        .into_iter()
        .filter_map(|r| {
            Some(NodeNeed {
                node: inv.node_id(&r.node)?,
                bundle: r.bundle,
                leaf: r.leaf,
                reasons: r.reasons,
            })
        })
        .collect();
    plan::routine(inv, ca, needs, Vec::new())
}
