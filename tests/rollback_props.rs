//! Property tests of rollback: over random fleets (one-way and mutual links, cycles,
//! several CAs) and every rotation strategy and chain, a rotation stopped at a random point
//! — some steps confirmed, some interrupted with or without their files on the node — is
//! rolled back by a plan that keeps every link handshaking in every checked order and
//! leaves only the old anchor in every bundle; a rollback plan with a gate removed is caught.

use certroll::inventory::{Inventory, InventoryBuilder};
use certroll::plan::{rollback, rotate, Action, ChainMode, Plan, RotationState, Strategy as Visit};
use certroll::simulate::{check_from, CheckError, CheckOptions};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod support;
use support::props::{chain, drop_gate, quick};

/// A random fleet of up to 19 nodes and 2 CAs (see [`support::props::fleet`]).
fn fleet() -> impl Strategy<Value = Inventory> {
    support::props::fleet(20, 2)
}

fn visit() -> impl Strategy<Value = Visit> {
    prop_oneof![Just(Visit::Phased), Just(Visit::Ordered)]
}

/// Where a rotation stopped: what the planner is told, and what the nodes really hold.
struct Stopped {
    state: RotationState,
    /// Per node, the rotation actions whose files really reached it, in order.
    files: Vec<Vec<Action>>,
}

/// Runs `plan` in a random order the gates allow, stops after a random number of
/// confirmed steps, and interrupts a random set of the steps ready at that point: each
/// one's files reached its node or not, at random. The planner learns only "interrupted".
fn stop_at_random(plan: &Plan, nodes: usize, seed: u64) -> Stopped {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = plan.steps.len();
    let mut waiting: Vec<usize> = plan.steps.iter().map(|s| s.after.len()).collect();
    let mut done = vec![false; n];
    let mut files = vec![Vec::new(); nodes];
    let stop = rng.random_range(0..=n);
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    for _ in 0..stop {
        let s = ready.remove(rng.random_range(0..ready.len()));
        done[s] = true;
        files[plan.steps[s].node].extend(plan.steps[s].actions.iter().copied());
        for d in &plan.steps {
            if d.after.contains(&s) {
                waiting[d.id] -= 1;
                if waiting[d.id] == 0 {
                    ready.push(d.id);
                }
            }
        }
    }
    let mut started = vec![false; n];
    for &s in &ready {
        if rng.random_bool(0.5) {
            started[s] = true;
            if rng.random_bool(0.5) {
                files[plan.steps[s].node].extend(plan.steps[s].actions.iter().copied());
            }
        }
    }
    let state = RotationState::from_run(plan, nodes, |s| done[s], |s| started[s]);
    Stopped { state, files }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn a_rotation_stopped_anywhere_rolls_back_with_every_link_up(
        inv in fleet(),
        visit in visit(),
        chain in chain(),
        seed in any::<u64>(),
    ) {
        let Ok(forward) = rotate(&inv, 0, visit, chain) else {
            // Refused ordered rotations never start; there is nothing to roll back.
            return Ok(());
        };
        let stopped = stop_at_random(&forward, inv.nodes.len(), seed);
        let back = rollback(&inv, 0, visit, chain, &stopped.state);
        if let Err(e) = check_from(&inv, &back, &stopped.files, quick()) {
            panic!("rollback from {:?} failed its check: {e}", stopped.files);
        }
    }

    #[test]
    fn a_leaf_restore_without_its_gate_is_caught(inv in fleet(), pick in any::<prop::sample::Index>()) {
        let (back, files) = rollback_of_completed(&inv);
        if let Some(broken) = drop_gate(&back, Action::LeafRestore, pick) {
            let caught = matches!(
                check_from(&inv, &broken, &files, quick()),
                Err(CheckError::Broken { .. })
            );
            prop_assert!(caught, "a rollback plan with a gate removed passed the check");
        }
    }

    #[test]
    fn a_drop_new_without_its_gate_is_caught(inv in fleet(), pick in any::<prop::sample::Index>()) {
        let (back, files) = rollback_of_completed(&inv);
        if let Some(broken) = drop_gate(&back, Action::TrustDropNew, pick) {
            let caught = matches!(
                check_from(&inv, &broken, &files, quick()),
                Err(CheckError::Broken { .. })
            );
            prop_assert!(caught, "a rollback plan with a gate removed passed the check");
        }
    }
}

/// The rollback of a phased plain rotation of CA 0 whose every step was confirmed (every
/// bundle {new}, every leaf new: each gate of the rollback is then needed), and the files
/// it starts from.
fn rollback_of_completed(inv: &Inventory) -> (Plan, Vec<Vec<Action>>) {
    let forward = rotate(inv, 0, Visit::Phased, ChainMode::Plain).unwrap();
    let mut files = vec![Vec::new(); inv.nodes.len()];
    for s in &forward.steps {
        files[s.node].extend(s.actions.iter().copied());
    }
    let state = RotationState::from_run(&forward, inv.nodes.len(), |_| true, |_| false);
    let back = rollback(inv, 0, Visit::Phased, ChainMode::Plain, &state);
    (back, files)
}

#[test]
fn a_rollback_that_never_drops_the_new_anchor_is_caught() {
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let (mut back, files) = rollback_of_completed(&inv);
    back.steps
        .retain(|s| s.actions != [Action::TrustDropNew] || inv.nodes[s.node].name != "lb1");
    let err = check_from(&inv, &back, &files, CheckOptions::default()).unwrap_err();
    assert!(
        matches!(err, CheckError::Incomplete { ref node, .. } if node == "lb1"),
        "{err}"
    );
}

#[test]
fn a_rollback_that_leaves_a_new_leaf_is_caught() {
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let (mut back, files) = rollback_of_completed(&inv);
    // lb1 is verified by nobody: its new leaf breaks no link, only the final state.
    let lb1 = inv.node_id("lb1").unwrap();
    // Keep the step (so its node is visited) but make it drop the bundle only.
    for s in &mut back.steps {
        if s.node == lb1 && s.actions == [Action::LeafRestore] {
            s.actions = vec![Action::TrustDropNew];
        }
    }
    let err = check_from(&inv, &back, &files, CheckOptions::default()).unwrap_err();
    assert!(
        matches!(err, CheckError::Incomplete { ref node, ref what } if node == "lb1" && what.contains("new-generation")),
        "{err}"
    );
}

#[test]
fn a_whole_rotation_is_rolled_back_to_the_old_anchor_on_a_cycle() {
    let inv = InventoryBuilder::new()
        .mutual("a", "b")
        .link("b", "c")
        .link("c", "a")
        .build();
    let (back, files) = rollback_of_completed(&inv);
    let report = check_from(&inv, &back, &files, CheckOptions::default()).unwrap();
    assert_eq!(report.steps, back.steps.len());
    assert!(report.handshakes > 0);
}
