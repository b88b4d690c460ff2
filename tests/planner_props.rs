//! Property tests: over random fleets (up to 30 nodes, one-way and mutual links, cycles,
//! several CAs), every phased plan and every accepted ordered plan keeps every link
//! handshaking in every checked order, and a plan with a gate removed is caught.

use certroll::inventory::{Inventory, InventoryBuilder};
use certroll::plan::{rotate, Action, ChainMode, Plan, Strategy as Visit};
use certroll::simulate::{check, CheckError, CheckOptions};
use proptest::prelude::*;

/// A random fleet: `nodes` names, links as (client, server, mutual, ca index).
fn fleet() -> impl Strategy<Value = Inventory> {
    (2usize..30).prop_flat_map(|n| {
        let link = (0..n, 0..n, prop::bool::weighted(0.3), 0usize..3);
        prop::collection::vec(link, 1..(n * 2)).prop_map(move |links| {
            let mut b = InventoryBuilder::new();
            let mut seen = std::collections::HashSet::new();
            for (c, s, mutual, ca) in links {
                if c == s || !seen.insert((c, s, ca)) {
                    continue;
                }
                b = b.ca(&format!("ca{ca}"));
                let (c, s) = (format!("n{c:02}"), format!("n{s:02}"));
                b = if mutual {
                    b.mutual(&c, &s)
                } else {
                    b.link(&c, &s)
                };
            }
            b.link("n00", "n01").build()
        })
    })
}

fn quick() -> CheckOptions {
    CheckOptions {
        random_orders: 8,
        ..CheckOptions::default()
    }
}

fn chain() -> impl Strategy<Value = ChainMode> {
    prop_oneof![Just(ChainMode::Plain), Just(ChainMode::CrossSigned)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_phased_plan_keeps_every_link_up(inv in fleet(), chain in chain()) {
        for ca in 0..inv.cas.len() {
            let plan = rotate(&inv, ca, Visit::Phased, chain).unwrap();
            if let Err(e) = check(&inv, &plan, quick()) {
                panic!("phased plan for CA {} failed its check: {e}", inv.cas[ca].name);
            }
        }
    }

    #[test]
    fn every_accepted_ordered_plan_keeps_every_link_up(inv in fleet(), chain in chain()) {
        for ca in 0..inv.cas.len() {
            match rotate(&inv, ca, Visit::Ordered, chain) {
                Ok(plan) => {
                    if let Err(e) = check(&inv, &plan, quick()) {
                        panic!("ordered plan for CA {} failed its check: {e}", inv.cas[ca].name);
                    }
                }
                Err(e) => prop_assert!(chain == ChainMode::Plain, "cross-signed ordered refused: {e}"),
            }
        }
    }

    #[test]
    fn a_leaf_swap_without_its_gate_is_caught(inv in fleet(), pick in any::<prop::sample::Index>()) {
        let plan = rotate(&inv, 0, Visit::Phased, ChainMode::Plain).unwrap();
        if let Some(broken) = drop_gate(&plan, Action::LeafSwap, pick) {
            let caught = matches!(check(&inv, &broken, quick()), Err(CheckError::Broken { .. }));
            prop_assert!(caught, "a plan with a gate removed passed the check");
        }
    }

    #[test]
    fn a_prune_without_its_gate_is_caught(inv in fleet(), pick in any::<prop::sample::Index>()) {
        let plan = rotate(&inv, 0, Visit::Phased, ChainMode::CrossSigned).unwrap();
        if let Some(broken) = drop_gate(&plan, Action::TrustPrune, pick) {
            let caught = matches!(check(&inv, &broken, quick()), Err(CheckError::Broken { .. }));
            prop_assert!(caught, "a plan with a gate removed passed the check");
        }
    }
}

/// Removes from one `action` step a prerequisite on another node (not the node's own
/// previous step). None when no such gate exists.
fn drop_gate(plan: &Plan, action: Action, pick: prop::sample::Index) -> Option<Plan> {
    let gated: Vec<(usize, usize)> = plan
        .steps
        .iter()
        .filter(|s| s.actions.contains(&action))
        .flat_map(|s| {
            s.after
                .iter()
                .filter(|&&a| plan.steps[a].node != s.node)
                .map(move |&a| (s.id, a))
        })
        .collect();
    if gated.is_empty() {
        return None;
    }
    let (step, gate) = gated[pick.index(gated.len())];
    let mut broken = plan.clone();
    broken.steps[step].after.retain(|&a| a != gate);
    Some(broken)
}

#[test]
fn the_check_reports_link_step_and_order() {
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let mut plan = rotate(&inv, 0, Visit::Phased, ChainMode::Plain).unwrap();
    let swap = plan
        .steps
        .iter()
        .position(|s| s.actions == [Action::LeafSwap] && inv.nodes[s.node].name == "app1")
        .unwrap();
    plan.steps[swap].after.clear();
    let err = check(&inv, &plan, CheckOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("link lb1 → app1 broke after step #"), "{err}");
    assert!(err.contains("order: #"), "{err}");
}

#[test]
fn a_plan_that_never_prunes_is_caught() {
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let mut plan = rotate(&inv, 0, Visit::Phased, ChainMode::Plain).unwrap();
    plan.steps
        .retain(|s| s.actions != [Action::TrustPrune] || inv.nodes[s.node].name != "lb1");
    let err = check(&inv, &plan, CheckOptions::default()).unwrap_err();
    assert!(
        matches!(err, CheckError::Incomplete { ref node, .. } if node == "lb1"),
        "{err}"
    );
}
