//! Property tests: over random fleets (up to 30 nodes, one-way and mutual links, cycles,
//! several CAs), every phased plan and every accepted ordered plan keeps every link
//! handshaking in every checked order and ends with no chain carrying the cross certificate
//! of the retired generation, and a plan with a gate removed, or one that serves the cross
//! certificate again after a node's prune, is caught. Routine
//! repair plans over random broken fleets never cut a working link and leave every link
//! up unless a problem they name explains it; a held-back leaf replaced anyway is caught.

use certroll::inventory::{Inventory, InventoryBuilder};
use certroll::plan::{
    rotate, routine, Action, BundleNeed, ChainMode, LeafNeed, NodeNeed, Step, Strategy as Visit,
};
use certroll::simulate::{check, CheckError, CheckOptions};
use proptest::prelude::*;

mod support;
use support::props::{chain, drop_gate, quick};

/// A random fleet of up to 29 nodes and 3 CAs (see [`support::props::fleet`]).
fn fleet() -> impl Strategy<Value = Inventory> {
    support::props::fleet(30, 3)
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

    /// Under cross-signed chains the prune waits for the node's subjects' leaf swaps and,
    /// because it drops the cross certificate from the node's chain, for its verifiers'
    /// trust-adds: every one of those gates is needed.
    #[test]
    fn a_prune_without_its_gate_is_caught(
        inv in fleet(),
        ordered in any::<bool>(),
        pick in any::<prop::sample::Index>(),
    ) {
        let visit = if ordered { Visit::Ordered } else { Visit::Phased };
        let plan = rotate(&inv, 0, visit, ChainMode::CrossSigned).unwrap();
        if let Some(broken) = drop_gate(&plan, Action::TrustPrune, pick) {
            let caught = matches!(check(&inv, &broken, quick()), Err(CheckError::Broken { .. }));
            prop_assert!(caught, "a plan with a gate removed passed the check");
        }
    }

    /// Issue 20, item 5: a plan that leaves a chain carrying the cross certificate once the
    /// old generation retires is caught, here one that swaps a node's leaf again after its
    /// prune (every link still handshakes: only the end state gives it away).
    #[test]
    fn a_plan_that_leaves_a_retired_cross_certificate_is_caught(
        inv in fleet(),
        ordered in any::<bool>(),
        pick in any::<prop::sample::Index>(),
    ) {
        let visit = if ordered { Visit::Ordered } else { Visit::Phased };
        let mut plan = rotate(&inv, 0, visit, ChainMode::CrossSigned).unwrap();
        let prunes: Vec<Step> = plan
            .steps
            .iter()
            .filter(|s| s.actions == [Action::TrustPrune])
            .cloned()
            .collect();
        let prune = &prunes[pick.index(prunes.len())];
        plan.steps.push(Step {
            id: plan.steps.len(),
            node: prune.node,
            actions: vec![Action::LeafSwap],
            after: vec![prune.id],
            wave: prune.wave + 1,
        });
        let name = inv.nodes[prune.node].name.clone();
        match check(&inv, &plan, quick()) {
            Err(CheckError::Incomplete { node, what }) => {
                prop_assert_eq!(&node, &name);
                prop_assert!(what.contains("cross certificate"), "{}", what);
            }
            other => prop_assert!(false, "a retired cross certificate passed the check: {:?}", other),
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

// ---- Takeover: fleets that start on an imported generation ----

use certroll::materials::FileKind;
use certroll::plan::takeover::{BundleHolds, Files, Generations, Holding, LeafFrom};
use certroll::plan::{is_leaves_only, rotate_from};
use certroll::simulate::{check_with, Start};

/// Where a takeover fleet starts: per node, a foreign anchor? a missing file? a leaf of
/// neither generation? (picked by index, so every fleet size gets a mix).
fn start_of(
    inv: &Inventory,
    picks: &[(bool, Option<usize>, bool)],
    public_only: bool,
    intermediate: bool,
) -> Start {
    let kinds = [FileKind::TrustBundle, FileKind::Cert, FileKind::Key];
    let mut start = Start {
        public_only,
        intermediate,
        ..Start::default()
    };
    for (n, &(foreign, missing, neither)) in picks.iter().enumerate().take(inv.nodes.len()) {
        if foreign {
            start.foreign.push(n);
        }
        if let Some(k) = missing {
            start.missing.push((n, kinds[k % 3]));
        }
        if neither && missing.is_none() {
            start.neither.push(n);
        }
    }
    start
}

fn picks() -> impl Strategy<Value = Vec<(bool, Option<usize>, bool)>> {
    let one = (
        prop::bool::weighted(0.4),
        prop::option::weighted(0.15, 0usize..3),
        prop::bool::weighted(0.1),
    );
    prop::collection::vec(one, 30)
}

/// What the takeover planner reads from the nodes of `start` (bundles present or not).
fn holdings_of(inv: &Inventory, start: &Start) -> Vec<Option<Holding>> {
    (0..inv.nodes.len())
        .map(|n| {
            let lacks = |k: FileKind| start.missing.contains(&(n, k));
            Some(Holding::Read(Files {
                bundle: (!lacks(FileKind::TrustBundle)).then_some(BundleHolds {
                    current: true,
                    next: false,
                    foreign: usize::from(start.foreign.contains(&n)) * 2,
                }),
                leaf: if lacks(FileKind::Cert) {
                    LeafFrom::Missing
                } else if start.neither.contains(&n) {
                    LeafFrom::Neither("CN=Simulated Other CA".into())
                } else {
                    LeafFrom::Current
                },
                key: !lacks(FileKind::Key),
            }))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// A takeover from an imported root or intermediate, with or without its key, with
    /// foreign anchors, missing files and leaves of neither generation: every plan keeps
    /// every working link up, brings up the broken ones, and keeps the foreign anchors.
    #[test]
    fn takeover_plans_from_an_imported_generation_keep_every_link_up(
        inv in fleet(),
        picks in picks(),
        public_only in any::<bool>(),
        intermediate in any::<bool>(),
        ordered in any::<bool>(),
    ) {
        let start = start_of(&inv, &picks, public_only, intermediate);
        let visit = if ordered { Visit::Ordered } else { Visit::Phased };
        for ca in 0..inv.cas.len() {
            let holdings = holdings_of(&inv, &start);
            let plan = match rotate_from(&inv, ca, visit, ChainMode::Plain, Generations::default(), &holdings) {
                Ok(plan) => plan,
                Err(_) => continue, // ordered on a cycle: refused, as for any rotation
            };
            if let Err(e) = check_with(&inv, &plan, quick(), &start) {
                panic!("takeover plan for CA {} ({start:?}) failed its check: {e}", inv.cas[ca].name);
            }
        }
    }

    /// An operator's next intermediate under the same root: leaf swaps only, any order,
    /// proven; a verifier without a bundle makes the planner fall back to trust steps.
    #[test]
    fn next_generation_under_the_same_root_needs_leaf_swaps_only(
        inv in fleet(),
        picks in picks(),
        intermediate in any::<bool>(),
    ) {
        let mut start = start_of(&inv, &picks, false, intermediate);
        start.next_same_anchor = true;
        start.neither.clear();
        for ca in 0..inv.cas.len() {
            let holdings = holdings_of(&inv, &start);
            let gens = Generations { same_anchor: true };
            let plan = rotate_from(&inv, ca, Visit::Phased, ChainMode::Plain, gens, &holdings).unwrap();
            let all_trust = inv
                .members(ca)
                .iter()
                .all(|&n| !start.missing.contains(&(n, FileKind::TrustBundle)));
            prop_assert_eq!(is_leaves_only(&plan), all_trust);
            if let Err(e) = check_with(&inv, &plan, quick(), &start) {
                panic!("same-root plan for CA {} failed its check: {e}", inv.cas[ca].name);
            }
        }
    }

    /// Without the imported key there is no cross certificate: a cross-signed plan (no
    /// leaf-swap gate) from a public-only generation breaks a link, which is why
    /// `--chain cross-signed` refuses it.
    #[test]
    fn a_cross_signed_plan_from_a_public_only_generation_is_caught(inv in fleet()) {
        let start = Start { public_only: true, ..Start::default() };
        let plan = rotate(&inv, 0, Visit::Phased, ChainMode::CrossSigned).unwrap();
        let caught = matches!(check_with(&inv, &plan, quick(), &start), Err(CheckError::Broken { .. }));
        prop_assert!(caught, "a cross-signed plan without a cross certificate passed the check");
    }
}

#[test]
fn a_public_only_generation_cannot_renew() {
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let plan = certroll::plan::renew(&inv, 0, &inv.members(0));
    let start = Start {
        public_only: true,
        ..Start::default()
    };
    let err = check_with(&inv, &plan, quick(), &start).unwrap_err();
    // The message and its causes, as the binary prints them.
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        chain = format!("{chain}: {cause}");
        source = cause.source();
    }
    assert!(chain.contains("public-only"), "{chain}");
}

#[test]
fn foreign_anchors_are_kept_unless_the_ca_drops_them() {
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let plan = rotate(&inv, 0, Visit::Phased, ChainMode::Plain).unwrap();
    let lb1 = inv.node_id("lb1").unwrap();
    let start = Start {
        foreign: vec![lb1],
        ..Start::default()
    };
    check_with(&inv, &plan, quick(), &start).unwrap();
    // The same plan with certroll owning the whole file ends without the foreign anchors.
    let mut dropping = inv.clone();
    dropping.cas[0].bundle_foreign = certroll::inventory::BundleForeign::Drop;
    let err = check_with(&dropping, &plan, quick(), &start);
    assert!(
        err.is_ok(),
        "with bundle_foreign = drop the final bundle is the anchor alone: {err:?}"
    );
}
