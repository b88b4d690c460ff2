//! `certroll plan` output: text grouped by wave, versioned JSON, Graphviz dot.
//!
//! The JSON format is documented in `docs/plan.md`; bump [`JSON_VERSION`] on any
//! incompatible change.

use std::fmt::Write as _;

use serde::Serialize;

use super::style::{pad, Style};
use crate::inventory::Inventory;
use crate::plan::{Action, ChainMode, Mode, Plan, Step};

/// Version of the JSON plan format.
pub const JSON_VERSION: u32 = 1;

/// A plan with what is needed to describe it: the inventory and the CA generations.
#[derive(Debug, Clone, Copy)]
pub struct PlanView<'a> {
    pub inv: &'a Inventory,
    pub plan: &'a Plan,
    /// Generation in use (None before bootstrap).
    pub current: Option<u32>,
    /// Generation being rolled out (rotation only; None if not created yet).
    pub next: Option<u32>,
}

impl PlanView<'_> {
    fn gen(&self, g: Option<u32>, fallback: &str) -> String {
        g.map(|g| format!("G{g}"))
            .unwrap_or_else(|| fallback.to_string())
    }

    fn cur(&self) -> String {
        self.gen(
            self.current,
            if self.plan.mode == Mode::Bootstrap {
                "G1"
            } else {
                "current"
            },
        )
    }

    fn nxt(&self) -> String {
        self.gen(self.next.or(self.current.map(|c| c + 1)), "next")
    }

    /// What one action changes on the node, in a few words.
    fn describe(&self, step: &Step, action: Action) -> String {
        let node = &self.inv.nodes[step.node];
        let proof = node.proof_cert.is_some();
        match action {
            Action::Install => format!(
                "bundle {{{}}}, new key and leaf from {}",
                self.cur(),
                self.cur()
            ),
            Action::Renew => format!("new key and leaf from {}", self.cur()),
            Action::TrustAdd if proof => {
                format!("bundle {{{}, {}}} + proof-key cert", self.cur(), self.nxt())
            }
            Action::TrustAdd => format!("bundle {{{}, {}}}", self.cur(), self.nxt()),
            Action::LeafSwap if self.plan.chain == ChainMode::CrossSigned => {
                format!("new key and leaf from {} + cross cert", self.nxt())
            }
            Action::LeafSwap => format!("new key and leaf from {}", self.nxt()),
            Action::TrustPrune => format!("bundle {{{}}}", self.nxt()),
        }
    }

    fn title(&self) -> String {
        let ca = &self.inv.cas[self.plan.ca].name;
        match self.plan.mode {
            Mode::Bootstrap => format!("Bootstrap CA {ca} ({})", self.cur()),
            Mode::Renew => format!("Renew leaves of CA {ca} ({})", self.cur()),
            Mode::Rotate => format!(
                "Rotate CA {ca}: {} → {} · strategy {} · chain {}",
                self.cur(),
                self.nxt(),
                kebab(self.plan.strategy),
                kebab(self.plan.chain)
            ),
        }
    }
}

fn kebab<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Names of prerequisite steps grouped by action: `trust-add on lb1, lb2; leaf-swap on app1`.
fn waits_for(view: &PlanView<'_>, step: &Step) -> String {
    const SHOWN: usize = 6;
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for &a in &step.after {
        let pre = &view.plan.steps[a];
        let label: Vec<&str> = pre.actions.iter().map(|a| a.as_str()).collect();
        let label = label.join("+");
        let name = view.inv.nodes[pre.node].name.as_str();
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, names)) => names.push(name),
            None => groups.push((label, vec![name])),
        }
    }
    let parts: Vec<String> = groups
        .into_iter()
        .map(|(label, names)| {
            let mut shown = names
                .iter()
                .take(SHOWN)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            if names.len() > SHOWN {
                let _ = write!(shown, " and {} more", names.len() - SHOWN);
            }
            format!("{label} on {shown}")
        })
        .collect();
    parts.join("; ")
}

fn paint_action(style: Style, a: Action) -> String {
    match a {
        Action::Install | Action::Renew => style.cyan(a.as_str()),
        Action::TrustAdd => style.green(a.as_str()),
        Action::LeafSwap => style.yellow(a.as_str()),
        Action::TrustPrune => style.magenta(a.as_str()),
    }
}

/// The plan for people: a header, then one block per wave, one line per step.
pub fn text(view: &PlanView<'_>, style: Style) -> String {
    let plan = view.plan;
    let mut out = String::new();
    let _ = writeln!(out, "{}", style.bold(&view.title()));
    let links = view.inv.links_of(plan.ca).count();
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "{} nodes · {links} links · nothing to do",
            view.inv.members(plan.ca).len()
        );
        return out;
    }
    let _ = writeln!(
        out,
        "{} · {} · {} in {}",
        plural(plan.order.len(), "node"),
        plural(links, "link"),
        plural(plan.steps.len(), "step"),
        plural(plan.wave_count(), "wave")
    );
    if plan.steps.iter().any(|s| !s.after.is_empty()) {
        let legend =
            "Each ↳ line lists the steps that must be confirmed before the step above it starts.";
        let _ = writeln!(out, "{}", style.dim(legend));
    }
    let name_w = plan
        .steps
        .iter()
        .map(|s| view.inv.nodes[s.node].name.len())
        .max()
        .unwrap_or(0);
    let id_w = plan.steps.len().saturating_sub(1).to_string().len() + 1;
    let act_w = plan
        .steps
        .iter()
        .map(|s| actions_plain(s).len())
        .max()
        .unwrap_or(0);
    let mut by_wave: Vec<Vec<&Step>> = vec![Vec::new(); plan.wave_count()];
    for s in &plan.steps {
        by_wave[s.wave].push(s);
    }
    for (w, steps) in by_wave.iter().enumerate() {
        let note = if w == 0 { ", no prerequisites" } else { "" };
        let _ = writeln!(
            out,
            "\n{}",
            style.bold(&format!(
                "Wave {} · {}{note}",
                w + 1,
                plural(steps.len(), "step")
            ))
        );
        for s in steps {
            write_step(&mut out, view, style, s, (id_w, name_w, act_w));
        }
    }
    out
}

/// `5 steps`, `1 step`.
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn actions_plain(s: &Step) -> String {
    s.actions
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(" + ")
}

/// One step line; `widths` are the id, node name and actions columns.
fn write_step(
    out: &mut String,
    view: &PlanView<'_>,
    style: Style,
    s: &Step,
    widths: (usize, usize, usize),
) {
    let (id_w, name_w, act_w) = widths;
    let id = format!("#{}", s.id);
    let name = &view.inv.nodes[s.node].name;
    let acts_plain = actions_plain(s);
    let acts: Vec<String> = s.actions.iter().map(|&a| paint_action(style, a)).collect();
    let what: Vec<String> = s.actions.iter().map(|&a| view.describe(s, a)).collect();
    let _ = write!(
        out,
        "  {} {} {} {}",
        style.dim(&format!("{id:>id_w$}")),
        pad(&style.bold(name), name.len(), name_w),
        pad(&acts.join(" + "), acts_plain.len(), act_w),
        what.join("; ")
    );
    if !s.after.is_empty() {
        let _ = write!(
            out,
            "\n  {:id_w$} {}",
            "",
            style.dim(&format!("{:name_w$} ↳ after {}", "", waits_for(view, s)))
        );
    }
    out.push('\n');
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    version: u32,
    ca: &'a str,
    mode: Mode,
    strategy: crate::plan::Strategy,
    chain: ChainMode,
    generation: JsonGenerations,
    waves: usize,
    steps: Vec<JsonStep<'a>>,
    order: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonGenerations {
    current: Option<u32>,
    next: Option<u32>,
}

#[derive(Serialize)]
struct JsonStep<'a> {
    id: usize,
    node: &'a str,
    actions: &'a [Action],
    after: &'a [usize],
    wave: usize,
}

/// The plan for scripts (format version [`JSON_VERSION`], see docs/plan.md).
pub fn json(view: &PlanView<'_>) -> String {
    let plan = view.plan;
    let names = |n: usize| view.inv.nodes[n].name.as_str();
    let doc = JsonPlan {
        version: JSON_VERSION,
        ca: &view.inv.cas[plan.ca].name,
        mode: plan.mode,
        strategy: plan.strategy,
        chain: plan.chain,
        generation: JsonGenerations {
            current: view.current,
            next: view.next,
        },
        waves: plan.wave_count(),
        steps: plan
            .steps
            .iter()
            .map(|s| JsonStep {
                id: s.id,
                node: names(s.node),
                actions: &s.actions,
                after: &s.after,
                wave: s.wave,
            })
            .collect(),
        order: plan.order.iter().map(|&n| names(n)).collect(),
    };
    // Invariant: every field serializes (plain strings, numbers and enums).
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

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
                .map(|s| {
                    format!(
                        "#{} {}",
                        s.id,
                        s.actions
                            .iter()
                            .map(|a| a.as_str())
                            .collect::<Vec<_>>()
                            .join("+")
                    )
                })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::InventoryBuilder;
    use crate::plan::{rotate, Strategy};

    fn view_fixture() -> (Inventory, Plan) {
        let inv = InventoryBuilder::new()
            .link("lb1", "app1")
            .mutual("app1", "db1")
            .build();
        let plan = rotate(&inv, 0, Strategy::Phased, ChainMode::Plain).unwrap();
        (inv, plan)
    }

    #[test]
    fn text_groups_by_wave_and_names_gates() {
        let (inv, plan) = view_fixture();
        let out = text(
            &PlanView {
                inv: &inv,
                plan: &plan,
                current: Some(1),
                next: Some(2),
            },
            Style::plain(),
        );
        assert!(
            out.starts_with("Rotate CA internal: G1 → G2 · strategy phased · chain plain\n"),
            "{out}"
        );
        assert!(out.contains("Wave 1 · 3 steps, no prerequisites"), "{out}");
        assert!(out.contains("app1 leaf-swap"), "{out}");
        assert!(out.contains("↳ after trust-add on app1, db1, lb1"), "{out}");
        assert!(out.contains("bundle {G2}"), "{out}");
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn json_matches_the_documented_shape() {
        let (inv, plan) = view_fixture();
        let v: serde_json::Value = serde_json::from_str(&json(&PlanView {
            inv: &inv,
            plan: &plan,
            current: Some(1),
            next: None,
        }))
        .unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["ca"], "internal");
        assert_eq!(v["strategy"], "phased");
        assert_eq!(v["chain"], "plain");
        assert_eq!(v["mode"], "rotate");
        assert_eq!(v["steps"][0]["actions"][0], "trust-add");
        assert!(v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["after"].is_array() && s["wave"].is_u64()));
        assert_eq!(v["order"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn dot_draws_links_and_waves() {
        let (inv, plan) = view_fixture();
        let out = dot(&PlanView {
            inv: &inv,
            plan: &plan,
            current: None,
            next: None,
        });
        assert!(out.starts_with("digraph certroll {"));
        assert!(out.contains("\"app1\" -> \"db1\" [dir=both"));
        assert!(out.contains("cluster_wave1"));
    }
}
