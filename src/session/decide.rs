//! Which plan a run carries out, shared by `plan` (to show it) and `apply` (to do it):
//! rotate when asked or when a rotation is in progress, bootstrap when the CA was never
//! created, otherwise a routine plan (install, renew, repair) decided from the nodes' own
//! files by [`crate::repair`]. A rotation from or to an imported generation reads the
//! nodes first (takeover); a public-only generation refuses routine runs and cross-signed
//! chains; a bootstrap over members that already hold another CA's files is refused (the
//! bootstrap guard). Both commands refuse the same things with the same words.

use std::sync::Arc;

use time::OffsetDateTime;

use super::holdings::{holding_files, read_members, Known};
use super::{facts, CaGenerations, CommandError};
use crate::inventory::{CaId, ChainMode, Inventory, Strategy};
use crate::pki::{CaCert, CaStore};
use crate::plan::{self, takeover, Plan};
use crate::repair;
use crate::transport::Connector;
use crate::verify::Known as StoreGenerations;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Intent {
    pub rotate: bool,
    /// `--rollback`: return from an interrupted rotation (see [`super::rollback`]).
    pub rollback: bool,
    /// Overrides the CA's `strategy`.
    pub strategy: Option<Strategy>,
    /// Overrides the CA's `chain`.
    pub chain: Option<ChainMode>,
    /// Nodes read at once for routine maintenance.
    pub parallel: usize,
    /// `--force-bootstrap`: bootstrap even over members holding another CA's files.
    pub force_bootstrap: bool,
}

/// The plan of a new run, given what the CA store holds. Reads the nodes (through the
/// connector `connect` makes) for routine maintenance (the CA exists and no rotation is
/// asked for or in progress), for a takeover rotation, and before a bootstrap (the
/// bootstrap guard, unless `intent.force_bootstrap`).
pub fn decide(
    inv: &Inventory,
    ca: CaId,
    gens: &CaGenerations,
    connect: impl FnOnce() -> Arc<dyn Connector>,
    intent: Intent,
) -> Result<Plan, CommandError> {
    let spec = &inv.cas[ca];
    let (current, next) = (&gens.current, &gens.next);
    if intent.rotate && current.is_none() {
        return Err(CommandError::Refused(format!(
            "CA {} has never been created, so there is nothing to rotate\n  hint: run `certroll apply` first to bootstrap the fleet",
            spec.name
        )));
    }
    if intent.rotate || (next.is_some() && !gens.next_staged) {
        let strategy = intent.strategy.unwrap_or(spec.strategy);
        let chain = intent.chain.unwrap_or(spec.chain);
        let imported = current.iter().chain(next.iter()).any(|g| g.imported);
        if let Some(cur) = &current {
            refuse_cross_signed(&spec.name, cur, next.as_ref(), chain)?;
        }
        let now = OffsetDateTime::now_utc();
        let (Some(cur), true) = (&current, imported) else {
            let mut rotation = plan::rotate(inv, ca, strategy, chain)
                .map_err(|e| CommandError::Usage(e.to_string()))?;
            if let Some(cur) = &current {
                plan::expired::note(&mut rotation, cur, now);
            }
            return Ok(rotation);
        };
        let known = Known::new(Some(cur), next.as_ref());
        let holdings = read_members(inv, ca, &*connect(), &known, intent.parallel.max(1));
        let gens = takeover::Generations {
            same_anchor: next.as_ref().is_some_and(|n| n.same_anchor(cur)),
        };
        let mut rotation = plan::rotate_from(inv, ca, strategy, chain, gens, &holdings)
            .map_err(|e| CommandError::Usage(e.to_string()))?;
        plan::expired::note(&mut rotation, cur, now);
        return Ok(rotation);
    }
    let Some(cur) = current else {
        // Only the bootstrap of a CA never created is guarded: a routine run that installs
        // on some nodes is a bootstrap-mode plan too (docs/takeover.md).
        if !intent.force_bootstrap {
            guard_bootstrap(inv, ca, &*connect(), intent.parallel.max(1))?;
        }
        return Ok(plan::bootstrap(inv, ca, &inv.members(ca)));
    };
    if !cur.can_issue() {
        return Err(CommandError::Refused(format!(
            "CA {}: generation G{} was imported without its private key (public-only), and \
             certroll never issues from it, so there is no routine install or renewal to do\n  \
             hint: run `certroll apply --rotate` to move the fleet to a CA certroll holds (every \
             gate of a rotation applies), or import the CA again with --key",
            spec.name, cur.generation
        )));
    }
    let files = facts::read_members(inv, ca, &*connect(), intent.parallel.max(1)).map_err(|e| {
        CommandError::Incomplete(format!("could not read the fleet's certificates: {e}"))
    })?;
    // The archived generations too: an old anchor is then named stale, not stray.
    let known = StoreGenerations::from_store(&CaStore::new(&inv.state_dir), spec)
        .map_err(|e| CommandError::Other(anyhow::anyhow!(e)))?;
    let (needs, unrepaired) = repair::diagnose(inv, ca, &known, &files, OffsetDateTime::now_utc());
    Ok(plan::routine(inv, ca, needs, unrepaired))
}

/// A cross certificate needs the current key and certifies a root by a root.
fn refuse_cross_signed(
    ca: &str,
    current: &CaCert,
    next: Option<&CaCert>,
    chain: ChainMode,
) -> Result<(), CommandError> {
    if chain != ChainMode::CrossSigned {
        return Ok(());
    }
    let why = if plan::expired::is_expired(current, OffsetDateTime::now_utc()) {
        format!(
            "generation G{} has expired, and a cross certificate cannot outlive the CA that \
             signs it",
            current.generation
        )
    } else if !current.can_issue() {
        format!(
            "generation G{} was imported without its private key (public-only), so certroll \
             cannot sign the cross certificate that chain needs",
            current.generation
        )
    } else if current.anchor_pem.is_some() || next.is_some_and(|n| n.anchor_pem.is_some()) {
        "a generation is an intermediate under an anchor, and a cross certificate certifies \
         one root by another"
            .to_string()
    } else {
        return Ok(());
    };
    Err(CommandError::Usage(format!(
        "chain \"cross-signed\" cannot rotate CA {ca}: {why}\n  hint: rotate with --chain plain \
         (the default: every leaf swap waits until its verifiers trust the new CA)"
    )))
}

/// Refuses a bootstrap over members that already hold a certificate or a bundle: they
/// use another CA, and a one-wave bootstrap would break their links while it runs.
/// Nodes that cannot be read are left to their own step, which fails on them. Called by
/// [`decide`] only, so that `plan` and `apply` refuse the same fleets.
fn guard_bootstrap(
    inv: &Inventory,
    ca: CaId,
    connector: &dyn Connector,
    parallel: usize,
) -> Result<(), CommandError> {
    let holdings = read_members(inv, ca, connector, &Known::default(), parallel);
    let nodes = holding_files(inv, &holdings);
    if nodes.is_empty() {
        return Ok(());
    }
    let name = &inv.cas[ca].name;
    Err(CommandError::Refused(format!(
        "refusing to bootstrap CA {name}: node(s) {} already hold a certificate or a trust bundle \
         of another CA, and a one-wave bootstrap would break their links while it runs; nothing \
         was changed\n  hint: record the CA they use with `certroll ca import {name} --cert \
         FILE [--key FILE]`, then `certroll apply --rotate` moves them with every gate \
         (docs/takeover.md); `certroll apply --force-bootstrap` overwrites them in one wave and \
         breaks links",
        nodes.join(", ")
    )))
}
