//! `certroll plan --format dot`: the plan as a Graphviz picture.

use std::fmt::Write as _;

use super::PlanView;
use crate::plan::{actions_label, Action};

/// A Graphviz picture: nodes ranked by the wave of their leaf change, links as edges
/// (`dir=both` for mutual links).
pub fn dot(view: &PlanView<'_>) -> String {
    let plan = view.plan;
    let mut node_wave = vec![None; view.inv.nodes.len()];
    for s in &plan.steps {
        if s.actions
            .iter()
            .any(|a| matches!(a, Action::LeafSwap | Action::Install | Action::Renew))
        {
            node_wave[s.node] = Some(s.wave);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "digraph certroll {{\n  label={:?};\n  labelloc=t;\n  rankdir=LR;",
        view.title()
    );
    let _ = writeln!(out, "  node [shape=box, style=rounded];");
    let waves = plan.wave_count();
    for w in 0..waves {
        let _ = writeln!(
            out,
            "  subgraph cluster_wave{w} {{\n    label=\"wave {}\";\n    style=dashed;",
            w + 1
        );
        for (n, _) in node_wave
            .iter()
            .enumerate()
            .filter(|(_, nw)| **nw == Some(w))
        {
            let node = &view.inv.nodes[n];
            let steps: Vec<String> = plan
                .steps
                .iter()
                .filter(|s| s.node == n)
                .map(|s| format!("#{} {}", s.id, actions_label(&s.actions)))
                .collect();
            let _ = writeln!(
                out,
                "    {:?} [label={:?}];",
                node.name,
                format!("{}\n{}", node.name, steps.join("\n"))
            );
        }
        let _ = writeln!(out, "  }}");
    }
    for l in view.inv.links_of(plan.ca) {
        let (c, s) = (
            &view.inv.nodes[l.client].name,
            &view.inv.nodes[l.server].name,
        );
        let attrs = if l.mutual {
            " [dir=both, label=\"mTLS\"]"
        } else {
            ""
        };
        let _ = writeln!(out, "  {c:?} -> {s:?}{attrs};");
    }
    out.push_str("}\n");
    out
}
