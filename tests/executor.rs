//! The executor against a fake fleet: gates, parallelism, failures, retries, the journal,
//! resume, and the lock. The fake records a timeline and flags every ordering violation.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use certroll::executor::{
    execute, Event, EventSink, ExecOptions, FileHash, FileOp, Outcome, Prepared, RetryPolicy,
    StepError, StepWork,
};
use certroll::inventory::{CaSpec, Inventory, KeyAlgorithm, Node, TransportKind};
use certroll::journal::{Journal, Lock, LockError, Record, RunHeader, RunStatus};
use certroll::plan::{Action, ChainMode, Mode, Plan, Step, StepId, Strategy as PlanStrategy};
use proptest::prelude::*;

const SECRET: &str =
    "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n";

fn node(name: &str) -> Node {
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
        dns_names: vec![],
    }
}

fn inventory(nodes: usize) -> Inventory {
    Inventory {
        source: PathBuf::from("fleet.toml"),
        state_dir: PathBuf::from(".certroll"),
        cas: vec![CaSpec {
            name: "internal".into(),
            subject: "CN=Test CA".into(),
            key_algorithm: KeyAlgorithm::EcdsaP256,
            validity: Duration::from_secs(86_400),
            leaf_validity: Duration::from_secs(3600),
            renew_before: Duration::from_secs(600),
        }],
        nodes: (0..nodes).map(|i| node(&format!("n{i}"))).collect(),
        links: vec![],
    }
}

/// A plan whose step `i` runs on node `i` and waits for `after[i]`.
fn plan(after: Vec<Vec<StepId>>) -> Plan {
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
        strategy: PlanStrategy::Phased,
        chain: ChainMode::Plain,
        steps,
        order,
    }
}

/// The fake work of a fleet, recording what happens and any broken rule.
struct Fake {
    journal: PathBuf,
    plan: Plan,
    confirmed: Mutex<HashSet<StepId>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    calls: Mutex<Vec<(String, StepId)>>,
    violations: Mutex<Vec<String>>,
    fail: HashSet<StepId>,
    transient: Mutex<HashMap<StepId, u32>>,
    delay: HashMap<StepId, Duration>,
    landed: bool,
}

impl Fake {
    fn new(dir: &Path, plan: &Plan) -> Fake {
        Fake {
            journal: dir.join("journal.jsonl"),
            plan: plan.clone(),
            confirmed: Mutex::default(),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            calls: Mutex::default(),
            violations: Mutex::default(),
            fail: HashSet::new(),
            transient: Mutex::default(),
            delay: HashMap::new(),
            landed: false,
        }
    }

    fn calls(&self, what: &str) -> Vec<StepId> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, _)| w == what)
            .map(|(_, s)| *s)
            .collect()
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

fn record_step(r: &Record) -> Option<StepId> {
    match r {
        Record::StepStart { step, .. }
        | Record::StepDone { step, .. }
        | Record::StepFailed { step, .. } => Some(*step),
        _ => None,
    }
}

fn read_records(path: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Collects events.
#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl EventSink for Events {
    fn event(&self, e: &Event) {
        self.0.lock().unwrap().push(e.clone());
    }
}

impl Events {
    fn all(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

fn fast(parallel: usize) -> ExecOptions {
    ExecOptions {
        parallel,
        retry: RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        },
    }
}

fn begin(dir: &Path, plan: &Plan, inv: &Inventory) -> Journal {
    let j = Journal::open(dir).unwrap();
    j.begin_run(RunHeader::for_plan(
        plan,
        inv,
        vec![1, 2],
        serde_json::json!({"rotate": true}),
    ))
    .unwrap();
    j
}

fn run(dir: &Path, plan: &Plan, fake: &Fake, parallel: usize) -> (Outcome, Vec<Event>) {
    let inv = inventory(plan.steps.len());
    let journal = begin(dir, plan, &inv);
    let events = Events::default();
    let outcome = execute(plan, &inv, fake, &journal, &fast(parallel), &events).unwrap();
    (outcome, events.all())
}

fn assert_no_violations(fake: &Fake) {
    let v = fake.violations.lock().unwrap();
    assert!(v.is_empty(), "ordering violations: {v:#?}");
}

/// What the outcome must be: a step is blocked if a prerequisite did not get done.
fn expected(plan: &Plan, fail: &HashSet<StepId>) -> (Vec<StepId>, Vec<StepId>, Vec<StepId>) {
    let (mut done, mut failed, mut blocked) = (Vec::new(), Vec::new(), Vec::new());
    let mut ok = vec![false; plan.steps.len()];
    for s in &plan.steps {
        if !s.after.iter().all(|&a| ok[a]) {
            blocked.push(s.id);
        } else if fail.contains(&s.id) {
            failed.push(s.id);
        } else {
            ok[s.id] = true;
            done.push(s.id);
        }
    }
    (done, failed, blocked)
}

fn dag() -> impl Strategy<Value = (Vec<Vec<StepId>>, BTreeSet<StepId>, usize)> {
    (1usize..22).prop_flat_map(|n| {
        let after = (0..n)
            .map(|i| {
                if i == 0 {
                    Just(vec![]).boxed()
                } else {
                    proptest::collection::vec(0..i, 0..4).boxed()
                }
            })
            .collect::<Vec<_>>();
        (
            after,
            proptest::collection::btree_set(0..n, 0..3),
            1usize..6,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn random_dags_respect_gates_bounds_and_failures((after, fail, parallel) in dag()) {
        let after: Vec<Vec<StepId>> = after.into_iter().map(|mut a| { a.sort(); a.dedup(); a }).collect();
        let p = plan(after);
        let dir = tempfile::tempdir().unwrap();
        let mut fake = Fake::new(dir.path(), &p);
        fake.fail = fail.iter().copied().collect();
        let (outcome, _) = run(dir.path(), &p, &fake, parallel);
        assert_no_violations(&fake);
        prop_assert!(fake.max_running.load(Ordering::SeqCst) <= parallel);
        let (done, failed, blocked) = expected(&p, &fake.fail);
        prop_assert_eq!(&outcome.done, &done);
        prop_assert_eq!(outcome.failed.iter().map(|(s, _)| *s).collect::<Vec<_>>(), failed.clone());
        prop_assert_eq!(&outcome.blocked, &blocked);
        prop_assert_eq!(outcome.complete(), failed.is_empty());
        // Blocked steps never ran.
        let ran: HashSet<StepId> = fake.calls("apply").into_iter().collect();
        prop_assert!(blocked.iter().all(|b| !ran.contains(b)));
    }
}

#[test]
fn parallelism_is_bounded_and_used() {
    let p = plan(vec![vec![]; 12]);
    let dir = tempfile::tempdir().unwrap();
    let mut fake = Fake::new(dir.path(), &p);
    fake.delay = (0..12).map(|i| (i, Duration::from_millis(40))).collect();
    let (outcome, _) = run(dir.path(), &p, &fake, 3);
    assert!(outcome.complete());
    assert_eq!(fake.max_running.load(Ordering::SeqCst), 3);
}

#[test]
fn failure_blocks_only_dependents_and_in_flight_steps_finish() {
    // 0 fails fast while 1 is in flight; 2 and 3 wait on 0; 4 waits on 1.
    let p = plan(vec![vec![], vec![], vec![0], vec![2], vec![1]]);
    let dir = tempfile::tempdir().unwrap();
    let mut fake = Fake::new(dir.path(), &p);
    fake.fail = HashSet::from([0]);
    fake.delay = HashMap::from([(1, Duration::from_millis(150))]);
    let (outcome, events) = run(dir.path(), &p, &fake, 4);
    assert_no_violations(&fake);
    assert_eq!(outcome.done, vec![1, 4]);
    assert_eq!(outcome.blocked, vec![2, 3]);
    assert_eq!(outcome.failed.len(), 1);
    assert_eq!(outcome.failed[0].0, 0);
    assert!(
        outcome.failed[0].1.contains("on node n0"),
        "{}",
        outcome.failed[0].1
    );
    assert!(!outcome.complete());
    // Step 1 was running when 0 failed, and was allowed to finish.
    let pos = |f: &dyn Fn(&Event) -> bool| events.iter().position(|e| f(e)).unwrap();
    let failed0 = pos(&|e| matches!(e, Event::StepFailed { step: 0, .. }));
    assert!(pos(&|e| matches!(e, Event::StepStarted { step: 1, .. })) < failed0);
    assert!(pos(&|e| matches!(e, Event::StepDone { step: 1, .. })) > failed0);
    for b in [2, 3] {
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::StepBlocked { step, waiting_on: 0, .. } if *step == b)));
    }
    let records = read_records(&dir.path().join("journal.jsonl"));
    assert!(matches!(
        records.last(),
        Some(Record::RunEnd {
            status: RunStatus::Incomplete,
            ..
        })
    ));
}

#[test]
fn transient_failures_are_retried_then_succeed() {
    let p = plan(vec![vec![], vec![0]]);
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(dir.path(), &p);
    fake.transient.lock().unwrap().insert(0, 2);
    let (outcome, events) = run(dir.path(), &p, &fake, 2);
    assert_no_violations(&fake);
    assert!(outcome.complete());
    assert_eq!(fake.calls("apply"), vec![0, 0, 0, 1]);
    assert_eq!(
        fake.calls("prepare"),
        vec![0, 1],
        "a retry reuses what was prepared"
    );
    let retries: Vec<(u32, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::StepRetry {
                step: 0,
                attempt,
                delay_ms,
                error,
                ..
            } => {
                assert!(error.contains("node n0"));
                Some((*attempt, *delay_ms))
            }
            _ => None,
        })
        .collect();
    assert_eq!(retries, vec![(1, 1), (2, 2)]);
}

#[test]
fn transient_failures_give_up_after_the_last_try() {
    let p = plan(vec![vec![], vec![0]]);
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(dir.path(), &p);
    fake.transient.lock().unwrap().insert(0, 100);
    let (outcome, _) = run(dir.path(), &p, &fake, 2);
    assert_eq!(fake.calls("apply"), vec![0, 0, 0, 0]);
    assert_eq!(outcome.blocked, vec![1]);
    assert!(outcome.failed[0].1.contains("connection reset"));
}

#[test]
fn journal_records_every_step_in_order_without_key_material() {
    let p = plan(vec![vec![], vec![0], vec![0, 1]]);
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(dir.path(), &p);
    let (outcome, _) = run(dir.path(), &p, &fake, 4);
    assert_no_violations(&fake);
    assert!(outcome.complete());
    let path = dir.path().join("journal.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("TOPSECRET") && !text.contains("PRIVATE KEY"),
        "key material in the journal"
    );
    let kinds: Vec<String> = read_records(&path)
        .iter()
        .map(|r| match r {
            Record::RunStart { .. } => "run-start".to_string(),
            Record::StepStart { step, files, .. } => {
                assert_eq!(files[0].sha256.as_deref().map(str::len), Some(64));
                assert_eq!(files[1].sha256, None);
                format!("start {step}")
            }
            Record::StepDone { step, .. } => format!("done {step}"),
            Record::StepFailed { step, .. } => format!("failed {step}"),
            Record::RunEnd { status, .. } => format!("end {status:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "run-start",
            "start 0",
            "done 0",
            "start 1",
            "done 1",
            "start 2",
            "done 2",
            "end Complete"
        ]
    );
    let state = Journal::open(dir.path())
        .unwrap()
        .last_run()
        .unwrap()
        .unwrap();
    assert_eq!(state.done, BTreeSet::from([0, 1, 2]));
    assert!(state.is_complete() && state.started.is_empty() && state.warnings.is_empty());
    assert_eq!(state.params["rotate"], true);
    assert_eq!(
        (
            state.mode.as_str(),
            state.strategy.as_str(),
            state.chain.as_str()
        ),
        ("rotate", "phased", "plain")
    );
    assert_eq!(state.generations, vec![1, 2]);
}

#[test]
fn resume_skips_done_steps_and_finishes_the_rest() {
    let p = plan(vec![vec![], vec![], vec![0, 1], vec![2]]);
    let inv = inventory(4);
    let dir = tempfile::tempdir().unwrap();
    let mut fake = Fake::new(dir.path(), &p);
    fake.fail = HashSet::from([2]);
    let (first, _) = run(dir.path(), &p, &fake, 2);
    assert_eq!(
        (first.done.clone(), first.blocked.clone()),
        (vec![0, 1], vec![3])
    );

    let journal = Journal::open(dir.path()).unwrap();
    let last = journal.last_run().unwrap().unwrap();
    assert_eq!(last.end, Some(RunStatus::Incomplete));
    assert!(last.failed[&2].contains("permission denied"));
    assert_eq!(last.fingerprint, p.fingerprint(&inv));
    journal.resume_run(&last).unwrap();
    let fake2 = Fake::new(dir.path(), &p);
    // Steps 0 and 1 were confirmed by the first run.
    fake2.confirmed.lock().unwrap().extend([0, 1]);
    let events = Events::default();
    let outcome = execute(&p, &inv, &fake2, &journal, &fast(2), &events).unwrap();
    assert_no_violations(&fake2);
    assert!(outcome.complete());
    assert_eq!(outcome.done, vec![0, 1, 2, 3]);
    // The failed step is re-checked first; its files had not landed, so it is redone.
    assert_eq!(fake2.calls("files_match"), vec![2]);
    assert_eq!(fake2.calls("prepare"), vec![2, 3]);
    assert_eq!(fake2.calls("apply"), vec![2, 3]);
    let skipped: Vec<StepId> = events
        .all()
        .iter()
        .filter_map(|e| {
            if let Event::StepSkipped { step, .. } = e {
                Some(*step)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(skipped, vec![0, 1]);
    let again = journal.last_run().unwrap().unwrap();
    assert_eq!(
        (again.run.clone(), again.resumes, again.is_complete()),
        (last.run, 1, true)
    );
}

/// A journal where run 1 began, confirmed step 0 and died while step 1 was being written.
fn crashed_mid_step(dir: &Path, p: &Plan, inv: &Inventory) -> Vec<FileHash> {
    let j = begin(dir, p, inv);
    j.step_start(&p.steps[0], "n0", &[]).unwrap();
    j.step_done(0).unwrap();
    let files = vec![FileHash {
        path: "/etc/tls/cert.pem".into(),
        sha256: Some("ab".repeat(32)),
    }];
    j.step_start(&p.steps[1], "n1", &files).unwrap();
    files
}

fn resume_after_crash(landed: bool) -> (Fake, Outcome, Vec<Event>) {
    let p = plan(vec![vec![], vec![0], vec![1]]);
    let inv = inventory(3);
    let dir = tempfile::tempdir().unwrap();
    let files = crashed_mid_step(dir.path(), &p, &inv);
    let journal = Journal::open(dir.path()).unwrap();
    let last = journal.last_run().unwrap().unwrap();
    assert_eq!(last.end, None, "the crashed run never ended");
    assert_eq!(last.done, BTreeSet::from([0]));
    assert_eq!(last.started[&1].files, files);
    journal.resume_run(&last).unwrap();
    let mut fake = Fake::new(dir.path(), &p);
    fake.landed = landed;
    fake.confirmed.lock().unwrap().insert(0);
    let events = Events::default();
    let outcome = execute(&p, &inv, &fake, &journal, &fast(2), &events).unwrap();
    assert_no_violations(&fake);
    (fake, outcome, events.all())
}

#[test]
fn interrupted_step_whose_files_landed_is_only_reconfirmed() {
    let (fake, outcome, events) = resume_after_crash(true);
    assert!(outcome.complete());
    assert_eq!(fake.calls("files_match"), vec![1]);
    assert_eq!(fake.calls("reconfirm"), vec![1]);
    assert_eq!(
        fake.calls("prepare"),
        vec![2],
        "no fresh keys for a step whose write had landed"
    );
    assert_eq!(fake.calls("apply"), vec![2]);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::StepStarted {
            step: 1,
            recheck: true,
            ..
        }
    )));
}

#[test]
fn interrupted_step_whose_files_did_not_land_is_redone() {
    let (fake, outcome, _) = resume_after_crash(false);
    assert!(outcome.complete());
    assert_eq!(fake.calls("files_match"), vec![1]);
    assert_eq!(fake.calls("reconfirm"), Vec::<StepId>::new());
    assert_eq!(fake.calls("prepare"), vec![1, 2]);
    assert_eq!(fake.calls("apply"), vec![1, 2]);
}

#[test]
fn torn_last_line_is_ignored_with_a_warning() {
    let p = plan(vec![vec![], vec![0], vec![1]]);
    let inv = inventory(3);
    let dir = tempfile::tempdir().unwrap();
    crashed_mid_step(dir.path(), &p, &inv);
    let path = dir.path().join("journal.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(r#"{"record":"step-done","run":"2026"#);
    std::fs::write(&path, &text).unwrap();

    let journal = Journal::open(dir.path()).unwrap();
    let last = journal.last_run().unwrap().unwrap();
    assert_eq!(last.done, BTreeSet::from([0]));
    assert!(last.started.contains_key(&1));
    assert_eq!(last.warnings.len(), 1);
    assert!(
        last.warnings[0].contains("line 5") && last.warnings[0].contains("journal.jsonl"),
        "{:?}",
        last.warnings
    );

    // Resuming ends the torn line, so the next records stay readable.
    journal.resume_run(&last).unwrap();
    journal.step_done(1).unwrap();
    let after = journal.last_run().unwrap().unwrap();
    assert_eq!(after.done, BTreeSet::from([0, 1]));
    assert_eq!(after.warnings.len(), 1);
}

#[test]
fn damage_in_the_middle_of_the_journal_is_refused() {
    let p = plan(vec![vec![], vec![0]]);
    let inv = inventory(2);
    let dir = tempfile::tempdir().unwrap();
    let j = begin(dir.path(), &p, &inv);
    j.step_start(&p.steps[0], "n0", &[]).unwrap();
    j.step_done(0).unwrap();
    let path = dir.path().join("journal.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("step-start", "step-st@rt", 1);
    std::fs::write(&path, text).unwrap();
    let err = Journal::open(dir.path())
        .unwrap()
        .last_run()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("journal.jsonl") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn steps_cannot_be_recorded_without_a_run() {
    let p = plan(vec![vec![]]);
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let fake = Fake::new(dir.path(), &p);
    let err = execute(
        &p,
        &inventory(1),
        &fake,
        &journal,
        &fast(1),
        &Events::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no run was begun"), "{err}");
    assert!(fake.calls("prepare").is_empty());
}

const CHILD_ENV: &str = "CERTROLL_TEST_LOCK_HOLDER_DIR";

/// Not a test on its own: the child process of `lock_dies_with_its_holder` re-enters the
/// test binary here, takes the lock, says so, and waits to be killed.
#[test]
fn lock_holder_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let _lock = Lock::acquire(Path::new(&dir), "certroll apply (child)").unwrap();
    println!("LOCKED");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn lock_dies_with_its_holder() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "lock_holder_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    assert!(
        lines.any(|l| l.unwrap().contains("LOCKED")),
        "the child never took the lock"
    );

    let err = Lock::acquire(dir.path(), "certroll apply").unwrap_err();
    match &err {
        LockError::Held { holder, .. } => {
            assert_eq!(holder.pid, child.id());
            assert_eq!(holder.command, "certroll apply (child)");
        }
        other => panic!("expected the child as holder, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&format!("pid {}", child.id())),
        "{err}"
    );

    child.kill().unwrap();
    child.wait().unwrap();
    let lock = Lock::acquire(dir.path(), "certroll apply").unwrap();
    assert_eq!(lock.holder().pid, std::process::id());
}
