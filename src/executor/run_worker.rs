//! A worker of the scheduler ([`super::run`]): takes a step, runs it on its node from its
//! journaled start to its confirmation (or re-checks a step an earlier run left started),
//! retries transient failures, and reports back. A panic in a step is caught and reported
//! as that step's failure, never the run's.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Mutex;
use std::time::Instant;

use super::super::{Event, StepError, StepErrorKind};
use super::{node_name, Ctx, Report};
use crate::journal::{JournalError, StartedStep};
use crate::plan::{Step, StepId};

/// Takes steps from `jobs` until the coordinator hangs up.
pub(super) fn worker(
    ctx: &Ctx<'_>,
    jobs: &Mutex<Receiver<(StepId, Option<StartedStep>)>>,
    reports: &Sender<(StepId, Report)>,
) {
    loop {
        // Only this receive holds the mutex; a panic cannot happen while it is held.
        let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((id, recheck)) = job else { return };
        let step = &ctx.plan.steps[id];
        let report = catch_unwind(AssertUnwindSafe(|| run_step(ctx, step, recheck)))
            .unwrap_or_else(|_| {
                let msg = format!(
                    "step {id} on node {} crashed (a bug); see the panic message above",
                    node_name(ctx.inv, step)
                );
                let _ = ctx.journal.step_failed(id, &msg);
                Report::Failed(msg)
            });
        if reports.send((id, report)).is_err() {
            return;
        }
    }
}

/// One step from start to confirmation, journaled and reported.
fn run_step(ctx: &Ctx<'_>, step: &Step, recheck: Option<StartedStep>) -> Report {
    let node = node_name(ctx.inv, step);
    let actions = step.actions.clone();
    ctx.events.event(&Event::StepStarted {
        step: step.id,
        node: node.clone(),
        actions: actions.clone(),
        recheck: recheck.is_some(),
    });
    let t0 = Instant::now();
    let carried = carry_out(ctx, step, &node, recheck).and_then(|()| {
        Ok(super::super::health::gate(
            ctx.inv, ctx.work, ctx.events, step, &node,
        )?)
    });
    match carried {
        Ok(()) => {
            let proof = ctx.work.proof(step);
            if let Err(e) = ctx.journal.step_done_proven(step.id, proof.as_deref()) {
                return Report::JournalBroken(crate::error::chain(&e), e);
            }
            let elapsed_ms = t0.elapsed().as_millis() as u64;
            ctx.events.event(&Event::StepDone {
                step: step.id,
                node,
                actions,
                elapsed_ms,
                proof,
            });
            Report::Done
        }
        Err(Failure::Journal(e)) => Report::JournalBroken(crate::error::chain(&e), e),
        Err(Failure::Step(e)) => {
            let journaled = ctx.journal.step_failed_on(step.id, Some(&node), &e.message);
            ctx.events.event(&Event::StepFailed {
                step: step.id,
                node,
                actions,
                error: e.message.clone(),
            });
            match journaled {
                Ok(()) if e.kind == StepErrorKind::StopRun => Report::Stop(e.message),
                Ok(()) => Report::Failed(e.message),
                Err(j) => Report::JournalBroken(e.message, j),
            }
        }
    }
}

enum Failure {
    Step(StepError),
    Journal(JournalError),
}

impl From<StepError> for Failure {
    fn from(e: StepError) -> Self {
        Failure::Step(e)
    }
}

impl From<JournalError> for Failure {
    fn from(e: JournalError) -> Self {
        Failure::Journal(e)
    }
}

/// Re-checks an interrupted step, or prepares, journals and applies it afresh.
fn carry_out(
    ctx: &Ctx<'_>,
    step: &Step,
    node: &str,
    recheck: Option<StartedStep>,
) -> Result<(), Failure> {
    let retry = |op: &dyn Fn() -> Result<(), StepError>| with_retry(ctx, step, node, op);
    if let Some(started) = recheck {
        let landed = with_retry(ctx, step, node, &|| {
            ctx.work.files_match(step, &started.files)
        })?;
        if landed {
            // Reload and confirm are side effects too: announce them first.
            ctx.journal.step_start(step, node, &started.files)?;
            retry(&|| ctx.work.reconfirm(step))?;
            return Ok(());
        }
    }
    let prepared = with_retry(ctx, step, node, &|| ctx.work.prepare(step))?;
    ctx.journal.step_start(step, node, &prepared.hashes())?;
    retry(&|| ctx.work.apply(step, &prepared))?;
    Ok(())
}

fn with_retry<T>(
    ctx: &Ctx<'_>,
    step: &Step,
    node: &str,
    op: &dyn Fn() -> Result<T, StepError>,
) -> Result<T, StepError> {
    ctx.retry.run(op, |attempt, e, delay| {
        ctx.events.event(&Event::StepRetry {
            step: step.id,
            node: node.to_string(),
            actions: step.actions.clone(),
            attempt,
            error: e.message.clone(),
            delay_ms: delay.as_millis() as u64,
        })
    })
}
