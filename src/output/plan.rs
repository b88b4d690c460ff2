//! `certroll plan` output: text grouped by wave, versioned JSON, Graphviz dot.
//!
//! The JSON format is documented in `docs/plan.md`; bump [`JSON_VERSION`] on any
//! incompatible change.

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

use super::style::{pad, plural, Style};
use crate::inventory::Inventory;
use crate::plan::{actions_label, Action, ChainMode, Mode, Plan, Step};

/// Version of the JSON plan format.
pub const JSON_VERSION: u32 = 1;

#[path = "plan_dot.rs"]
mod plan_dot;
pub use plan_dot::dot;
#[path = "plan_json.rs"]
mod plan_json;
#[path = "plan_restarts.rs"]
mod plan_restarts;
pub use plan_json::{json, json_to};

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
            Action::TrustPrune if self.plan.chain == ChainMode::CrossSigned => {
                format!("bundle {{{}}}, leaf without cross cert", self.nxt())
            }
            Action::TrustPrune => format!("bundle {{{}}}", self.nxt()),
            Action::TrustRestore if proof => {
                format!("bundle {{{}, {}}} + proof-key cert", self.cur(), self.nxt())
            }
            Action::TrustRestore => format!("bundle {{{}, {}}}", self.cur(), self.nxt()),
            Action::LeafRestore => format!("fresh key and leaf from {}", self.cur()),
            Action::TrustDropNew => format!("bundle {{{}}}", self.cur()),
        }
    }

    fn title(&self) -> String {
        let ca = &self.inv.cas[self.plan.ca].name;
        match self.plan.mode {
            Mode::Bootstrap => format!("Bootstrap CA {ca} ({})", self.cur()),
            Mode::Renew => format!(
                "Routine run of CA {ca} ({}): install, renew, repair",
                self.cur()
            ),
            Mode::Rotate => format!(
                "Rotate CA {ca}: {} → {} · strategy {} · chain {}",
                self.cur(),
                self.nxt(),
                kebab(self.plan.strategy),
                kebab(self.plan.chain)
            ),
            Mode::Rollback => format!(
                "Roll back CA {ca}: {} → {} (abandon {})",
                self.nxt(),
                self.cur(),
                self.nxt()
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

/// Per-step facts the text needs for every gate, computed once so that rendering a
/// plan of 100,000 nodes touches small arrays instead of every prerequisite step.
struct TextCache {
    /// Interned action labels (`trust-add`, `trust-add+leaf-swap`, ...).
    labels: Vec<(Vec<Action>, String)>,
    /// Per step, its index in `labels`.
    label_of: Vec<u32>,
    /// Description of each action, without and with a proof-key certificate.
    described: Vec<(Action, bool, String)>,
}

impl TextCache {
    fn new(view: &PlanView<'_>) -> Self {
        let mut labels: Vec<(Vec<Action>, String)> = Vec::new();
        let label_of = view
            .plan
            .steps
            .iter()
            .map(|s| {
                let i = match labels.iter().position(|(a, _)| *a == s.actions) {
                    Some(i) => i,
                    None => {
                        labels.push((s.actions.clone(), actions_label(&s.actions)));
                        labels.len() - 1
                    }
                };
                i as u32
            })
            .collect();
        TextCache {
            labels,
            label_of,
            described: Vec::new(),
        }
    }

    /// What one action does on the step's node (see [`PlanView::describe`]), memoized.
    fn describe(&mut self, view: &PlanView<'_>, step: &Step, action: Action) -> &str {
        let proof = view.inv.nodes[step.node].proof_cert.is_some();
        let i = match self
            .described
            .iter()
            .position(|(a, p, _)| *a == action && *p == proof)
        {
            Some(i) => i,
            None => {
                let d = view.describe(step, action);
                self.described.push((action, proof, d));
                self.described.len() - 1
            }
        };
        &self.described[i].2
    }

    /// Names of prerequisite steps grouped by action: `trust-add on lb1, lb2; leaf-swap on app1`.
    fn waits_for(&self, view: &PlanView<'_>, step: &Step) -> String {
        const SHOWN: usize = 6;
        // (label, count, first names) in order of first appearance.
        let mut groups: Vec<(u32, usize, Vec<&str>)> = Vec::new();
        for &a in &step.after {
            let label = self.label_of[a];
            let g = match groups.iter().position(|(l, _, _)| *l == label) {
                Some(g) => g,
                None => {
                    groups.push((label, 0, Vec::with_capacity(SHOWN)));
                    groups.len() - 1
                }
            };
            let (_, count, names) = &mut groups[g];
            *count += 1;
            if names.len() < SHOWN {
                names.push(view.inv.nodes[view.plan.steps[a].node].name.as_str());
            }
        }
        let mut out = String::new();
        for (i, (label, count, names)) in groups.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            let _ = write!(
                out,
                "{} on {}",
                self.labels[*label as usize].1,
                names.join(", ")
            );
            if *count > SHOWN {
                let _ = write!(out, " and {} more", count - SHOWN);
            }
        }
        out
    }
}

fn paint_action(style: Style, a: Action) -> String {
    match a {
        Action::Install | Action::Renew => style.cyan(a.as_str()),
        Action::TrustAdd => style.green(a.as_str()),
        Action::LeafSwap => style.yellow(a.as_str()),
        Action::TrustPrune | Action::TrustDropNew => style.magenta(a.as_str()),
        Action::TrustRestore => style.green(a.as_str()),
        Action::LeafRestore => style.yellow(a.as_str()),
    }
}

/// The plan for people: a header, then one block per wave, one line per step.
pub fn text(view: &PlanView<'_>, style: Style) -> String {
    let mut out = Vec::new();
    // Invariant: writing into a Vec cannot fail, and only valid UTF-8 is written.
    let _ = text_to(view, style, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// [`text`], written to `out` as it is produced (no copy of the whole plan in memory).
pub fn text_to(view: &PlanView<'_>, style: Style, out: &mut impl Write) -> io::Result<()> {
    let plan = view.plan;
    writeln!(out, "{}", style.bold(&view.title()))?;
    let links = view.inv.links_of(plan.ca).count();
    if plan.is_empty() {
        let members = view.inv.members(plan.ca).len();
        let what = if plan.unrepaired.is_empty() {
            "nothing to do"
        } else {
            "nothing certroll can repair"
        };
        writeln!(
            out,
            "{} · {} · {what}",
            plural(members, "node"),
            plural(links, "link")
        )?;
        return write_unrepaired(out, view, style);
    }
    writeln!(
        out,
        "{} · {} · {} in {}",
        plural(plan.order.len(), "node"),
        plural(links, "link"),
        plural(plan.steps.len(), "step"),
        plural(plan.wave_count(), "wave")
    )?;
    for note in &plan.notes {
        writeln!(out, "{} {}", style.bold("note:"), super::escape::line(note))?;
    }
    if plan.steps.iter().any(|s| !s.after.is_empty()) {
        let legend =
            "Each ↳ line lists the steps that must be confirmed before the step above it starts.";
        writeln!(out, "{}", style.dim(legend))?;
    }
    let name_w = plan
        .steps
        .iter()
        .map(|s| view.inv.nodes[s.node].name.len())
        .max()
        .unwrap_or(0);
    let id_w = plan.steps.len().saturating_sub(1).to_string().len() + 1;
    let act_w = plan.steps.iter().map(actions_len).max().unwrap_or(0);
    let mut by_wave: Vec<Vec<&Step>> = vec![Vec::new(); plan.wave_count()];
    for s in &plan.steps {
        by_wave[s.wave].push(s);
    }
    let mut cache = TextCache::new(view);
    for (w, steps) in by_wave.iter().enumerate() {
        let note = if w == 0 { ", no prerequisites" } else { "" };
        writeln!(
            out,
            "\n{}",
            style.bold(&format!(
                "Wave {} · {}{note}",
                w + 1,
                plural(steps.len(), "step")
            ))
        )?;
        for s in steps {
            write_step(out, view, &mut cache, style, s, (id_w, name_w, act_w))?;
        }
    }
    plan_restarts::write_text(out, view, style)?;
    write_unrepaired(out, view, style)
}

/// A routine plan's problems left for the operator, after its steps.
fn write_unrepaired(out: &mut impl Write, view: &PlanView<'_>, style: Style) -> io::Result<()> {
    let left = &view.plan.unrepaired;
    if left.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n{}",
        style.bold(&format!(
            "Left alone · {} certroll does not repair",
            plural(left.len(), "problem")
        ))
    )?;
    for u in left {
        let mark = if u.critical {
            style.red("✗")
        } else {
            style.yellow("!")
        };
        // What a node holds (a subject, an error) is shown, never obeyed.
        writeln!(out, "  {mark} {}", super::escape::line(&u.message))?;
    }
    Ok(())
}

/// Visible width of the step's actions joined with " + ".
fn actions_len(s: &Step) -> usize {
    s.actions.iter().map(|a| a.as_str().len()).sum::<usize>()
        + 3 * s.actions.len().saturating_sub(1)
}

/// One step line; `widths` are the id, node name and actions columns.
fn write_step(
    out: &mut impl Write,
    view: &PlanView<'_>,
    cache: &mut TextCache,
    style: Style,
    s: &Step,
    widths: (usize, usize, usize),
) -> io::Result<()> {
    let (id_w, name_w, act_w) = widths;
    let id = format!("#{}", s.id);
    let name = &view.inv.nodes[s.node].name;
    let acts_len = actions_len(s);
    let acts: Vec<String> = s.actions.iter().map(|&a| paint_action(style, a)).collect();
    let mut what = String::new();
    for (i, &a) in s.actions.iter().enumerate() {
        if i > 0 {
            what.push_str("; ");
        }
        what.push_str(cache.describe(view, s, a));
    }
    write!(
        out,
        "  {} {} {} {}",
        style.dim(&format!("{id:>id_w$}")),
        pad(&style.bold(name), name.len(), name_w),
        pad(&acts.join(" + "), acts_len, act_w),
        what
    )?;
    if let Some(need) = crate::plan::routine::need_of(view.plan, s.node) {
        for reason in &need.reasons {
            write!(
                out,
                "\n  {:id_w$} {}",
                "",
                style.dim(&format!(
                    "{:name_w$} ↳ because {}",
                    "",
                    super::escape::line(reason)
                ))
            )?;
        }
    }
    if !s.after.is_empty() {
        write!(
            out,
            "\n  {:id_w$} {}",
            "",
            style.dim(&format!(
                "{:name_w$} ↳ after {}",
                "",
                cache.waits_for(view, s)
            ))
        )?;
    }
    out.write_all(b"\n")
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
