//! What each plan action writes on a node: the bytes of bundles, chains and keys.
//!
//! One function serves both `apply` (which sends the files) and `plan --check` (which
//! simulates them), so the simulation proves exactly what is deployed. Where a leaf's key
//! is made is a [`Leaves`]: here ([`ControlKeys`], also what the simulation uses for
//! `key_source = "node"`, generating the key in memory) or on the node (the executor's). Bundles are
//! composed around the certificates certroll does not manage ([`BundleBase`]); leaves
//! of an intermediate CA are served with the intermediate. The trust-prune of a
//! cross-signed rotation also drops the cross certificate from the chain the node presents
//! ([`NodeBase::chain`], [`crate::chains`]), keeping its leaf and key.

use time::OffsetDateTime;

use crate::bundles::BundleBase;
use crate::inventory::{CaSpec, Node, NodePaths};
use crate::pki::{issue_node_leaf, CaCert, Leaf, PkiError};
use crate::plan::{Action, ChainMode};

pub mod forms;

/// Which file of a node's set for one CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    TrustBundle,
    Cert,
    Key,
    ProofCert,
    Keystore,
    Truststore,
    CombinedPem,
}

impl FileKind {
    /// Label for messages ("failed to write trust bundle ...").
    pub fn label(self) -> &'static str {
        match self {
            FileKind::TrustBundle => "trust bundle",
            FileKind::Cert => "certificate",
            FileKind::Key => "private key",
            FileKind::ProofCert => "proof-key certificate",
            FileKind::Keystore => "keystore",
            FileKind::Truststore => "truststore",
            FileKind::CombinedPem => "combined PEM",
        }
    }

    /// Files with a private key are 0600; everything else is public and 0644.
    pub fn mode(self) -> u32 {
        match self {
            FileKind::Key | FileKind::Keystore | FileKind::CombinedPem => 0o600,
            _ => 0o644,
        }
    }
}

/// One file change: write `data`, or remove the file when `data` is `None` (and
/// `node_key` is `None`).
#[derive(Clone, PartialEq, Eq)]
pub struct FileChange {
    pub kind: FileKind,
    pub path: String,
    pub data: Option<Vec<u8>>,
    /// The key file takes a key made on the node (`data` is then `None`).
    pub node_key: Option<PendingKey>,
    /// A keystore or combined PEM made on the node from the new version's certificate and
    /// key made there (`key_source = "node"`; `data` is then `None`).
    pub assemble: bool,
}

/// A key made on the node, waiting in its store: the pending directory and the public key
/// (SubjectPublicKeyInfo, DER) the node's request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingKey {
    pub pending: String,
    pub spki_der: Vec<u8>,
}

/// A leaf and where its key is.
pub struct LeafFiles {
    pub cert_pem: String,
    pub key: LeafKey,
}

/// A leaf's private key: its PEM (made here), or a key that stays on the node.
pub enum LeafKey {
    Pem(String),
    OnNode(PendingKey),
}

/// Where a step's leaves and their keys are made.
pub trait Leaves {
    /// A fresh leaf for `node` from generation `ca` of CA `spec`.
    fn leaf(
        &self,
        spec: &CaSpec,
        ca: &CaCert,
        node: &Node,
        now: OffsetDateTime,
    ) -> Result<LeafFiles, MaterialError>;
}

/// Keys made on the control host (and by the simulation, whatever `key_source` says).
pub struct ControlKeys;

impl Leaves for ControlKeys {
    fn leaf(
        &self,
        spec: &CaSpec,
        ca: &CaCert,
        node: &Node,
        now: OffsetDateTime,
    ) -> Result<LeafFiles, MaterialError> {
        let Leaf {
            cert_pem, key_pem, ..
        } = issue_node_leaf(spec, ca, node, now).map_err(MaterialError::pki(node))?;
        Ok(LeafFiles {
            cert_pem,
            key: LeafKey::Pem(key_pem),
        })
    }
}

impl std::fmt::Debug for FileChange {
    // Key material never reaches a log through Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileChange")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("bytes", &self.data.as_ref().map(Vec::len))
            .finish()
    }
}

/// The CA generations a step may need.
#[derive(Debug, Clone, Copy)]
pub struct Generations<'a> {
    pub current: &'a CaCert,
    /// The generation being rolled out (rotation only).
    pub next: Option<&'a CaCert>,
    /// The cross certificate, next signed by current, PEM (rotation only).
    pub cross: Option<&'a str>,
}

/// What a step builds on from the node's current files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeBase {
    /// The certificates of its bundle that certroll does not manage.
    pub bundle: BundleBase,
    /// Its certificate file as it is now, for a step that drops the cross certificate
    /// from it ([`reads_chain`]); `None` when not read or missing.
    pub chain: Option<Vec<u8>>,
    /// The password of the node's keystore and truststore, read from its
    /// `store_password_file` on the node (`None`: not read, or the node names none).
    pub store_password: Option<crate::stores::Password>,
}

impl NodeBase {
    /// The base of a simulated node (`plan --check`): nothing read, and the stores'
    /// password a fixed one, since the simulation opens only the stores it made itself.
    pub fn simulated() -> Self {
        NodeBase {
            store_password: Some(crate::stores::Password::new(
                crate::materials::forms::SIMULATION_PASSWORD,
            )),
            ..NodeBase::default()
        }
    }
}

impl From<BundleBase> for NodeBase {
    fn from(bundle: BundleBase) -> Self {
        NodeBase {
            bundle,
            chain: None,
            store_password: None,
        }
    }
}

/// Whether a step of `actions` under `chain` rewrites the node's chain from what it holds:
/// the trust-prune of a cross-signed rotation drops the cross certificate (the node's
/// verifiers all trust the new anchor by then), so the caller must read the node's
/// certificate file into [`NodeBase::chain`].
pub fn reads_chain(actions: &[Action], chain: ChainMode) -> bool {
    chain == ChainMode::CrossSigned && actions.contains(&Action::TrustPrune)
}

/// A trust bundle: the generations' anchors' PEM, concatenated in order.
pub fn bundle_pem(roots: &[&CaCert]) -> Vec<u8> {
    roots
        .iter()
        .flat_map(|r| r.anchor().trim_end().bytes().chain(std::iter::once(b'\n')))
        .collect()
}

/// A leaf followed by its generation's chain (the intermediate, if any) and `extra`.
fn chain_of(leaf_pem: &str, ca: &CaCert, extra: Option<&str>) -> Vec<u8> {
    let mut out = leaf_pem.trim_end().to_string() + "\n";
    for part in ca.chain_extra().into_iter().chain(extra) {
        out.push_str(part.trim_end());
        out.push('\n');
    }
    out.into_bytes()
}

/// Sets the key file (its bytes, or the key waiting on the node) and the certificate file
/// (the leaf followed by `ca`'s chain and `extra`) of `leaf`; returns the chain written.
fn set_leaf(
    set: &mut impl FnMut(FileKind, &str, Option<Vec<u8>>, Option<PendingKey>),
    paths: &NodePaths,
    leaf: LeafFiles,
    ca: &CaCert,
    extra: Option<&str>,
) -> Vec<u8> {
    let chain_pem = chain_of(&leaf.cert_pem, ca, extra);
    match leaf.key {
        LeafKey::Pem(p) => set(FileKind::Key, &paths.key, Some(p.into_bytes()), None),
        LeafKey::OnNode(k) => set(FileKind::Key, &paths.key, None, Some(k)),
    }
    set(FileKind::Cert, &paths.cert, Some(chain_pem.clone()), None);
    chain_pem
}

/// Why the files of a step could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("{action} on node {node} needs the next CA generation, which does not exist yet")]
    NoNextGeneration { node: String, action: &'static str },
    #[error("failed to issue a leaf for node {node}")]
    Pki {
        node: String,
        #[source]
        source: PkiError,
    },
    /// Making the key on the node failed (`key_source = "node"`): the message says how.
    #[error("{message}")]
    NodeKey { message: String, transient: bool },
    /// A keystore, truststore or combined PEM could not be made.
    #[error("failed to make the {what} {path} of node {node}: {source}")]
    Store {
        node: String,
        what: &'static str,
        path: String,
        #[source]
        source: crate::stores::StoreError,
    },
}

impl MaterialError {
    /// Maps a failure to issue `node`'s leaf.
    pub(crate) fn pki(node: &Node) -> impl FnOnce(PkiError) -> Self + '_ {
        |source| MaterialError::Pki {
            node: node.name.clone(),
            source,
        }
    }
}

/// The file changes of `actions` on `node` for CA `spec`, in order, keys made here. Later
/// changes to the same file replace earlier ones. Bundles keep the foreign certificates of
/// `base`; a chain the step rewrites is `base`'s, or the one an earlier action wrote.
pub fn changes_for(
    actions: &[Action],
    node: &Node,
    spec: &CaSpec,
    gens: Generations<'_>,
    chain: ChainMode,
    base: &NodeBase,
    now: OffsetDateTime,
) -> Result<Vec<FileChange>, MaterialError> {
    changes_with(actions, node, spec, gens, chain, base, now, &ControlKeys)
}

/// [`changes_for`] with the leaves (and keys) made by `leaves`.
#[allow(clippy::too_many_arguments)]
pub fn changes_with(
    actions: &[Action],
    node: &Node,
    spec: &CaSpec,
    gens: Generations<'_>,
    chain: ChainMode,
    base: &NodeBase,
    now: OffsetDateTime,
    leaves: &dyn Leaves,
) -> Result<Vec<FileChange>, MaterialError> {
    let paths = node.paths(&spec.name);
    let mut out: Vec<FileChange> = Vec::new();
    let mut set = |kind: FileKind, path: &str, data: Option<Vec<u8>>, node_key| {
        out.retain(|c| c.path != path);
        out.push(FileChange {
            kind,
            path: path.to_string(),
            data,
            node_key,
            assemble: false,
        });
    };
    let next = |action: Action| {
        gens.next.ok_or(MaterialError::NoNextGeneration {
            node: node.name.clone(),
            action: action.as_str(),
        })
    };
    let leaf = |ca: &CaCert| leaves.leaf(spec, ca, node, now);
    // The chain the node presents at this point of the step.
    let mut presented = base.chain.clone();
    for &action in actions {
        match action {
            Action::Install | Action::Renew | Action::LeafRestore => {
                if action == Action::Install {
                    set(
                        FileKind::TrustBundle,
                        &paths.trust_bundle,
                        Some(base.bundle.compose(&[gens.current.anchor()])),
                        None,
                    );
                }
                presented = Some(set_leaf(
                    &mut set,
                    &paths,
                    leaf(gens.current)?,
                    gens.current,
                    None,
                ));
            }
            Action::TrustAdd | Action::TrustRestore => {
                let n = next(action)?;
                set(
                    FileKind::TrustBundle,
                    &paths.trust_bundle,
                    Some(base.bundle.compose(&[gens.current.anchor(), n.anchor()])),
                    None,
                );
                if let (Some(p), Some(cross)) = (&paths.proof_cert, gens.cross) {
                    set(
                        FileKind::ProofCert,
                        p,
                        Some(cross.as_bytes().to_vec()),
                        None,
                    );
                }
            }
            Action::LeafSwap => {
                let n = next(action)?;
                let cross = gens.cross.filter(|_| chain == ChainMode::CrossSigned);
                presented = Some(set_leaf(&mut set, &paths, leaf(n)?, n, cross));
            }
            Action::TrustPrune | Action::TrustDropNew => {
                let keep = if action == Action::TrustPrune {
                    next(action)?
                } else {
                    gens.current
                };
                set(
                    FileKind::TrustBundle,
                    &paths.trust_bundle,
                    Some(base.bundle.compose(&[keep.anchor()])),
                    None,
                );
                if let Some(p) = &paths.proof_cert {
                    set(FileKind::ProofCert, p, None, None);
                }
                // Every verifier of the node trusts the new anchor now (the prune's gate):
                // the cross certificate has no use left, and the old generation retires
                // when the rotation completes. The leaf and the key stay.
                let cross = gens.cross.and_then(crate::chains::first_der);
                if let (true, Some(cross), Some(now)) =
                    (reads_chain(&[action], chain), cross, presented.as_deref())
                {
                    if let Some(trimmed) = crate::chains::without(now, &cross) {
                        set(FileKind::Cert, &paths.cert, Some(trimmed.clone()), None);
                        presented = Some(trimmed);
                    }
                }
            }
        }
    }
    crate::materials::forms::add_forms(&mut out, node, &paths, base)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::InventoryBuilder;
    use crate::pki::{cross_sign, new_ca, parse_pem_certs};

    fn data(changes: &[FileChange], path: &str) -> Option<Vec<u8>> {
        changes
            .iter()
            .find(|c| c.path == path)
            .and_then(|c| c.data.clone())
    }

    /// Issue 20, item 5: the trust-prune of a cross-signed rotation rewrites the chain
    /// the leaf swap wrote as the leaf alone, and leaves the key (and the leaf) alone.
    #[test]
    fn a_cross_signed_prune_drops_the_cross_certificate_and_keeps_leaf_and_key() {
        let inv = InventoryBuilder::new().link("lb1", "app1").build();
        let (spec, node) = (&inv.cas[0], &inv.nodes[inv.node_id("app1").unwrap()]);
        let now = OffsetDateTime::now_utc();
        let (g1, g2) = (new_ca(spec, 1, now).unwrap(), new_ca(spec, 2, now).unwrap());
        let cross = cross_sign(spec, &g2, &g1, now).unwrap();
        let gens = Generations {
            current: &g1,
            next: Some(&g2),
            cross: Some(&cross),
        };
        let paths = node.paths(&spec.name);
        let cross_signed = ChainMode::CrossSigned;
        let none = NodeBase::default();
        let swap = changes_for(
            &[Action::LeafSwap],
            node,
            spec,
            gens,
            cross_signed,
            &none,
            now,
        );
        let swapped = data(&swap.unwrap(), &paths.cert).unwrap();
        assert_eq!(parse_pem_certs(&swapped).unwrap().len(), 2, "[leaf, cross]");

        let base = NodeBase {
            chain: Some(swapped.clone()),
            ..NodeBase::default()
        };
        let prune = changes_for(
            &[Action::TrustPrune],
            node,
            spec,
            gens,
            cross_signed,
            &base,
            now,
        )
        .unwrap();
        let trimmed = parse_pem_certs(&data(&prune, &paths.cert).unwrap()).unwrap();
        assert_eq!(trimmed.len(), 1);
        assert_eq!(trimmed[0].der, parse_pem_certs(&swapped).unwrap()[0].der);
        assert!(prune.iter().all(|c| c.path != paths.key), "the key stays");

        // Within one step too (a rollback's simulation starts from such a list).
        let both = changes_for(
            &[Action::LeafSwap, Action::TrustPrune],
            node,
            spec,
            gens,
            cross_signed,
            &none,
            now,
        )
        .unwrap();
        assert_eq!(
            parse_pem_certs(&data(&both, &paths.cert).unwrap())
                .unwrap()
                .len(),
            1
        );

        // Plain chains carry no cross certificate: the prune writes the bundle only.
        let plain = changes_for(
            &[Action::TrustPrune],
            node,
            spec,
            gens,
            ChainMode::Plain,
            &base,
            now,
        )
        .unwrap();
        assert!(plain.iter().all(|c| c.path != paths.cert));
        // A chain without the cross certificate (a resumed prune) is not rewritten.
        let done = NodeBase {
            chain: data(&prune, &paths.cert),
            ..NodeBase::default()
        };
        let again = changes_for(
            &[Action::TrustPrune],
            node,
            spec,
            gens,
            cross_signed,
            &done,
            now,
        )
        .unwrap();
        assert!(again.iter().all(|c| c.path != paths.cert));
    }
}
