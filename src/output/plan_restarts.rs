//! The part of a plan about restart-only nodes and pools: per node, how many restarts the
//! plan costs it and why its visits are apart; per pool, its budget (docs/plan.md#restart-only-nodes).
//!
//! Nothing is shown, and no JSON key written, for a fleet without pools or restart-only nodes.

use std::io::{self, Write};

use serde::Serialize;

use super::PlanView;
use crate::output::style::Style;
use crate::plan::restarts::{costs, RestartCost};
use crate::plan::{actions_label, Action};

/// One restart-only node in the JSON plan.
#[derive(Serialize)]
pub(super) struct JsonRestarts {
    node: String,
    restarts: usize,
    visits: Vec<JsonVisit>,
}

#[derive(Serialize)]
struct JsonVisit {
    step: usize,
    actions: Vec<Action>,
    restarts: bool,
    why: String,
}

/// One pool in the JSON plan.
#[derive(Serialize)]
pub(super) struct JsonPool {
    name: String,
    members: Vec<String>,
    max_unavailable: String,
    /// Members allowed unavailable at once.
    budget: usize,
    min_healthy_time_s: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    windows: Vec<String>,
}

/// The `restarts` key of the JSON plan (empty without restart-only nodes).
pub(super) fn json_restarts(view: &PlanView<'_>) -> Vec<JsonRestarts> {
    costs(view.plan, view.inv)
        .into_iter()
        .map(|c| JsonRestarts {
            node: view.inv.nodes[c.node].name.clone(),
            restarts: c.restarts,
            visits: c
                .visits
                .into_iter()
                .map(|v| JsonVisit {
                    step: v.step,
                    actions: v.actions,
                    restarts: v.restarts,
                    why: v.why,
                })
                .collect(),
        })
        .collect()
}

/// The `pools` key of the JSON plan: the pools with a member in the plan.
pub(super) fn json_pools(view: &PlanView<'_>) -> Vec<JsonPool> {
    let inv = view.inv;
    let mut used = vec![false; inv.pools.pools.len()];
    for s in &view.plan.steps {
        if let Some(p) = inv.pools.pool_of(s.node) {
            used[p] = true;
        }
    }
    inv.pools
        .pools
        .iter()
        .zip(used)
        .filter(|(_, used)| *used)
        .map(|(p, _)| JsonPool {
            name: p.name.clone(),
            members: p
                .members
                .iter()
                .map(|&m| inv.nodes[m].name.clone())
                .collect(),
            max_unavailable: p.max_unavailable.to_string(),
            budget: p.budget(),
            min_healthy_time_s: p.min_healthy_time.as_secs(),
            windows: p.windows.iter().map(ToString::to_string).collect(),
        })
        .collect()
}

/// The text section: pools first, then every restart-only node with its visits.
pub(super) fn write_text(
    out: &mut impl Write,
    view: &PlanView<'_>,
    style: Style,
) -> io::Result<()> {
    let pools = json_pools(view);
    let nodes = costs(view.plan, view.inv);
    if pools.is_empty() && nodes.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n{}", style.bold("Pools and restarts"))?;
    for p in &pools {
        let healthy = if p.min_healthy_time_s > 0 {
            format!(
                ", each healthy for {} before the next",
                crate::duration::format(std::time::Duration::from_secs(p.min_healthy_time_s))
            )
        } else {
            String::new()
        };
        let windows = if p.windows.is_empty() {
            String::new()
        } else {
            format!(", restarts only in {}", p.windows.join(", "))
        };
        writeln!(
            out,
            "  pool {}: {} member(s), at most {} unavailable at once (max_unavailable {}){healthy}{windows}",
            p.name,
            p.members.len(),
            p.budget,
            p.max_unavailable
        )?;
    }
    let name_w = nodes
        .iter()
        .map(|c| view.inv.nodes[c.node].name.len())
        .max()
        .unwrap_or(0);
    for c in &nodes {
        write_node(out, view, style, c, name_w)?;
    }
    Ok(())
}

fn write_node(
    out: &mut impl Write,
    view: &PlanView<'_>,
    style: Style,
    c: &RestartCost,
    name_w: usize,
) -> io::Result<()> {
    let name = crate::output::escape::line(&view.inv.nodes[c.node].name);
    let count = match c.restarts {
        1 => "1 restart".to_string(),
        n => format!("{n} restarts"),
    };
    writeln!(out, "  {name:<name_w$}  {}", style.bold(&count))?;
    for v in &c.visits {
        writeln!(
            out,
            "  {:<name_w$}    #{} {}: {}",
            "",
            v.step,
            actions_label(&v.actions),
            style.dim(&v.why)
        )?;
    }
    Ok(())
}
