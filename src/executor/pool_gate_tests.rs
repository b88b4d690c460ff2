//! The pool gate's arithmetic: the budget, failed members, members left mid-step.

use std::time::Duration;

use super::*;
use crate::inventory::{Budget, InventoryBuilder, Pools};
use crate::journal::{Journal, RunHeader};
use crate::plan::{Action, Mode};

/// Four nodes a..d, one step each; a, b and c in pool `web` with `budget`.
fn fleet(budget: Budget) -> (Inventory, Plan) {
    let mut inv = InventoryBuilder::new()
        .link("a", "d")
        .link("b", "d")
        .link("c", "d")
        .build();
    inv.pools = Pools::from_parts(
        4,
        vec![("web".into(), budget, Duration::ZERO, vec![0, 1, 2])],
        &[],
    );
    let mut plan = crate::plan::renew(&inv, 0, &[0, 1, 2, 3]);
    plan.mode = Mode::Rotate;
    for s in &mut plan.steps {
        s.actions = vec![Action::LeafSwap];
    }
    (inv, plan)
}

fn fresh(dir: &std::path::Path, plan: &Plan, inv: &Inventory) -> (Journal, RunState) {
    let j = Journal::open(dir).unwrap();
    j.begin_run(RunHeader::for_plan(plan, inv, vec![1, 2]))
        .unwrap();
    let state = j.current_run().unwrap();
    (j, state)
}

#[test]
fn the_budget_counts_members_in_flight() {
    let (inv, plan) = fleet(Budget::Count(2));
    let dir = tempfile::tempdir().unwrap();
    let (_j, state) = fresh(dir.path(), &plan, &inv);
    let mut gate = PoolGate::new(&plan, &inv, &state).unwrap();
    gate.start(0);
    assert_eq!(gate.check(1), Ok(()));
    gate.start(1);
    match gate.check(2) {
        Err(Held::Busy { pool, down, budget }) => {
            assert_eq!((pool.as_str(), budget), ("web", 2));
            assert_eq!(down, ["a", "b"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(gate.check(3), Ok(()), "d is in no pool");
    gate.finish(0, None);
    assert_eq!(gate.check(2), Ok(()));
}

#[test]
fn a_failed_member_stops_the_pool_but_may_go_again_itself() {
    let (inv, plan) = fleet(Budget::Count(2));
    let dir = tempfile::tempdir().unwrap();
    let (_j, state) = fresh(dir.path(), &plan, &inv);
    let mut gate = PoolGate::new(&plan, &inv, &state).unwrap();
    gate.start(0);
    gate.finish(0, Some("node a did not confirm".into()));
    assert!(matches!(gate.check(1), Err(Held::Stopped { ref node, .. }) if node == "a"));
    assert_eq!(gate.check(0), Ok(()));
}

#[test]
fn the_journal_tells_who_failed_or_was_left_mid_step() {
    let (inv, plan) = fleet(Budget::Percent(100));
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = fresh(dir.path(), &plan, &inv);
    j.step_start(&plan.steps[1], "b", &[]).unwrap();
    let state = j.current_run().unwrap();
    let gate = PoolGate::new(&plan, &inv, &state).unwrap();
    match gate.check(0) {
        Err(Held::Stopped { node, failure, .. }) => {
            assert_eq!(node, "b");
            assert_eq!(failure.step, 1);
            assert!(failure.message.contains("cut short"), "{}", failure.message);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(gate.check(1), Ok(()));
}

#[test]
fn fleets_without_pools_have_no_gate() {
    let inv = InventoryBuilder::new().link("a", "b").build();
    let plan = crate::plan::renew(&inv, 0, &[0, 1]);
    let dir = tempfile::tempdir().unwrap();
    let (_j, state) = fresh(dir.path(), &plan, &inv);
    assert!(PoolGate::new(&plan, &inv, &state).is_none());
}

#[test]
fn a_closed_window_holds_the_pool_until_it_opens() {
    let (mut inv, plan) = fleet(Budget::Count(1));
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(3);
    let (from, to) = (later.hour(), (later.hour() + 1) % 24);
    let text = format!("daily {from:02}:00-{to:02}:00 UTC");
    inv.pools.pools[0].windows = vec![crate::inventory::windows::Window::parse(&text).unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let (_j, state) = fresh(dir.path(), &plan, &inv);
    let gate = PoolGate::new(&plan, &inv, &state).unwrap();
    assert!(gate.has_windows());
    match gate.check(0) {
        Err(Held::Closed { pool, opens }) => {
            assert_eq!(pool, "web");
            assert!(opens > time::OffsetDateTime::now_utc() + time::Duration::hours(1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(gate.check(3), Ok(()), "d is in no pool");
}

/// Found by `no_schedule_exceeds_a_pool_budget`: two members that failed in the run being
/// resumed each waited for the other to be back, so neither was tried again.
#[test]
fn two_failed_members_may_each_go_again_on_resume() {
    let (inv, plan) = fleet(Budget::Count(2));
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = fresh(dir.path(), &plan, &inv);
    for id in [0, 1] {
        j.step_start(&plan.steps[id], &inv.nodes[id].name, &[])
            .unwrap();
        j.step_failed(id, "did not confirm").unwrap();
    }
    let state = j.current_run().unwrap();
    let gate = PoolGate::new(&plan, &inv, &state).unwrap();
    assert_eq!(gate.check(0), Ok(()));
    assert_eq!(gate.check(1), Ok(()));
    assert!(matches!(gate.check(2), Err(Held::Stopped { .. })));
}
