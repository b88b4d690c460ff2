//! What the fleet holds now, read from the nodes: which nodes lack their files, and whose
//! leaf expires within `renew_before`. Decides routine `apply` (install / renew).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::inventory::{CaId, Inventory, NodeId};
use crate::pki::parse_pem_certs;
use crate::transport::{Connector, TransportError};

/// What one node holds for one CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafFact {
    /// Bundle, certificate or key missing, or the certificate does not parse.
    Missing,
    /// The leaf and when it expires.
    Present { not_after: OffsetDateTime },
}

/// Nodes to install and to renew.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintenance {
    pub install: Vec<NodeId>,
    pub renew: Vec<NodeId>,
}

/// Reads every member's files (in parallel, `parallel` at a time) and sorts them into
/// install / renew. An unreachable node is an error: routine runs must not guess.
pub fn maintenance(
    inv: &Inventory,
    ca: CaId,
    connector: &Arc<dyn Connector>,
    parallel: usize,
) -> Result<Maintenance, TransportError> {
    let members = inv.members(ca);
    let facts = read_all(inv, ca, connector, &members, parallel.max(1))?;
    let renew_before = inv.cas[ca].renew_before;
    let horizon = OffsetDateTime::now_utc() + Duration::from_secs(renew_before.as_secs());
    let mut out = Maintenance::default();
    for (node, fact) in members.into_iter().zip(facts) {
        match fact {
            LeafFact::Missing => out.install.push(node),
            LeafFact::Present { not_after } if not_after <= horizon => out.renew.push(node),
            LeafFact::Present { .. } => {}
        }
    }
    Ok(out)
}

fn read_all(
    inv: &Inventory,
    ca: CaId,
    connector: &Arc<dyn Connector>,
    members: &[NodeId],
    parallel: usize,
) -> Result<Vec<LeafFact>, TransportError> {
    let chunk = members.len().div_ceil(parallel).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .chunks(chunk)
            .map(|nodes| {
                scope.spawn(move || {
                    nodes
                        .iter()
                        .map(|&n| read_one(inv, ca, connector, n))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut facts = Vec::with_capacity(members.len());
        for h in handles {
            // Invariant: read_one does not panic; a panic here is a bug worth surfacing.
            let part = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            for fact in part {
                facts.push(fact?);
            }
        }
        Ok(facts)
    })
}

fn read_one(
    inv: &Inventory,
    ca: CaId,
    connector: &Arc<dyn Connector>,
    n: NodeId,
) -> Result<LeafFact, TransportError> {
    let node = &inv.nodes[n];
    let paths = node.paths(&inv.cas[ca].name);
    let t = connector.connect(n)?;
    for p in [&paths.trust_bundle, &paths.key] {
        if t.file_mode(p)?.is_none() {
            return Ok(LeafFact::Missing);
        }
    }
    let Some(cert) = t.read_file(&paths.cert)? else {
        return Ok(LeafFact::Missing);
    };
    match parse_pem_certs(&cert) {
        Ok(certs) if !certs.is_empty() => Ok(LeafFact::Present {
            not_after: certs[0].not_after,
        }),
        _ => Ok(LeafFact::Missing),
    }
}
