//! The records of the journal, one per line, and the run header rebuilt from a run-start
//! record: what each record says and how it is serialized. Kept apart from the
//! [`Journal`](super::Journal) that writes and reads them, so that the format is read in one
//! place.

use serde::{Deserialize, Serialize};

use super::FileHash;
use crate::inventory::{ChainMode, Inventory, Strategy};
use crate::plan::{Action, BundleNeed, LeafNeed, Mode, NodeProgress, Plan, StepId};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Every step done.
    Complete,
    /// Some step failed or was blocked; `certroll apply` resumes it.
    Incomplete,
    /// SIGINT or SIGTERM stopped the run: no step started after it, the steps in flight
    /// were stopped and journaled as failed; `certroll apply` resumes it.
    Interrupted,
}

/// The proof journaled for a trust-prune written without a restart
/// (`restart_on_prune = false`): the node's running process still trusts the old anchor,
/// and `verify` reports the node as pending until a later step restarts it.
pub const RESTART_PENDING: &str =
    "written without a restart (restart_on_prune = false): restart pending";

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    /// A run begins, or an unfinished run is resumed (`resumed`, same `run` id).
    RunStart {
        /// [`super::JOURNAL_VERSION`] of the writer; absent (1) in journals older than versioning.
        #[serde(default = "first_version")]
        version: u32,
        run: String,
        time: String,
        fingerprint: String,
        mode: Mode,
        ca: String,
        strategy: Strategy,
        chain: ChainMode,
        generations: Vec<u32>,
        host: String,
        pid: u32,
        resumed: bool,
        params: RunParams,
    },
    /// The files the step is about to write, before anything is written.
    StepStart {
        run: String,
        time: String,
        step: StepId,
        node: String,
        actions: Vec<Action>,
        files: Vec<FileHash>,
    },
    /// The step's files are on the node and the node confirmed them.
    StepDone {
        run: String,
        time: String,
        step: StepId,
        /// What certroll's own TLS confirm proved (`tls_address`), e.g. "TLS at
        /// 127.0.0.1:5432: chain and key proven (…); handshake aborted by the server after
        /// CertificateRequest (…)"; absent without that confirm.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proof: Option<String>,
    },
    /// The step failed; `error` names the node, the action and the file.
    StepFailed {
        run: String,
        time: String,
        step: StepId,
        /// The node, so that a step that failed before writing anything (no `step-start`,
        /// e.g. its node could not be read) is still attributed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        error: String,
    },
    /// The run is over.
    RunEnd {
        run: String,
        time: String,
        status: RunStatus,
    },
}

impl Record {
    pub fn run(&self) -> &str {
        match self {
            Record::RunStart { run, .. }
            | Record::StepStart { run, .. }
            | Record::StepDone { run, .. }
            | Record::StepFailed { run, .. }
            | Record::RunEnd { run, .. } => run,
        }
    }
}

fn first_version() -> u32 {
    1
}

/// What a maintenance run needs to be rebuilt on resume: the nodes it installs and renews
/// and, for a routine run, what each node needed (the plan is rebuilt from that).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunParams {
    pub install: Vec<String>,
    pub renew: Vec<String>,
    /// A rollback: the run id of the rotation it rolls back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    /// A rollback: how far the rotation got on each node it may have touched, as the
    /// rollback found it (the plan is rebuilt from this on resume).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollback_state: Vec<(String, NodeProgress)>,
    /// A rotation whose plan is leaf swaps only (the next generation chains to an anchor
    /// every member trusts already): rebuilt as such on resume.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub leaves_only: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routine: Vec<NeedRecord>,
}

/// One node's needs in a routine run (see [`crate::plan::routine`]), by node name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedRecord {
    pub node: String,
    pub bundle: BundleNeed,
    pub leaf: LeafNeed,
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// What the caller states about a new run; the journal adds run id, time, host and pid.
#[derive(Debug, Clone, PartialEq)]
pub struct RunHeader {
    pub fingerprint: String,
    pub mode: Mode,
    pub ca: String,
    pub strategy: Strategy,
    pub chain: ChainMode,
    /// CA generations the run works with, oldest first: `[current]` or `[old, new]`.
    pub generations: Vec<u32>,
    /// The nodes a maintenance run installs and renews.
    pub params: RunParams,
}

impl RunHeader {
    /// The header of a run of `plan` over `inv`.
    pub fn for_plan(plan: &Plan, inv: &Inventory, generations: Vec<u32>) -> Self {
        let names = |action: Action| -> Vec<String> {
            plan.steps
                .iter()
                .filter(|s| s.actions == [action])
                .map(|s| inv.nodes[s.node].name.clone())
                .collect()
        };
        RunHeader {
            fingerprint: plan.fingerprint(inv),
            mode: plan.mode,
            ca: inv.cas[plan.ca].name.clone(),
            strategy: plan.strategy,
            chain: plan.chain,
            generations,
            params: RunParams {
                install: names(Action::Install),
                renew: names(Action::Renew),
                leaves_only: crate::plan::is_leaves_only(plan),
                routine: plan
                    .needs
                    .iter()
                    .map(|n| NeedRecord {
                        node: inv.nodes[n.node].name.clone(),
                        bundle: n.bundle,
                        leaf: n.leaf,
                        reasons: n.reasons.clone(),
                    })
                    .collect(),
                ..RunParams::default()
            },
        }
    }
}
