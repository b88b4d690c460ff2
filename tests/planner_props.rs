//! Property tests: over random fleets (up to 30 nodes, one-way and mutual links, cycles,
//! several CAs), every phased plan and every accepted ordered plan keeps every link
//! handshaking in every checked order, and a plan with a gate removed is caught. Routine
//! repair plans over random broken fleets never cut a working link and leave every link
//! up unless a problem they name explains it; a held-back leaf replaced anyway is caught.

use certroll::inventory::{Inventory, InventoryBuilder};
use certroll::plan::{
    rotate, routine, Action, BundleNeed, ChainMode, LeafNeed, NodeNeed, Plan, Step,
    Strategy as Visit,
};
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

/// Random needs for the members of CA 0: (bundle, leaf) per node, mostly sound.
fn needs_for(inv: &Inventory, picks: &[(u8, u8)]) -> Vec<NodeNeed> {
    let bundles = [BundleNeed::Broken, BundleNeed::Untrusting];
    let leaves = [LeafNeed::Broken, LeafNeed::Due, LeafNeed::Foreign];
    inv.members(0)
        .into_iter()
        .zip(picks.iter().cycle())
        .filter_map(|(node, &(b, l))| {
            let bundle = bundles
                .get(b as usize)
                .copied()
                .unwrap_or(BundleNeed::Sound);
            let leaf = leaves.get(l as usize).copied().unwrap_or(LeafNeed::Sound);
            (bundle != BundleNeed::Sound || leaf != LeafNeed::Sound).then(|| NodeNeed {
                node,
                bundle,
                leaf,
                reasons: vec!["broken on purpose".into()],
            })
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_routine_repair_plan_keeps_working_links_up_and_repairs_the_rest(
        inv in fleet(),
        picks in prop::collection::vec((0u8..5, 0u8..6), 1..30),
    ) {
        let plan = routine(&inv, 0, needs_for(&inv, &picks), Vec::new());
        if let Err(e) = check(&inv, &plan, quick()) {
            panic!("routine plan failed its check: {e}");
        }
    }

    #[test]
    fn a_held_back_leaf_replaced_anyway_is_caught(
        inv in fleet(),
        picks in prop::collection::vec((0u8..5, 0u8..6), 1..30),
        pick in any::<prop::sample::Index>(),
    ) {
        let needs = needs_for(&inv, &picks);
        let untrusting = |n: usize| {
            needs.iter().any(|x| x.node == n && x.bundle == BundleNeed::Untrusting)
        };
        let mut plan = routine(&inv, 0, needs.clone(), Vec::new());
        // Held leaves served on a one-way link to an untrusting client: that link works
        // before (the client trusts the other CA), so replacing the leaf must break it.
        let relied: Vec<usize> = plan
            .unrepaired
            .iter()
            .map(|u| u.node)
            .filter(|&h| inv.links_of(0).any(|l| l.server == h && !l.mutual && untrusting(l.client)))
            .collect();
        if relied.is_empty() {
            return Ok(());
        }
        let held = relied[pick.index(relied.len())];
        plan.steps.push(Step {
            id: plan.steps.len(),
            node: held,
            actions: vec![Action::Renew],
            after: Vec::new(),
            wave: 0,
        });
        let caught = matches!(check(&inv, &plan, quick()), Err(CheckError::Broken { .. }));
        prop_assert!(caught, "replacing a leaf a verifier relies on passed the check");
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
