//! The real work of a step on a fleet: make the files with [`crate::materials`], send them
//! through the node's transport, reload, confirm. A bundle is composed from the node's
//! current one, so the certificates certroll does not manage stay ([`crate::bundles`]); the
//! trust-prune of a cross-signed rotation reads the node's chain to drop the cross
//! certificate from it ([`crate::chains`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::node_keys::NodeKeys;
use super::step::{apply_and_confirm, files_match, reconfirm};
use super::{FileHash, FileOp, Prepared, StepError, StepWork};
use crate::bundles::{managed_ders, BundleBase};
use crate::confirm::{confirm_tls, identity, Expectation, Throwaways, TlsConfirmError};
use crate::inventory::KeySource;
use crate::inventory::{BundleForeign, CaId, Inventory, Node, NodeId};
use crate::layout::{self, LayoutError};
use crate::materials::{
    changes_with, reads_chain, ControlKeys, Generations, Leaves, MaterialError, NodeBase,
};
use crate::pki::CaCert;
use crate::plan::restarts::step_reloads;
use crate::plan::{ChainMode, Plan, Step, StepId};

/// What the journal says of a trust-prune written without a restart: the node's running
/// process still trusts the old anchor; `verify` reports the node as pending.
pub const RESTART_PENDING: &str =
    "written without a restart (restart_on_prune = false): restart pending";
use crate::transport::{Connector, Transport};

/// The CA material a run works with, loaded from the local CA store.
#[derive(Debug, Clone)]
pub struct RunMaterial {
    pub current: CaCert,
    pub next: Option<CaCert>,
    /// Cross certificate (next signed by current), PEM.
    pub cross: Option<String>,
}

/// [`StepWork`] over real nodes.
pub struct FleetWork<'a> {
    inv: &'a Inventory,
    ca: CaId,
    material: RunMaterial,
    chain: ChainMode,
    connector: Arc<dyn Connector>,
    backup_tag: String,
    /// Hashes found on the node by `files_match`, used by `reconfirm`.
    rechecked: Mutex<HashMap<StepId, Vec<FileHash>>>,
    /// Each node's last step of the plan: its script also removes old versions.
    last_steps: HashSet<StepId>,
    /// Nodes whose old versions a last step removed in this process.
    cleaned: Mutex<HashSet<NodeId>>,
    /// What the built-in TLS confirm of each confirmed step proved.
    proofs: Mutex<HashMap<StepId, String>>,
    /// Throwaway client certificates of the run's generations, for servers that name no
    /// CA: made in memory with the keys this run unlocked, never written anywhere.
    throwaways: Throwaways,
}

impl<'a> FleetWork<'a> {
    pub fn new(
        inv: &'a Inventory,
        ca: CaId,
        material: RunMaterial,
        chain: ChainMode,
        connector: Arc<dyn Connector>,
        backup_tag: &str,
    ) -> Self {
        let issuers = std::iter::once(&material.current)
            .chain(material.next.as_ref())
            .cloned()
            .collect();
        FleetWork {
            throwaways: Throwaways::new(&inv.cas[ca].name, issuers),
            inv,
            ca,
            material,
            chain,
            connector,
            backup_tag: backup_tag.to_string(),
            rechecked: Mutex::new(HashMap::new()),
            last_steps: HashSet::new(),
            cleaned: Mutex::new(HashSet::new()),
            proofs: Mutex::new(HashMap::new()),
        }
    }

    /// Makes each node's last step of `plan` remove the versions of its files the run no
    /// longer needs, in the same remote command (so a complete run needs no extra round).
    pub fn clean_at_last_steps(mut self, plan: &Plan) -> Self {
        let mut last: HashMap<NodeId, StepId> = HashMap::new();
        for s in &plan.steps {
            let id = last.entry(s.node).or_insert(s.id);
            *id = (*id).max(s.id);
        }
        self.last_steps = last.into_values().collect();
        self
    }

    /// Whether `step` is a trust-prune written without a restart (`restart_on_prune = false`).
    fn deferred(&self, step: &Step) -> bool {
        !step_reloads(self.inv, step)
    }

    fn transport(&self, step: &Step) -> Result<Arc<dyn Transport>, StepError> {
        Ok(self.connector.connect(step.node)?)
    }

    fn ca_name(&self) -> &str {
        &self.inv.cas[self.ca].name
    }

    /// certroll's own TLS confirm of a node with `tls_address`, after its `confirm`
    /// command: the node must serve the certificate on its disk and, if it asks for
    /// client certificates, name exactly the anchors of the bundle on its disk among the
    /// generations of this run — or, if it asks with no CA name at all, accept a throwaway
    /// client certificate of each generation its bundle holds and refuse one of each it
    /// no longer holds (where the run holds that generation's key). The node's own
    /// certificate and key are offered as client certificate, so a server that requires
    /// one sees a complete handshake. What the handshakes proved is kept for the journal
    /// ([`StepWork::proof`]).
    fn confirm_tls(&self, t: &dyn Transport, node: &Node, step: StepId) -> Result<(), StepError> {
        let Some(target) = &node.tls else {
            return Ok(());
        };
        let paths = node.paths(self.ca_name());
        let cert = t.read_file(&paths.cert)?;
        let bundle = t.read_file(&paths.trust_bundle)?;
        // The node's own pair, offered if the server asks for a client certificate; a key
        // made on the node is never read (the server then sees no client certificate).
        let key = match node.files.key_source {
            KeySource::Control => t.read_file(&paths.key)?,
            KeySource::Node => None,
        };
        let me = cert
            .as_deref()
            .zip(key.as_deref())
            .and_then(|(c, k)| identity(c, k));
        let generations: Vec<&[u8]> = std::iter::once(&self.material.current)
            .chain(self.material.next.as_ref())
            .map(|c| c.cert_der.as_slice())
            .collect();
        let expected = Expectation::from_files(
            cert.as_deref().map(|c| (paths.cert.as_str(), c)),
            bundle.as_deref().map(|b| (paths.trust_bundle.as_str(), b)),
            &generations,
        )
        .map_err(|e| {
            StepError::confirm_failed(format!("failed to confirm TLS of node {}: {e}", node.name))
        })?;
        let proof = confirm_tls(t, node, target, &expected, me.as_ref(), &self.throwaways)
            .map_err(|e| match e {
                TlsConfirmError::Transport(e) => StepError::from(e),
                e @ TlsConfirmError::NotConfirmed { .. } => {
                    StepError::confirm_failed(e.to_string())
                }
                e @ TlsConfirmError::Interrupted { .. } => {
                    StepError::new(super::StepErrorKind::StopRun, e.to_string())
                }
            })?;
        // Invariant: the mutex is never held across a panic-prone call.
        if let Ok(mut proofs) = self.proofs.lock() {
            proofs.insert(step, format!("TLS at {}: {proof}", target.address()));
        }
        Ok(())
    }

    /// What the step builds on from the node's files: the foreign certificates of its
    /// bundle, and its chain when the step drops the cross certificate from it.
    fn node_base(&self, step: &Step) -> Result<NodeBase, StepError> {
        let mut base = NodeBase::from(self.bundle_base(step)?);
        if reads_chain(&step.actions, self.chain) && self.material.cross.is_some() {
            let paths = self.inv.nodes[step.node].paths(self.ca_name());
            base.chain = self.transport(step)?.read_file(&paths.cert)?;
        }
        // The stores' password, from the node's own file, in a read before the step's
        // write (docs/layout.md#other-forms); it is never journaled or shown.
        let node = &self.inv.nodes[step.node];
        let paths = node.paths(self.ca_name());
        if let (Some(file), true) = (
            node.store_password_file(self.ca_name()),
            paths.keystore.is_some() || paths.truststore.is_some(),
        ) {
            let t = self.transport(step)?;
            base.store_password = Some(layout::store_password(t.as_ref(), node, &file).map_err(
                |e| match e {
                    LayoutError::Transport(e) => StepError::from(e),
                    e => StepError::permanent(e.to_string()),
                },
            )?);
        }
        Ok(base)
    }

    /// The foreign certificates of the node's current bundle (none with `bundle_foreign = "drop"`).
    fn bundle_base(&self, step: &Step) -> Result<BundleBase, StepError> {
        let spec = &self.inv.cas[self.ca];
        let writes_bundle = step.actions.iter().any(|a| {
            matches!(
                a,
                crate::plan::Action::Install
                    | crate::plan::Action::TrustAdd
                    | crate::plan::Action::TrustPrune
            )
        });
        if spec.bundle_foreign == BundleForeign::Drop || !writes_bundle {
            return Ok(BundleBase::default());
        }
        let paths = self.inv.nodes[step.node].paths(&spec.name);
        let Some(current) = self.transport(step)?.read_file(&paths.trust_bundle)? else {
            return Ok(BundleBase::default());
        };
        let m = &self.material;
        let gens: Vec<&CaCert> = std::iter::once(&m.current).chain(m.next.as_ref()).collect();
        let managed = managed_ders(&gens, m.cross.as_deref().as_slice());
        Ok(BundleBase::from_current(&current, &managed))
    }
}

impl FleetWork<'_> {
    /// Once the run is complete: removes from every node in `nodes` what the run no longer
    /// needs (earlier versions of its files, so old private keys, beyond `keep_backups`),
    /// with up to `parallel` nodes at a time; nodes whose last step did it already in this
    /// process are skipped (a resumed run cleans the others). Returns one message per node
    /// that failed.
    pub fn finish(&self, nodes: &[NodeId], parallel: usize) -> Vec<String> {
        let done = self.cleaned.lock().map(|c| c.clone()).unwrap_or_default();
        let nodes: Vec<NodeId> = nodes
            .iter()
            .copied()
            .filter(|n| !done.contains(n))
            .collect();
        let nodes = nodes.as_slice();
        let next = AtomicUsize::new(0);
        let failures = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..parallel.clamp(1, nodes.len().max(1)) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&id) = nodes.get(i) else { break };
                    let node = &self.inv.nodes[id];
                    let done = self
                        .connector
                        .connect(id)
                        .map_err(LayoutError::from)
                        .and_then(|t| layout::cleanup(t.as_ref(), node, self.ca_name()));
                    if let Err(e) = done {
                        // Invariant: the mutex is never held across a panic-prone call.
                        if let Ok(mut f) = failures.lock() {
                            f.push(e.to_string());
                        }
                    }
                });
            }
        });
        let mut out = failures.into_inner().unwrap_or_default();
        out.sort();
        out
    }
}

impl StepWork for FleetWork<'_> {
    fn prepare(&self, step: &Step) -> Result<Prepared, StepError> {
        let node = &self.inv.nodes[step.node];
        let gens = Generations {
            current: &self.material.current,
            next: self.material.next.as_ref(),
            cross: self.material.cross.as_deref(),
        };
        let spec = &self.inv.cas[self.ca];
        let base = self.node_base(step)?;
        let transport;
        let node_keys;
        let leaves: &dyn Leaves = match node.files.key_source {
            KeySource::Control => &ControlKeys,
            KeySource::Node => {
                transport = self.transport(step)?;
                node_keys = NodeKeys {
                    transport: transport.as_ref(),
                };
                &node_keys
            }
        };
        let changes = changes_with(
            &step.actions,
            node,
            spec,
            gens,
            self.chain,
            &base,
            OffsetDateTime::now_utc(),
            leaves,
        )
        .map_err(|e| match e {
            MaterialError::NodeKey {
                message,
                transient: true,
            } => StepError::transient(message),
            e => StepError::permanent(crate::error::chain(&e)),
        })?;
        let ops = changes
            .into_iter()
            .map(|c| match (c.data, c.node_key) {
                (None, None) if c.assemble => FileOp::Assemble {
                    path: c.path,
                    what: c.kind.label().to_string(),
                },
                (Some(data), _) => FileOp::Write {
                    path: c.path,
                    data,
                    mode: c.kind.mode(),
                    what: c.kind.label().to_string(),
                },
                (None, Some(k)) => FileOp::NodeKey {
                    path: c.path,
                    pending: k.pending,
                    spki_sha256: crate::transport::sha256_hex(&k.spki_der),
                    what: c.kind.label().to_string(),
                },
                (None, None) => FileOp::Remove {
                    path: c.path,
                    what: c.kind.label().to_string(),
                },
            })
            .collect();
        Ok(Prepared { ops })
    }

    fn apply(&self, step: &Step, prepared: &Prepared) -> Result<(), StepError> {
        let t = self.transport(step)?;
        let told = super::changes::node_for(self.inv, step);
        let node = told.as_ref().unwrap_or(&self.inv.nodes[step.node]);
        let last = self.last_steps.contains(&step.id);
        apply_and_confirm(
            t.as_ref(),
            node,
            self.ca_name(),
            &prepared.ops,
            Some(&self.backup_tag),
            last,
        )?;
        if last {
            // Invariant: the mutex is never held across a panic-prone call.
            if let Ok(mut c) = self.cleaned.lock() {
                c.insert(step.node);
            }
        }
        if self.deferred(step) {
            return Ok(());
        }
        self.confirm_tls(t.as_ref(), node, step.id)
    }

    fn files_match(&self, step: &Step, expected: &[FileHash]) -> Result<bool, StepError> {
        let t = self.transport(step)?;
        let matched = files_match(t.as_ref(), &self.inv.nodes[step.node], expected)?;
        if matched {
            // Invariant: the mutex is never held across a panic-prone call.
            if let Ok(mut map) = self.rechecked.lock() {
                map.insert(step.id, expected.to_vec());
            }
        }
        Ok(matched)
    }

    fn reconfirm(&self, step: &Step) -> Result<(), StepError> {
        let t = self.transport(step)?;
        let written = self
            .rechecked
            .lock()
            .ok()
            .and_then(|m| m.get(&step.id).cloned())
            .unwrap_or_default();
        let told = super::changes::node_for(self.inv, step);
        let node = told.as_ref().unwrap_or(&self.inv.nodes[step.node]);
        reconfirm(t.as_ref(), node, self.ca_name(), &written)?;
        if self.deferred(step) {
            return Ok(());
        }
        self.confirm_tls(t.as_ref(), node, step.id)
    }

    fn proof(&self, step: &Step) -> Option<String> {
        if self.deferred(step) {
            return Some(RESTART_PENDING.to_string());
        }
        self.proofs.lock().ok()?.get(&step.id).cloned()
    }

    fn healthy(&self, step: &Step) -> Result<(), StepError> {
        let t = self.transport(step)?;
        let told = super::changes::node_for(self.inv, step);
        let node = told.as_ref().unwrap_or(&self.inv.nodes[step.node]);
        if let Some(template) = &node.confirm {
            let command = super::step::command_for(template, node, self.ca_name());
            let out = t.exec(&command, node.confirm_timeout)?;
            if !out.success() {
                let status = out
                    .status
                    .map_or("was killed or timed out".to_string(), |c| {
                        format!("exited {c}")
                    });
                let said = out
                    .stderr
                    .lines()
                    .chain(out.stdout.lines())
                    .rfind(|l| !l.trim().is_empty());
                return Err(StepError::confirm_failed(format!(
                    "health check of node {}: confirm command `{command}` {status}{}",
                    node.name,
                    said.map(|l| format!(": {}", l.trim())).unwrap_or_default()
                )));
            }
        }
        self.confirm_tls(t.as_ref(), node, step.id)
    }
}
