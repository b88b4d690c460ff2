//! Rollback planner unit tests: the mirrored gates and the conservative reading of
//! interrupted steps, on small named topologies.

use super::*;
use crate::inventory::{Inventory, InventoryBuilder};
use crate::plan::rotate;
use crate::plan::tests::{after, find, id, step};

fn three_tier() -> Inventory {
    InventoryBuilder::new()
        .link("lb1", "app1")
        .link("lb1", "app2")
        .mutual("app1", "db1")
        .mutual("app2", "db1")
        .build()
}

/// The state after the whole phased rotation of CA 0 (every step confirmed).
fn completed(inv: &Inventory) -> RotationState {
    let plan = rotate(inv, 0, Strategy::Phased, ChainMode::Plain).unwrap();
    RotationState::from_run(&plan, inv.nodes.len(), |_| true, |_| false)
}

fn set(state: &mut RotationState, inv: &Inventory, node: &str, p: NodeProgress) {
    state.nodes[id(inv, node)] = p;
}

const DONE: Progress = Progress::Done;
const NONE: Progress = Progress::NotStarted;
const UNKNOWN: Progress = Progress::Unknown;

fn progress(trust_add: Progress, leaf_swap: Progress, trust_prune: Progress) -> NodeProgress {
    NodeProgress {
        trust_add,
        leaf_swap,
        trust_prune,
    }
}

#[test]
fn leaf_restore_waits_for_every_verifier_to_trust_the_old_anchor_again() {
    let inv = three_tier();
    let plan = rollback(
        &inv,
        0,
        Strategy::Phased,
        ChainMode::Plain,
        &completed(&inv),
    );
    assert_eq!(plan.mode, Mode::Rollback);
    let leaf = step(&plan, &inv, "app1", Action::LeafRestore);
    assert_eq!(
        after(&plan, &inv, leaf),
        [
            "app1:trust-restore",
            "db1:trust-restore",
            "lb1:trust-restore"
        ]
    );
    // lb1 is verified by nobody: its leaf waits only for its own bundle.
    let lb = step(&plan, &inv, "lb1", Action::LeafRestore);
    assert_eq!(after(&plan, &inv, lb), ["lb1:trust-restore"]);
}

#[test]
fn drop_new_waits_for_every_subject_to_be_back_on_an_old_leaf() {
    let inv = three_tier();
    let plan = rollback(
        &inv,
        0,
        Strategy::Phased,
        ChainMode::Plain,
        &completed(&inv),
    );
    let drop = step(&plan, &inv, "db1", Action::TrustDropNew);
    assert_eq!(
        after(&plan, &inv, drop),
        [
            "app1:leaf-restore",
            "app2:leaf-restore",
            "db1:leaf-restore",
            "db1:trust-restore"
        ]
    );
    assert_eq!(plan.wave_count(), 3);
}

#[test]
fn cross_signed_chains_do_not_lift_the_leaf_restore_gate() {
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let fwd = rotate(&inv, 0, Strategy::Phased, ChainMode::CrossSigned).unwrap();
    let state = RotationState::from_run(&fwd, inv.nodes.len(), |_| true, |_| false);
    let plan = rollback(&inv, 0, Strategy::Phased, ChainMode::CrossSigned, &state);
    let leaf = step(&plan, &inv, "app1", Action::LeafRestore);
    assert_eq!(after(&plan, &inv, leaf), ["lb1:trust-restore"]);
}

#[test]
fn a_rotation_that_never_started_needs_no_rollback() {
    let inv = three_tier();
    let state = RotationState::untouched(inv.nodes.len());
    assert!(state.is_untouched());
    let plan = rollback(&inv, 0, Strategy::Phased, ChainMode::Plain, &state);
    assert!(plan.is_empty());
}

#[test]
fn after_trust_add_only_the_new_anchor_is_dropped_without_gates() {
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let mut state = RotationState::untouched(inv.nodes.len());
    set(&mut state, &inv, "lb1", progress(DONE, NONE, NONE));
    let plan = rollback(&inv, 0, Strategy::Phased, ChainMode::Plain, &state);
    assert_eq!(plan.steps.len(), 1, "{:?}", plan.steps);
    let drop = step(&plan, &inv, "lb1", Action::TrustDropNew);
    assert!(drop.after.is_empty());
}

#[test]
fn an_interrupted_trust_add_gets_the_old_anchor_re_added() {
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let mut state = RotationState::untouched(inv.nodes.len());
    set(&mut state, &inv, "lb1", progress(UNKNOWN, NONE, NONE));
    let plan = rollback(&inv, 0, Strategy::Phased, ChainMode::Plain, &state);
    let restore = step(&plan, &inv, "lb1", Action::TrustRestore);
    let drop = step(&plan, &inv, "lb1", Action::TrustDropNew);
    assert_eq!(drop.after, [restore.id]);
    assert!(find(&plan, &inv, "app1", Action::LeafRestore).is_none());
}

#[test]
fn a_half_swapped_node_gets_a_fresh_old_leaf_after_its_verifiers() {
    let inv = three_tier();
    let mut state = RotationState::untouched(inv.nodes.len());
    for n in ["lb1", "app1", "app2", "db1"] {
        set(&mut state, &inv, n, progress(DONE, NONE, NONE));
    }
    set(&mut state, &inv, "app1", progress(DONE, UNKNOWN, NONE));
    let plan = rollback(&inv, 0, Strategy::Phased, ChainMode::Plain, &state);
    // Bundles were never pruned: they hold the old anchor, no restore is needed.
    assert!(plan
        .steps
        .iter()
        .all(|s| s.actions != [Action::TrustRestore]));
    let leaf = step(&plan, &inv, "app1", Action::LeafRestore);
    assert!(leaf.after.is_empty());
    // lb1 and db1 verify app1: they drop the new anchor only once app1 is back.
    for verifier in ["lb1", "db1"] {
        let drop = step(&plan, &inv, verifier, Action::TrustDropNew);
        assert!(drop.after.contains(&leaf.id), "{verifier}");
    }
    assert!(find(&plan, &inv, "app2", Action::LeafRestore).is_none());
}

#[test]
fn an_interrupted_prune_restores_the_old_anchor_before_any_subject_goes_back() {
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let mut state = RotationState::untouched(inv.nodes.len());
    set(&mut state, &inv, "lb1", progress(DONE, DONE, UNKNOWN));
    set(&mut state, &inv, "app1", progress(NONE, DONE, NONE));
    let plan = rollback(&inv, 0, Strategy::Phased, ChainMode::Plain, &state);
    let restore = step(&plan, &inv, "lb1", Action::TrustRestore);
    let leaf = step(&plan, &inv, "app1", Action::LeafRestore);
    assert!(leaf.after.contains(&restore.id));
    let drop = step(&plan, &inv, "lb1", Action::TrustDropNew);
    assert!(drop.after.contains(&leaf.id));
}

#[test]
fn from_run_reads_ordered_steps_action_by_action() {
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let fwd = rotate(&inv, 0, Strategy::Ordered, ChainMode::Plain).unwrap();
    let lb_visit = fwd
        .steps
        .iter()
        .find(|s| s.node == id(&inv, "lb1") && s.actions.contains(&Action::LeafSwap))
        .unwrap()
        .id;
    let state = RotationState::from_run(&fwd, inv.nodes.len(), |_| false, |s| s == lb_visit);
    assert_eq!(
        state.nodes[id(&inv, "lb1")],
        progress(UNKNOWN, UNKNOWN, NONE)
    );
    assert_eq!(state.nodes[id(&inv, "app1")], NodeProgress::default());
}

#[test]
fn progress_keeps_the_most_advanced_knowledge() {
    let mut p = NodeProgress::default();
    p.record(Action::LeafSwap, DONE);
    p.record(Action::LeafSwap, UNKNOWN);
    p.record(Action::Renew, DONE);
    assert_eq!(p, progress(NONE, DONE, NONE));
}
