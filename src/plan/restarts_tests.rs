//! Restart-only nodes: how many visits each topology and gate set leaves them, each plan
//! proven by the simulation.

use super::*;
use crate::inventory::{Inventory, InventoryBuilder, Pools};
use crate::plan::{rotate, ChainMode, Strategy};
use crate::simulate::{check, CheckOptions};

/// `inv` with `restarting` (node names) made restart-only.
fn restarting(mut inv: Inventory, names: &[&str]) -> Inventory {
    let ids: Vec<NodeId> = names.iter().map(|n| inv.node_id(n).unwrap()).collect();
    inv.pools = Pools::from_parts(inv.nodes.len(), Vec::new(), &ids);
    inv
}

fn quick() -> CheckOptions {
    CheckOptions {
        random_orders: 8,
        ..CheckOptions::default()
    }
}

/// Restarts per node name, for the restart-only nodes.
fn restarts_of(plan: &Plan, inv: &Inventory) -> Vec<(String, usize)> {
    costs(plan, inv)
        .into_iter()
        .map(|c| (inv.nodes[c.node].name.clone(), c.restarts))
        .collect()
}

fn proven(inv: &Inventory, strategy: Strategy, chain: ChainMode) -> Plan {
    let plan = rotate(inv, 0, strategy, chain).unwrap();
    if let Err(e) = check(inv, &plan, quick()) {
        panic!("{strategy:?}/{chain:?} plan failed its check: {e}\n{plan:#?}");
    }
    plan
}

fn pairs(v: &[(&str, usize)]) -> Vec<(String, usize)> {
    v.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

#[test]
fn a_node_that_is_client_and_server_restarts_twice_not_three_times() {
    let inv = InventoryBuilder::new()
        .link("edge", "app")
        .link("app", "db")
        .build();
    let inv = restarting(inv, &["edge", "app", "db"]);
    let plan = proven(&inv, Strategy::Phased, ChainMode::Plain);
    assert_eq!(
        restarts_of(&plan, &inv),
        pairs(&[("app", 2), ("db", 1), ("edge", 2)])
    );
    let app = costs(&plan, &inv)
        .into_iter()
        .find(|c| inv.nodes[c.node].name == "app")
        .unwrap();
    assert_eq!(
        app.visits[0].actions,
        [Action::TrustAdd, Action::LeafSwap],
        "{app:?}"
    );
    assert_eq!(
        app.visits[1].why,
        "apart from trust-add+leaf-swap: waits for leaf-swap+trust-prune on db, which waits for that visit"
    );
}

#[test]
fn a_mutual_pair_of_restart_only_nodes_restarts_twice_each() {
    let inv = InventoryBuilder::new().mutual("a", "b").build();
    let inv = restarting(inv, &["a", "b"]);
    let plan = proven(&inv, Strategy::Phased, ChainMode::Plain);
    assert_eq!(restarts_of(&plan, &inv), pairs(&[("a", 2), ("b", 2)]));
}

#[test]
fn cross_signed_chains_visit_a_restart_only_client_once() {
    let inv = InventoryBuilder::new().link("client", "server").build();
    let inv = restarting(inv, &["client", "server"]);
    let plan = proven(&inv, Strategy::Phased, ChainMode::CrossSigned);
    let counts = restarts_of(&plan, &inv);
    assert!(
        counts.iter().any(|(_, c)| *c == 1),
        "one node should get a single visit: {counts:?}\n{plan:#?}"
    );
    assert!(counts.iter().all(|(_, c)| *c <= 2), "{counts:?}");
}

#[test]
fn ordered_plans_visit_a_restart_only_server_once() {
    let inv = InventoryBuilder::new().link("lb", "web").build();
    let inv = restarting(inv, &["lb", "web"]);
    let plan = proven(&inv, Strategy::Ordered, ChainMode::Plain);
    assert_eq!(restarts_of(&plan, &inv), pairs(&[("lb", 2), ("web", 1)]));
}

#[test]
fn nodes_that_reload_keep_their_steps() {
    let inv = InventoryBuilder::new()
        .link("edge", "app")
        .link("app", "db")
        .build();
    let before = rotate(&inv, 0, Strategy::Phased, ChainMode::Plain).unwrap();
    let only_db = restarting(inv.clone(), &["db"]);
    let after = rotate(&only_db, 0, Strategy::Phased, ChainMode::Plain).unwrap();
    let steps_of = |p: &Plan, name: &str| {
        let id = inv.node_id(name).unwrap();
        p.steps
            .iter()
            .filter(|s| s.node == id)
            .map(|s| s.actions.clone())
            .collect::<Vec<_>>()
    };
    for name in ["edge", "app"] {
        assert_eq!(steps_of(&before, name), steps_of(&after, name), "{name}");
    }
    assert_eq!(
        steps_of(&after, "db"),
        [vec![Action::LeafSwap, Action::TrustPrune]]
    );
    assert!(costs(&before, &inv).is_empty());
}

#[test]
fn a_prune_without_restart_costs_nothing_and_says_why() {
    let inv = InventoryBuilder::new().link("edge", "app").build();
    let mut inv = restarting(inv, &["edge"]);
    let text = "[ca.internal]\n[defaults]\ntransport = \"local\"\ntrust_bundle = \"{node}/ca.pem\"\n\
                cert = \"{node}/cert.pem\"\nkey = \"{node}/key.pem\"\n[nodes.edge]\nrestarts = true\n\
                restart_on_prune = false\n[nodes.app]\n[[links]]\nclient = \"edge\"\nserver = \"app\"\n";
    let loaded = crate::inventory::parse_str(text, std::path::Path::new("/inv/c.toml")).unwrap();
    inv.pools = loaded.pools;
    let plan = proven(&inv, Strategy::Phased, ChainMode::Plain);
    let edge = &costs(&plan, &inv)[0];
    assert_eq!(edge.restarts, 1, "{edge:?}");
    assert!(!edge.visits[1].restarts);
    assert!(edge.visits[1].why.contains("restart_on_prune = false"));
}
