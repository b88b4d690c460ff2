//! What a routine run does about what `verify` finds: each finding on a node's files is
//! either repaired by a step of the routine plan (a fresh key and leaf from the current
//! CA, or a trust bundle rewritten with the current anchor) or named for the operator.
//!
//! The findings come from [`crate::verify::node::check_node`], the very check `verify`
//! runs, so a routine `apply` sees exactly the problems `verify` reports. Why each repair
//! is safe without gates between steps is explained in [`crate::plan::routine`].

use time::{Duration, OffsetDateTime};

use crate::inventory::{CaId, Inventory, NodeId};
use crate::materials::FileKind;
use crate::plan::{BundleNeed, LeafNeed, NodeNeed, Unrepaired};
use crate::verify::finding::world_accessible;
use crate::verify::node::{check_node, NodeContext};
use crate::verify::{CaFiles, Finding, Generation, Known, NodeReport, Severity};

/// What one finding asks of a routine run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Bundle(BundleNeed),
    Leaf(LeafNeed),
    /// Both: the file holds key material next to a bundle that trusts only the current CA.
    BundleAndLeaf,
    /// Left alone; the operator is told (with `hint`).
    Leave(&'static str),
}

/// The needs of every member (only those with something to do) and the problems left alone.
pub fn diagnose(
    inv: &Inventory,
    ca: CaId,
    known: &Known,
    files: &[(NodeId, CaFiles)],
    now: OffsetDateTime,
) -> (Vec<NodeNeed>, Vec<Unrepaired>) {
    let spec = &inv.cas[ca];
    let warn_within = Duration::try_from(spec.renew_before).unwrap_or(Duration::MAX);
    let mut needs = Vec::new();
    let mut unrepaired = Vec::new();
    for (n, f) in files {
        let node = &inv.nodes[*n];
        let cx = NodeContext {
            id: *n,
            node,
            paths: node.paths(&spec.name),
            known,
            serves: inv.links_of(ca).any(|l| l.server == *n),
            now,
            warn_within,
            // A leaf due for renewal is due, however close its expiry.
            critical_within: Duration::ZERO,
            keeps_foreign: spec.bundle_foreign == crate::inventory::BundleForeign::Keep,
        };
        let (report, _) = check_node(&cx, f);
        let (need, left) = node_need(&report);
        unrepaired.extend(left);
        if need.bundle != BundleNeed::Sound || need.leaf != LeafNeed::Sound {
            needs.push(need);
        }
    }
    (needs, unrepaired)
}

/// One node's need from its verify report.
pub fn node_need(report: &NodeReport) -> (NodeNeed, Vec<Unrepaired>) {
    let mut need = NodeNeed {
        node: report.node,
        ..NodeNeed::default()
    };
    let mut left = Vec::new();
    let only_current = !report.anchors.is_empty()
        && report
            .anchors
            .iter()
            .all(|a| a.generation == Generation::Current);
    for f in &report.findings {
        let message = f.message(&report.name);
        match effect(f, only_current) {
            Effect::Bundle(b) => need.bundle = worse_bundle(need.bundle, b),
            Effect::Leaf(l) => need.leaf = worse_leaf(need.leaf, l),
            Effect::BundleAndLeaf => {
                need.bundle = worse_bundle(need.bundle, BundleNeed::Broken);
                need.leaf = worse_leaf(need.leaf, LeafNeed::Due);
            }
            Effect::Leave(hint) => {
                if let Some(b) = untrusting(f) {
                    need.bundle = worse_bundle(need.bundle, b);
                }
                if matches!(f, Finding::Unreadable { file, .. } if matches!(file, FileKind::Cert | FileKind::Key))
                {
                    need.leaf = worse_leaf(need.leaf, LeafNeed::Unknown);
                }
                left.push(Unrepaired {
                    node: report.node,
                    critical: f.severity() >= Severity::Unknown || untrusting(f).is_some(),
                    message: if hint.is_empty() {
                        message
                    } else {
                        format!("{message} ({hint})")
                    },
                });
                continue;
            }
        }
        need.reasons.push(message);
    }
    (need, left)
}

fn effect(f: &Finding, only_current: bool) -> Effect {
    use Finding::*;
    match f {
        Missing { file, .. } | Corrupt { file, .. } => match file {
            FileKind::TrustBundle => Effect::Bundle(BundleNeed::Broken),
            FileKind::Cert | FileKind::Key => Effect::Leaf(LeafNeed::Broken),
            // A store stands for the PEM file it is made from: writing that file again
            // (a fresh leaf, or the bundle) writes the store too.
            FileKind::Keystore | FileKind::CombinedPem => Effect::Leaf(LeafNeed::Broken),
            FileKind::Truststore => Effect::Bundle(BundleNeed::Broken),
            FileKind::ProofCert => Effect::Leave(""),
        },
        // A store that does not open (wrong password) is the operator's to fix: writing it
        // again with the same password would not change what its readers see.
        StoreUnopened { .. } => Effect::Leave(
            "the password in its store_password_file does not open it, or it is not a keystore; fix the password file or remove the store",
        ),
        StoreDiffers { file, .. } => match file {
            FileKind::Truststore => Effect::Bundle(BundleNeed::Broken),
            _ => Effect::Leaf(LeafNeed::Broken),
        },
        EmptyBundle { .. } => Effect::Bundle(BundleNeed::Broken),
        // Writing the bundle again installs its anchors in the OS trust store again.
        OsTrustDiffers { .. } => Effect::Bundle(BundleNeed::Broken),
        // An extended CA: the bundle gets the generation's new certificate (the old one,
        // of the same key, is replaced: no chain carries a root).
        OutdatedCaCertificate { .. } => Effect::Bundle(BundleNeed::Broken),
        KeyMismatch { .. } | Expired { .. } | NotYetValid { .. } => Effect::Leaf(LeafNeed::Broken),
        Expiring { .. } | NameNotCovered { .. } => Effect::Leaf(LeafNeed::Due),
        // A replaced key keeps its owner, group and mode, but a world-readable one becomes
        // 0600 (docs/layout.md): a fresh key repairs it; a group's access is the operator's.
        KeyMode { mode, .. } if world_accessible(mode) => Effect::Leaf(LeafNeed::Due),
        KeyMode { .. } => Effect::Leave(
            "its group may read the key; set key_mode (e.g. \"0640\") if that is intended, or remove the group's access",
        ),
        LeafNotCurrent { .. } => Effect::Leaf(LeafNeed::Foreign),
        // A fresh leaf from the current CA is served with the current chain alone.
        RetiredCrossCertificate { .. } => Effect::Leaf(LeafNeed::Due),
        KeyInPublicFile { file, .. } => match file {
            FileKind::Cert => Effect::Leaf(LeafNeed::Due),
            FileKind::TrustBundle if only_current => Effect::BundleAndLeaf,
            _ => Effect::Leave("certroll rewrites only a bundle that trusts the current CA alone; remove the key from the file"),
        },
        LooseKeyCopy { .. } => Effect::Leave("certroll does not delete or change files it did not write"),
        MissingCurrentAnchor { .. } => Effect::Leave(
            "a routine run never rewrites a bundle that trusts other anchors; add the current root to it",
        ),
        AnchorExpiring { .. } => Effect::Leave("rotate the CA: certroll apply --rotate"),
        CaCertExpiring { .. } => Effect::Leave(
            "extend the CA (certroll ca extend) or rotate it (certroll apply --rotate)",
        ),
        Unreadable { .. } => Effect::Leave("fix the file's permissions, then run again"),
        LiveTls { .. } => {
            Effect::Leave("the server does not serve its files: reload it, then run verify --live again")
        }
        RestartPending { .. } => Effect::Leave(
            "restart the node's service when convenient: its pruned bundle is on disk but not loaded",
        ),
        Unreachable { .. }
        | StrayAnchor { .. }
        | ForeignAnchor { .. }
        | DuplicateAnchor { .. }
        | StaleAnchor { .. }
        | IrregularPhase { .. }
        | StoreUnavailable { .. }
        | ProofMissing { .. }
        | ProofInvalid { .. }
        | ProofStale { .. }
        | LiveTlsKeyOnly { .. }
        | LiveTlsTrust { .. } => Effect::Leave(""),
    }
}

/// A left-alone finding that means the bundle may not trust the current CA.
fn untrusting(f: &Finding) -> Option<BundleNeed> {
    match f {
        Finding::MissingCurrentAnchor { .. } => Some(BundleNeed::Untrusting),
        Finding::Unreadable {
            file: FileKind::TrustBundle,
            ..
        } => Some(BundleNeed::Untrusting),
        _ => None,
    }
}

fn worse_bundle(a: BundleNeed, b: BundleNeed) -> BundleNeed {
    let rank = |x: BundleNeed| match x {
        BundleNeed::Sound => 0,
        BundleNeed::Broken => 1,
        BundleNeed::Untrusting => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn worse_leaf(a: LeafNeed, b: LeafNeed) -> LeafNeed {
    let rank = |x: LeafNeed| match x {
        LeafNeed::Sound => 0,
        LeafNeed::Due => 1,
        LeafNeed::Foreign => 2,
        LeafNeed::Broken => 3,
        LeafNeed::Unknown => 4,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}
