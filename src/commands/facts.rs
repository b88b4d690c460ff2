//! What the fleet holds now, read from the nodes: which nodes lack their files, and whose
//! leaf expires within `renew_before`. Decides routine `apply` (install / renew).

use std::time::Duration;

use time::OffsetDateTime;

use crate::collect::{collect, CaFiles, Collected, FileState};
use crate::inventory::{CaId, Inventory, NodeId};
use crate::pki::parse_pem_certs;
use crate::transport::Connector;

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

/// A node or file of the fleet could not be read; the message names the action, the node
/// and the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FactError(pub String);

/// Reads every member's files (in parallel, `parallel` at a time) and sorts them into
/// install / renew. An unreachable node is an error: routine runs must not guess.
pub fn maintenance(
    inv: &Inventory,
    ca: CaId,
    connector: &dyn Connector,
    parallel: usize,
) -> Result<Maintenance, FactError> {
    let members = inv.members(ca);
    let collected = collect(inv, &members, &[ca], connector, parallel.max(1));
    let renew_before = inv.cas[ca].renew_before;
    let horizon = OffsetDateTime::now_utc() + Duration::from_secs(renew_before.as_secs());
    let mut out = Maintenance::default();
    for (node, c) in members.into_iter().zip(collected) {
        let fact = match &c {
            Collected::Unreachable(e) => return Err(FactError(e.to_string())),
            Collected::Reached { .. } => c.files(ca).map_or(Ok(LeafFact::Missing), leaf_fact)?,
        };
        match fact {
            LeafFact::Missing => out.install.push(node),
            LeafFact::Present { not_after } if not_after <= horizon => out.renew.push(node),
            LeafFact::Present { .. } => {}
        }
    }
    Ok(out)
}

/// The leaf a node holds, judged from its files in this order: bundle present, key
/// present (by its mode: its content is not needed), certificate present and parsing.
fn leaf_fact(files: &CaFiles) -> Result<LeafFact, FactError> {
    let unreadable = |m: &str| FactError(m.to_string());
    match &files.bundle {
        FileState::Missing => return Ok(LeafFact::Missing),
        FileState::Unreadable(m) => return Err(unreadable(m)),
        FileState::Present(_) => {}
    }
    match &files.key_mode {
        Ok(None) => return Ok(LeafFact::Missing),
        Err(m) => return Err(unreadable(m)),
        Ok(Some(_)) => {}
    }
    let cert = match &files.cert {
        FileState::Missing => return Ok(LeafFact::Missing),
        FileState::Unreadable(m) => return Err(unreadable(m)),
        FileState::Present(cert) => cert,
    };
    Ok(match parse_pem_certs(cert) {
        Ok(certs) if !certs.is_empty() => LeafFact::Present {
            not_after: certs[0].not_after,
        },
        _ => LeafFact::Missing,
    })
}
