//! Rendering `certroll status`: where a run stands, for people (text) and scripts (JSON).
//!
//! The command builds a [`RunReport`] from the journal and the rebuilt plan; this module
//! only shows it.

use std::fmt::Write as _;

use serde::Serialize;

use super::{escape, Style};
use crate::inventory::{ChainMode, Strategy};
use crate::journal::Holder;
use crate::plan::{actions_label, Action, Mode, StepId};

/// Where one step of the run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    Done,
    Failed,
    /// Started by the run that holds the lock now, not confirmed yet.
    Running,
    /// Started and not confirmed, and no process holds the lock: re-checked on resume.
    Interrupted,
    /// Every prerequisite confirmed.
    Ready,
    /// Some prerequisite not confirmed yet.
    Waiting,
}

/// How the run stands as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunProgress {
    Complete,
    /// It ended with steps failed or waiting; `certroll apply` resumes it.
    Incomplete,
    /// It has no end and a process holds the lock: it is being executed now.
    Running,
    /// It has no end and no process holds the lock: its process died; `apply` resumes it.
    Interrupted,
}

/// One step in the report.
#[derive(Debug, Serialize)]
pub struct StepStatus {
    pub id: StepId,
    pub node: String,
    pub actions: Vec<Action>,
    pub state: StepState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What certroll's own TLS confirm proved of a done step (the journal's `proof`):
    /// the handshake and, for a server that names no CA, which generations throwaway
    /// client certificates proved accepted or refused, or could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// Unconfirmed prerequisites of a waiting step.
    pub waiting_on: Vec<StepId>,
}

/// The report of `certroll status` (JSON `version` 1).
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub version: u32,
    pub run: String,
    pub ca: String,
    pub mode: Mode,
    /// A rollback: the run id of the rotation it rolls back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    pub strategy: Strategy,
    pub chain: ChainMode,
    pub generations: Vec<u32>,
    pub started_at: String,
    pub host: String,
    pub pid: u32,
    pub resumes: u32,
    pub status: RunProgress,
    /// The process holding the lock of the state directory, when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
    /// A process holds the lock (its record may be unreadable, then `holder` is `None`).
    #[serde(skip)]
    pub running: bool,
    pub steps: Vec<StepStatus>,
    /// Pools with a member in the plan (docs/apply.md#pools); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<crate::executor::PoolStatus>,
}

/// Who holds the lock now, for people.
pub fn running_line(holder: Option<&Holder>) -> String {
    match holder {
        Some(h) => format!(
            "a certroll run holds the lock now: {}",
            escape::line(&h.to_string())
        ),
        None => "a certroll run holds the lock now (its holder record could not be read)".into(),
    }
}

/// The serde spelling of a unit enum (`cross-signed`), for text.
fn word<T: Serialize>(v: &T) -> String {
    // Invariant: the enums shown here serialize to plain strings.
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The report as pretty JSON.
pub fn json(r: &RunReport) -> String {
    // Invariant: the report holds only strings, numbers and lists.
    serde_json::to_string_pretty(r).unwrap_or_default()
}

/// The report as text for a terminal.
pub fn text(r: &RunReport, style: Style) -> String {
    let mut out = String::new();
    let mut gens: Vec<String> = r.generations.iter().map(|g| format!("G{g}")).collect();
    // The journal lists generations oldest first; a rollback goes from the new to the old.
    if r.mode == Mode::Rollback {
        gens.reverse();
    }
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!(
            "Run {}: {} CA {} ({}), {}, {} — {}",
            r.run,
            word(&r.mode),
            r.ca,
            gens.join(" → "),
            word(&r.strategy),
            word(&r.chain),
            word(&r.status)
        ))
    );
    if let Some(of) = &r.rollback_of {
        let _ = writeln!(out, "rollback of run {of}");
    }
    let _ = writeln!(
        out,
        "started {} by pid {} on {}, resumed {}",
        r.started_at,
        r.pid,
        r.host,
        super::style::plural(r.resumes as usize, "time")
    );
    if r.running {
        let _ = writeln!(out, "{}", running_line(r.holder.as_ref()));
    }
    let count = |s: StepState| r.steps.iter().filter(|x| x.state == s).count();
    let _ = writeln!(
        out,
        "{}: {} done · {} failed · {} running · {} interrupted · {} ready · {} waiting",
        super::style::plural(r.steps.len(), "step"),
        count(StepState::Done),
        count(StepState::Failed),
        count(StepState::Running),
        count(StepState::Interrupted),
        count(StepState::Ready),
        count(StepState::Waiting)
    );
    let label = |id: StepId| {
        r.steps
            .get(id)
            .map(|s| format!("#{id} {} {}", s.node, actions_label(&s.actions)))
            .unwrap_or_default()
    };
    for s in r.steps.iter().filter(|s| s.state == StepState::Done) {
        if let Some(proof) = &s.proof {
            // A proof quotes what the server sent (alerts): shown, never obeyed.
            let _ = writeln!(
                out,
                "  {} {}: {}",
                style.green("done       "),
                label(s.id),
                escape::line(proof)
            );
        }
    }
    for s in r.steps.iter().filter(|s| s.state != StepState::Done) {
        let state = match s.state {
            StepState::Failed => style.red("failed     "),
            StepState::Running => style.cyan("running    "),
            StepState::Interrupted => style.yellow("interrupted"),
            StepState::Ready => style.cyan("ready      "),
            StepState::Waiting | StepState::Done => style.dim("waiting    "),
        };
        let _ = write!(out, "  {state} {}", label(s.id));
        if let Some(e) = &s.error {
            // A step's error holds what the node said: shown, never obeyed.
            let _ = write!(out, ": {}", escape::line(e));
        }
        if s.state == StepState::Waiting {
            let on: Vec<String> = s.waiting_on.iter().map(|&w| label(w)).collect();
            let _ = write!(out, "\n              ↳ waits for {}", on.join(", "));
        }
        out.push('\n');
    }
    for p in &r.pools {
        let down: Vec<String> = p
            .down
            .iter()
            .map(|d| format!("{} ({})", escape::line(&d.node), d.why))
            .collect();
        let _ = writeln!(
            out,
            "pool {}: {} of {} member(s) down now, budget {}{}",
            p.name,
            p.down.len(),
            p.members,
            p.budget,
            if down.is_empty() {
                String::new()
            } else {
                format!(": {}", down.join(", "))
            }
        );
        for (node, on) in &p.waiting {
            let _ = writeln!(out, "  {node} waits for {}", on.join(", "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(mode: Mode, generations: Vec<u32>) -> RunReport {
        RunReport {
            version: 1,
            run: "r1".into(),
            ca: "internal".into(),
            mode,
            rollback_of: (mode == Mode::Rollback).then(|| "r0".into()),
            strategy: Strategy::default(),
            chain: ChainMode::default(),
            generations,
            started_at: "2026-01-01T00:00:00Z".into(),
            host: "h".into(),
            pid: 7,
            resumes: 0,
            status: RunProgress::Complete,
            holder: None,
            running: false,
            steps: Vec::new(),
            pools: Vec::new(),
        }
    }

    #[test]
    fn a_done_step_shows_the_proof_of_its_confirm() {
        let mut r = report(Mode::Rotate, vec![1, 2]);
        let step = |id, actions, proof: Option<&str>| StepStatus {
            id,
            node: "db".into(),
            actions,
            state: StepState::Done,
            error: None,
            proof: proof.map(str::to_string),
            waiting_on: Vec::new(),
        };
        let proof = "TLS at 127.0.0.1:6379: chain, key and handshake proven (TLS 1.3); it names \
                     no CA in its CertificateRequest, so trust was tested with throwaway client \
                     certificates: G2's accepted, G1's refused (it sent alert UnknownCA)";
        r.steps = vec![
            step(0, vec![Action::LeafSwap], None),
            step(1, vec![Action::TrustPrune], Some(proof)),
        ];
        let text = text(&r, Style::plain());
        assert!(
            text.contains(&format!("  done        #1 db trust-prune: {proof}\n")),
            "{text}"
        );
        assert!(
            !text.contains("#0 db"),
            "a done step without a proof is counted only: {text}"
        );
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(v["steps"][1]["proof"], proof);
        assert!(v["steps"][0].get("proof").is_none());
    }

    #[test]
    fn a_rollback_is_labelled_from_the_new_generation_to_the_old() {
        let text = text(&report(Mode::Rollback, vec![1, 2]), Style::plain());
        assert!(
            text.starts_with("Run r1: rollback CA internal (G2 → G1),"),
            "{text}"
        );
        let text = super::text(&report(Mode::Rotate, vec![1, 2]), Style::plain());
        assert!(
            text.starts_with("Run r1: rotate CA internal (G1 → G2),"),
            "{text}"
        );
        // JSON keeps the journal's order, oldest first.
        let json = json(&report(Mode::Rollback, vec![1, 2]));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["generations"], serde_json::json!([1, 2]));
    }
}
