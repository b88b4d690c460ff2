//! Scheduling: confirmation gates on random DAGs, the parallelism bound, failures that
//! block only their dependents, and retries of transient failures.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use certroll::executor::Event;
use certroll::journal::{Record, RunStatus};
use certroll::plan::{Plan, StepId};
use proptest::prelude::*;

use crate::fake::*;

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
    // Deterministic on any machine: 0 fails only once 1 is under way, and 1 finishes only
    // once 0's failure is journaled.
    fake.after_started = HashMap::from([(0, 1)]);
    fake.until_failed = HashMap::from([(1, 0)]);
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
    // Step 1 was running when 0 failed, and was allowed to finish (journal order).
    let records = read_records(&dir.path().join("journal.jsonl"));
    let pos = |f: &dyn Fn(&Record) -> bool| records.iter().position(f).unwrap();
    let failed0 = pos(&|r| matches!(r, Record::StepFailed { step: 0, .. }));
    assert!(pos(&|r| matches!(r, Record::StepStart { step: 1, .. })) < failed0);
    assert!(pos(&|r| matches!(r, Record::StepDone { step: 1, .. })) > failed0);
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
fn a_changed_host_key_stops_the_whole_run() {
    // 0 hits a changed host key while 1 is in flight; 2 is independent but must not start.
    let p = plan(vec![vec![], vec![], vec![1], vec![]]);
    let dir = tempfile::tempdir().unwrap();
    let mut fake = Fake::new(dir.path(), &p);
    fake.host_key_changed = HashSet::from([0]);
    // 0 is refused only once 1 is under way; 1 ends only once 0's refusal is journaled.
    fake.after_started = HashMap::from([(0, 1)]);
    fake.until_failed = HashMap::from([(1, 0)]);
    let (outcome, events) = run(dir.path(), &p, &fake, 2);
    assert_no_violations(&fake);
    assert_eq!(
        outcome.failed.iter().map(|f| f.0).collect::<Vec<_>>(),
        vec![0]
    );
    assert!(
        outcome.failed[0].1.contains("HOST KEY CHANGED"),
        "{:?}",
        outcome.failed
    );
    assert_eq!(outcome.done, vec![1], "the step in flight finishes");
    assert_eq!(
        outcome.blocked,
        vec![2, 3],
        "nothing new starts after a host key refusal"
    );
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::StepStarted { step: 2 | 3, .. })));
    assert!(!outcome.complete());
}
