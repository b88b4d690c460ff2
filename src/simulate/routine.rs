//! Where `plan --check` starts a routine plan from: each node's files broken the way its
//! needs say (see [`crate::plan::routine`]), so that the check proves the repairs from
//! the states they repair, not from a healthy fleet.

use std::collections::HashSet;

use time::OffsetDateTime;

use super::{CheckError, Files};
use crate::inventory::{Inventory, NodeId};
use crate::materials::bundle_pem;
use crate::pki::new_ca;
use crate::plan::Plan;

/// The files a routine plan starts from, broken the way each node's needs say: a bundle
/// that trusts nothing is garbage; one that trusts another CA holds that CA's root; a
/// broken leaf has a key that is not its own; a foreign leaf comes from that other CA.
/// Returns, per node, whether its bundle trusts the other CA and whether links through it
/// may stay down at the end (untrusting, or its needs have no step and are named as
/// left alone).
pub(super) fn start(
    inv: &Inventory,
    plan: &Plan,
    current: &crate::pki::CaCert,
    now: OffsetDateTime,
    initial: &mut [Files],
) -> Result<(Vec<bool>, Vec<bool>), CheckError> {
    use crate::plan::{BundleNeed, LeafNeed};
    let spec = &inv.cas[plan.ca];
    let mut other_spec = spec.clone();
    other_spec.subject = format!("{} (another CA)", spec.subject);
    let other = new_ca(&other_spec, 1, now)?;
    let mut untrusting = vec![false; inv.nodes.len()];
    let mut excused = vec![false; inv.nodes.len()];
    let stepped: HashSet<NodeId> = plan.steps.iter().map(|s| s.node).collect();
    for need in &plan.needs {
        let n = need.node;
        let node = &inv.nodes[n];
        let p = node.paths(&spec.name);
        let leaf_from = |ca: &crate::pki::CaCert| crate::pki::issue_node_leaf(spec, ca, node, now);
        match need.bundle {
            BundleNeed::Sound => {}
            BundleNeed::Broken => {
                initial[n].insert(p.trust_bundle.clone(), b"not a certificate\n".to_vec());
            }
            BundleNeed::Untrusting => {
                untrusting[n] = true;
                initial[n].insert(p.trust_bundle.clone(), bundle_pem(&[&other]));
            }
        }
        match need.leaf {
            LeafNeed::Sound | LeafNeed::Due | LeafNeed::Unknown => {}
            LeafNeed::Broken => {
                let stranger = leaf_from(current)?;
                initial[n].insert(p.key.clone(), stranger.key_pem.into_bytes());
            }
            LeafNeed::Foreign => {
                let l = leaf_from(&other)?;
                initial[n].insert(p.key.clone(), l.key_pem.into_bytes());
                initial[n].insert(p.cert.clone(), l.cert_pem.into_bytes());
            }
        }
        // A need without a step must be named for the operator, else it was forgotten.
        let named = plan.unrepaired.iter().any(|u| u.node == n);
        excused[n] = untrusting[n] || (named && !stepped.contains(&n));
    }
    Ok((untrusting, excused))
}
