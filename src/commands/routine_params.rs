//! A routine run in the journal and at its end: the plan of a resumed run is rebuilt from
//! the needs its header recorded (so it is the very same plan), and the problems a run
//! left alone are named when it ends, with a non-zero exit when any of them keeps the
//! fleet from being healthy.

use super::CommandError;
use crate::exit;
use crate::inventory::{CaId, Inventory};
use crate::journal::{NeedRecord, RunParams};
use crate::output::style::plural;
use crate::plan::{self, BundleNeed, LeafNeed, NodeNeed, Plan, Unrepaired};

/// The routine plan of an earlier run, from the needs recorded in its header (or, for a
/// journal written before needs were recorded, from its `install` and `renew` lists).
pub fn rebuild(inv: &Inventory, ca: CaId, params: &RunParams) -> Plan {
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

/// Ends a routine run that left problems alone: names them (unless the plan text already
/// did: `listed`) on stdout with the run's outcome — on stderr when `json` events own
/// stdout — and fails when one of them is critical. `code` is the exit code of the run
/// itself.
pub fn left_alone(
    inv: &Inventory,
    unrepaired: &[Unrepaired],
    listed: bool,
    json: bool,
    code: i32,
) -> Result<i32, CommandError> {
    if !listed {
        for u in unrepaired {
            let mark = if u.critical { "✗" } else { "!" };
            let message = crate::output::escape::line(&u.message);
            if json {
                crate::errln!("  {mark} {message}");
            } else {
                crate::outln!("  {mark} {message}");
            }
        }
    }
    let critical: Vec<&Unrepaired> = unrepaired.iter().filter(|u| u.critical).collect();
    if critical.is_empty() || code != exit::OK {
        return Ok(code);
    }
    let mut nodes: Vec<&str> = Vec::new();
    for u in &critical {
        let name = inv.nodes[u.node].name.as_str();
        if !nodes.contains(&name) {
            nodes.push(name);
        }
    }
    Err(CommandError::Other(anyhow::anyhow!(
        "{} left that certroll cannot repair (on {}: {}); everything else is done\n  hint: fix what is named above, then run `certroll verify`",
        plural(critical.len(), "problem"),
        plural(nodes.len(), "node"),
        nodes.join(", ")
    )))
}
