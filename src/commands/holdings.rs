//! What each member really holds before a takeover, read from the nodes: which of the
//! CA's generations its bundle trusts, who issued its leaf, which files are missing.
//!
//! Feeds [`crate::plan::takeover`] (notes, leaves-only decision) and the bootstrap guard
//! (a CA never created, whose members already hold another CA's files). Reading is
//! separate from deciding so it can move with the other node readers of the commands.

use std::sync::Arc;

use crate::inventory::{CaId, Inventory, NodeId};
use crate::pki::{parse_pem_certs, CaCert, CertInfo};
use crate::plan::takeover::{BundleHolds, Files, Holding, LeafFrom};
use crate::transport::{Connector, TransportError};

/// The CA's generations as recognition needs them (none before a bootstrap).
#[derive(Debug, Clone, Default)]
pub struct Known {
    current: Option<Gen>,
    next: Option<Gen>,
}

#[derive(Debug, Clone)]
struct Gen {
    /// DER of what a bundle may hold for it: the anchor and the issuing CA.
    anchors: Vec<Vec<u8>>,
    /// Subject key identifier and subject of the issuing CA, to recognise its leaves.
    key_id: Option<Vec<u8>>,
    subject: String,
}

impl Known {
    pub fn new(current: Option<&CaCert>, next: Option<&CaCert>) -> Known {
        Known {
            current: current.and_then(Gen::of),
            next: next.and_then(Gen::of),
        }
    }

    fn leaf_from(&self, leaf: &CertInfo) -> LeafFrom {
        let issued = |g: &Option<Gen>| {
            g.as_ref()
                .is_some_and(|g| match (&leaf.authority_key_id, &g.key_id) {
                    (Some(aki), Some(ski)) => aki == ski,
                    _ => leaf.issuer == g.subject,
                })
        };
        if issued(&self.current) {
            LeafFrom::Current
        } else if issued(&self.next) {
            LeafFrom::Next
        } else {
            LeafFrom::Neither(leaf.issuer.clone())
        }
    }

    fn bundle_holds(&self, certs: &[CertInfo]) -> BundleHolds {
        let has =
            |g: &Option<Gen>, c: &CertInfo| g.as_ref().is_some_and(|g| g.anchors.contains(&c.der));
        BundleHolds {
            current: certs.iter().any(|c| has(&self.current, c)),
            next: certs.iter().any(|c| has(&self.next, c)),
            foreign: certs
                .iter()
                .filter(|c| !has(&self.current, c) && !has(&self.next, c))
                .count(),
        }
    }
}

impl Gen {
    fn of(ca: &CaCert) -> Option<Gen> {
        let issuing = parse_pem_certs(ca.cert_pem.as_bytes())
            .ok()?
            .into_iter()
            .next()?;
        Some(Gen {
            anchors: vec![ca.anchor_der(), ca.cert_der.clone()],
            key_id: issuing.subject_key_id,
            subject: issuing.subject,
        })
    }
}

/// Reads every member of `ca`, `parallel` at a time. A node that cannot be read is
/// [`Holding::Unreadable`], never an error: the caller decides what that means.
pub fn read_members(
    inv: &Inventory,
    ca: CaId,
    connector: &Arc<dyn Connector>,
    known: &Known,
    parallel: usize,
) -> Vec<Option<Holding>> {
    let members = inv.members(ca);
    let chunk = members.len().div_ceil(parallel.max(1)).max(1);
    let mut out = vec![None; inv.nodes.len()];
    let read: Vec<(NodeId, Holding)> = std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .chunks(chunk)
            .map(|nodes| {
                scope.spawn(move || {
                    nodes
                        .iter()
                        .map(|&n| {
                            let h = read_one(inv, ca, connector, known, n)
                                .unwrap_or_else(|e| Holding::Unreadable(e.to_string()));
                            (n, h)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            // Invariant: read_one does not panic; a panic here is a bug worth surfacing.
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for (n, h) in read {
        out[n] = Some(h);
    }
    out
}

fn read_one(
    inv: &Inventory,
    ca: CaId,
    connector: &Arc<dyn Connector>,
    known: &Known,
    n: NodeId,
) -> Result<Holding, TransportError> {
    let paths = inv.nodes[n].paths(&inv.cas[ca].name);
    let t = connector.connect(n)?;
    let bundle = t
        .read_file(&paths.trust_bundle)?
        .map(|b| known.bundle_holds(&parse_pem_certs(&b).unwrap_or_default()));
    let leaf = match t.read_file(&paths.cert)? {
        None => LeafFrom::Missing,
        Some(c) => match parse_pem_certs(&c).ok().and_then(|v| v.into_iter().next()) {
            Some(leaf) => known.leaf_from(&leaf),
            None => LeafFrom::Neither("an unreadable certificate".into()),
        },
    };
    let key = t.file_mode(&paths.key)?.is_some();
    Ok(Holding::Read(Files { bundle, leaf, key }))
}

/// The simulation's starting point for what was read: foreign anchors, missing files,
/// leaves of neither generation (the shape of the generations is set by the caller).
pub fn sim_start(holdings: &[Option<Holding>]) -> crate::simulate::Start {
    use crate::materials::FileKind;
    let mut start = crate::simulate::Start::default();
    for (n, h) in holdings.iter().enumerate() {
        let Some(Holding::Read(f)) = h else { continue };
        if f.bundle.is_some_and(|b| b.foreign > 0) {
            start.foreign.push(n);
        }
        if f.bundle.is_none() {
            start.missing.push((n, FileKind::TrustBundle));
        }
        if f.leaf == LeafFrom::Missing {
            start.missing.push((n, FileKind::Cert));
        }
        if !f.key {
            start.missing.push((n, FileKind::Key));
        }
        if matches!(f.leaf, LeafFrom::Neither(_)) {
            start.neither.push(n);
        }
    }
    start
}

/// Members that already hold a certificate or a bundle (before a bootstrap: another CA's).
pub fn holding_files(inv: &Inventory, holdings: &[Option<Holding>]) -> Vec<String> {
    holdings
        .iter()
        .enumerate()
        .filter_map(|(n, h)| match h {
            Some(Holding::Read(f)) if f.bundle.is_some() || f.leaf != LeafFrom::Missing => {
                Some(inv.nodes[n].name.clone())
            }
            _ => None,
        })
        .collect()
}
