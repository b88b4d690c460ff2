//! The plan of an earlier run, rebuilt from its journal header and today's inventory, so
//! that a resumed run carries out the very same plan (`apply`) and `status` can say where
//! it stands: a rotation from its strategy and chain, a rollback from the state it
//! recorded, a bootstrap from its nodes, a routine run from the needs its header recorded.

use super::CommandError;
use crate::inventory::{CaId, Inventory};
use crate::journal::{NeedRecord, RunParams, RunState};
use crate::plan::{self, BundleNeed, LeafNeed, Mode, NodeNeed, Plan};

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
