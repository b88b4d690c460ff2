//! Which plan a run carries out, shared by `plan` (to show it) and `apply` (to do it):
//! rotate when asked or when a rotation is in progress, bootstrap when the CA was never
//! created, otherwise routine maintenance decided from the nodes' own certificates.

use std::sync::Arc;

use super::{facts, CaGenerations, CommandError};
use crate::inventory::{CaId, ChainMode, Inventory, Strategy};
use crate::plan::{self, Plan};
use crate::transport::Connector;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Intent {
    pub rotate: bool,
    /// Overrides the CA's `strategy`.
    pub strategy: Option<Strategy>,
    /// Overrides the CA's `chain`.
    pub chain: Option<ChainMode>,
    /// Nodes read at once for routine maintenance.
    pub parallel: usize,
}

/// The plan of a new run, given what the CA store holds. Reads the nodes (through the
/// connector `connect` makes) only for routine maintenance, i.e. when the CA exists and no
/// rotation is asked for or in progress.
pub fn decide(
    inv: &Inventory,
    ca: CaId,
    gens: &CaGenerations,
    connect: impl FnOnce() -> Arc<dyn Connector>,
    intent: Intent,
) -> Result<Plan, CommandError> {
    let spec = &inv.cas[ca];
    if intent.rotate || gens.next.is_some() {
        let strategy = intent.strategy.unwrap_or(spec.strategy);
        let chain = intent.chain.unwrap_or(spec.chain);
        return plan::rotate(inv, ca, strategy, chain)
            .map_err(|e| CommandError::Usage(e.to_string()));
    }
    if gens.current.is_none() {
        return Ok(plan::bootstrap(inv, ca, &inv.members(ca)));
    }
    let m = facts::maintenance(inv, ca, &*connect(), intent.parallel.max(1)).map_err(|e| {
        CommandError::Incomplete(format!("could not read the fleet's certificates: {e}"))
    })?;
    Ok(plan::maintenance(inv, ca, &m.install, &m.renew))
}
