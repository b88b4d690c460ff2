//! `certroll apply`: carry out the plan on the fleet, or resume the unfinished run.
//!
//! Order of events: lock → resume or decide the plan → show it and ask → create CA
//! material (0600, before anything is pushed) → journal the run → execute → archive the
//! old CA when a rotation completes.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use time::OffsetDateTime;

use super::{select_ca, CaGenerations, CommandError};
use crate::executor::{execute, ExecOptions, FleetWork, RunMaterial};
use crate::exit;
use crate::inventory::{CaId, CaSpec, Inventory};
use crate::journal::{Journal, RunHeader, RunState};
use crate::output::plan::{text, PlanView};
use crate::output::progress::{Progress, ProgressFormat};
use crate::output::style::plural;
use crate::output::{Format, Style};
use crate::pki::CaStore;
use crate::plan::{Mode, Plan};
use crate::session::decide::Intent;
use crate::state::{Lease, StateBackend};
use crate::transport::{Connector, HostKeyPolicy};

/// Arguments of `certroll apply`.
#[derive(Debug, Clone, Default)]
pub struct ApplyArgs {
    pub inventory: PathBuf,
    pub ca: Option<String>,
    /// `--rotate`, `--strategy`, `--chain`, `--parallel`.
    pub intent: Intent,
    pub yes: bool,
    /// `--format`: progress as text or JSON events (`dot` is a plan format and reads as text).
    pub format: Format,
    pub accept_new_host_keys: bool,
    pub replan: bool,
    /// `--no-wait`: stop (resumable) at a closed restart window instead of waiting.
    pub no_wait: bool,
}

/// Runs `certroll apply`; returns the exit code.
pub fn run(args: &ApplyArgs) -> Result<i32, CommandError> {
    let mut ctx = RunContext::new(args)?;
    let spec = &ctx.inv.cas[ctx.ca];
    let last = super::last_run(&ctx.journal)?;
    if args.intent.rollback {
        return ctx.rollback();
    }
    if let Some(prev) = last
        .as_ref()
        .filter(|r| r.header.ca == spec.name && !r.is_complete())
    {
        return ctx.resume(prev);
    }
    if ctx.finish_pending_rotation(last.as_ref())? {
        ctx.result("the last rotation had completed; archived the old CA generation");
    }
    if ctx.finish_pending_rollback(last.as_ref())? {
        ctx.result("the last rollback had completed; archived the abandoned CA generation");
    }

    let plan = ctx.decide()?;
    let unrepaired = plan.unrepaired.clone();
    let name = ctx.inv.cas[ctx.ca].name.clone();
    if plan.is_empty() && unrepaired.is_empty() {
        ctx.result(&format!(
            "nothing to do for CA {name}: every node holds a valid leaf"
        ));
        return Ok(exit::OK);
    }
    let listed = !plan.is_empty() && !ctx.json();
    let code = if plan.is_empty() {
        ctx.result(&format!(
            "nothing certroll can repair for CA {name}; left alone:"
        ));
        exit::OK
    } else {
        ctx.start_run(plan, None)?
    };
    super::routine_params::left_alone(&ctx.inv, &unrepaired, listed, ctx.json(), code)
}

/// Everything one `apply` works with, gathered once: the inventory and the CA chosen, the
/// CA store and the generations it holds, the journal (under the lock), the connector to
/// the fleet and the operator's options.
struct RunContext<'a> {
    args: &'a ApplyArgs,
    inv: Inventory,
    ca: CaId,
    store: CaStore,
    /// What `store` holds for the CA; kept up to date as the run creates or archives.
    gens: CaGenerations,
    journal: Journal,
    connector: Arc<dyn Connector>,
    /// A rollback run's journal parameters: the rotation run and the state rolled back.
    rollback_params: Option<crate::session::rollback::Params>,
    /// Held until the run ends; every journal and CA store write is fenced by it.
    lease: Box<dyn Lease>,
    /// Where journal, lock and CA store live (chosen once, from the inventory).
    state: Box<dyn StateBackend>,
}

impl<'a> RunContext<'a> {
    /// Loads the inventory, takes the lock, opens the journal, reads the CA store.
    fn new(args: &'a ApplyArgs) -> Result<Self, CommandError> {
        let (inv, state) = super::load_with_state(&args.inventory)?;
        let ca = select_ca(&inv, args.ca.as_deref())?;
        // The CA's passphrase or PIN, once, before anything is written.
        let store = super::keys::open_store(state.store_root(), &inv.cas[ca])?;
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let lease = state.acquire(&command)?;
        let journal = state.open_journal(&*lease)?;
        let gens = CaGenerations::read(&store, &inv.cas[ca])?;
        let policy = HostKeyPolicy {
            accept_new: args.accept_new_host_keys,
        };
        let connector = super::connector(&inv, policy);
        Ok(RunContext {
            args,
            inv,
            ca,
            store,
            gens,
            journal,
            connector,
            rollback_params: None,
            lease,
            state,
        })
    }

    /// Resumes the unfinished run `prev` (rotation, rollback or maintenance).
    fn resume(&mut self, prev: &RunState) -> Result<i32, CommandError> {
        let plan = crate::session::resume::rebuild(&self.inv, self.ca, prev)?;
        let unchanged = plan.fingerprint(&self.inv) == prev.header.fingerprint;
        if !unchanged && !self.args.replan {
            return Err(CommandError::Usage(format!(
                "the inventory changed since run {} started, and its plan no longer matches ({} now); \
                 nothing was changed\n  hint: restore the inventory to finish the run, or pass --replan to \
                 recompute the plan from the current inventory (steps already confirmed are kept)",
                prev.run,
                plural(plan.steps.len(), "step")
            )));
        }
        self.say(&format!(
            "resuming run {} ({} of {} done)",
            prev.run,
            prev.done.len(),
            plural(plan.steps.len(), "step")
        ));
        if unchanged {
            self.journal.resume_run(prev)?;
            return self.execute_run(&plan, &prev.run);
        }
        // --replan: a new run of the recomputed plan; confirmed steps of the old run carry over.
        if prev.header.mode == Mode::Rollback {
            self.rollback_params = Some(crate::session::rollback::Params {
                of_run: prev.header.params.rollback_of.clone(),
                state: prev.header.params.rollback_state.clone(),
            });
        }
        self.start_run(plan, Some(prev))
    }

    /// `apply --rollback`: resumes an unfinished rollback, or rolls back the rotation in
    /// progress from where it stopped (see [`crate::session::rollback`]).
    fn rollback(&mut self) -> Result<i32, CommandError> {
        let name = self.spec().name.clone();
        // The latest run of this CA, even if a run of another CA came after it.
        let mine = self.journal.last_run_of(&name)?;
        let mine = mine.as_ref();
        if let Some(prev) = mine.filter(|r| r.header.mode == Mode::Rollback && !r.is_complete()) {
            return self.resume(prev);
        }
        if let Some(prev) = mine.filter(|r| r.header.mode != Mode::Rotate && !r.is_complete()) {
            return Err(CommandError::Refused(format!(
                "cannot roll back CA {name}: run {} ({}) is unfinished; nothing was changed\n  \
                 hint: finish it with `certroll apply` first",
                prev.run,
                format!("{:?}", prev.header.mode).to_lowercase()
            )));
        }
        self.finish_pending_rollback(mine)?;
        let parallel = self.args.intent.parallel.max(1);
        let found = crate::session::rollback::find(
            &self.inv,
            self.ca,
            &self.gens,
            mine,
            &*self.connector,
            parallel,
        )?;
        for w in &found.warnings {
            self.say(&format!("warning: {w}"));
        }
        match &found.of_run {
            Some(run) => self.say(&format!("rolling back rotation run {run}")),
            None => self.say("rolling back a rotation that reached no node"),
        }
        self.rollback_params = Some(crate::session::rollback::params(&self.inv, &found));
        self.start_run(found.plan, None)
    }

    fn spec(&self) -> &CaSpec {
        &self.inv.cas[self.ca]
    }

    fn json(&self) -> bool {
        self.args.format == Format::Json
    }

    /// Prints a message about the way (resuming, warnings) on stderr, unless JSON events
    /// own the output; what a node said in it is shown escaped, never obeyed by the terminal.
    fn say(&self, s: &str) {
        if !self.json() {
            crate::errln!("{}", crate::output::escape::block(s));
        }
    }

    /// Prints what the run did to the fleet or the CA store (its outcome) on stdout, unless
    /// JSON events own stdout (their `run-finished` event says it there). Progress, the
    /// plan shown before the question, warnings and errors go to stderr.
    fn result(&self, s: &str) {
        if !self.json() {
            crate::outln!("{}", crate::output::escape::block(s));
        }
    }

    /// The plan of a new run (see [`crate::session::decide`], which also refuses `--rotate` before
    /// the CA exists and a bootstrap over another CA's files, for `plan` and `apply` alike).
    fn decide(&self) -> Result<Plan, CommandError> {
        crate::session::decide::decide(
            &self.inv,
            self.ca,
            &self.gens,
            || Arc::clone(&self.connector),
            self.args.intent,
        )
    }

    /// Shows the plan, asks, creates CA material, journals the run start, executes.
    fn start_run(
        &mut self,
        plan: Plan,
        carried_from: Option<&RunState>,
    ) -> Result<i32, CommandError> {
        let (current, next) = self.gens.numbers();
        let view = PlanView {
            inv: &self.inv,
            plan: &plan,
            current,
            next,
        };
        if !self.json() {
            crate::err!("{}", text(&view, Style::stderr()));
        }
        // Stores and password files every node of the plan needs, before anything changes.
        super::store_check::check(&self.inv, self.ca, &plan, self.connector.as_ref())?;
        if !self.args.yes
            && !super::ask(
                "refusing to change the fleet without confirmation: standard input is not a terminal\n  hint: pass --yes to apply without asking (e.g. from cron)",
                &format!(
                "Apply {} to {}?",
                plural(plan.steps.len(), "step"),
                plural(plan.order.len(), "node")
            ))?
        {
            self.result("nothing was changed");
            return Ok(exit::OK);
        }
        let generations = self.create_material(&plan)?;
        let mut header = RunHeader::for_plan(&plan, &self.inv, generations);
        if let Some(p) = self.rollback_params.take() {
            header.params.rollback_of = p.of_run;
            header.params.rollback_state = p.state;
        }
        let run_id = self.journal.begin_run(header)?;
        if let Some(prev) = carried_from {
            self.carry_over(&plan, prev)?;
        }
        self.execute_run(&plan, &run_id)
    }

    /// Creates what the run needs before anything is pushed (the next generation of a
    /// rotation, the first CA of a bootstrap). Returns the generations the run works with.
    fn create_material(&mut self, plan: &Plan) -> Result<Vec<u32>, CommandError> {
        let now = OffsetDateTime::now_utc();
        let spec = &self.inv.cas[self.ca];
        let dir = self.store.dir.join(&spec.name);
        let current = self.gens.current.as_ref().map(|c| c.generation);
        if plan.mode == Mode::Rotate {
            let (next, cross) = self.store.begin_rotation(spec, now).with_context(|| {
                format!(
                    "failed to create the next generation of CA store {}",
                    dir.display()
                )
            })?;
            let generations = vec![current.unwrap_or(1), next.generation];
            self.gens.next = Some(next);
            self.gens.cross = cross;
            self.gens.next_staged = false;
            self.state.save_store(&*self.lease)?;
            return Ok(generations);
        }
        if plan.mode == Mode::Rollback {
            // Invariant: a rollback is only planned while the store holds both generations.
            let (Some(c), Some(n)) = (current, self.gens.next.as_ref()) else {
                return Err(CommandError::Refused(format!(
                    "cannot roll back CA {}: the CA store {} holds no rotation in progress",
                    spec.name,
                    dir.display()
                )));
            };
            return Ok(vec![c, n.generation]);
        }
        if let Some(c) = current {
            return Ok(vec![c]);
        }
        let created = self
            .store
            .init(spec, now)
            .with_context(|| format!("failed to create the CA in {}", dir.display()))?;
        let generations = vec![created.generation];
        self.gens.current = Some(created);
        self.state.save_store(&*self.lease)?;
        Ok(generations)
    }

    /// With `--replan`: steps of the new plan identical (node and actions) to steps the old
    /// run confirmed are recorded done, so they are not repeated.
    fn carry_over(&self, plan: &Plan, prev: &RunState) -> Result<(), CommandError> {
        for s in &plan.steps {
            let name = &self.inv.nodes[s.node].name;
            let was_done = prev.steps.iter().any(|(id, (node, actions))| {
                prev.done.contains(id) && node == name && *actions == s.actions
            });
            if was_done {
                self.journal.step_start(s, name, &[])?;
                self.journal.step_done(s.id)?;
            }
        }
        Ok(())
    }

    fn execute_run(&self, plan: &Plan, run_id: &str) -> Result<i32, CommandError> {
        let spec = self.spec();
        let current = self.gens.current.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "the CA store {} has no current generation",
                self.store.dir.join(&spec.name).display()
            )
        })?;
        let material = RunMaterial {
            current,
            next: self.gens.next.clone(),
            cross: self.gens.cross.clone(),
        };
        let work = FleetWork::new(
            &self.inv,
            self.ca,
            material,
            plan.chain,
            Arc::clone(&self.connector),
            run_id,
        )
        .clean_at_last_steps(plan);
        let progress = Progress::new(if self.json() {
            ProgressFormat::Json
        } else {
            ProgressFormat::Auto
        });
        let opts = ExecOptions {
            parallel: self.args.intent.parallel.max(1),
            no_wait: self.args.no_wait,
            ..ExecOptions::default()
        };
        let outcome = execute(plan, &self.inv, &work, &self.journal, &opts, &progress)
            .map_err(|e| CommandError::Other(e.into()))?;
        drop(progress);
        if outcome.complete() {
            // Old private keys leave the nodes once the run that replaced them is complete.
            for failed in work.finish(&plan.order, opts.parallel) {
                self.say(&format!(
                    "warning: {failed}; the next complete run removes them"
                ));
            }
        }
        if !outcome.complete() {
            // Each failure was printed by the progress output as it happened.
            return Err(CommandError::Incomplete(format!(
                "run {run_id} is incomplete: {} of {} done, {} failed, {} waiting; run `certroll apply` again to resume",
                outcome.done.len(),
                plural(plan.steps.len(), "step"),
                outcome.failed.len(),
                outcome.blocked.len()
            )));
        }
        // The progress output (stderr) announced the end of the run; this says, on stdout,
        // what the fleet and the CA store hold now.
        let nodes = plural(plan.order.len(), "node");
        let (current, next) = self.gens.numbers();
        match plan.mode {
            Mode::Rollback => self.abandon_next_generation(run_id)?,
            Mode::Rotate => {
                self.archive_old_generation()?;
                let (old, new) = (current.unwrap_or(1), next.unwrap_or(1));
                self.result(&format!(
                    "rotation of CA {} complete: G{old} → G{new} on {nodes} (run {run_id}); the \
                     old generation is archived under {}",
                    spec.name,
                    self.store.dir.join(&spec.name).join("archive").display()
                ));
            }
            Mode::Bootstrap => self.result(&format!(
                "CA {} G{} installed on {nodes} (run {run_id})",
                spec.name,
                current.unwrap_or(1)
            )),
            Mode::Renew => self.result(&format!(
                "CA {}: {} done on {nodes} (run {run_id})",
                spec.name,
                plural(plan.steps.len(), "step")
            )),
        }
        Ok(exit::OK)
    }

    fn archive_old_generation(&self) -> Result<(), CommandError> {
        let spec = self.spec();
        self.store.finish_rotation(spec).with_context(|| {
            format!(
                "failed to archive the old generation in CA store {}",
                self.store.dir.join(&spec.name).display()
            )
        })?;
        self.state.save_store(&*self.lease)?;
        Ok(())
    }

    /// After a rollback: the next generation is archived with a note, the old one stays.
    fn abandon_next_generation(&self, run_id: &str) -> Result<(), CommandError> {
        let of = self
            .journal
            .last_run()?
            .filter(|r| r.run == run_id)
            .and_then(|r| r.header.params.rollback_of);
        let said =
            crate::session::rollback::abandon(&self.store, self.spec(), &self.gens, run_id, of)?;
        self.state.save_store(&*self.lease)?;
        self.result(&said);
        Ok(())
    }

    /// A complete rollback whose store step did not happen (crash right after the last
    /// step): archive the abandoned generation now. True when it did something.
    fn finish_pending_rollback(&mut self, last: Option<&RunState>) -> Result<bool, CommandError> {
        let spec = self.spec();
        let pending = last.filter(|r| {
            r.header.ca == spec.name && r.header.mode == Mode::Rollback && r.is_complete()
        });
        let Some(last) = pending else {
            return Ok(false);
        };
        match &self.gens.next {
            Some(n) if last.header.generations.last() == Some(&n.generation) => {
                self.abandon_next_generation(&last.run)?;
                self.gens = CaGenerations::read(&self.store, self.spec())?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// A complete rotation whose archive step did not happen (crash right after the last
    /// step): finish it now. True when it did something.
    fn finish_pending_rotation(&mut self, last: Option<&RunState>) -> Result<bool, CommandError> {
        let spec = self.spec();
        let pending = last.filter(|r| r.header.ca == spec.name && r.header.mode == Mode::Rotate);
        let Some(last) = pending else {
            return Ok(false);
        };
        match &self.gens.next {
            Some(n) if last.header.generations.last() == Some(&n.generation) => {
                self.archive_old_generation()?;
                self.gens = CaGenerations::read(&self.store, self.spec())?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
