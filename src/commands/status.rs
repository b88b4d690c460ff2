//! `certroll status`: where the current or last run stands — steps done, interrupted,
//! failed, and what each waiting step waits for.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::apply::rebuild;
use super::{load, select_ca, CommandError};
use crate::exit;
use crate::inventory::Inventory;
use crate::journal::{Journal, RunState, RunStatus};
use crate::output::status::{self, RunProgress, RunReport, StepState, StepStatus};
use crate::output::{unless_reader_left, Format, Style};
use crate::plan::{Plan, StepId};

/// Arguments of `certroll status`.
#[derive(Debug, Clone, Default)]
pub struct StatusArgs {
    pub inventory: PathBuf,
    pub ca: Option<String>,
    /// `--format`: text or JSON (`dot` is a plan format and reads as text).
    pub format: Format,
}

/// Runs `certroll status`. Exit 0 when the last run is complete, 75 when it is unfinished.
pub fn run(args: &StatusArgs) -> Result<i32, CommandError> {
    let inv = load(&args.inventory)?;
    let ca = select_ca(&inv, args.ca.as_deref())?;
    let journal = Journal::open(&inv.state_dir)?;
    let Some(last) = super::last_run(&journal)?.filter(|r| r.header.ca == inv.cas[ca].name) else {
        print(&format!(
            "no run recorded for CA {} in {}\n",
            inv.cas[ca].name,
            journal.path().display()
        ))?;
        return Ok(exit::OK);
    };
    let plan = rebuild(&inv, ca, &last)?;
    let report = build(&inv, &plan, &last);
    print(&match args.format {
        Format::Json => format!("{}\n", status::json(&report)),
        Format::Text | Format::Dot => status::text(&report, Style::stdout()),
    })?;
    Ok(if report.status == RunProgress::Complete {
        exit::OK
    } else {
        exit::INCOMPLETE
    })
}

fn print(text: &str) -> Result<(), CommandError> {
    let mut out = std::io::stdout().lock();
    unless_reader_left(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
        .context("failed to write the status to standard output")?;
    Ok(())
}

fn build(inv: &Inventory, plan: &Plan, run: &RunState) -> RunReport {
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
                (StepState::Done, None)
            } else if let Some(e) = run.failed.get(&s.id) {
                (StepState::Failed, Some(e.clone()))
            } else if run.started.contains_key(&s.id) {
                (StepState::Interrupted, None)
            } else if waiting_on.is_empty() {
                (StepState::Ready, None)
            } else {
                (StepState::Waiting, None)
            };
            StepStatus {
                id: s.id,
                node: inv.nodes[s.node].name.clone(),
                actions: s.actions.clone(),
                state,
                error,
                waiting_on,
            }
        })
        .collect();
    let status = match run.end {
        Some(RunStatus::Complete) => RunProgress::Complete,
        Some(RunStatus::Incomplete) => RunProgress::Incomplete,
        Some(RunStatus::Interrupted) | None => RunProgress::Interrupted,
    };
    RunReport {
        version: 1,
        run: run.run.clone(),
        ca: run.header.ca.clone(),
        mode: run.header.mode,
        strategy: run.header.strategy,
        chain: run.header.chain,
        generations: run.header.generations.clone(),
        started_at: run.started_at.clone(),
        host: run.host.clone(),
        pid: run.pid,
        resumes: run.resumes,
        status,
        steps,
    }
}
