//! What the fleet holds now, read from the nodes, for a routine run: every member's trust
//! bundle, certificate, key (and its mode), read exactly as `verify` reads them
//! ([`crate::verify::collect`]), so that a routine `apply` sees what `verify` reports.

use std::sync::Arc;

use crate::inventory::{CaId, Inventory, NodeId};
use crate::transport::{Connector, TransportError};
use crate::verify::collect::{collect, Collected};
use crate::verify::CaFiles;

/// Reads every member's files for `ca` (`parallel` nodes at a time). An unreachable node
/// is an error: routine runs must not guess.
pub fn read_members(
    inv: &Inventory,
    ca: CaId,
    connector: &Arc<dyn Connector>,
    parallel: usize,
) -> Result<Vec<(NodeId, CaFiles)>, TransportError> {
    let members = inv.members(ca);
    let collected = collect(inv, &members, &[ca], connector.as_ref(), parallel.max(1));
    let mut out = Vec::with_capacity(members.len());
    for (n, c) in members.into_iter().zip(collected) {
        match c {
            Collected::Reached { mut files, .. } => {
                if let Some(f) = files.remove(&ca) {
                    out.push((n, f));
                }
            }
            Collected::Unreachable(e) => return Err(e),
        }
    }
    Ok(out)
}
