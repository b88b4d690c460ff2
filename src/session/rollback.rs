//! `--rollback`: where an interrupted rotation stopped, and the plan back from there
//! (docs/design.md#rollback).
//!
//! Two sources say how far the rotation got on each node, and the most advanced wins:
//! the journal of the rotation run (confirmed steps are done, started ones may or may not
//! have reached the node), and each node's real files (a bundle holding the new anchor, a
//! leaf from the new CA, a key that does not match its certificate). Files can only add
//! knowledge: an interrupted step is never taken as not done because a node could not be
//! read. A completed rotation has no rollback: going back is a new rotation.

use anyhow::Context;
use rcgen::PublicKeyData;
use sha2::{Digest, Sha256};

use super::{CaGenerations, CommandError};
use crate::collect::{collect, CaFiles, Collected, FileState};
use crate::inventory::{CaId, CaSpec, Inventory};
use crate::journal::RunState;
use crate::pki::{parse_pem_certs, CaCert, CaStore};
use crate::plan::{self, Action, Mode, NodeProgress, Plan, Progress, RotationState};
use crate::transport::Connector;

/// The rollback of the rotation in progress, as found on the fleet.
#[derive(Debug)]
pub struct Found {
    pub plan: Plan,
    /// How far the rotation got, per node: what the plan was built from.
    pub state: RotationState,
    /// The rotation run rolled back; `None` when no run of it reached the journal (the
    /// next generation was made, then the process stopped before touching any node).
    pub of_run: Option<String>,
    /// Nodes whose files could not be read (their state comes from the journal alone).
    pub warnings: Vec<String>,
}

/// Finds the rotation in progress for `ca` and builds its rollback. `last` is the journal's
/// latest run. Refuses (exit 77, [`crate::exit::REFUSED`]) when there is nothing to roll
/// back or the rotation completed.
pub fn find(
    inv: &Inventory,
    ca: CaId,
    gens: &CaGenerations,
    last: Option<&RunState>,
    connector: &dyn Connector,
    threads: usize,
) -> Result<Found, CommandError> {
    let spec = &inv.cas[ca];
    let rotation = last.filter(|r| r.header.ca == spec.name && r.header.mode == Mode::Rotate);
    if let Some(r) = rotation.filter(|r| r.is_complete()) {
        return Err(CommandError::Refused(format!(
            "cannot roll back CA {}: rotation run {} completed, and a completed rotation has no \
             rollback; nothing was changed\n  hint: going back is a new rotation: `certroll apply \
             --rotate --ca {}`",
            spec.name, r.run, spec.name
        )));
    }
    let (Some(current), Some(next)) = (&gens.current, &gens.next) else {
        return Err(CommandError::Refused(format!(
            "cannot roll back CA {}: no rotation of it is in progress; nothing was changed\n  \
             hint: after a completed rotation, going back is a new rotation (`certroll apply \
             --rotate`)",
            spec.name
        )));
    };
    let rotation = rotation.filter(|r| r.header.generations.last() == Some(&next.generation));
    let mut state = RotationState::untouched(inv.nodes.len());
    if let Some(r) = rotation {
        for (id, (node, actions)) in &r.steps {
            let p = if r.done.contains(id) {
                Progress::Done
            } else {
                Progress::Unknown
            };
            if let Some(n) = inv.node_id(node) {
                for &a in actions {
                    state.nodes[n].record(a, p);
                }
            }
        }
    }
    let members = inv.members(ca);
    let mut warnings = Vec::new();
    for (i, got) in collect(inv, &members, &[ca], connector, threads)
        .iter()
        .enumerate()
    {
        let n = members[i];
        match got {
            Collected::Reached { files, .. } => {
                if let Some(f) = files.get(&ca) {
                    let seen = seen_on_node(f, current, next);
                    for (a, p) in [
                        (Action::TrustAdd, seen.trust_add),
                        (Action::LeafSwap, seen.leaf_swap),
                        (Action::TrustPrune, seen.trust_prune),
                    ] {
                        state.nodes[n].record(a, p);
                    }
                }
            }
            Collected::Unreachable(e) => warnings.push(format!(
                "node {} could not be read ({e}); its state comes from the journal alone",
                inv.nodes[n].name
            )),
        }
    }
    let (strategy, chain) = match rotation {
        Some(r) => (r.header.strategy, r.header.chain),
        None => (spec.strategy, spec.chain),
    };
    Ok(Found {
        plan: plan::rollback(inv, ca, strategy, chain, &state),
        state,
        of_run: rotation.map(|r| r.run.clone()),
        warnings,
    })
}

/// What a node's files show of the rotation: the new anchor in the bundle (added, or
/// pruned down to it), a leaf from the new CA, a key that does not match its certificate
/// (a swap cut between the two writes: taken as an interrupted swap).
pub fn seen_on_node(files: &CaFiles, current: &CaCert, next: &CaCert) -> NodeProgress {
    let mut seen = NodeProgress::default();
    if let FileState::Present(bytes) = &files.bundle {
        let roots = parse_pem_certs(bytes).unwrap_or_default();
        let has = |ca: &CaCert| roots.iter().any(|r| r.der == ca.cert_der);
        if has(next) {
            seen.trust_add = Progress::Done;
            if !has(current) {
                seen.trust_prune = Progress::Done;
            }
        }
    }
    let FileState::Present(cert) = &files.cert else {
        return seen;
    };
    let Some(leaf) = parse_pem_certs(cert)
        .ok()
        .and_then(|c| c.into_iter().next())
    else {
        return seen;
    };
    let next_subject = parse_pem_certs(next.cert_pem.as_bytes())
        .ok()
        .and_then(|c| c.into_iter().next())
        .map(|c| c.subject);
    if next_subject.as_deref() == Some(leaf.issuer.as_str()) {
        seen.leaf_swap = Progress::Done;
    }
    if let FileState::PublicKey(spki) = &files.key {
        if hex::encode(Sha256::digest(spki)) != leaf.spki_sha256 {
            seen.leaf_swap = seen.leaf_swap.max(Progress::Unknown);
        }
    }
    if let FileState::Present(key) = &files.key {
        // The key's text is never kept or shown: only whether it matches the certificate.
        let pair = std::str::from_utf8(key)
            .ok()
            .and_then(|text| rcgen::KeyPair::from_pem(text).ok());
        let matches = pair.is_some_and(|p| {
            hex::encode(Sha256::digest(p.subject_public_key_info())) == leaf.spki_sha256
        });
        if !matches {
            seen.leaf_swap = seen.leaf_swap.max(Progress::Unknown);
        }
    }
    seen
}

/// The journal parameters of a rollback run: the rotation it rolls back and the state its
/// plan was built from (node names, so that it survives inventory reordering).
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub of_run: Option<String>,
    pub state: Vec<(String, NodeProgress)>,
}

/// The [`Params`] of the rollback `found`.
pub fn params(inv: &Inventory, found: &Found) -> Params {
    let state = found
        .state
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, p)| **p != NodeProgress::default())
        .map(|(n, p)| (inv.nodes[n].name.clone(), *p))
        .collect();
    Params {
        of_run: found.of_run.clone(),
        state,
    }
}

/// After rollback run `run_id` (of rotation run `of`) completed: archives the abandoned
/// next generation with a note, never deleting it. Returns what to tell the operator.
pub fn abandon(
    store: &CaStore,
    spec: &CaSpec,
    gens: &CaGenerations,
    run_id: &str,
    of: Option<String>,
) -> Result<String, CommandError> {
    let dir = store.dir.join(&spec.name);
    let note = format!(
        "rolled back by run {run_id}{}; never used again (a later rotation makes a fresh \
         generation)\n",
        of.map(|o| format!(" (rotation run {o})"))
            .unwrap_or_default()
    );
    let archived = store.abandon_rotation(spec, &note).with_context(|| {
        format!(
            "failed to archive the abandoned generation in CA store {}",
            dir.display()
        )
    })?;
    let current = gens.current.as_ref().map_or(1, |c| c.generation);
    let moved = archived
        .map(|g| {
            let archive = dir.join("archive");
            format!(
                "; G{g} is archived as rolled back under {}",
                archive.display()
            )
        })
        .unwrap_or_default();
    Ok(format!(
        "rollback of CA {} complete: G{current} stays current{moved}",
        spec.name
    ))
}

/// The rollback plan of a journaled rollback run, rebuilt from its header.
pub fn rebuild(inv: &Inventory, ca: CaId, prev: &RunState) -> Plan {
    let h = &prev.header;
    let mut state = RotationState::untouched(inv.nodes.len());
    for (name, p) in &h.params.rollback_state {
        if let Some(n) = inv.node_id(name) {
            state.nodes[n] = *p;
        }
    }
    plan::rollback(inv, ca, h.strategy, h.chain, &state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::CaSpec;
    use crate::materials::bundle_pem;
    use crate::pki::{issue_leaf, new_ca};
    use time::OffsetDateTime;

    fn files(bundle: Vec<u8>, cert: &str, key: &str) -> CaFiles {
        CaFiles {
            bundle: FileState::Present(bundle),
            cert: FileState::Present(cert.as_bytes().to_vec()),
            key: FileState::Present(key.as_bytes().to_vec()),
            key_mode: Ok(Some(0o600)),
            proof: None,
            loose_copies: Vec::new(),
            stores: Vec::new(),
        }
    }

    #[test]
    fn the_files_show_how_far_the_rotation_got() {
        let spec = CaSpec::new("internal", "CN=Seen CA");
        let now = OffsetDateTime::now_utc();
        let (g1, g2) = (
            new_ca(&spec, 1, now).unwrap(),
            new_ca(&spec, 2, now).unwrap(),
        );
        let sans = vec!["app1.test".to_string()];
        let old = issue_leaf(&spec, &g1, "app1", &sans, now).unwrap();
        let new = issue_leaf(&spec, &g2, "app1", &sans, now).unwrap();
        let seen = |bundle: Vec<u8>, cert: &str, key: &str| {
            seen_on_node(&files(bundle, cert, key), &g1, &g2)
        };
        let (d, u, n) = (Progress::Done, Progress::Unknown, Progress::NotStarted);
        let p = |trust_add, leaf_swap, trust_prune| NodeProgress {
            trust_add,
            leaf_swap,
            trust_prune,
        };

        let untouched = seen(bundle_pem(&[&g1]), &old.cert_pem, &old.key_pem);
        assert_eq!(untouched, p(n, n, n));
        let added = seen(bundle_pem(&[&g1, &g2]), &old.cert_pem, &old.key_pem);
        assert_eq!(added, p(d, n, n));
        let swapped = seen(bundle_pem(&[&g1, &g2]), &new.cert_pem, &new.key_pem);
        assert_eq!(swapped, p(d, d, n));
        let pruned = seen(bundle_pem(&[&g2]), &new.cert_pem, &new.key_pem);
        assert_eq!(pruned, p(d, d, d));
        // A swap cut between its two writes: the new key beside the old certificate.
        let half = seen(bundle_pem(&[&g1, &g2]), &old.cert_pem, &new.key_pem);
        assert_eq!(half, p(d, u, n));
    }
}
