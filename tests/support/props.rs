//! Generators shared by the planners' property tests (`planner_props`, `rollback_props`):
//! random fleets with one-way and mutual links, cycles and several CAs, the chain modes,
//! the check options that keep a property run short, and the negative control that
//! removes one gate from a plan.

use certroll::inventory::{Inventory, InventoryBuilder};
use certroll::plan::{Action, ChainMode, Plan};
use certroll::simulate::CheckOptions;
use proptest::prelude::*;

/// A random fleet of 2 to `max_nodes - 1` nodes named `nNN` and up to `cas` CAs; links as
/// (client, server, mutual, ca index); `n00 → n01` is always there.
pub fn fleet(max_nodes: usize, cas: usize) -> impl Strategy<Value = Inventory> {
    (2usize..max_nodes).prop_flat_map(move |n| {
        let link = (0..n, 0..n, prop::bool::weighted(0.3), 0usize..cas);
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

/// Every dependency-allowed order the check always runs, plus 8 random ones.
pub fn quick() -> CheckOptions {
    CheckOptions {
        random_orders: 8,
        ..CheckOptions::default()
    }
}

/// Plain or cross-signed chains.
pub fn chain() -> impl Strategy<Value = ChainMode> {
    prop_oneof![Just(ChainMode::Plain), Just(ChainMode::CrossSigned)]
}

/// Removes from one `action` step a prerequisite on another node (not the node's own
/// previous step). None when no such gate exists.
pub fn drop_gate(plan: &Plan, action: Action, pick: prop::sample::Index) -> Option<Plan> {
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
