//! The journal and resume: records in order and without key material, done steps skipped,
//! interrupted steps re-checked both ways, torn lines tolerated, damage refused.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use certroll::executor::{execute, Event, FileHash, Outcome};
use certroll::inventory::Inventory;
use certroll::journal::{Journal, Record, RunStatus};
use certroll::plan::{ChainMode, Mode, Plan, StepId, Strategy};

use crate::fake::*;

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
    assert_eq!(
        (state.header.mode, state.header.strategy, state.header.chain),
        (Mode::Rotate, Strategy::Phased, ChainMode::Plain)
    );
    assert_eq!(state.header.generations, vec![1, 2]);
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
    assert_eq!(last.header.fingerprint, p.fingerprint(&inv));
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

    // Resuming ends the torn line, so the next records stay readable; the resuming run
    // reported the torn line, so later reads do not report it again (warned once).
    journal.resume_run(&last).unwrap();
    journal.step_done(1).unwrap();
    let after = journal.last_run().unwrap().unwrap();
    assert_eq!(after.done, BTreeSet::from([0, 1]));
    assert!(after.warnings.is_empty(), "{:?}", after.warnings);
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
    let shown = certroll::error::chain(&err);
    assert!(shown.contains("no run was begun"), "{shown}");
    assert!(fake.calls("prepare").is_empty());
}
