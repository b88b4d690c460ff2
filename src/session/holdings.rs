//! What each member really holds before a takeover, read from the nodes: which of the
//! CA's generations its bundle trusts, who issued its leaf, which files are missing.
//!
//! Feeds [`crate::plan::takeover`] (notes, leaves-only decision), the bootstrap guard (a
//! CA never created, whose members already hold another CA's files) and the start of
//! `plan --check` ([`start_of`]). The files are read with [`crate::collect`], like every
//! fleet reader.

use std::sync::Arc;

use super::{CaGenerations, CommandError};
use crate::collect::{collect, CaFiles, Collected, FileState};
use crate::inventory::{CaId, Inventory};
use crate::pki::{parse_pem_certs, CaCert, CaStore, CertInfo};
use crate::plan::takeover::{BundleHolds, Files, Holding, LeafFrom};
use crate::plan::Plan;
use crate::simulate::Start;
use crate::transport::Connector;

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

/// Reads every member of `ca`, `parallel` at a time (through [`crate::collect`]). A node
/// or file that cannot be read is [`Holding::Unreadable`], never an error: the caller
/// decides what that means.
pub fn read_members(
    inv: &Inventory,
    ca: CaId,
    connector: &dyn Connector,
    known: &Known,
    parallel: usize,
) -> Vec<Option<Holding>> {
    let members = inv.members(ca);
    let collected = collect(inv, &members, &[ca], connector, parallel);
    let mut out = vec![None; inv.nodes.len()];
    for (&n, c) in members.iter().zip(&collected) {
        out[n] = Some(match c {
            Collected::Unreachable(e) => Holding::Unreadable(e.to_string()),
            Collected::Reached { .. } => match c.files(ca) {
                Some(files) => classify(files, known),
                None => Holding::Unreadable("its files were not read".into()),
            },
        });
    }
    out
}

fn classify(files: &CaFiles, known: &Known) -> Holding {
    if let Some(e) = files.read_error() {
        return Holding::Unreadable(e.to_string());
    }
    let bundle = match &files.bundle {
        FileState::Present(b) => Some(known.bundle_holds(&parse_pem_certs(b).unwrap_or_default())),
        _ => None,
    };
    let leaf = match &files.cert {
        FileState::Present(c) => match parse_pem_certs(c).ok().and_then(|v| v.into_iter().next()) {
            Some(leaf) => known.leaf_from(&leaf),
            None => LeafFrom::Neither("an unreadable certificate".into()),
        },
        _ => LeafFrom::Missing,
    };
    let key = matches!(files.key, FileState::Present(_) | FileState::PublicKey(_));
    Holding::Read(Files { bundle, leaf, key })
}

/// Where the check starts: the shape of the generations (an imported public-only or
/// intermediate current generation, a next one under the same anchor) and, for a
/// rotation from or to an imported generation, what the members really hold (foreign
/// anchors, missing files, leaves of neither generation), read from the nodes through the
/// connector `connect` makes.
pub fn start_of(
    inv: &Inventory,
    plan: &Plan,
    connect: impl FnOnce() -> Arc<dyn Connector>,
) -> Result<Start, CommandError> {
    let gens = CaGenerations::read(&CaStore::new(&inv.state_dir), &inv.cas[plan.ca])?;
    let (Some(current), next) = (gens.current, gens.next) else {
        return Ok(Start::default());
    };
    let imported = current.imported || next.as_ref().is_some_and(|n| n.imported);
    let mut start = if imported && plan.mode == crate::plan::Mode::Rotate {
        let known = Known::new(Some(&current), next.as_ref());
        let connector = connect();
        sim_start(&read_members(inv, plan.ca, &*connector, &known, 32))
    } else {
        Start::default()
    };
    start.public_only = !current.can_issue();
    start.intermediate = current.anchor_pem.is_some();
    start.next_same_anchor = next.is_some_and(|n| n.same_anchor(&current));
    Ok(start)
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
