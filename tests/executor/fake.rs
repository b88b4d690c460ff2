//! The fake fleet of the executor tests: plans and inventories built by hand, a
//! [`Fake`] step work that records a timeline and flags every broken ordering rule.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use certroll::executor::{
    execute, Event, EventSink, ExecOptions, FileHash, FileOp, Outcome, Prepared, RetryPolicy,
    StepError, StepWork,
};
use certroll::inventory::{CaSpec, Inventory, KeyAlgorithm, Node, TransportKind};
use certroll::journal::{Journal, Record, RunHeader};
use certroll::plan::{Action, ChainMode, Mode, Plan, Step, StepId, Strategy};

pub(crate) const SECRET: &str =
    "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n";

pub(crate) fn node(name: &str) -> Node {
    Node {
        name: name.to_string(),
        transport: TransportKind::Local,
        via: None,
        trust_bundle: "/etc/tls/ca.pem".into(),
        cert: "/etc/tls/cert.pem".into(),
        key: "/etc/tls/key.pem".into(),
        proof_cert: None,
        reload: None,
        confirm: None,
        confirm_timeout: Duration::from_secs(1),
        probe: None,
        tls: None,
        dns_names: vec![],
        become_with: Default::default(),
        files: Default::default(),
        stores: Default::default(),
    }
}

pub(crate) fn inventory(nodes: usize) -> Inventory {
    Inventory {
        source: PathBuf::from("fleet.toml"),
        state_dir: PathBuf::from(".certroll"),
        state: Default::default(),
        cas: vec![CaSpec {
            name: "internal".into(),
            subject: "CN=Test CA".into(),
            key_algorithm: KeyAlgorithm::EcdsaP256,
            validity: Duration::from_secs(86_400),
            leaf_validity: Duration::from_secs(3600),
            renew_before: Duration::from_secs(600),
            strategy: Default::default(),
            chain: Default::default(),
            bundle_foreign: Default::default(),
            key_store: Default::default(),
        }],
        nodes: (0..nodes).map(|i| node(&format!("n{i}"))).collect(),
        links: vec![],
        verify: Default::default(),
        pools: Default::default(),
    }
}

/// A plan whose step `i` runs on node `i` and waits for `after[i]`.
pub(crate) fn plan(after: Vec<Vec<StepId>>) -> Plan {
    let mut steps: Vec<Step> = Vec::new();
    for (id, after) in after.into_iter().enumerate() {
        let wave = after.iter().map(|&a| steps[a].wave + 1).max().unwrap_or(0);
        let actions = vec![[Action::TrustAdd, Action::LeafSwap, Action::TrustPrune][id % 3]];
        steps.push(Step {
            id,
            node: id,
            actions,
            after,
            wave,
        });
    }
    let order = (0..steps.len()).collect();
    Plan {
        ca: 0,
        mode: Mode::Rotate,
        strategy: Strategy::Phased,
        chain: ChainMode::Plain,
        steps,
        order,
        notes: Vec::new(),
        needs: Vec::new(),
        unrepaired: Vec::new(),
    }
}

/// The fake work of a fleet, recording what happens and any broken rule.
pub(crate) struct Fake {
    pub(crate) journal: PathBuf,
    pub(crate) plan: Plan,
    pub(crate) confirmed: Mutex<HashSet<StepId>>,
    pub(crate) running: AtomicUsize,
    pub(crate) max_running: AtomicUsize,
    pub(crate) calls: Mutex<Vec<(String, StepId)>>,
    pub(crate) violations: Mutex<Vec<String>>,
    pub(crate) fail: HashSet<StepId>,
    /// Steps whose node presents a changed host key.
    pub(crate) host_key_changed: HashSet<StepId>,
    pub(crate) transient: Mutex<HashMap<StepId, u32>>,
    pub(crate) delay: HashMap<StepId, Duration>,
    /// `a → b`: step a's side effect begins only once step b's has begun.
    pub(crate) after_started: HashMap<StepId, StepId>,
    /// `a → b`: step a's side effect ends only once step b's failure is journaled.
    pub(crate) until_failed: HashMap<StepId, StepId>,
    pub(crate) landed: bool,
}

impl Fake {
    pub(crate) fn new(dir: &Path, plan: &Plan) -> Fake {
        Fake {
            journal: dir.join("journal.jsonl"),
            plan: plan.clone(),
            confirmed: Mutex::default(),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            calls: Mutex::default(),
            violations: Mutex::default(),
            fail: HashSet::new(),
            host_key_changed: HashSet::new(),
            transient: Mutex::default(),
            delay: HashMap::new(),
            after_started: HashMap::new(),
            until_failed: HashMap::new(),
            landed: false,
        }
    }

    pub(crate) fn calls(&self, what: &str) -> Vec<StepId> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, _)| w == what)
            .map(|(_, s)| *s)
            .collect()
    }

    /// Waits (bounded) for what another step's thread does: orders two steps for a test
    /// without relying on the machine's speed.
    fn wait_for(&self, done: impl Fn() -> bool) {
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while !done() {
            if std::time::Instant::now() > until {
                self.violate("a step waited 60 s for another that never came".into());
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn violate(&self, v: String) {
        self.violations.lock().unwrap().push(v);
    }

    /// Side effects of `step` begin: its prerequisites must be confirmed and journaled
    /// done, and the journal's latest word about the step must be its step-start.
    fn check_gate(&self, step: &Step) {
        let confirmed = self.confirmed.lock().unwrap().clone();
        let records = read_records(&self.journal);
        for &a in &self.plan.steps[step.id].after {
            if !confirmed.contains(&a) {
                self.violate(format!(
                    "step {} started before step {a} was confirmed",
                    step.id
                ));
            }
            if !records
                .iter()
                .any(|r| matches!(r, Record::StepDone { step, .. } if *step == a))
            {
                self.violate(format!(
                    "step {} started before step {a} was journaled done",
                    step.id
                ));
            }
        }
        match records
            .iter()
            .rev()
            .find(|r| record_step(r) == Some(step.id))
        {
            Some(Record::StepStart { .. }) => {}
            other => self.violate(format!(
                "step {} has side effects before its step-start: {other:?}",
                step.id
            )),
        }
    }

    fn effect(&self, step: &Step, what: &str) -> Result<(), StepError> {
        self.calls.lock().unwrap().push((what.to_string(), step.id));
        self.check_gate(step);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        if let Some(&other) = self.after_started.get(&step.id) {
            self.wait_for(|| self.calls("apply").contains(&other));
        }
        if let Some(&other) = self.until_failed.get(&step.id) {
            self.wait_for(|| {
                read_records(&self.journal)
                    .iter()
                    .any(|r| matches!(r, Record::StepFailed { step, .. } if *step == other))
            });
        }
        std::thread::sleep(
            self.delay
                .get(&step.id)
                .copied()
                .unwrap_or(Duration::from_millis(1)),
        );
        self.running.fetch_sub(1, Ordering::SeqCst);
        if let Some(left) = self
            .transient
            .lock()
            .unwrap()
            .get_mut(&step.id)
            .filter(|l| **l > 0)
        {
            *left -= 1;
            return Err(StepError::transient(format!(
                "failed to connect to node n{}: connection reset",
                step.id
            )));
        }
        if self.host_key_changed.contains(&step.id) {
            let e = certroll::transport::TransportError::new(
                &format!("n{}", step.id),
                "check the host key of 127.0.0.1:22",
                certroll::transport::ErrorKind::HostKeyChanged,
                "HOST KEY CHANGED",
            );
            return Err(e.into());
        }
        if self.fail.contains(&step.id) {
            return Err(StepError::permanent(format!(
                "failed to write key /etc/tls/key.pem on node n{}: permission denied",
                step.id
            )));
        }
        self.confirmed.lock().unwrap().insert(step.id);
        Ok(())
    }
}

impl StepWork for Fake {
    fn prepare(&self, step: &Step) -> Result<Prepared, StepError> {
        self.calls.lock().unwrap().push(("prepare".into(), step.id));
        let key = format!("{SECRET}{}", step.id).into_bytes();
        Ok(Prepared {
            ops: vec![
                FileOp::Write {
                    path: "/etc/tls/key.pem".into(),
                    data: key,
                    mode: 0o600,
                    what: "key".into(),
                },
                FileOp::Remove {
                    path: "/etc/tls/cross.pem".into(),
                    what: "proof-key certificate".into(),
                },
            ],
        })
    }
    fn apply(&self, step: &Step, prepared: &Prepared) -> Result<(), StepError> {
        assert_eq!(prepared.ops.len(), 2);
        self.effect(step, "apply")
    }
    fn files_match(&self, step: &Step, expected: &[FileHash]) -> Result<bool, StepError> {
        self.calls
            .lock()
            .unwrap()
            .push(("files_match".into(), step.id));
        assert!(
            !expected.is_empty(),
            "the journaled files must reach files_match"
        );
        Ok(self.landed)
    }
    fn reconfirm(&self, step: &Step) -> Result<(), StepError> {
        self.effect(step, "reconfirm")
    }
}

pub(crate) fn record_step(r: &Record) -> Option<StepId> {
    match r {
        Record::StepStart { step, .. }
        | Record::StepDone { step, .. }
        | Record::StepFailed { step, .. } => Some(*step),
        _ => None,
    }
}

pub(crate) fn read_records(path: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Collects events.
#[derive(Default)]
pub(crate) struct Events(Mutex<Vec<Event>>);

impl EventSink for Events {
    fn event(&self, e: &Event) {
        self.0.lock().unwrap().push(e.clone());
    }
}

impl Events {
    pub(crate) fn all(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

pub(crate) fn fast(parallel: usize) -> ExecOptions {
    ExecOptions {
        parallel,
        retry: RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        },
        no_wait: false,
    }
}

pub(crate) fn begin(dir: &Path, plan: &Plan, inv: &Inventory) -> Journal {
    let j = Journal::open(dir).unwrap();
    j.begin_run(RunHeader::for_plan(plan, inv, vec![1, 2]))
        .unwrap();
    j
}

pub(crate) fn run(dir: &Path, plan: &Plan, fake: &Fake, parallel: usize) -> (Outcome, Vec<Event>) {
    let inv = inventory(plan.steps.len());
    let journal = begin(dir, plan, &inv);
    let events = Events::default();
    let outcome = execute(plan, &inv, fake, &journal, &fast(parallel), &events).unwrap();
    (outcome, events.all())
}

pub(crate) fn assert_no_violations(fake: &Fake) {
    let v = fake.violations.lock().unwrap();
    assert!(v.is_empty(), "ordering violations: {v:#?}");
}
