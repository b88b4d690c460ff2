//! Before a run changes anything: every node of the plan that writes a keystore or
//! truststore must have a password file certroll may use (present, a regular file no other
//! user may read, not empty), and every store already on it must be a file that password
//! opens. Otherwise the run is refused with the file's path and exit 78, and no node is
//! touched: a store that would be rewritten with another password, or over a directory,
//! would break its application at the next restart.

use super::CommandError;
use crate::collect::parallel_map;
use crate::inventory::{CaId, Inventory, NodeId};
use crate::stores::read::{read_stores, StoreFile};
use crate::transport::Connector;

/// Checks the stores of `nodes` for CA `ca` (see the module's text).
pub fn check(
    inv: &Inventory,
    ca: CaId,
    nodes: &[NodeId],
    connector: &dyn Connector,
) -> Result<(), CommandError> {
    let ca_name = &inv.cas[ca].name;
    let with_stores: Vec<NodeId> = nodes
        .iter()
        .copied()
        .filter(|&n| {
            let p = inv.nodes[n].paths(ca_name);
            p.keystore.is_some() || p.truststore.is_some() || p.combined_pem.is_some()
        })
        .collect();
    let problems = parallel_map(&with_stores, 8, |&n| {
        let node = &inv.nodes[n];
        let t = match connector.connect(n) {
            Ok(t) => t,
            // An unreachable node is the run's own business (it retries and reports).
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        if let Some(file) = node.store_password_file(ca_name) {
            if let Err(e) = crate::layout::store_password(t.as_ref(), node, &file) {
                out.push(e.to_string());
                return out;
            }
        }
        for StoreFile {
            kind, path, opened, ..
        } in read_stores(t.as_ref(), node, ca_name)
        {
            if let Some(Err(why)) = opened {
                out.push(format!(
                    "the {} {path} on node {} cannot be used: {why}",
                    kind.label(),
                    node.name
                ));
            }
        }
        out
    });
    let problems: Vec<String> = problems.into_iter().flatten().collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(CommandError::BadInput(format!(
        "refusing to start: {}; nothing was changed\n  hint: fix or remove the file (a store certroll cannot open would be rewritten under a password its application does not use)",
        problems.join("; ")
    )))
}
