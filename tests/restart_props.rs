//! Property tests for restart-only nodes: over random fleets (one-way and mutual links,
//! cycles, several CAs) with a random set of nodes marked `restarts = true`, every phased and
//! every accepted ordered rotation still keeps every link handshaking in every checked order,
//! and no node is visited more often than without the restart-only marking; a node of a
//! fleet that has restart-only nodes but is not one itself keeps exactly its steps.

use certroll::inventory::{Inventory, Pools};
use certroll::plan::restarts::costs;
use certroll::plan::{rotate, Plan, Strategy as Visit};
use certroll::simulate::check;
use proptest::prelude::*;

mod support;
use support::props::{chain, quick};

/// A random fleet of up to 19 nodes and 2 CAs, and which nodes restart.
fn fleet() -> impl Strategy<Value = (Inventory, Vec<bool>)> {
    (
        support::props::fleet(20, 2),
        prop::collection::vec(prop::bool::weighted(0.6), 20),
    )
}

fn marked(inv: &Inventory, restarting: &[bool]) -> Inventory {
    let ids: Vec<usize> = (0..inv.nodes.len()).filter(|&n| restarting[n]).collect();
    let mut out = inv.clone();
    out.pools = Pools::from_parts(inv.nodes.len(), Vec::new(), &ids);
    out
}

fn visits(plan: &Plan, node: usize) -> Vec<Vec<certroll::plan::Action>> {
    plan.steps
        .iter()
        .filter(|s| s.node == node)
        .map(|s| s.actions.clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn merged_visits_keep_every_link_up((inv, restarting) in fleet(), chain in chain(), ordered in any::<bool>()) {
        let strategy = if ordered { Visit::Ordered } else { Visit::Phased };
        let with = marked(&inv, &restarting);
        for ca in 0..inv.cas.len() {
            let (Ok(before), Ok(after)) = (rotate(&inv, ca, strategy, chain), rotate(&with, ca, strategy, chain)) else {
                continue;
            };
            if let Err(e) = check(&with, &after, quick()) {
                panic!("{strategy:?} plan with restart-only nodes for CA {} failed its check: {e}", inv.cas[ca].name);
            }
            for (n, &restarts) in restarting.iter().enumerate().take(inv.nodes.len()) {
                let (b, a) = (visits(&before, n), visits(&after, n));
                if restarts {
                    prop_assert!(a.len() <= b.len(), "node {n}: {a:?} vs {b:?}");
                    prop_assert_eq!(a.concat(), b.concat(), "node {}: the same actions in the same order", n);
                } else {
                    prop_assert_eq!(a, b, "node {} reloads: its steps must not change", n);
                }
            }
            for c in costs(&after, &with) {
                prop_assert!(restarting[c.node]);
                prop_assert_eq!(c.restarts, c.visits.len());
            }
        }
    }
}
