//! `certroll status`: where the current or last run stands — steps done, interrupted,
//! failed, and what each waiting step waits for.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use super::apply::rebuild;
use super::{load, select_ca, CommandError};
use crate::exit;
use crate::journal::{Journal, RunState, RunStatus};
use crate::output::Style;
use crate::plan::{Plan, StepId};

/// Arguments of `certroll status`.
#[derive(Debug, Clone, Default)]
pub struct StatusArgs {
    pub inventory: PathBuf,
    pub ca: Option<String>,
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct StepStatus {
    id: StepId,
    node: String,
    actions: Vec<&'static str>,
    /// done, failed, interrupted (started, not confirmed), ready, waiting
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Unconfirmed prerequisites of a waiting step.
    waiting_on: Vec<StepId>,
}

#[derive(Debug, Serialize)]
struct RunReport {
    version: u32,
    run: String,
    ca: String,
    mode: String,
    strategy: String,
    chain: String,
    generations: Vec<u32>,
    started_at: String,
    host: String,
    pid: u32,
    resumes: u32,
    status: &'static str,
    steps: Vec<StepStatus>,
}

/// Runs `certroll status`. Exit 0 when the last run is complete, 75 when it is unfinished.
pub fn run(args: &StatusArgs) -> Result<i32, CommandError> {
    let inv = load(&args.inventory)?;
    let ca = select_ca(&inv, args.ca.as_deref())?;
    let journal = Journal::open(&inv.state_dir).context("failed to open the journal")?;
    let Some(last) = super::last_run(&journal)?.filter(|r| r.header.ca == inv.cas[ca].name) else {
        println!(
            "no run recorded for CA {} in {}",
            inv.cas[ca].name,
            journal.path().display()
        );
        return Ok(exit::OK);
    };
    let plan = rebuild(&inv, ca, &last)?;
    let report = build(&inv, &plan, &last);
    if args.json {
        // Invariant: the report holds only strings, numbers and lists.
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", render(&report, Style::stdout()));
    }
    Ok(if report.status == "complete" {
        exit::OK
    } else {
        exit::INCOMPLETE
    })
}

fn build(inv: &crate::inventory::Inventory, plan: &Plan, run: &RunState) -> RunReport {
    let steps = plan
        .steps
        .iter()
        .map(|s| {
            let waiting_on: Vec<StepId> = s
                .after
                .iter()
                .copied()
                .filter(|a| !run.done.contains(a))
                .collect();
            let (state, error) = if run.done.contains(&s.id) {
                ("done", None)
            } else if let Some(e) = run.failed.get(&s.id) {
                ("failed", Some(e.clone()))
            } else if run.started.contains_key(&s.id) {
                ("interrupted", None)
            } else if waiting_on.is_empty() {
                ("ready", None)
            } else {
                ("waiting", None)
            };
            StepStatus {
                id: s.id,
                node: inv.nodes[s.node].name.clone(),
                actions: s.actions.iter().map(|a| a.as_str()).collect(),
                state,
                error,
                waiting_on,
            }
        })
        .collect();
    let status = match run.end {
        Some(RunStatus::Complete) => "complete",
        Some(RunStatus::Incomplete) => "incomplete",
        None => "interrupted",
    };
    RunReport {
        version: 1,
        run: run.run.clone(),
        ca: run.header.ca.clone(),
        mode: run.header.mode.clone(),
        strategy: run.header.strategy.clone(),
        chain: run.header.chain.clone(),
        generations: run.header.generations.clone(),
        started_at: run.started_at.clone(),
        host: run.host.clone(),
        pid: run.pid,
        resumes: run.resumes,
        status,
        steps,
    }
}

fn render(r: &RunReport, style: Style) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let gens: Vec<String> = r.generations.iter().map(|g| format!("G{g}")).collect();
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!(
            "Run {}: {} CA {} ({}), {}, {} — {}",
            r.run,
            r.mode,
            r.ca,
            gens.join(" → "),
            r.strategy,
            r.chain,
            r.status
        ))
    );
    let _ = writeln!(
        out,
        "started {} by pid {} on {}, resumed {}",
        r.started_at,
        r.pid,
        r.host,
        crate::output::style::plural(r.resumes as usize, "time")
    );
    let count = |s: &str| r.steps.iter().filter(|x| x.state == s).count();
    let _ = writeln!(
        out,
        "{}: {} done · {} failed · {} interrupted · {} ready · {} waiting",
        crate::output::style::plural(r.steps.len(), "step"),
        count("done"),
        count("failed"),
        count("interrupted"),
        count("ready"),
        count("waiting")
    );
    let label = |id: StepId| {
        r.steps
            .get(id)
            .map(|s| format!("#{id} {} {}", s.node, s.actions.join("+")))
            .unwrap_or_default()
    };
    for s in r.steps.iter().filter(|s| s.state != "done") {
        let state = match s.state {
            "failed" => style.red("failed     "),
            "interrupted" => style.yellow("interrupted"),
            "ready" => style.cyan("ready      "),
            _ => style.dim("waiting    "),
        };
        let _ = write!(out, "  {state} {}", label(s.id));
        if let Some(e) = &s.error {
            let _ = write!(out, ": {e}");
        }
        if s.state == "waiting" {
            let on: Vec<String> = s.waiting_on.iter().map(|&w| label(w)).collect();
            let _ = write!(out, "\n              ↳ waits for {}", on.join(", "));
        }
        out.push('\n');
    }
    out
}
