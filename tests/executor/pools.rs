//! Pools against a fake fleet: no schedule ever has more of a pool's members unavailable
//! than its budget — members with a step in flight, members whose step failed and members
//! left mid-step by a killed run — over random plans, budgets, failures, parallelism and
//! resumes; a failed member stops its pool and a resumed run knows it from the journal.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use certroll::executor::{
    execute, Event, FileHash, FileOp, Outcome, Prepared, StepError, StepWork,
};
use certroll::inventory::{Budget, Inventory, Pools};
use certroll::journal::Journal;
use certroll::plan::{Action, Plan, Step, StepId};
use proptest::prelude::*;

use crate::fake::*;

/// The fleet as seen from outside: which nodes are down, and every time a pool had more
/// down than its budget.
struct Outside {
    inv: Inventory,
    /// Nodes down now: restarting, or left down by a failure or a killed run.
    down: Mutex<BTreeSet<usize>>,
    fail: HashSet<StepId>,
    violations: Mutex<Vec<String>>,
    applied: Mutex<Vec<StepId>>,
}

impl Outside {
    fn new(inv: &Inventory, down: BTreeSet<usize>, fail: HashSet<StepId>) -> Outside {
        Outside {
            inv: inv.clone(),
            down: Mutex::new(down),
            fail,
            violations: Mutex::default(),
            applied: Mutex::default(),
        }
    }

    fn restart(&self, step: &Step) -> Result<(), StepError> {
        self.applied.lock().unwrap().push(step.id);
        {
            let mut down = self.down.lock().unwrap();
            down.insert(step.node);
            if let Some(p) = self.inv.pools.pool_of(step.node) {
                let pool = &self.inv.pools.pools[p];
                let members: Vec<_> = down
                    .iter()
                    .filter(|&&n| self.inv.pools.pool_of(n) == Some(p))
                    .collect();
                if members.len() > pool.budget() {
                    self.violations.lock().unwrap().push(format!(
                        "step {}: pool {} has {members:?} down, budget {}",
                        step.id,
                        pool.name,
                        pool.budget()
                    ));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1 + (step.id as u64 * 7) % 5));
        if self.fail.contains(&step.id) {
            return Err(StepError::confirm_failed(format!(
                "node n{} did not confirm within 1s: connection refused",
                step.node
            )));
        }
        self.down.lock().unwrap().remove(&step.node);
        Ok(())
    }
}

impl StepWork for Outside {
    fn prepare(&self, _: &Step) -> Result<Prepared, StepError> {
        Ok(Prepared {
            ops: vec![FileOp::Remove {
                path: "/etc/tls/cross.pem".into(),
                what: "proof-key certificate".into(),
            }],
        })
    }
    fn apply(&self, step: &Step, _: &Prepared) -> Result<(), StepError> {
        self.restart(step)
    }
    fn files_match(&self, _: &Step, _: &[FileHash]) -> Result<bool, StepError> {
        Ok(true)
    }
    fn reconfirm(&self, step: &Step) -> Result<(), StepError> {
        self.restart(step)
    }
}

/// A plan of `steps` (node, earlier steps it waits for); a node's steps are chained.
fn plan_of(steps: &[(usize, Vec<StepId>)]) -> Plan {
    let mut p = plan(vec![vec![]; steps.len()]);
    let mut last_of = std::collections::HashMap::new();
    for (id, (node, after)) in steps.iter().enumerate() {
        let mut after = after.clone();
        after.extend(last_of.insert(*node, id));
        after.sort_unstable();
        after.dedup();
        let wave = after
            .iter()
            .map(|&a| p.steps[a].wave + 1)
            .max()
            .unwrap_or(0);
        p.steps[id] = Step {
            id,
            node: *node,
            actions: vec![Action::LeafSwap],
            after,
            wave,
        };
    }
    p
}

fn pooled(nodes: usize, pools: &[(usize, Vec<usize>)]) -> Inventory {
    let mut inv = inventory(nodes);
    let parts = pools
        .iter()
        .enumerate()
        .map(|(i, (budget, members))| {
            (
                format!("p{i}"),
                Budget::Count(*budget as u32),
                Duration::ZERO,
                members.clone(),
            )
        })
        .collect();
    inv.pools = Pools::from_parts(nodes, parts, &[]);
    inv
}

fn execute_on(
    dir: &Path,
    p: &Plan,
    inv: &Inventory,
    work: &Outside,
    parallel: usize,
) -> (Outcome, Vec<Event>) {
    let journal = match Journal::open(dir).unwrap().last_run().unwrap() {
        Some(last) if !last.is_complete() => {
            let j = Journal::open(dir).unwrap();
            j.resume_run(&last).unwrap();
            j
        }
        _ => begin(dir, p, inv),
    };
    let events = Events::default();
    let outcome = execute(p, inv, work, &journal, &fast(parallel), &events).unwrap();
    (outcome, events.all())
}

fn assert_within_budget(work: &Outside) {
    let v = work.violations.lock().unwrap();
    assert!(v.is_empty(), "budget exceeded: {v:#?}");
}

#[test]
fn a_pool_of_one_restarts_its_members_one_at_a_time() {
    let p = plan_of(&[(0, vec![]), (1, vec![]), (2, vec![]), (3, vec![])]);
    let inv = pooled(4, &[(1, vec![0, 1, 2])]);
    let dir = tempfile::tempdir().unwrap();
    let work = Outside::new(&inv, BTreeSet::new(), HashSet::new());
    let (outcome, events) = execute_on(dir.path(), &p, &inv, &work, 16);
    assert!(outcome.complete());
    assert_within_budget(&work);
    let waits = events
        .iter()
        .filter(|e| matches!(e, Event::PoolWait { pool, budget: 1, .. } if pool == "p0"))
        .count();
    assert!(waits >= 1, "{events:#?}");
}

#[test]
fn a_failed_member_stops_its_pool_and_the_resumed_run_retries_it_first() {
    // Budget 2: without the stop, n1 and n2 would go after n0 failed.
    let p = plan_of(&[(0, vec![]), (1, vec![0]), (2, vec![0]), (3, vec![])]);
    let p = {
        let mut p = p;
        // n1 and n2 do not really wait for n0: make them independent.
        p.steps[1].after.clear();
        p.steps[2].after.clear();
        p.steps.iter_mut().for_each(|s| s.wave = 0);
        p
    };
    let inv = pooled(4, &[(2, vec![0, 1, 2])]);
    let dir = tempfile::tempdir().unwrap();
    let work = Outside::new(&inv, BTreeSet::new(), HashSet::from([0]));
    let (outcome, events) = execute_on(dir.path(), &p, &inv, &work, 1);
    assert_within_budget(&work);
    assert_eq!(outcome.failed.iter().map(|f| f.0).collect::<Vec<_>>(), [0]);
    assert_eq!(outcome.blocked, [1, 2], "{events:#?}");
    assert!(outcome.done.contains(&3));
    let stopped = events.iter().find_map(|e| match e {
        Event::PoolStopped {
            pool, node, error, ..
        } => Some((pool.clone(), node.clone(), error.clone())),
        _ => None,
    });
    let (pool, node, error) = stopped.expect("a pool-stopped event");
    assert_eq!((pool.as_str(), node.as_str()), ("p0", "n0"));
    assert!(error.contains("connection refused"), "{error}");

    // The resumed run: n0 is still down; it alone may go first.
    let work = Outside::new(&inv, BTreeSet::from([0]), HashSet::new());
    let (outcome, _) = execute_on(dir.path(), &p, &inv, &work, 4);
    assert_within_budget(&work);
    assert!(outcome.complete(), "{outcome:?}");
    assert_eq!(work.applied.lock().unwrap()[0], 0);
}

#[test]
fn a_member_left_mid_step_by_a_killed_run_counts_as_down() {
    let p = plan_of(&[(0, vec![]), (1, vec![]), (2, vec![])]);
    let inv = pooled(3, &[(1, vec![0, 1, 2])]);
    let dir = tempfile::tempdir().unwrap();
    let j = begin(dir.path(), &p, &inv);
    j.step_start(&p.steps[1], "n1", &[]).unwrap();
    drop(j); // kill -9: no step-done, no run-end.
    let work = Outside::new(&inv, BTreeSet::from([1]), HashSet::new());
    let (outcome, _) = execute_on(dir.path(), &p, &inv, &work, 8);
    assert_within_budget(&work);
    assert!(outcome.complete());
    assert_eq!(
        work.applied.lock().unwrap()[0],
        1,
        "n1 is re-checked before anyone else goes"
    );
}

/// Random plans: up to 14 steps over 8 nodes, two pools, failures, a killed run.
/// Steps (node, waits for), pool of each node, budgets, failing steps, a killed step,
/// parallelism.
type Scenario = (
    Vec<(usize, Vec<StepId>)>,
    Vec<Option<usize>>,
    (usize, usize),
    BTreeSet<StepId>,
    Option<StepId>,
    usize,
);

fn scenario() -> impl Strategy<Value = Scenario> {
    (1usize..15).prop_flat_map(|n| {
        let steps = (0..n)
            .map(|i| {
                let after = if i == 0 {
                    Just(vec![]).boxed()
                } else {
                    proptest::collection::vec(0..i, 0..3).boxed()
                };
                (0usize..8, after)
            })
            .collect::<Vec<_>>();
        (
            steps,
            proptest::collection::vec(proptest::option::of(0usize..2), 8),
            (1usize..4, 1usize..4),
            proptest::collection::btree_set(0..n, 0..3),
            proptest::option::of(0..n),
            1usize..7,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn no_schedule_exceeds_a_pool_budget(
        (steps, member_of, (b0, b1), fail, killed, parallel) in scenario()
    ) {
        let p = plan_of(&steps);
        let pools: Vec<(usize, Vec<usize>)> = [b0, b1]
            .iter()
            .enumerate()
            .map(|(i, &b)| (b, (0..8).filter(|&n| member_of[n] == Some(i)).collect()))
            .collect();
        let inv = pooled(8, &pools);
        let dir = tempfile::tempdir().unwrap();
        // Run 1: some steps fail; their nodes stay down.
        let first = Outside::new(&inv, BTreeSet::new(), fail.iter().copied().collect());
        let (outcome, _) = execute_on(dir.path(), &p, &inv, &first, parallel);
        assert_within_budget(&first);
        let mut down = first.down.lock().unwrap().clone();
        // Then a step that could start is journaled started and the process dies.
        if let Some(k) = killed.filter(|k| {
            !outcome.done.contains(k) && p.steps[*k].after.iter().all(|a| outcome.done.contains(a))
                && !down.iter().any(|&d| inv.pools.pool_of(d).is_some() && inv.pools.pool_of(d) == inv.pools.pool_of(p.steps[*k].node))
        }) {
            let j = Journal::open(dir.path()).unwrap();
            let last = j.last_run().unwrap().unwrap();
            j.resume_run(&last).unwrap();
            j.step_start(&p.steps[k], &format!("n{}", p.steps[k].node), &[]).unwrap();
            down.insert(p.steps[k].node);
        }
        // Run 2 resumes with no failures: it must finish within every budget.
        let second = Outside::new(&inv, down, HashSet::new());
        let (outcome, events) = execute_on(dir.path(), &p, &inv, &second, parallel);
        assert_within_budget(&second);
        prop_assert!(outcome.complete(), "{:?}\n{:#?}", outcome, events);
    }
}
