//! What the fleet holds now, read from the nodes, for a routine run: every member's trust
//! bundle, certificate, key (and its mode) and the key copies beside them, read exactly as
//! `verify` reads them ([`crate::collect`]), so that a routine `apply` sees what `verify`
//! reports. [`crate::repair`] then decides what to do about it.

use crate::collect::{collect, CaFiles, Collected};
use crate::inventory::{CaId, Inventory, NodeId};
use crate::transport::Connector;

/// A node of the fleet could not be reached; the message names the action and the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FactError(pub String);

/// Reads every member's files for `ca` (`parallel` nodes at a time). An unreachable node
/// or a file that cannot be read (bundle, certificate, key or the key's mode) is an error:
/// routine runs must not guess.
pub fn read_members(
    inv: &Inventory,
    ca: CaId,
    connector: &dyn Connector,
    parallel: usize,
) -> Result<Vec<(NodeId, CaFiles)>, FactError> {
    let members = inv.members(ca);
    let collected = collect(inv, &members, &[ca], connector, parallel.max(1));
    let mut out = Vec::with_capacity(members.len());
    for (n, c) in members.into_iter().zip(collected) {
        match c {
            Collected::Reached { mut files, .. } => {
                if let Some(f) = files.remove(&ca) {
                    if let Some(e) =
                        f.read_error()
                            .or(f.key_mode.as_ref().err().map(|e| e.as_str()))
                    {
                        return Err(FactError(e.to_string()));
                    }
                    out.push((n, f));
                }
            }
            Collected::Unreachable(e) => return Err(FactError(e.to_string())),
        }
    }
    Ok(out)
}
