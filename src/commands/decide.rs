//! Which plan a run carries out, shared by `plan` (to show it) and `apply` (to do it):
//! rotate when asked or when a rotation is in progress, bootstrap when the CA was never
//! created, otherwise a routine plan (install, renew, repair) decided from the nodes' own
//! files by [`crate::repair`]. Both commands refuse the same things with the same words.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{facts, CaGenerations, CommandError};
use crate::inventory::{CaId, ChainMode, Inventory, Strategy};
use crate::pki::CaStore;
use crate::plan::{self, Plan};
use crate::repair;
use crate::transport::Connector;
use crate::verify::Known;

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
    if intent.rotate && gens.current.is_none() {
        return Err(CommandError::Usage(format!(
            "CA {} has never been created, so there is nothing to rotate\n  hint: run `certroll apply` first to bootstrap the fleet",
            spec.name
        )));
    }
    if intent.rotate || gens.next.is_some() {
        let strategy = intent.strategy.unwrap_or(spec.strategy);
        let chain = intent.chain.unwrap_or(spec.chain);
        return plan::rotate(inv, ca, strategy, chain)
            .map_err(|e| CommandError::Usage(e.to_string()));
    }
    if gens.current.is_none() {
        return Ok(plan::bootstrap(inv, ca, &inv.members(ca)));
    }
    let files = facts::read_members(inv, ca, &*connect(), intent.parallel.max(1)).map_err(|e| {
        CommandError::Incomplete(format!("could not read the fleet's certificates: {e}"))
    })?;
    // The archived generations too: an old anchor is then named stale, not stray.
    let known = Known::from_store(&CaStore::new(&inv.state_dir), spec)
        .map_err(|e| CommandError::Other(anyhow::anyhow!(e)))?;
    let (needs, unrepaired) = repair::diagnose(inv, ca, &known, &files, OffsetDateTime::now_utc());
    Ok(plan::routine(inv, ca, needs, unrepaired))
}
