//! Planner unit tests: gates, orders and refusals on small named topologies.

use super::*;
use crate::inventory::{Inventory, InventoryBuilder};

pub(super) fn id(inv: &Inventory, name: &str) -> NodeId {
    inv.node_id(name).unwrap()
}

/// The step of `node` that performs `action`, if the plan has one.
pub(super) fn find<'p>(
    plan: &'p Plan,
    inv: &Inventory,
    node: &str,
    action: Action,
) -> Option<&'p Step> {
    let n = id(inv, node);
    plan.steps
        .iter()
        .find(|s| s.node == n && s.actions.contains(&action))
}

/// The step of `node` that performs `action`.
pub(super) fn step<'p>(plan: &'p Plan, inv: &Inventory, node: &str, action: Action) -> &'p Step {
    find(plan, inv, node, action).unwrap_or_else(|| panic!("no {action:?} step for {node}"))
}

/// Names and actions of the prerequisites of a step, e.g. ["lb1:trust-add"].
pub(super) fn after(plan: &Plan, inv: &Inventory, s: &Step) -> Vec<String> {
    let mut v: Vec<String> = s
        .after
        .iter()
        .map(|&a| {
            let p = &plan.steps[a];
            format!("{}:{}", inv.nodes[p.node].name, actions_label(&p.actions))
        })
        .collect();
    v.sort();
    v
}

/// The plan's node order, by name.
fn order_names<'i>(plan: &Plan, inv: &'i Inventory) -> Vec<&'i str> {
    plan.order
        .iter()
        .map(|&n| inv.nodes[n].name.as_str())
        .collect()
}

fn three_tier() -> Inventory {
    InventoryBuilder::new()
        .link("lb1", "app1")
        .link("lb1", "app2")
        .mutual("app1", "db1")
        .mutual("app2", "db1")
        .build()
}

#[test]
fn phased_server_leaf_waits_for_its_clients_trust() {
    let inv = three_tier();
    let plan = rotate(&inv, 0, Strategy::Phased, ChainMode::Plain).unwrap();
    let swap = step(&plan, &inv, "app1", Action::LeafSwap);
    assert_eq!(
        after(&plan, &inv, swap),
        ["app1:trust-add", "db1:trust-add", "lb1:trust-add"]
    );
    // lb1 is a pure client over one-way links: nobody verifies it, so its leaf waits only for itself.
    let lb_swap = step(&plan, &inv, "lb1", Action::LeafSwap);
    assert_eq!(after(&plan, &inv, lb_swap), ["lb1:trust-add"]);
}

#[test]
fn phased_prune_waits_for_its_subjects_leaves() {
    let inv = three_tier();
    let plan = rotate(&inv, 0, Strategy::Phased, ChainMode::Plain).unwrap();
    let prune = step(&plan, &inv, "db1", Action::TrustPrune);
    assert_eq!(
        after(&plan, &inv, prune),
        ["app1:leaf-swap", "app2:leaf-swap", "db1:leaf-swap"]
    );
    assert_eq!(plan.wave_count(), 3);
}

#[test]
fn phased_pure_server_gets_no_trust_add() {
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let plan = rotate(&inv, 0, Strategy::Phased, ChainMode::Plain).unwrap();
    let app1 = id(&inv, "app1");
    let actions: Vec<Action> = plan
        .steps
        .iter()
        .filter(|s| s.node == app1)
        .flat_map(|s| s.actions.clone())
        .collect();
    assert_eq!(actions, [Action::LeafSwap, Action::TrustPrune]);
}

#[test]
fn cross_signed_lifts_the_leaf_gate_but_not_the_prune_gate() {
    let inv = three_tier();
    let plan = rotate(&inv, 0, Strategy::Phased, ChainMode::CrossSigned).unwrap();
    assert_eq!(
        after(&plan, &inv, step(&plan, &inv, "app1", Action::LeafSwap)),
        ["app1:trust-add"]
    );
    let prune = step(&plan, &inv, "lb1", Action::TrustPrune);
    assert_eq!(
        after(&plan, &inv, prune),
        ["app1:leaf-swap", "app2:leaf-swap", "lb1:leaf-swap"]
    );
}

/// Issue 20, item 5: the prune drops the cross certificate from the node's chain, so under
/// cross-signed chains it also waits for every verifier's trust-add (the leaf swap no
/// longer does). A verifier that is also a subject is covered by its leaf swap.
#[test]
fn a_cross_signed_prune_waits_for_every_verifier_to_trust_the_new_anchor() {
    let inv = three_tier();
    let plan = rotate(&inv, 0, Strategy::Phased, ChainMode::CrossSigned).unwrap();
    let prune = step(&plan, &inv, "app1", Action::TrustPrune);
    assert_eq!(
        after(&plan, &inv, prune),
        ["app1:leaf-swap", "db1:leaf-swap", "lb1:trust-add"]
    );
    // A pure server of a one-way link: its prune waits for its client's trust.
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let plan = rotate(&inv, 0, Strategy::Phased, ChainMode::CrossSigned).unwrap();
    let prune = step(&plan, &inv, "app1", Action::TrustPrune);
    assert_eq!(
        after(&plan, &inv, prune),
        ["app1:leaf-swap", "lb1:trust-add"]
    );
    let ordered = rotate(&inv, 0, Strategy::Ordered, ChainMode::CrossSigned).unwrap();
    let prune = step(&ordered, &inv, "app1", Action::TrustPrune);
    assert_eq!(
        after(&ordered, &inv, prune),
        ["app1:leaf-swap", "lb1:trust-add+leaf-swap"]
    );
    // Plain chains are unchanged: the leaf swap already waited for the verifiers.
    let plain = rotate(&inv, 0, Strategy::Phased, ChainMode::Plain).unwrap();
    let prune = step(&plain, &inv, "app1", Action::TrustPrune);
    assert_eq!(after(&plain, &inv, prune), ["app1:leaf-swap"]);
}

#[test]
fn every_prerequisite_has_a_smaller_id_and_waves_grow() {
    let inv = three_tier();
    for strategy in [Strategy::Phased, Strategy::Ordered] {
        let Ok(plan) = rotate(&inv, 0, strategy, ChainMode::CrossSigned) else {
            panic!()
        };
        for s in &plan.steps {
            assert!(s
                .after
                .iter()
                .all(|&a| a < s.id && plan.steps[a].wave < s.wave));
        }
    }
}

#[test]
fn ordered_visits_clients_before_servers_once() {
    let inv = InventoryBuilder::new()
        .link("web", "api")
        .link("api", "db")
        .link("web", "cache")
        .link("api", "cache")
        .build();
    let plan = rotate(&inv, 0, Strategy::Ordered, ChainMode::Plain).unwrap();
    let names = order_names(&plan, &inv);
    assert_eq!(names, ["web", "api", "cache", "db"]);
    let visit = step(&plan, &inv, "api", Action::LeafSwap);
    assert_eq!(visit.actions, [Action::TrustAdd, Action::LeafSwap]);
    assert_eq!(after(&plan, &inv, visit), ["web:trust-add+leaf-swap"]);
    assert_eq!(
        step(&plan, &inv, "db", Action::LeafSwap).actions,
        [Action::LeafSwap]
    );
}

#[test]
fn ordered_breadth_first_tie_break_reads_like_the_inventory() {
    // From lb1: app2 and app1 are discovered in link order, then their databases.
    let inv = InventoryBuilder::new()
        .link("lb1", "app2")
        .link("lb1", "app1")
        .link("app1", "db1")
        .link("app2", "db2")
        .build();
    let plan = rotate(&inv, 0, Strategy::Ordered, ChainMode::Plain).unwrap();
    let names = order_names(&plan, &inv);
    assert_eq!(names, ["lb1", "app2", "app1", "db2", "db1"]);
}

#[test]
fn ordered_is_topological_where_neighbour_insertion_is_not() {
    // BFS from a discovers c (as server of a) before b; but b → c forces b first.
    let inv = InventoryBuilder::new()
        .link("a", "c")
        .link("a", "b")
        .link("b", "c")
        .build();
    let plan = rotate(&inv, 0, Strategy::Ordered, ChainMode::Plain).unwrap();
    let names = order_names(&plan, &inv);
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn ordered_refuses_a_mutual_link_with_plain_chains() {
    let inv = InventoryBuilder::new()
        .link("lb1", "app1")
        .mutual("app1", "db1")
        .build();
    let err = rotate(&inv, 0, Strategy::Ordered, ChainMode::Plain)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("app1 → db1 → app1") || err.contains("db1 → app1 → db1"),
        "{err}"
    );
    assert!(err.contains("phased"), "{err}");
}

#[test]
fn ordered_refuses_a_cycle_and_prints_it() {
    let inv = InventoryBuilder::new()
        .link("x", "a")
        .link("a", "b")
        .link("b", "c")
        .link("c", "a")
        .build();
    let err = rotate(&inv, 0, Strategy::Ordered, ChainMode::Plain)
        .unwrap_err()
        .to_string();
    assert!(err.contains("a → b → c → a"), "{err}");
}

#[test]
fn ordered_cross_signed_accepts_cycles() {
    let inv = InventoryBuilder::new()
        .link("a", "b")
        .link("b", "a")
        .mutual("b", "c")
        .build();
    let plan = rotate(&inv, 0, Strategy::Ordered, ChainMode::CrossSigned).unwrap();
    assert_eq!(plan.order.len(), 3);
    assert_eq!(plan.steps.len(), 6);
}

#[test]
fn rotation_touches_only_the_named_ca() {
    let inv = InventoryBuilder::new()
        .ca("edge")
        .link("lb1", "app1")
        .ca("data")
        .mutual("app1", "db1")
        .build();
    let data = inv.ca_id("data").unwrap();
    let plan = rotate(&inv, data, Strategy::Phased, ChainMode::Plain).unwrap();
    let touched: std::collections::BTreeSet<&str> = plan
        .steps
        .iter()
        .map(|s| inv.nodes[s.node].name.as_str())
        .collect();
    assert_eq!(touched.into_iter().collect::<Vec<_>>(), ["app1", "db1"]);
}

#[test]
fn bootstrap_and_renew_are_one_independent_step_per_node() {
    let inv = three_tier();
    let nodes = inv.members(0);
    let plan = bootstrap(&inv, 0, &nodes);
    assert_eq!(plan.steps.len(), 4);
    assert!(plan
        .steps
        .iter()
        .all(|s| s.after.is_empty() && s.actions == [Action::Install]));
    let plan = renew(&inv, 0, &nodes[..1]);
    assert_eq!(plan.steps.len(), 1);
    assert_eq!(plan.steps[0].actions, [Action::Renew]);
}

/// The simulation proves what the stores serve: after a cross-signed rotation no keystore
/// or combined PEM may still carry the cross certificate the prune dropped from the
/// certificate file (the prune used to leave them holding it).
#[test]
fn a_cross_signed_rotation_is_proven_with_stores_that_drop_the_cross_certificate() {
    let mut inv = InventoryBuilder::new()
        .link("lb1", "app1")
        .mutual("app1", "db1")
        .build();
    for name in ["app1", "db1"] {
        let n = id(&inv, name);
        let node = &mut inv.nodes[n];
        node.stores.keystore = Some(format!("nodes/{name}/keystore.p12"));
        node.stores.truststore = Some(format!("nodes/{name}/truststore.p12"));
        node.stores.combined_pem = Some(format!("nodes/{name}/combined.pem"));
        node.stores.store_password_file = Some("/etc/app/pass".into());
        node.stores.key_defaulted = true;
    }
    let plan = rotate(&inv, 0, Strategy::Phased, ChainMode::CrossSigned).unwrap();
    let opts = crate::simulate::CheckOptions {
        random_orders: 4,
        ..crate::simulate::CheckOptions::default()
    };
    if let Err(e) = crate::simulate::check(&inv, &plan, opts) {
        panic!("the plan failed its check: {e}\n{plan:#?}");
    }
}
