//! `certroll apply`: carry out the plan on the fleet, or resume the unfinished run.
//!
//! Order of events: lock → resume or decide the plan → show it and ask → create CA
//! material (0600, before anything is pushed) → journal the run → execute → archive the
//! old CA when a rotation completes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use time::OffsetDateTime;

use super::decide::Intent;
use super::{generations, load, select_ca, CommandError};
use crate::executor::{execute, ExecOptions, FleetWork, RunMaterial};
use crate::exit;
use crate::inventory::{CaId, Inventory};
use crate::journal::{Journal, Lock, RunHeader, RunState};
use crate::output::plan::{text, PlanView};
use crate::output::progress::{Progress, ProgressFormat};
use crate::output::Style;
use crate::pki::CaStore;
use crate::plan::{self, ChainMode, Mode, Plan, Strategy};
use crate::transport::{self, HostKeyPolicy};

/// Arguments of `certroll apply`.
#[derive(Debug, Clone, Default)]
pub struct ApplyArgs {
    pub inventory: PathBuf,
    pub ca: Option<String>,
    /// `--rotate`, `--strategy`, `--chain`, `--parallel`.
    pub intent: Intent,
    pub yes: bool,
    pub json: bool,
    pub accept_new_host_keys: bool,
    pub replan: bool,
}

/// Runs `certroll apply`; returns the exit code.
pub fn run(args: &ApplyArgs) -> Result<i32, CommandError> {
    let inv = load(&args.inventory)?;
    let ca = select_ca(&inv, args.ca.as_deref())?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let _lock = Lock::acquire(&inv.state_dir, &command)
        .map_err(|e| CommandError::Incomplete(e.to_string()))?;
    let journal = Journal::open(&inv.state_dir).context("failed to open the journal")?;
    let store = CaStore::new(&inv.state_dir);
    let spec = &inv.cas[ca];
    let policy = HostKeyPolicy {
        accept_new: args.accept_new_host_keys,
    };
    let connector = transport::connector(&inv, policy);
    let say = Say { quiet: args.json };

    let last = journal.last_run().context("failed to read the journal")?;
    if let Some(prev) = last
        .as_ref()
        .filter(|r| r.header.ca == spec.name && r.end != Some(crate::journal::RunStatus::Complete))
    {
        let plan = rebuild(&inv, ca, prev)?;
        if plan.fingerprint(&inv) != prev.header.fingerprint && !args.replan {
            return Err(CommandError::Usage(format!(
                "the inventory changed since run {} started, and its plan no longer matches ({} steps now); \
                 nothing was changed\n  hint: restore the inventory to finish the run, or pass --replan to \
                 recompute the plan from the current inventory (steps already confirmed are kept)",
                prev.run,
                plan.steps.len()
            )));
        }
        say.line(&format!(
            "resuming run {} ({} of {} steps done)",
            prev.run,
            prev.done.len(),
            plan.steps.len()
        ));
        if plan.fingerprint(&inv) == prev.header.fingerprint {
            journal
                .resume_run(prev)
                .context("failed to record the resume in the journal")?;
            return execute_run(
                &inv, ca, &plan, &journal, &store, connector, args, &prev.run,
            );
        }
        // --replan: a new run of the recomputed plan; confirmed steps of the old run carry over.
        return start_run(
            &inv,
            ca,
            plan,
            &journal,
            &store,
            connector,
            args,
            Some(prev),
        );
    }
    if finish_pending_rotation(&store, &inv, ca, last.as_ref())? {
        say.line("the last rotation had completed; archived the old CA generation");
    }

    let plan = decide(&inv, ca, &store, &connector, args)?;
    if plan.is_empty() {
        say.line(&format!(
            "nothing to do for CA {}: every node holds a valid leaf",
            spec.name
        ));
        return Ok(exit::OK);
    }
    start_run(&inv, ca, plan, &journal, &store, connector, args, None)
}

/// Prints human messages on stderr unless JSON events own the output.
struct Say {
    quiet: bool,
}

impl Say {
    fn line(&self, s: &str) {
        if !self.quiet {
            eprintln!("{s}");
        }
    }
}

/// The plan of a new run (see [`super::decide`]); a rotation needs an existing CA.
fn decide(
    inv: &Inventory,
    ca: CaId,
    store: &CaStore,
    connector: &std::sync::Arc<dyn crate::transport::Connector>,
    args: &ApplyArgs,
) -> Result<Plan, CommandError> {
    let spec = &inv.cas[ca];
    if args.intent.rotate
        && store
            .current(spec)
            .context("failed to read the CA store")?
            .is_none()
    {
        return Err(CommandError::Usage(format!(
            "CA {} has never been created, so there is nothing to rotate\n  hint: run `certroll apply` first to bootstrap the fleet",
            spec.name
        )));
    }
    super::decide::decide(
        inv,
        ca,
        store,
        || std::sync::Arc::clone(connector),
        args.intent,
    )
}

/// The plan of an earlier run, rebuilt from its journal header and today's inventory.
pub(crate) fn rebuild(inv: &Inventory, ca: CaId, prev: &RunState) -> Result<Plan, CommandError> {
    let names = |key: &str| -> Vec<usize> {
        prev.header.params[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().and_then(|n| inv.node_id(n)))
                    .collect()
            })
            .unwrap_or_default()
    };
    match prev.header.mode.as_str() {
        "rotate" => {
            let strategy = if prev.header.strategy == "ordered" {
                Strategy::Ordered
            } else {
                Strategy::Phased
            };
            let chain = if prev.header.chain == "cross-signed" {
                ChainMode::CrossSigned
            } else {
                ChainMode::Plain
            };
            plan::rotate(inv, ca, strategy, chain).map_err(|e| CommandError::Usage(e.to_string()))
        }
        _ => Ok(plan::maintenance(
            inv,
            ca,
            &names("install"),
            &names("renew"),
        )),
    }
}

/// Shows the plan, asks, creates CA material, journals the run start, executes.
#[allow(clippy::too_many_arguments)]
fn start_run(
    inv: &Inventory,
    ca: CaId,
    plan: Plan,
    journal: &Journal,
    store: &CaStore,
    connector: std::sync::Arc<dyn crate::transport::Connector>,
    args: &ApplyArgs,
    carried_from: Option<&RunState>,
) -> Result<i32, CommandError> {
    let spec = &inv.cas[ca];
    let (current, next) = generations(store, spec)?;
    let view = PlanView {
        inv,
        plan: &plan,
        current,
        next,
    };
    if !args.json {
        eprint!("{}", text(&view, Style::stderr()));
    }
    if !args.yes
        && !ask(&format!(
            "Apply {} steps to {} nodes?",
            plan.steps.len(),
            plan.order.len()
        ))?
    {
        eprintln!("nothing was changed");
        return Ok(exit::OK);
    }
    let now = OffsetDateTime::now_utc();
    let generations = match plan.mode {
        Mode::Rotate => {
            let (next, _) = store
                .begin_rotation(spec, now)
                .context("failed to create the next CA generation")?;
            vec![current.unwrap_or(1), next.generation]
        }
        _ => match current {
            Some(c) => vec![c],
            None => vec![
                store
                    .init(spec, now)
                    .context("failed to create the CA")?
                    .generation,
            ],
        },
    };
    let params = serde_json::json!({
        "install": names_of(inv, &plan, plan::Action::Install),
        "renew": names_of(inv, &plan, plan::Action::Renew),
    });
    let run_id = journal
        .begin_run(RunHeader::for_plan(&plan, inv, generations, params))
        .context("failed to start the run in the journal")?;
    if let Some(prev) = carried_from {
        carry_over(inv, &plan, prev, journal)?;
    }
    execute_run(inv, ca, &plan, journal, store, connector, args, &run_id)
}

fn names_of(inv: &Inventory, plan: &Plan, action: plan::Action) -> Vec<String> {
    plan.steps
        .iter()
        .filter(|s| s.actions == [action])
        .map(|s| inv.nodes[s.node].name.clone())
        .collect()
}

/// With `--replan`: steps of the new plan identical (node and actions) to steps the old
/// run confirmed are recorded done, so they are not repeated.
fn carry_over(
    inv: &Inventory,
    plan: &Plan,
    prev: &RunState,
    journal: &Journal,
) -> Result<(), CommandError> {
    for s in &plan.steps {
        let name = &inv.nodes[s.node].name;
        let labels: Vec<String> = s.actions.iter().map(|a| a.as_str().to_string()).collect();
        let was_done = prev.steps.iter().any(|(id, (node, actions))| {
            prev.done.contains(id) && node == name && *actions == labels
        });
        if was_done {
            journal
                .step_start(s, name, &[])
                .context("failed to write the journal")?;
            journal
                .step_done(s.id)
                .context("failed to write the journal")?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn execute_run(
    inv: &Inventory,
    ca: CaId,
    plan: &Plan,
    journal: &Journal,
    store: &CaStore,
    connector: std::sync::Arc<dyn crate::transport::Connector>,
    args: &ApplyArgs,
    run_id: &str,
) -> Result<i32, CommandError> {
    let spec = &inv.cas[ca];
    let current = store
        .current(spec)
        .context("failed to read the CA store")?
        .context("the CA store has no current generation")?;
    let material = RunMaterial {
        current,
        next: store.next(spec).context("failed to read the CA store")?,
        cross: store.cross(spec).context("failed to read the CA store")?,
    };
    let work =
        FleetWork::new(inv, ca, material, plan.chain, connector, run_id).clean_at_last_steps(plan);
    let progress = Progress::new(if args.json {
        ProgressFormat::Json
    } else {
        ProgressFormat::Auto
    });
    let opts = ExecOptions {
        parallel: args.intent.parallel.max(1),
        ..ExecOptions::default()
    };
    let outcome =
        execute(plan, inv, &work, journal, &opts, &progress).context("the run stopped")?;
    drop(progress);
    let say = Say { quiet: args.json };
    if outcome.complete() {
        // Old private keys leave the nodes once the run that replaced them is complete.
        for failed in work.finish(&plan.order, opts.parallel) {
            say.line(&format!(
                "warning: {failed}; the next complete run removes them"
            ));
        }
    }
    if !outcome.complete() {
        for (id, err) in &outcome.failed {
            say.line(&format!("step #{id} failed: {err}"));
        }
        return Err(CommandError::Incomplete(format!(
            "run {run_id} is incomplete: {} of {} steps done, {} failed, {} waiting; run `certroll apply` again to resume",
            outcome.done.len(),
            plan.steps.len(),
            outcome.failed.len(),
            outcome.blocked.len()
        )));
    }
    if plan.mode == Mode::Rotate {
        store
            .finish_rotation(spec)
            .context("failed to archive the old CA generation")?;
        say.line(&format!(
            "rotation of CA {} complete; the old generation is archived under {}",
            spec.name,
            store.dir.display()
        ));
    } else {
        say.line(&format!(
            "run {run_id} complete: {} steps done",
            plan.steps.len()
        ));
    }
    Ok(exit::OK)
}

/// A complete rotation whose archive step did not happen (crash right after the last
/// step): finish it now. True when it did something.
fn finish_pending_rotation(
    store: &CaStore,
    inv: &Inventory,
    ca: CaId,
    last: Option<&RunState>,
) -> Result<bool, CommandError> {
    let spec = &inv.cas[ca];
    let Some(last) = last.filter(|r| r.header.ca == spec.name && r.header.mode == "rotate") else {
        return Ok(false);
    };
    let next = store.next(spec).context("failed to read the CA store")?;
    match next {
        Some(n) if last.header.generations.last() == Some(&n.generation) => {
            store
                .finish_rotation(spec)
                .context("failed to archive the old CA generation")?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Asks a yes/no question on the terminal; refuses (never hangs) without one.
fn ask(question: &str) -> Result<bool, CommandError> {
    if !std::io::stdin().is_terminal() {
        return Err(CommandError::Usage(
            "refusing to change the fleet without confirmation: standard input is not a terminal\n  hint: pass --yes to apply without asking (e.g. from cron)".into(),
        ));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("failed to read the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
