//! `certroll status`: where the current or last run stands — steps done, interrupted,
//! failed, and what each waiting step waits for.
//!
//! Status only reads: it never creates the state directory or the journal. Whether a run
//! is going on now is asked of the lock ([`Lock::state`]), not guessed from the journal: a
//! run without a run-end record is `running` while a process holds the lock (which names
//! it) and `interrupted` only when none does.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use super::apply::rebuild;
use super::{load, select_ca, CommandError};
use crate::exit;
use crate::journal::{Holder, Journal, Lock, LockState, RunState, RunStatus};
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
    /// done, failed, running (started by the process holding the lock), interrupted
    /// (started, not confirmed, and no process holds the lock), ready, waiting
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
    /// complete, incomplete, running (a process holds the lock), interrupted
    status: &'static str,
    /// The process holding the lock of the state directory, when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    holder: Option<Holder>,
    /// A process holds the lock (the holder may be unreadable).
    #[serde(skip)]
    running: bool,
    steps: Vec<StepStatus>,
}

/// Runs `certroll status`. Exit 0 when the last run is complete or still running, 75 when
/// it is unfinished and no process holds the lock.
pub fn run(args: &StatusArgs) -> Result<i32, CommandError> {
    let inv = load(&args.inventory)?;
    let ca = select_ca(&inv, args.ca.as_deref())?;
    let lock = Lock::state(&inv.state_dir).context("failed to check the lock")?;
    let last = Journal::read_last_run(&inv.state_dir)
        .context("failed to read the journal")?
        .filter(|r| r.header.ca == inv.cas[ca].name);
    let Some(last) = last else {
        println!(
            "no run recorded for CA {} in {}",
            inv.cas[ca].name,
            inv.state_dir.join(crate::journal::JOURNAL_FILE).display()
        );
        if let LockState::Held(holder) = &lock {
            println!("{}", running_line(holder.as_ref()));
        }
        return Ok(exit::OK);
    };
    // A run that began between the lock check and the journal read holds the lock now.
    let lock = if last.end.is_none() && lock == LockState::Free {
        Lock::state(&inv.state_dir).context("failed to check the lock")?
    } else {
        lock
    };
    let plan = rebuild(&inv, ca, &last)?;
    let report = build(&inv, &plan, &last, lock);
    if args.json {
        // Invariant: the report holds only strings, numbers and lists.
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", render(&report, Style::stdout()));
    }
    Ok(match report.status {
        "complete" | "running" => exit::OK,
        _ => exit::INCOMPLETE,
    })
}

/// Who runs now, for people.
fn running_line(holder: Option<&Holder>) -> String {
    match holder {
        Some(h) => format!("a certroll run holds the lock now: {h}"),
        None => "a certroll run holds the lock now (its holder record could not be read)".into(),
    }
}

fn build(
    inv: &crate::inventory::Inventory,
    plan: &Plan,
    run: &RunState,
    lock: LockState,
) -> RunReport {
    let holder = match lock {
        LockState::Held(h) => Some(h),
        LockState::Free => None,
    };
    let status = match (run.end, &holder) {
        (Some(RunStatus::Complete), _) => "complete",
        (Some(RunStatus::Incomplete), _) => "incomplete",
        (None, Some(_)) => "running",
        (None, None) => "interrupted",
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
                ("done", None)
            } else if let Some(e) = run.failed.get(&s.id) {
                ("failed", Some(e.clone()))
            } else if run.started.contains_key(&s.id) && status == "running" {
                ("running", None)
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
        holder: holder.flatten(),
        running,
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
        "started {} by pid {} on {}, resumed {} time(s)",
        r.started_at, r.pid, r.host, r.resumes
    );
    if r.running {
        let _ = writeln!(out, "{}", running_line(r.holder.as_ref()));
    }
    let count = |s: &str| r.steps.iter().filter(|x| x.state == s).count();
    let _ = writeln!(
        out,
        "{} steps: {} done · {} failed · {} running · {} interrupted · {} ready · {} waiting",
        r.steps.len(),
        count("done"),
        count("failed"),
        count("running"),
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
            "running" => style.cyan("running    "),
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
