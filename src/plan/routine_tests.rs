//! Routine plans: one independent step per node with something to do, a foreign leaf a
//! verifier relies on held back, and every plan proven by the `--check` simulation, which
//! starts from files broken the way the needs say.

use super::*;
use crate::inventory::{Inventory, InventoryBuilder};
use crate::simulate::{check, CheckError, CheckOptions};

fn three_tier() -> Inventory {
    InventoryBuilder::new()
        .link("lb1", "app1")
        .link("lb1", "app2")
        .mutual("app1", "db1")
        .mutual("app2", "db1")
        .build()
}

fn need(inv: &Inventory, node: &str, bundle: BundleNeed, leaf: LeafNeed) -> NodeNeed {
    NodeNeed {
        node: inv.node_id(node).unwrap(),
        bundle,
        leaf,
        reasons: vec![format!("{node} is broken")],
    }
}

fn quick() -> CheckOptions {
    CheckOptions {
        random_orders: 16,
        ..CheckOptions::default()
    }
}

fn actions(inv: &Inventory, plan: &Plan) -> Vec<(String, Vec<Action>)> {
    plan.steps
        .iter()
        .map(|s| (inv.nodes[s.node].name.clone(), s.actions.clone()))
        .collect()
}

#[test]
fn every_repair_is_one_independent_step_with_its_reasons() {
    use BundleNeed as B;
    use LeafNeed as L;
    let inv = three_tier();
    let needs = vec![
        need(&inv, "db1", B::Sound, L::Broken),
        need(&inv, "lb1", B::Broken, L::Sound),
        need(&inv, "app1", B::Sound, L::Due),
        need(&inv, "app2", B::Sound, L::Foreign),
    ];
    let plan = routine(&inv, 0, needs, Vec::new());
    assert_eq!(
        plan.mode,
        Mode::Renew,
        "a routine plan is never a bootstrap"
    );
    let got = actions(&inv, &plan);
    let want: Vec<(String, Vec<Action>)> = [
        ("lb1", Action::Install),
        ("app1", Action::Renew),
        ("app2", Action::Renew),
        ("db1", Action::Renew),
    ]
    .iter()
    .map(|(n, a)| (n.to_string(), vec![*a]))
    .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut want_sorted = want;
    want_sorted.sort();
    assert_eq!(got_sorted, want_sorted);
    assert!(plan.steps.iter().all(|s| s.after.is_empty() && s.wave == 0));
    let db1 = inv.node_id("db1").unwrap();
    assert_eq!(need_of(&plan, db1).unwrap().reasons, ["db1 is broken"]);
    assert!(plan.unrepaired.is_empty());
    check(&inv, &plan, quick()).expect("the repair plan keeps every working link up");
}

#[test]
fn a_foreign_leaf_a_verifier_may_rely_on_is_held_back() {
    use BundleNeed as B;
    use LeafNeed as L;
    let inv = three_tier();
    // app1 trusts only another CA, which issued db1's leaf: app1 ⇄ db1 works through it.
    let needs = vec![
        need(&inv, "app1", B::Untrusting, L::Sound),
        need(&inv, "db1", B::Sound, L::Foreign),
        need(&inv, "lb1", B::Sound, L::Foreign),
    ];
    let plan = routine(&inv, 0, needs, Vec::new());
    assert_eq!(
        actions(&inv, &plan),
        [("lb1".to_string(), vec![Action::Renew])],
        "lb1's verifiers trust the current CA: only its leaf is replaced"
    );
    assert_eq!(plan.unrepaired.len(), 1);
    let held = &plan.unrepaired[0];
    assert_eq!(held.node, inv.node_id("db1").unwrap());
    assert!(
        held.message.contains("app1 does not trust the current CA"),
        "{}",
        held.message
    );
    check(&inv, &plan, quick()).expect("holding db1 back keeps app1 ⇄ db1 up");
}

#[test]
fn the_check_catches_a_repair_that_cuts_a_working_link() {
    use BundleNeed as B;
    use LeafNeed as L;
    let inv = three_tier();
    let needs = vec![
        need(&inv, "app1", B::Untrusting, L::Sound),
        need(&inv, "db1", B::Sound, L::Foreign),
    ];
    let mut plan = routine(&inv, 0, needs, Vec::new());
    // The negative control: replace the held-back leaf anyway.
    let db1 = inv.node_id("db1").unwrap();
    plan.steps.push(Step {
        id: plan.steps.len(),
        node: db1,
        actions: vec![Action::Renew],
        after: Vec::new(),
        wave: 0,
    });
    plan.order.push(db1);
    match check(&inv, &plan, quick()) {
        Err(CheckError::Broken { client, server, .. }) => {
            assert_eq!((client.as_str(), server.as_str()), ("app1", "db1"));
        }
        other => panic!("the check must fail on app1 ⇄ db1, got {other:?}"),
    }
}

#[test]
fn the_check_catches_a_plan_that_leaves_a_broken_node_broken() {
    let inv = three_tier();
    let needs = vec![need(&inv, "db1", BundleNeed::Sound, LeafNeed::Broken)];
    let mut plan = routine(&inv, 0, needs, Vec::new());
    plan.steps.clear();
    plan.order.clear();
    // The need is still recorded but no step repairs it: not excused, so not repaired.
    plan.needs[0].leaf = LeafNeed::Broken;
    let db1 = inv.node_id("db1").unwrap();
    plan.steps.push(Step {
        id: 0,
        node: inv.node_id("lb1").unwrap(),
        actions: vec![Action::Renew],
        after: Vec::new(),
        wave: 0,
    });
    match check(&inv, &plan, quick()) {
        Err(CheckError::NotRepaired { server, .. }) => assert_eq!(server, inv.nodes[db1].name),
        other => panic!("db1's links stay broken, got {other:?}"),
    }
}

#[test]
fn unreadable_leaves_are_not_touched() {
    let inv = three_tier();
    let needs = vec![need(&inv, "db1", BundleNeed::Broken, LeafNeed::Unknown)];
    let plan = routine(&inv, 0, needs, Vec::new());
    assert!(plan.steps.is_empty());
}
