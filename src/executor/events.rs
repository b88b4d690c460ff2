//! What the executor reports while it runs, for progress bars, log lines and NDJSON.
//!
//! Events carry node names and action names so that a renderer needs nothing else.

use serde::Serialize;

use crate::plan::{Action, StepId};

/// One thing that happened during a run. Serialized with an `event` tag in kebab-case,
/// e.g. `{"event":"step-done","step":4,"node":"app1","actions":["leaf-swap"],"elapsed_ms":312}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The run begins (or resumes): `steps` in the plan, `already_done` by an earlier run.
    RunStarted {
        run: String,
        steps: usize,
        already_done: usize,
        parallel: usize,
        resumed: bool,
    },
    /// A step done by an earlier run of the same plan; not touched again.
    StepSkipped {
        step: StepId,
        node: String,
        actions: Vec<Action>,
    },
    /// A step begins; `recheck` when it was interrupted earlier and is being re-checked.
    StepStarted {
        step: StepId,
        node: String,
        actions: Vec<Action>,
        recheck: bool,
    },
    /// A transient failure; the step is tried again after `delay_ms`.
    StepRetry {
        step: StepId,
        node: String,
        actions: Vec<Action>,
        attempt: u32,
        error: String,
        delay_ms: u64,
    },
    /// The step's changes are on the node and confirmed; `proof` says what certroll's own
    /// TLS confirm proved, for a node with `tls_address`.
    StepDone {
        step: StepId,
        node: String,
        actions: Vec<Action>,
        elapsed_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        proof: Option<String>,
    },
    /// The step failed for good; its dependents will not start.
    StepFailed {
        step: StepId,
        node: String,
        actions: Vec<Action>,
        error: String,
    },
    /// The step will not start in this run because the step `waiting_on` failed.
    StepBlocked {
        step: StepId,
        node: String,
        actions: Vec<Action>,
        waiting_on: StepId,
    },
    /// A step is ready but its pool is at its budget: it waits for the members in `down`.
    PoolWait {
        step: StepId,
        node: String,
        actions: Vec<Action>,
        pool: String,
        down: Vec<String>,
        budget: usize,
    },
    /// A member of `pool` was reloaded and confirmed; it must stay healthy for
    /// `healthy_ms` before the step is done and the pool's next member may go.
    HealthGate {
        step: StepId,
        node: String,
        actions: Vec<Action>,
        pool: String,
        healthy_ms: u64,
    },
    /// Every restart window of `pool` is closed until `until` (RFC 3339): the run waits for
    /// it (`wait`), or stops there, resumable (`apply --no-wait`).
    PoolClosed {
        pool: String,
        until: String,
        wait: bool,
    },
    /// A member of `pool` failed: no other member of the pool restarts in this run.
    PoolStopped {
        pool: String,
        node: String,
        step: StepId,
        error: String,
    },
    /// The run is over.
    RunFinished {
        run: String,
        done: usize,
        failed: usize,
        blocked: usize,
        complete: bool,
        elapsed_ms: u64,
    },
}

impl Event {
    /// The `event` tag, e.g. `step-done`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::RunStarted { .. } => "run-started",
            Event::StepSkipped { .. } => "step-skipped",
            Event::StepStarted { .. } => "step-started",
            Event::StepRetry { .. } => "step-retry",
            Event::StepDone { .. } => "step-done",
            Event::StepFailed { .. } => "step-failed",
            Event::StepBlocked { .. } => "step-blocked",
            Event::PoolWait { .. } => "pool-wait",
            Event::HealthGate { .. } => "health-gate",
            Event::PoolStopped { .. } => "pool-stopped",
            Event::PoolClosed { .. } => "pool-closed",
            Event::RunFinished { .. } => "run-finished",
        }
    }
}

/// Receives events; called from several worker threads.
pub trait EventSink: Send + Sync {
    fn event(&self, event: &Event);
}

/// Drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl EventSink for NullSink {
    fn event(&self, _event: &Event) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_kebab_case_tag() {
        let e = Event::StepDone {
            step: 4,
            node: "app1".into(),
            actions: vec![Action::LeafSwap],
            elapsed_ms: 312,
            proof: None,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "step-done");
        assert_eq!(v["actions"][0], "leaf-swap");
        assert_eq!(v["elapsed_ms"], 312);
        assert_eq!(e.name(), "step-done");
    }
}
