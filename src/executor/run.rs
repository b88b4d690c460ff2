//! The scheduler: a bounded pool of worker threads that starts a step only once every step
//! in its `after` list is confirmed, retries transient failures, and stops at failures
//! without stopping the rest of the fleet.
//!
//! One coordinator (the calling thread) owns all scheduling state; workers only run steps
//! and report back. A failed step blocks its transitive dependents; independent steps carry
//! on and in-flight steps are always allowed to finish. Steps journaled as done by an
//! earlier run are skipped; steps journaled as started are re-checked on the node.
//! After SIGINT/SIGTERM ([`crate::interrupt`]) no step starts; the steps in flight end
//! quickly (their node commands are killed) and the run is journaled as interrupted.

use std::collections::BTreeSet;
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::pool_gate::PoolGate;
use super::{Event, EventSink, RetryPolicy, StepWork};
use crate::interrupt;
use crate::inventory::Inventory;
use crate::journal::{Journal, JournalError, RunState, RunStatus, StartedStep};
use crate::plan::{Plan, Step, StepId};

/// How the executor runs a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOptions {
    /// Most steps in flight at once (at least 1).
    pub parallel: usize,
    pub retry: RetryPolicy,
    /// When only closed restart windows hold the run, stop it (resumable) instead of
    /// waiting for the next one to open (`apply --no-wait`).
    pub no_wait: bool,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            parallel: 16,
            retry: RetryPolicy::default(),
            no_wait: false,
        }
    }
}

/// What a run achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Steps confirmed, in this run or an earlier one, ascending.
    pub done: Vec<StepId>,
    /// Steps that failed, with the error (naming node, action and file), ascending.
    pub failed: Vec<(StepId, String)>,
    /// Steps not started because a step they wait for failed, ascending.
    pub blocked: Vec<StepId>,
}

impl Outcome {
    /// Every step done.
    pub fn complete(&self) -> bool {
        self.failed.is_empty() && self.blocked.is_empty()
    }
}

/// Why the executor stopped before the plan's end.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Nothing may be touched that the journal cannot record; in-flight steps were finished.
    #[error("stopped the run: the journal could not record it")]
    Journal(#[from] JournalError),
    #[error("refusing to run an invalid plan: step {step}: {message}")]
    BadPlan { step: StepId, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done,
    Failed,
    Blocked,
}

/// What a worker reports about one step.
enum Report {
    Done,
    Failed(String),
    /// A failure that stops the whole run (a refused host key): nothing new starts.
    Stop(String),
    /// The journal could not be written: the run must stop.
    JournalBroken(String, JournalError),
}

/// Everything a worker needs, shared by reference.
struct Ctx<'a> {
    plan: &'a Plan,
    inv: &'a Inventory,
    work: &'a dyn StepWork,
    journal: &'a Journal,
    events: &'a dyn EventSink,
    retry: RetryPolicy,
}

/// Carries out `plan`, recording every step in `journal`, whose current run (begun or
/// resumed by the caller) tells which steps are already done or need a re-check. The caller
/// resumes a run only for the same plan (same [`Plan::fingerprint`]) and holds the lock.
pub fn execute(
    plan: &Plan,
    inv: &Inventory,
    work: &dyn StepWork,
    journal: &Journal,
    opts: &ExecOptions,
    events: &dyn EventSink,
) -> Result<Outcome, ExecError> {
    check_plan(plan)?;
    let Some(resume) = journal.current_run() else {
        return Err(JournalError::NoRun {
            path: journal.path().to_path_buf(),
            step: "0".into(),
        }
        .into());
    };
    let t0 = Instant::now();
    let _running = interrupt::RunGuard::new();
    let ctx = Ctx {
        plan,
        inv,
        work,
        journal,
        events,
        retry: opts.retry,
    };
    let mut sched = Scheduler::new(&ctx, &resume);
    sched.no_wait = opts.no_wait;
    events.event(&Event::RunStarted {
        run: resume.run.clone(),
        steps: plan.steps.len(),
        already_done: sched.count(State::Done),
        parallel: opts.parallel.max(1),
        resumed: resume.resumes > 0,
    });
    sched.announce_skipped();
    let broken = std::thread::scope(|s| sched.run(s, opts.parallel.max(1), &resume));
    let outcome = sched.outcome();
    if let Some(e) = broken {
        return Err(e.into());
    }
    let status = if sched.interrupted {
        RunStatus::Interrupted
    } else if outcome.complete() {
        RunStatus::Complete
    } else {
        RunStatus::Incomplete
    };
    journal.end_run(status)?;
    events.event(&Event::RunFinished {
        run: resume.run,
        done: outcome.done.len(),
        failed: outcome.failed.len(),
        blocked: outcome.blocked.len(),
        complete: outcome.complete(),
        elapsed_ms: t0.elapsed().as_millis() as u64,
    });
    Ok(outcome)
}

/// Step ids must be indices and `after` must point backwards (the plan's own invariant).
fn check_plan(plan: &Plan) -> Result<(), ExecError> {
    for (i, s) in plan.steps.iter().enumerate() {
        let bad = |message: String| {
            Err(ExecError::BadPlan {
                step: s.id,
                message,
            })
        };
        if s.id != i {
            return bad(format!("its id is not its position {i}"));
        }
        if let Some(a) = s.after.iter().find(|&&a| a >= i) {
            return bad(format!(
                "it waits for step {a}, which does not come before it"
            ));
        }
    }
    Ok(())
}

#[path = "run_pools.rs"]
mod pools;
#[path = "run_worker.rs"]
mod worker;

/// The coordinator's view of the run.
struct Scheduler<'c, 'a> {
    ctx: &'c Ctx<'a>,
    state: Vec<State>,
    /// Prerequisites not yet done, per step.
    waiting: Vec<usize>,
    dependents: Vec<Vec<StepId>>,
    ready: BTreeSet<StepId>,
    errors: Vec<(StepId, String)>,
    /// Set by a run-stopping failure: no further step starts.
    stopped: Option<StepId>,
    /// Set once SIGINT/SIGTERM was seen: no further step starts.
    interrupted: bool,
    /// The pools' budgets; `None` for a fleet without pools.
    gate: Option<PoolGate<'a>>,
    /// Ready steps already reported as waiting for their pool.
    told_waiting: BTreeSet<StepId>,
    /// Closed windows already reported (pool, opening).
    told_closed: BTreeSet<(String, time::OffsetDateTime)>,
    /// `apply --no-wait`: a closed window ends the run instead of being waited for.
    no_wait: bool,
    /// The run stopped at a closed window: the steps that did not start wait like blocked ones.
    stopped_at_window: bool,
}

impl<'c, 'a> Scheduler<'c, 'a> {
    fn new(ctx: &'c Ctx<'a>, resume: &RunState) -> Self {
        let n = ctx.plan.steps.len();
        let mut dependents = vec![Vec::new(); n];
        let mut state = vec![State::Pending; n];
        for &d in resume.done.iter().filter(|&&d| d < n) {
            state[d] = State::Done;
        }
        let mut waiting = vec![0; n];
        for s in &ctx.plan.steps {
            for &a in &s.after {
                dependents[a].push(s.id);
                if state[a] != State::Done {
                    waiting[s.id] += 1;
                }
            }
        }
        let ready = (0..n)
            .filter(|&i| state[i] == State::Pending && waiting[i] == 0)
            .collect();
        Scheduler {
            ctx,
            state,
            waiting,
            dependents,
            ready,
            errors: Vec::new(),
            stopped: None,
            interrupted: false,
            gate: PoolGate::new(ctx.plan, ctx.inv, resume),
            told_waiting: BTreeSet::new(),
            told_closed: BTreeSet::new(),
            no_wait: false,
            stopped_at_window: false,
        }
    }

    fn count(&self, st: State) -> usize {
        self.state.iter().filter(|&&s| s == st).count()
    }

    fn announce_skipped(&self) {
        for s in self
            .ctx
            .plan
            .steps
            .iter()
            .filter(|s| self.state[s.id] == State::Done)
        {
            let (node, actions) = (node_name(self.ctx.inv, s), s.actions.clone());
            self.ctx.events.event(&Event::StepSkipped {
                step: s.id,
                node,
                actions,
            });
        }
    }

    /// Dispatches ready steps to `parallel` workers until nothing more can start.
    /// Returns the journal error that stopped the run, if one did.
    fn run<'s>(
        &mut self,
        scope: &'s std::thread::Scope<'s, '_>,
        parallel: usize,
        resume: &RunState,
    ) -> Option<JournalError>
    where
        'c: 's,
    {
        let (job_tx, job_rx) = channel::<(StepId, Option<StartedStep>)>();
        let (report_tx, report_rx) = channel::<(StepId, Report)>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        // Ready steps are pending too: no more workers than steps left to run.
        let workers = parallel.min(self.count(State::Pending)).max(1);
        for _ in 0..workers {
            let (rx, tx, ctx) = (Arc::clone(&job_rx), report_tx.clone(), self.ctx);
            scope.spawn(move || worker::worker(ctx, &rx, &tx));
        }
        drop(report_tx);
        let mut running = 0;
        let mut broken = None;
        loop {
            self.interrupted |= interrupt::requested().is_some();
            while running < parallel
                && broken.is_none()
                && self.stopped.is_none()
                && !self.interrupted
            {
                let Some(id) = self.next_ready() else {
                    break;
                };
                if let Some(gate) = &mut self.gate {
                    gate.start(id);
                }
                self.state[id] = State::Running;
                running += 1;
                // The workers outlive this loop (they exit when `job_tx` is dropped).
                let _ = job_tx.send((id, resume.started.get(&id).cloned()));
            }
            if running == 0 {
                match self.window_wait() {
                    Some(_) if self.no_wait => self.stopped_at_window = true,
                    Some(until) if broken.is_none() && self.stopped.is_none() => {
                        self.sleep_until(until);
                        if !self.interrupted {
                            continue;
                        }
                    }
                    _ => {}
                }
                break;
            }
            let report = if self.gate.as_ref().is_some_and(|g| g.has_windows()) {
                // A window may open while steps run: look again every second.
                match report_rx.recv_timeout(std::time::Duration::from_secs(1)) {
                    Ok(r) => Ok(r),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(()),
                }
            } else {
                report_rx.recv().map_err(|_| ())
            };
            let Ok((id, report)) = report else {
                break;
            };
            running -= 1;
            if let Some(e) = self.on_report(id, report) {
                broken.get_or_insert(e);
            }
        }
        drop(job_tx);
        self.block_held_by_pools();
        broken
    }

    fn on_report(&mut self, id: StepId, report: Report) -> Option<JournalError> {
        match report {
            Report::Done => {
                self.pool_report(id, None);
                self.state[id] = State::Done;
                for &d in &self.dependents[id] {
                    self.waiting[d] -= 1;
                    if self.waiting[d] == 0 && self.state[d] == State::Pending {
                        self.ready.insert(d);
                    }
                }
                None
            }
            Report::Failed(msg) => {
                self.pool_report(id, Some(&msg));
                self.fail(id, msg);
                None
            }
            Report::Stop(msg) => {
                self.pool_report(id, Some(&msg));
                self.fail(id, msg);
                self.stopped.get_or_insert(id);
                None
            }
            Report::JournalBroken(msg, e) => {
                self.pool_report(id, Some(&msg));
                self.fail(id, msg);
                Some(e)
            }
        }
    }

    /// Marks `id` failed and every pending step that transitively waits for it blocked.
    fn fail(&mut self, id: StepId, msg: String) {
        self.state[id] = State::Failed;
        self.errors.push((id, msg));
        for d in self.dependents[id].clone() {
            self.block(d, id);
        }
    }

    fn outcome(&self) -> Outcome {
        let ids = |st| {
            (0..self.state.len())
                .filter(|&i| self.state[i] == st)
                .collect()
        };
        let mut failed = self.errors.clone();
        failed.sort_by_key(|(id, _)| *id);
        let mut blocked: Vec<StepId> = ids(State::Blocked);
        if self.stopped.is_some() || self.interrupted || self.stopped_at_window {
            // The run stopped: steps that never started wait like blocked ones.
            blocked.extend(ids(State::Pending));
            blocked.sort_unstable();
        }
        Outcome {
            done: ids(State::Done),
            failed,
            blocked,
        }
    }
}

fn node_name(inv: &Inventory, step: &Step) -> String {
    inv.nodes
        .get(step.node)
        .map(|n| n.name.clone())
        .unwrap_or_else(|| format!("#{}", step.node))
}
