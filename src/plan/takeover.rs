//! Rotations that start from what the nodes really hold (docs/design.md#takeover): a takeover
//! from an imported CA, and a rotation to an operator's next generation under the same root.
//!
//! The steps and gates are those of any rotation ([`super::rotate`]): a node missing a
//! file gets it at the step that writes that file, and a leaf swap always waits for the
//! node's verifiers to trust what it will present. What this module adds:
//! - notes naming the nodes by what they hold (old generation, missing files, neither);
//! - the leaves-only plan: when the next generation chains to the anchor every member
//!   already trusts, no trust step is needed, and every leaf swap may run in any order.
//!   (Every member, not only verifiers: a member without a bundle gets one from the
//!   trust steps of a full rotation, so the fleet ends complete.)

use super::{rotate, Action, Mode, Plan, PlanError, Step};
use crate::inventory::{CaId, ChainMode, Inventory, NodeId, Strategy};

/// What one member holds for the rotated CA, read from the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// The node could not be read; it is planned like a node of the current generation.
    Unreadable(String),
    Read(Files),
}

/// A member's files, classified against the CA's generations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// `None` when the bundle is missing.
    pub bundle: Option<BundleHolds>,
    pub leaf: LeafFrom,
    pub key: bool,
}

/// Which anchors a bundle holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleHolds {
    pub current: bool,
    pub next: bool,
    /// Certificates of no generation of this CA.
    pub foreign: usize,
}

/// Who issued the leaf a node serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafFrom {
    Current,
    Next,
    /// Issued by a CA that is no generation of this one (its issuer name).
    Neither(String),
    Missing,
}

/// What the planner knows of the generations being rotated.
#[derive(Debug, Clone, Copy, Default)]
pub struct Generations {
    /// The next generation is trusted through the current one's anchor (same root).
    pub same_anchor: bool,
}

/// A rotation of `ca` that takes `holdings` (indexed by node, `None` for nodes not read)
/// into account: leaves only when possible, and notes naming nodes by their files.
pub fn rotate_from(
    inv: &Inventory,
    ca: CaId,
    strategy: Strategy,
    chain: ChainMode,
    gens: Generations,
    holdings: &[Option<Holding>],
) -> Result<Plan, PlanError> {
    let members = inv.members(ca);
    let held = |n: NodeId| holdings.get(n).and_then(Option::as_ref);
    let mut plan = if gens.same_anchor {
        let untrusting: Vec<NodeId> = members
            .iter()
            .copied()
            .filter(|&n| !trusts_next(held(n)))
            .collect();
        if untrusting.is_empty() {
            leaves_only(inv, ca, strategy, chain)
        } else {
            let mut plan = rotate(inv, ca, strategy, chain)?;
            plan.notes.push(format!(
                "the next generation chains to the current anchor, but {} not trust it yet: \
                 full rotation with trust steps",
                names_verb(inv, &untrusting, "does", "do")
            ));
            plan
        }
    } else {
        rotate(inv, ca, strategy, chain)?
    };
    plan.notes.extend(holding_notes(inv, &members, holdings));
    Ok(plan)
}

/// Whether a node's bundle holds the next generation's anchor (assumed when unknown:
/// with the same anchor, a node of the current generation trusts it).
fn trusts_next(h: Option<&Holding>) -> bool {
    match h {
        Some(Holding::Read(f)) => f.bundle.is_some_and(|b| b.next || b.current),
        _ => true,
    }
}

/// Every member swaps its leaf, no gate, no trust step (the next generation chains to an
/// anchor every verifier trusts already).
pub fn leaves_only(inv: &Inventory, ca: CaId, strategy: Strategy, chain: ChainMode) -> Plan {
    let members = inv.members(ca);
    let steps: Vec<Step> = members
        .iter()
        .enumerate()
        .map(|(id, &node)| Step {
            id,
            node,
            actions: vec![Action::LeafSwap],
            after: Vec::new(),
            wave: 0,
        })
        .collect();
    Plan {
        ca,
        mode: Mode::Rotate,
        strategy,
        chain,
        steps,
        order: members,
        notes: vec![format!(
            "leaf swaps only: every verifier of CA {} already trusts the anchor the next \
             generation chains to (same root), so no trust-add or trust-prune is needed and \
             the swaps may run in any order",
            inv.cas[ca].name
        )],
        needs: Vec::new(),
        unrepaired: Vec::new(),
    }
}

/// Whether a plan is the leaves-only kind (every step a lone leaf swap, no gate).
pub fn is_leaves_only(plan: &Plan) -> bool {
    plan.mode == Mode::Rotate
        && !plan.steps.is_empty()
        && plan
            .steps
            .iter()
            .all(|s| s.actions == [Action::LeafSwap] && s.after.is_empty())
}

/// One note per kind of node that is not simply on the current generation.
fn holding_notes(inv: &Inventory, members: &[NodeId], holdings: &[Option<Holding>]) -> Vec<String> {
    let mut old = 0usize;
    let mut missing: Vec<(NodeId, Vec<&str>)> = Vec::new();
    let mut neither: Vec<(NodeId, String)> = Vec::new();
    let mut unread: Vec<(NodeId, String)> = Vec::new();
    let mut foreign = 0usize;
    for &n in members {
        match holdings.get(n).and_then(Option::as_ref) {
            None => {}
            Some(Holding::Unreadable(e)) => unread.push((n, e.clone())),
            Some(Holding::Read(f)) => {
                let mut lacks = Vec::new();
                if f.bundle.is_none() {
                    lacks.push("trust bundle");
                }
                if f.leaf == LeafFrom::Missing {
                    lacks.push("certificate");
                }
                if !f.key {
                    lacks.push("private key");
                }
                foreign += f.bundle.map_or(0, |b| b.foreign);
                match &f.leaf {
                    LeafFrom::Neither(issuer) => neither.push((n, issuer.clone())),
                    LeafFrom::Current if lacks.is_empty() => old += 1,
                    _ => {}
                }
                if !lacks.is_empty() {
                    missing.push((n, lacks));
                }
            }
        }
    }
    let name = |n: NodeId| inv.nodes[n].name.as_str();
    let mut notes = Vec::new();
    if old > 0 {
        notes.push(format!(
            "{old} node(s) serve a leaf of the current generation and trust it: rotated like any \
             node of the old generation"
        ));
    }
    for (n, lacks) in missing {
        notes.push(format!(
            "node {} has no {}: written at the step that writes it (a leaf only after its \
             verifiers trust the new CA)",
            name(n),
            lacks.join(", no ")
        ));
    }
    for (n, issuer) in neither {
        notes.push(format!(
            "node {} serves a leaf of neither generation (issued by {issuer}): its links through \
             this CA work only once it has its new leaf",
            name(n)
        ));
    }
    for (n, e) in unread {
        notes.push(format!(
            "node {} could not be read ({e}): planned as a node of the current generation",
            name(n)
        ));
    }
    if foreign > 0 {
        notes.push(format!(
            "{foreign} certificate(s) in the bundles belong to no generation of this CA (foreign \
             anchors): kept, in order, in every bundle certroll writes"
        ));
    }
    notes
}

/// `node a does`, `nodes a, b do`.
fn names_verb(inv: &Inventory, nodes: &[NodeId], one: &str, many: &str) -> String {
    let names: Vec<&str> = nodes.iter().map(|&n| inv.nodes[n].name.as_str()).collect();
    if names.len() == 1 {
        format!("node {} {one}", names[0])
    } else {
        format!("nodes {} {many}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::InventoryBuilder;

    fn read(bundle: Option<(bool, bool)>, leaf: LeafFrom) -> Option<Holding> {
        Some(Holding::Read(Files {
            bundle: bundle.map(|(current, next)| BundleHolds {
                current,
                next,
                foreign: 0,
            }),
            leaf,
            key: true,
        }))
    }

    #[test]
    fn same_anchor_gives_leaf_swaps_only_and_says_so() {
        let inv = InventoryBuilder::new()
            .link("lb1", "app1")
            .mutual("app1", "db1")
            .build();
        let gens = Generations { same_anchor: true };
        let plan = rotate_from(&inv, 0, Strategy::Phased, ChainMode::Plain, gens, &[]).unwrap();
        assert!(is_leaves_only(&plan), "{plan:?}");
        assert_eq!(plan.steps.len(), inv.members(0).len());
        assert!(
            plan.notes[0].contains("leaf swaps only"),
            "{:?}",
            plan.notes
        );
    }

    #[test]
    fn same_anchor_with_a_verifier_lacking_it_rotates_fully_and_names_it() {
        let inv = InventoryBuilder::new().link("lb1", "app1").build();
        let lb1 = inv.node_id("lb1").unwrap();
        let mut holdings = vec![None; inv.nodes.len()];
        holdings[lb1] = read(None, LeafFrom::Current);
        let gens = Generations { same_anchor: true };
        let plan =
            rotate_from(&inv, 0, Strategy::Phased, ChainMode::Plain, gens, &holdings).unwrap();
        assert!(!is_leaves_only(&plan));
        let all = plan.notes.join("\n");
        assert!(all.contains("node lb1 does not trust it yet"), "{all}");
        assert!(all.contains("node lb1 has no trust bundle"), "{all}");
    }

    #[test]
    fn notes_name_nodes_of_neither_generation() {
        let inv = InventoryBuilder::new().link("lb1", "app1").build();
        let app1 = inv.node_id("app1").unwrap();
        let mut holdings = vec![None; inv.nodes.len()];
        holdings[app1] = read(Some((true, false)), LeafFrom::Neither("CN=Other".into()));
        let plan = rotate_from(
            &inv,
            0,
            Strategy::Phased,
            ChainMode::Plain,
            Generations::default(),
            &holdings,
        )
        .unwrap();
        let all = plan.notes.join("\n");
        assert!(
            all.contains("node app1 serves a leaf of neither generation"),
            "{all}"
        );
        assert_eq!(
            plan.steps,
            rotate(&inv, 0, Strategy::Phased, ChainMode::Plain)
                .unwrap()
                .steps
        );
    }
}
