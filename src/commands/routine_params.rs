//! A routine run in the journal and at its end: the needs its plan was built from are
//! recorded in the run header (so a resumed run rebuilds the very same plan), and the
//! problems it left alone are named when it ends, with a non-zero exit when any of them
//! keeps the fleet from being healthy.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::CommandError;
use crate::exit;
use crate::inventory::{CaId, Inventory};
use crate::output::style::plural;
use crate::plan::{self, BundleNeed, LeafNeed, NodeNeed, Plan, Unrepaired};

/// Key of the needs in the run header's `params`.
const KEY: &str = "routine";

/// One node's needs as the journal records them (by node name).
#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    node: String,
    bundle: BundleNeed,
    leaf: LeafNeed,
    #[serde(default)]
    reasons: Vec<String>,
}

/// Adds the needs of a routine plan to the run header's `params`.
pub fn record(inv: &Inventory, plan: &Plan, params: &mut Value) {
    if plan.needs.is_empty() {
        return;
    }
    let recorded: Vec<Recorded> = plan
        .needs
        .iter()
        .map(|n| Recorded {
            node: inv.nodes[n.node].name.clone(),
            bundle: n.bundle,
            leaf: n.leaf,
            reasons: n.reasons.clone(),
        })
        .collect();
    if let (Some(obj), Ok(v)) = (params.as_object_mut(), serde_json::to_value(recorded)) {
        obj.insert(KEY.into(), v);
    }
}

/// The routine plan of an earlier run, from the needs recorded in its header (or, for a
/// journal written before needs were recorded, from its `install` and `renew` lists).
pub fn rebuild(inv: &Inventory, ca: CaId, params: &Value) -> Plan {
    let names = |key: &str| -> Vec<String> {
        params[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let recorded: Vec<Recorded> = match params.get(KEY) {
        Some(v) => serde_json::from_value(v.clone()).unwrap_or_default(),
        None => {
            let install = names("install").into_iter().map(|node| Recorded {
                node,
                bundle: BundleNeed::Broken,
                leaf: LeafNeed::Broken,
                reasons: Vec::new(),
            });
            let renew = names("renew").into_iter().map(|node| Recorded {
                node,
                bundle: BundleNeed::Sound,
                leaf: LeafNeed::Due,
                reasons: Vec::new(),
            });
            install.chain(renew).collect()
        }
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

/// Ends a routine run that left problems alone: names them on stderr (unless the plan
/// text already did: `listed`) and fails when one of them is critical. `code` is the
/// exit code of the run itself.
pub fn left_alone(
    inv: &Inventory,
    unrepaired: &[Unrepaired],
    listed: bool,
    code: i32,
) -> Result<i32, CommandError> {
    if !listed {
        for u in unrepaired {
            let mark = if u.critical { "✗" } else { "!" };
            eprintln!("  {mark} {}", u.message);
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
