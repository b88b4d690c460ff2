//! `certroll status`: where the current or last run stands — steps done, interrupted,
//! failed, and what each waiting step waits for.
//!
//! Status only reads: it never creates the state directory or the journal. Whether a run
//! is going on now is asked of the lock ([`StateBackend::lock_state`]), not guessed from the journal: a
//! run without a run-end record is `running` while a process holds the lock (which names
//! it) and `interrupted` only when none does.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::{load, select_ca, CommandError};
use crate::exit;
use crate::inventory::Inventory;
use crate::journal::{LockState, RunState, RunStatus};
use crate::output::status::{self, RunProgress, RunReport, StepState, StepStatus};
use crate::output::{unless_reader_left, Format, Style};
use crate::plan::{Plan, StepId};
use crate::session::resume::rebuild;
use crate::state::StateBackend;

/// Arguments of `certroll status`.
#[derive(Debug, Clone, Default)]
pub struct StatusArgs {
    pub inventory: PathBuf,
    pub ca: Option<String>,
    /// `--format`: text or JSON (`dot` is a plan format and reads as text).
    pub format: Format,
}

/// Runs `certroll status`. Exit 0 when the last run is complete or still running, 75 when
/// it is unfinished and no process holds the lock.
pub fn run(args: &StatusArgs) -> Result<i32, CommandError> {
    let inv = load(&args.inventory)?;
    let ca = select_ca(&inv, args.ca.as_deref())?;
    let state = super::open_state(&inv)?;
    let lock = state.lock_state().context("failed to check the lock")?;
    let last = state.read_last_run(Some(&inv.cas[ca].name))?;
    for w in last.iter().flat_map(|r| &r.warnings) {
        crate::errln!("warning: {}", crate::output::escape::block(w));
    }
    let Some(last) = last.filter(|r| r.header.ca == inv.cas[ca].name) else {
        print(&no_run(&inv, ca, &*state, &lock, args.format))?;
        return Ok(exit::OK);
    };
    // A run that began between the lock check and the journal read holds the lock now.
    let lock = if last.end.is_none() && lock == LockState::Free {
        state.lock_state().context("failed to check the lock")?
    } else {
        lock
    };
    let plan = rebuild(&inv, ca, &last)?;
    let report = build(&inv, &plan, &last, lock);
    print(&match args.format {
        Format::Json => format!("{}\n", status::json(&report)),
        Format::Text | Format::Dot | Format::Prometheus => status::text(&report, Style::stdout()),
    })?;
    Ok(match report.status {
        RunProgress::Complete | RunProgress::Running => exit::OK,
        RunProgress::Incomplete | RunProgress::Interrupted => exit::INCOMPLETE,
    })
}

/// The report when no run of the CA was ever journaled, with the command to run next: a
/// CA never created is bootstrapped (or imported, when the fleet has one already); an
/// imported CA, whose first run is its takeover rotation, is rotated.
fn no_run(
    inv: &Inventory,
    ca: usize,
    state: &dyn StateBackend,
    lock: &LockState,
    format: Format,
) -> String {
    let name = &inv.cas[ca].name;
    let journal = state.journal_place();
    // Status only reads, and reading the generation would unlock its key: whether the
    // store points at a current generation is enough here.
    let created = state
        .store_root()
        .join("ca")
        .join(name)
        .join("current")
        .exists();
    let next = if created {
        format!(
            "run `certroll plan --rotate --ca {name}` to see the takeover rotation, then              `certroll apply --rotate --ca {name}` (docs/takeover.md)"
        )
    } else {
        format!(
            "run `certroll plan` to see the bootstrap, then `certroll apply` to bootstrap CA              {name}; if the fleet already has a CA, `certroll ca import {name} --cert FILE`              first (docs/takeover.md)"
        )
    };
    let holder = match lock {
        LockState::Held(holder) => Some(holder.as_ref()),
        LockState::Free => None,
    };
    if format == Format::Json {
        let doc = serde_json::json!({
            "version": 1,
            "ca": name,
            "status": "none",
            "holder": holder.flatten(),
            "next": next,
        });
        // Invariant: a JSON value always renders.
        return format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        );
    }
    let mut text = format!("no run recorded for CA {name} in {journal}\n");
    if let Some(holder) = holder {
        text += &format!("{}\n", status::running_line(holder));
    }
    text + &format!("  next: {next}\n")
}

fn print(text: &str) -> Result<(), CommandError> {
    let mut out = std::io::stdout().lock();
    unless_reader_left(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
        .context("failed to write the status to standard output")?;
    Ok(())
}

fn build(inv: &Inventory, plan: &Plan, run: &RunState, lock: LockState) -> RunReport {
    let holder = match lock {
        LockState::Held(h) => Some(h),
        LockState::Free => None,
    };
    let status = match (run.end, &holder) {
        (Some(RunStatus::Complete), _) => RunProgress::Complete,
        (Some(RunStatus::Incomplete), _) => RunProgress::Incomplete,
        (Some(RunStatus::Interrupted), _) => RunProgress::Interrupted,
        (None, Some(_)) => RunProgress::Running,
        (None, None) => RunProgress::Interrupted,
    };
    let running = holder.is_some();
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
            } else if run.started.contains_key(&s.id) && status == RunProgress::Running {
                (StepState::Running, None)
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
                proof: run.proofs.get(&s.id).cloned(),
                waiting_on,
            }
        })
        .collect();
    RunReport {
        version: 1,
        run: run.run.clone(),
        ca: run.header.ca.clone(),
        mode: run.header.mode,
        rollback_of: run.header.params.rollback_of.clone(),
        strategy: run.header.strategy,
        chain: run.header.chain,
        generations: run.header.generations.clone(),
        started_at: run.started_at.clone(),
        host: run.host.clone(),
        pid: run.pid,
        resumes: run.resumes,
        status,
        holder: holder.flatten(),
        running,
        steps,
        pools: crate::executor::pool_status(inv, plan, run, running),
    }
}
