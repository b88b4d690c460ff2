//! The fleet a simulation starts from. By default every member holds a complete set of
//! files from a certroll root and nothing else; a takeover starts elsewhere: from an
//! imported generation (public-only, or an intermediate under an offline root), with
//! foreign anchors in bundles, with files missing, or with leaves of neither generation.
//! The generations and initial files are made here, with throwaway keys, the way the
//! operator's CA would have made them; the steps' files still come from
//! [`crate::materials`], exactly as `apply` makes them.

use std::collections::HashMap;

use time::OffsetDateTime;

use crate::bundles::{managed_ders, BundleBase};
use crate::inventory::{BundleForeign, CaSpec, Inventory, NodeId};
use crate::materials::{changes_for, FileKind, Generations, NodeBase};
use crate::pki::{cross_sign, issue_node_leaf, new_ca, new_intermediate, CaCert, PkiError};
use crate::plan::{Action, Plan};

use super::CheckError;

/// Where the simulated fleet starts.
#[derive(Debug, Clone, Default)]
pub struct Start {
    /// The current generation was imported without its key: no step may issue from it.
    pub public_only: bool,
    /// The current generation is an intermediate under an offline root (`--anchor`).
    pub intermediate: bool,
    /// The next generation is the operator's, chaining to the current anchor (`--next`).
    pub next_same_anchor: bool,
    /// Nodes whose bundles hold foreign anchors: one before the managed anchor, one after.
    pub foreign: Vec<NodeId>,
    /// Nodes that start without one of their files.
    pub missing: Vec<(NodeId, FileKind)>,
    /// Nodes that start with a leaf and key of a CA of neither generation.
    pub neither: Vec<NodeId>,
    /// Per node (indexed by `NodeId`), the rotation actions already applied to its files,
    /// in order: where a rollback starts. Missing entries: none.
    pub rotated: Vec<Vec<Action>>,
}

impl Start {
    /// The rotation actions already applied on node `n`.
    pub fn rotated(&self, n: NodeId) -> &[Action] {
        self.rotated.get(n).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether some link may be down before the plan runs (a node lacks a file or
    /// presents a leaf nobody trusts): such a link must come up, not stay up.
    pub fn has_broken_links(&self) -> bool {
        !self.missing.is_empty() || !self.neither.is_empty()
    }
}

/// The generations a simulation works with.
pub(super) struct SimCas {
    /// The current generation as certroll holds it (no key when public-only).
    pub current: CaCert,
    pub next: CaCert,
    pub cross: Option<String>,
    /// The current generation with its key, to make the fleet's initial leaves.
    current_keyed: CaCert,
    other: CaCert,
    partners: [CaCert; 2],
}

impl SimCas {
    pub fn make(spec: &CaSpec, start: &Start, now: OffsetDateTime) -> Result<SimCas, PkiError> {
        let root_spec = CaSpec {
            subject: "CN=Simulated Offline Root".into(),
            ..spec.clone()
        };
        let current = if start.intermediate {
            new_intermediate(spec, 1, &new_ca(&root_spec, 1, now)?, now)?
        } else {
            new_ca(spec, 1, now)?
        };
        let next = if start.next_same_anchor {
            // Signed by the root the current generation chains to (itself, when a root).
            let root = match &current.anchor_pem {
                Some(_) => new_ca(&root_spec, 1, now)?,
                None => current.clone(),
            };
            let next = new_intermediate(spec, 2, &root, now)?;
            if current.anchor_pem.is_some() {
                // Both intermediates under one root: re-make the current one under it.
                let current = new_intermediate(spec, 1, &root, now)?;
                return Self::finish(spec, start, current, next, now);
            }
            next
        } else {
            new_ca(spec, 2, now)?
        };
        Self::finish(spec, start, current, next, now)
    }

    fn finish(
        spec: &CaSpec,
        start: &Start,
        current_keyed: CaCert,
        next: CaCert,
        now: OffsetDateTime,
    ) -> Result<SimCas, PkiError> {
        let named = |subject: &str| CaSpec {
            subject: subject.to_string(),
            ..spec.clone()
        };
        let roots = current_keyed.anchor_pem.is_none() && next.anchor_pem.is_none();
        let cross = if roots && !start.public_only {
            Some(cross_sign(spec, &next, &current_keyed, now)?)
        } else {
            None
        };
        let mut current = current_keyed.clone();
        if start.public_only {
            current.key = None;
        }
        Ok(SimCas {
            current,
            next,
            cross,
            other: new_ca(&named("CN=Simulated Other CA"), 1, now)?,
            partners: [
                new_ca(&named("CN=Simulated Partner CA"), 1, now)?,
                new_ca(&named("CN=Simulated Second PKI"), 1, now)?,
            ],
            current_keyed,
        })
    }

    pub fn generations(&self) -> Generations<'_> {
        Generations {
            current: &self.current,
            next: Some(&self.next),
            cross: self.cross.as_deref(),
        }
    }

    /// What a node's bundle may hold that certroll manages.
    pub fn managed(&self) -> Vec<Vec<u8>> {
        managed_ders(
            &[&self.current, &self.next],
            self.cross.as_deref().as_slice(),
        )
    }
}

/// Files of one node: path → bytes.
pub(super) type Files = HashMap<String, Vec<u8>>;

/// Every member's initial files, and what a step builds on from them (the foreign base of
/// its bundle and the chain it presents).
pub(super) fn initial_files(
    inv: &Inventory,
    plan: &Plan,
    cas: &SimCas,
    start: &Start,
    now: OffsetDateTime,
) -> Result<(Vec<Files>, Vec<NodeBase>), CheckError> {
    let spec = &inv.cas[plan.ca];
    let keyed = Generations {
        current: &cas.current_keyed,
        ..cas.generations()
    };
    let mut files = vec![Files::new(); inv.nodes.len()];
    let mut bases = vec![NodeBase::simulated(); inv.nodes.len()];
    for n in inv.members(plan.ca) {
        let node = &inv.nodes[n];
        let paths = node.paths(&spec.name);
        let install = changes_for(
            &[Action::Install],
            node,
            spec,
            keyed,
            plan.chain,
            &NodeBase::simulated(),
            now,
        )?;
        for c in install {
            if let Some(d) = c.data {
                files[n].insert(c.path, d);
            }
        }
        if !start.rotated(n).is_empty() {
            // Where an interrupted rotation left the node, with the materials `apply` uses.
            let rotated = changes_for(
                start.rotated(n),
                node,
                spec,
                keyed,
                plan.chain,
                &NodeBase::simulated(),
                now,
            )?;
            for c in rotated {
                match c.data {
                    Some(d) => files[n].insert(c.path, d),
                    None => files[n].remove(&c.path),
                };
            }
        }
        if start.foreign.contains(&n) {
            // Written as an operator would, not through the code under test.
            let bundle = [
                &cas.partners[0].cert_pem,
                cas.current.anchor(),
                &cas.partners[1].cert_pem,
            ]
            .map(|p| p.trim_end().to_string() + "\n")
            .concat();
            files[n].insert(paths.trust_bundle.clone(), bundle.into_bytes());
        }
        if start.neither.contains(&n) {
            let leaf = issue_node_leaf(spec, &cas.other, node, now)?;
            files[n].insert(paths.cert.clone(), leaf.cert_pem.into_bytes());
            files[n].insert(paths.key.clone(), leaf.key_pem.into_bytes());
        }
        for (m, kind) in &start.missing {
            if *m == n {
                let path = match kind {
                    FileKind::TrustBundle => &paths.trust_bundle,
                    FileKind::Cert => &paths.cert,
                    FileKind::Key => &paths.key,
                    FileKind::ProofCert
                    | FileKind::Keystore
                    | FileKind::Truststore
                    | FileKind::CombinedPem => continue,
                };
                files[n].remove(path);
            }
        }
        // The base the executor would read from the node: what it holds, minus the managed.
        bases[n].bundle = match (spec.bundle_foreign, files[n].get(&paths.trust_bundle)) {
            (BundleForeign::Keep, Some(b)) => BundleBase::from_current(b, &cas.managed()),
            _ => BundleBase::default(),
        };
        bases[n].chain = files[n].get(&paths.cert).cloned();
    }
    Ok((files, bases))
}
