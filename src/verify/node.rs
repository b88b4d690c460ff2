//! Checking one node's files for one CA: parse, key match, validity, names, generations
//! of anchors and leaf, key file mode, and the node's rollover phase.

use rcgen::PublicKeyData;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::collect::{CaFiles, FileState};
use super::finding::{mode_text, Finding};
use super::generations::{summary, Known};
use super::proof::check_proof;
use super::report::{rfc3339, Generation, NodeReport, Phase, StoreChecked};
use crate::inventory::{Node, NodeId, NodePaths};
use crate::materials::FileKind;
use crate::pki::{parse_pem_certs, CertInfo};

#[path = "node_stores.rs"]
mod node_stores;

/// What the node check needs besides the files.
pub struct NodeContext<'a> {
    pub id: NodeId,
    pub node: &'a Node,
    pub paths: NodePaths,
    pub known: &'a Known,
    /// The node is the server of at least one link (clients check its name).
    pub serves: bool,
    pub now: OffsetDateTime,
    pub warn_within: Duration,
    /// Leaves expiring within this (at most `warn_within`) are critical.
    pub critical_within: Duration,
    /// `bundle_foreign = "keep"`: anchors of no generation are foreign, not stray.
    pub keeps_foreign: bool,
}

/// The parsed files of a node, kept for the link checks.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub anchors: Vec<CertInfo>,
    pub chain: Vec<CertInfo>,
    /// Labels of the known anchors in the bundle; `None` if the bundle is unusable.
    pub trusts: Option<Vec<Generation>>,
    /// Label of the leaf's issuer; `None` if there is no usable leaf.
    pub leaf_gen: Option<Generation>,
}

/// Checks one node's files. Returns the report and what was parsed.
pub fn check_node(cx: &NodeContext<'_>, files: &CaFiles) -> (NodeReport, Parsed) {
    let mut findings = Vec::new();
    let mut parsed = Parsed::default();
    let bundle = certs(
        &files.bundle,
        FileKind::TrustBundle,
        &cx.paths.trust_bundle,
        &mut findings,
    );
    if let Some(anchors) = bundle {
        if anchors.is_empty() {
            findings.push(Finding::EmptyBundle {
                path: cx.paths.trust_bundle.clone(),
            });
        } else {
            parsed.trusts = Some(check_anchors(cx, &anchors, &mut findings));
        }
        parsed.anchors = anchors;
    }
    let chain = certs(&files.cert, FileKind::Cert, &cx.paths.cert, &mut findings);
    match chain {
        Some(c) if c.is_empty() => findings.push(Finding::Corrupt {
            file: FileKind::Cert,
            path: cx.paths.cert.clone(),
            detail: "it holds no certificate".into(),
        }),
        Some(c) => {
            parsed.leaf_gen = Some(check_leaf(cx, &c[0], &mut findings));
            check_retired_cross(cx, &c, &mut findings);
            check_key(cx, files, Some(&c[0]), &mut findings);
            parsed.chain = c;
        }
        None => {}
    }
    if parsed.chain.is_empty() {
        // Without a usable certificate the key is still checked: missing, unreadable, corrupt.
        check_key(cx, files, None, &mut findings);
    }
    check_key_mode(cx, files, &mut findings);
    check_secrets(cx, files, &mut findings);
    node_stores::check_stores(cx, files, &parsed, &mut findings);
    if let (Some(path), Some(state)) = (&cx.paths.proof_cert, &files.proof) {
        let trusts = parsed.trusts.as_deref().unwrap_or_default();
        let both = trusts.contains(&Generation::Current) && trusts.contains(&Generation::Next);
        check_proof(path, state, cx.known, both, &mut findings);
    }
    let phase = phase(cx, &parsed, &mut findings);
    let report = NodeReport {
        node: cx.id,
        name: cx.node.name.clone(),
        phase,
        anchors: parsed
            .anchors
            .iter()
            .map(|a| summary(cx.known, a, true))
            .collect(),
        leaf: parsed.chain.first().map(|l| summary(cx.known, l, false)),
        chain_extra: parsed.chain.len().saturating_sub(1),
        key_mode: files.key_mode.clone().ok().flatten(),
        stores: files
            .stores
            .iter()
            .map(|s| StoreChecked {
                file: s.kind,
                path: s.path.clone(),
                opened_on: if s.on_node { "node" } else { "control" },
            })
            .collect(),
        findings,
    };
    (report, parsed)
}

/// Parses a certificate file; problems become findings and give `None`.
fn certs(
    state: &FileState,
    file: FileKind,
    path: &str,
    out: &mut Vec<Finding>,
) -> Option<Vec<CertInfo>> {
    let bytes = match state {
        // Only a key made on the node is held as its public key; never a certificate file.
        FileState::Present(b) | FileState::PublicKey(b) => b,
        FileState::Missing => {
            out.push(Finding::Missing {
                file,
                path: path.into(),
            });
            return None;
        }
        FileState::Unreadable(message) => {
            out.push(Finding::Unreadable {
                file,
                path: path.into(),
                message: message.clone(),
            });
            return None;
        }
    };
    match parse_pem_certs(bytes) {
        Ok(c) => Some(c),
        Err(detail) => {
            out.push(Finding::Corrupt {
                file,
                path: path.into(),
                detail,
            });
            None
        }
    }
}

/// Labels, duplicates, strays, stale and expiring anchors.
fn check_anchors(
    cx: &NodeContext<'_>,
    anchors: &[CertInfo],
    out: &mut Vec<Finding>,
) -> Vec<Generation> {
    let mut labels = Vec::new();
    for (i, a) in anchors.iter().enumerate() {
        if anchors[..i].iter().any(|b| b.der == a.der) {
            out.push(Finding::DuplicateAnchor {
                subject: a.subject.clone(),
            });
            continue;
        }
        match cx.known.anchor(a) {
            Some(k) => {
                labels.push(k.label);
                if k.label == Generation::Previous {
                    out.push(Finding::StaleAnchor {
                        subject: a.subject.clone(),
                        generation: k.number,
                    });
                }
            }
            // Without a store every anchor would look stray; the CA-level finding says so.
            None if cx.known.is_empty() => {}
            None if cx.keeps_foreign => out.push(Finding::ForeignAnchor {
                subject: a.subject.clone(),
            }),
            None => out.push(Finding::StrayAnchor {
                subject: a.subject.clone(),
            }),
        }
        if a.not_after <= cx.now.saturating_add(cx.warn_within) {
            out.push(Finding::AnchorExpiring {
                subject: a.subject.clone(),
                not_after: rfc3339(a.not_after),
                expired: a.not_after <= cx.now,
            });
        }
    }
    out.extend(super::ca_certs::outdated(cx.known, anchors));
    if cx.known.get(Generation::Next).is_none() {
        if let Some(cur) = cx.known.get(Generation::Current) {
            if !labels.contains(&Generation::Current) {
                out.push(Finding::MissingCurrentAnchor {
                    generation: cur.number,
                });
            }
        }
    }
    labels
}

/// Validity, names and issuer of the leaf; returns the issuer's generation.
fn check_leaf(cx: &NodeContext<'_>, leaf: &CertInfo, out: &mut Vec<Finding>) -> Generation {
    if leaf.not_before > cx.now {
        out.push(Finding::NotYetValid {
            not_before: rfc3339(leaf.not_before),
        });
    } else if leaf.not_after <= cx.now {
        out.push(Finding::Expired {
            not_after: rfc3339(leaf.not_after),
        });
    } else if leaf.not_after <= cx.now.saturating_add(cx.warn_within) {
        out.push(Finding::Expiring {
            not_after: rfc3339(leaf.not_after),
            days_left: (leaf.not_after - cx.now).whole_days(),
            critical: leaf.not_after <= cx.now.saturating_add(cx.critical_within),
        });
    }
    let missing: Vec<String> = cx
        .node
        .sans()
        .into_iter()
        .filter(|want| !leaf.sans.iter().any(|have| name_matches(have, want)))
        .collect();
    if !missing.is_empty() {
        let breaks_links = cx.serves && missing.iter().any(|m| m == cx.node.server_name());
        out.push(Finding::NameNotCovered {
            missing,
            breaks_links,
        });
    }
    let (label, _) = Known::label(cx.known.issuer_of(leaf));
    let foreign = matches!(label, Generation::Previous)
        || (label == Generation::Unknown && !cx.known.is_empty());
    if foreign {
        out.push(Finding::LeafNotCurrent {
            issuer: leaf.issuer.clone(),
        });
    }
    label
}

/// Cross certificates of a retired generation in the chain: a certificate after the leaf
/// that carries a generation's key without being that generation's own certificate (a
/// cross certificate, new-with-old), signed by an archived generation. It bridged a
/// rotation that is over; the prune of a cross-signed rotation drops it.
fn check_retired_cross(cx: &NodeContext<'_>, chain: &[CertInfo], out: &mut Vec<Finding>) {
    for c in chain.iter().skip(1) {
        let Some(certified) = cx.known.anchor(c) else {
            continue;
        };
        if certified.der == c.der {
            continue; // the generation's own certificate (an intermediate's chain)
        }
        match cx.known.issuer_of(c) {
            Some(signer)
                if signer.label == Generation::Previous && signer.number != certified.number =>
            {
                out.push(Finding::RetiredCrossCertificate {
                    path: cx.paths.cert.clone(),
                    subject: c.subject.clone(),
                    generation: signer.number,
                });
            }
            _ => {}
        }
    }
}

/// Whether SAN `have` covers name `want` (case-insensitive; `*.` covers one label).
pub fn name_matches(have: &str, want: &str) -> bool {
    let (have, want) = (have.to_ascii_lowercase(), want.to_ascii_lowercase());
    if have == want {
        return true;
    }
    match (have.strip_prefix("*."), want.split_once('.')) {
        (Some(suffix), Some((label, rest))) => !label.is_empty() && rest == suffix,
        _ => false,
    }
}

/// Private keys in public files and readable copies of keys (see [`crate::secrets`]).
fn check_secrets(cx: &NodeContext<'_>, files: &CaFiles, out: &mut Vec<Finding>) {
    let public = [
        (
            FileKind::TrustBundle,
            Some(&cx.paths.trust_bundle),
            Some(&files.bundle),
        ),
        (FileKind::Cert, Some(&cx.paths.cert), Some(&files.cert)),
        (
            FileKind::ProofCert,
            cx.paths.proof_cert.as_ref(),
            files.proof.as_ref(),
        ),
    ];
    for (file, path, state) in public {
        if let (Some(path), Some(FileState::Present(bytes))) = (path, state) {
            if crate::secrets::holds_private_key(bytes) {
                out.push(Finding::KeyInPublicFile {
                    file,
                    path: path.clone(),
                    mode: None,
                });
            }
        }
    }
    for (path, mode) in &files.loose_copies {
        out.push(Finding::LooseKeyCopy {
            path: path.clone(),
            mode: mode_text(*mode),
        });
    }
}

/// The key must be PKCS#8 PEM and its public key must be the leaf's (when there is one).
fn check_key(
    cx: &NodeContext<'_>,
    files: &CaFiles,
    leaf: Option<&CertInfo>,
    out: &mut Vec<Finding>,
) {
    let path = &cx.paths.key;
    let bytes = match &files.key {
        FileState::Present(b) => b,
        FileState::PublicKey(_) => &Vec::new(),
        FileState::Missing => {
            return out.push(Finding::Missing {
                file: FileKind::Key,
                path: path.clone(),
            });
        }
        FileState::Unreadable(message) => {
            return out.push(Finding::Unreadable {
                file: FileKind::Key,
                path: path.clone(),
                message: message.clone(),
            });
        }
    };
    // The key's text is never put in a finding: only whether it parses and matches. A
    // key made on the node was checked there: only its public key is here.
    let spki = match &files.key {
        FileState::PublicKey(spki) if !spki.is_empty() => Some(spki.clone()),
        FileState::PublicKey(_) => None,
        _ => std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| rcgen::KeyPair::from_pem(text).ok())
            .map(|pair| pair.subject_public_key_info()),
    };
    let Some(spki) = spki else {
        return out.push(Finding::Corrupt {
            file: FileKind::Key,
            path: path.clone(),
            detail: "not a PKCS#8 PEM private key of a supported algorithm".into(),
        });
    };
    let Some(leaf) = leaf else {
        return;
    };
    if hex::encode(Sha256::digest(&spki)) != leaf.spki_sha256 {
        out.push(Finding::KeyMismatch {
            key: path.clone(),
            cert: cx.paths.cert.clone(),
        });
    }
}

fn check_key_mode(cx: &NodeContext<'_>, files: &CaFiles, out: &mut Vec<Finding>) {
    match &files.key_mode {
        // A mode the inventory sets (`key_mode`, e.g. 0640 for a group) is the operator's.
        Ok(Some(mode)) if cx.node.files.key_mode == Some(*mode & 0o777) && *mode & 0o007 == 0 => {}
        Ok(Some(mode)) if mode & 0o077 != 0 => out.push(Finding::KeyMode {
            path: cx.paths.key.clone(),
            mode: mode_text(*mode),
        }),
        // Missing keys are reported by the key check; an unreadable mode is reported
        // only when the key itself was read (else the read error says it all).
        Err(message) if matches!(files.key, FileState::Present(_) | FileState::PublicKey(_)) => out
            .push(Finding::Unreadable {
                file: FileKind::Key,
                path: cx.paths.key.clone(),
                message: message.clone(),
            }),
        _ => {}
    }
}

/// The node's phase from what it trusts and presents.
fn phase(cx: &NodeContext<'_>, parsed: &Parsed, out: &mut Vec<Finding>) -> Phase {
    let (Some(trusts), Some(leaf)) = (&parsed.trusts, parsed.leaf_gen) else {
        return Phase::Unknown;
    };
    if cx.known.is_empty() {
        return Phase::Unknown;
    }
    let has = |g| trusts.contains(&g);
    let (cur, next) = (has(Generation::Current), has(Generation::Next));
    if cx.known.get(Generation::Next).is_none() {
        let clean = leaf == Generation::Current && cur && !has(Generation::Previous);
        return if clean { Phase::Current } else { Phase::Stale };
    }
    let phase = match (leaf, cur, next) {
        (Generation::Current, true, false) => Phase::Old,
        (Generation::Current, true, true) => Phase::TrustingBoth,
        (Generation::Next, true, _) => Phase::Switched,
        (Generation::Next, false, true) => Phase::Pruned,
        _ => Phase::Irregular,
    };
    if phase == Phase::Irregular {
        let names: Vec<String> = trusts.iter().map(|g| cx.known.name(*g)).collect();
        out.push(Finding::IrregularPhase {
            detail: format!(
                "presents a {} leaf while trusting {{{}}}, a state no rollover step produces",
                cx.known.name(leaf),
                names.join(", ")
            ),
        });
    }
    phase
}
