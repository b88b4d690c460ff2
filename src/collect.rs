//! Reading every node's real files: one connection per node, many nodes at once.
//!
//! Both readers of the fleet's current state use it: `verify`, which turns a node that
//! cannot be reached or a file that cannot be read into a finding (never stopping the
//! other nodes from being checked), and the routine planner (`session::facts`), for
//! which either is an error.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::inventory::{CaId, Inventory, KeySource, NodeId};
use crate::transport::{Connector, Transport, TransportError};

/// What reading one file gave.
#[derive(Clone, PartialEq, Eq)]
pub enum FileState {
    Present(Vec<u8>),
    Missing,
    /// The read failed; the message names the action, the node and the path.
    Unreadable(String),
    /// A key made on the node (`key_source = "node"`), never read: its public key
    /// (SubjectPublicKeyInfo, DER) as openssl derived it on the node.
    PublicKey(Vec<u8>),
}

impl std::fmt::Debug for FileState {
    // Key bytes never reach a log through Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileState::Present(b) => write!(f, "Present({} bytes)", b.len()),
            FileState::Missing => f.write_str("Missing"),
            FileState::PublicKey(b) => write!(f, "PublicKey({} bytes)", b.len()),
            FileState::Unreadable(m) => write!(f, "Unreadable({m:?})"),
        }
    }
}

impl FileState {
    /// The bytes, empty when missing or unreadable.
    pub fn bytes(&self) -> &[u8] {
        match self {
            FileState::Present(b) => b,
            _ => &[],
        }
    }

    pub fn unreadable(&self) -> Option<&str> {
        match self {
            FileState::Unreadable(m) => Some(m),
            _ => None,
        }
    }
}

/// One node's files for one CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    pub bundle: FileState,
    pub cert: FileState,
    pub key: FileState,
    /// Permission bits of the key file; `Ok(None)` when it does not exist.
    pub key_mode: Result<Option<u32>, String>,
    /// The proof-key certificate, when the node has a `proof_cert` path.
    pub proof: Option<FileState>,
    /// Readable copies of managed files, beside them, that hold a private key.
    pub loose_copies: Vec<crate::secrets::LooseCopy>,
    /// The node's keystore, truststore and combined PEM, as read and opened.
    pub stores: Vec<crate::stores::read::StoreFile>,
}

impl CaFiles {
    /// The first read error, if any file could not be read.
    pub fn read_error(&self) -> Option<&str> {
        self.bundle
            .unreadable()
            .or_else(|| self.cert.unreadable())
            .or_else(|| self.key.unreadable())
    }
}

/// What was collected from one node: its connection and its files per CA, or why the
/// node could not be reached.
pub enum Collected {
    Reached {
        transport: Arc<dyn Transport>,
        files: BTreeMap<CaId, CaFiles>,
    },
    Unreachable(TransportError),
}

impl Collected {
    pub fn files(&self, ca: CaId) -> Option<&CaFiles> {
        match self {
            Collected::Reached { files, .. } => files.get(&ca),
            Collected::Unreachable(_) => None,
        }
    }
}

/// Connects to every node in `nodes` (once each) and reads its files for each CA in
/// `cas` it takes part in, `threads` nodes at a time. Returns one entry per node of
/// `nodes`, in the same order.
pub fn collect(
    inv: &Inventory,
    nodes: &[NodeId],
    cas: &[CaId],
    connector: &dyn Connector,
    threads: usize,
) -> Vec<Collected> {
    let member: Vec<Vec<NodeId>> = cas.iter().map(|&ca| inv.members(ca)).collect();
    parallel_map(nodes, threads, |&node| {
        let transport = match connector.connect(node) {
            Ok(t) => t,
            Err(e) => return Collected::Unreachable(e),
        };
        let mut files = BTreeMap::new();
        for (i, &ca) in cas.iter().enumerate() {
            if member[i].binary_search(&node).is_ok() {
                let paths = inv.nodes[node].paths(&inv.cas[ca].name);
                let managed = managed_files(inv, node);
                let n = &inv.nodes[node];
                let mut set = read_set(transport.as_ref(), &paths, &managed, n.files.key_source);
                if n.files.key_source == KeySource::Node {
                    set.key = public_key(transport.as_ref(), n, &paths.key);
                }
                let ca_name = &inv.cas[ca].name;
                set.stores = crate::stores::read::read_stores(transport.as_ref(), n, ca_name);
                files.insert(ca, set);
            }
        }
        Collected::Reached { transport, files }
    })
}

/// Every file the node holds for any CA of the inventory.
fn managed_files(inv: &Inventory, node: NodeId) -> Vec<String> {
    inv.cas
        .iter()
        .flat_map(|c| {
            let p = inv.nodes[node].paths(&c.name);
            [p.trust_bundle, p.cert, p.key]
                .into_iter()
                .chain(p.proof_cert)
        })
        .collect()
}

fn read_set(
    t: &dyn Transport,
    paths: &crate::inventory::NodePaths,
    managed: &[String],
    source: KeySource,
) -> CaFiles {
    CaFiles {
        bundle: read(t, &paths.trust_bundle),
        cert: read(t, &paths.cert),
        key: match source {
            KeySource::Control => read(t, &paths.key),
            // Filled by `public_key`: the key itself is never read.
            KeySource::Node => FileState::Missing,
        },
        key_mode: t.file_mode(&paths.key).map_err(|e| e.to_string()),
        proof: paths.proof_cert.as_deref().map(|p| read(t, p)),
        loose_copies: crate::secrets::loose_copies(t, paths, managed),
        stores: Vec::new(),
    }
}

/// A key made on the node, checked there (see [`crate::layout::public_key`]). A key openssl
/// cannot read is "present" with no public key: the key check reports it as corrupt.
fn public_key(t: &dyn Transport, node: &crate::inventory::Node, path: &str) -> FileState {
    use crate::layout::LayoutError;
    match crate::layout::public_key(t, node, path) {
        Ok(Some(spki)) => FileState::PublicKey(spki),
        Ok(None) => FileState::Missing,
        Err(LayoutError::Node { .. }) => FileState::PublicKey(Vec::new()),
        Err(e) => FileState::Unreadable(e.to_string()),
    }
}

fn read(t: &dyn Transport, path: &str) -> FileState {
    match t.read_file(path) {
        Ok(Some(b)) => FileState::Present(b),
        Ok(None) => FileState::Missing,
        Err(e) => FileState::Unreadable(e.to_string()),
    }
}

/// Applies `f` to every item on at most `threads` threads; results keep the items' order.
pub fn parallel_map<T, R, F>(items: &[T], threads: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = threads.clamp(1, items.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                // A slot is written by exactly one worker; a poisoned lock only means
                // another worker panicked, and the value is still ours to store.
                *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_map_keeps_order_and_bounds_threads() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<usize> = (0..50).collect();
        let out = parallel_map(&items, 4, |&i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 4);
        assert!(parallel_map(&[] as &[u8], 8, |_| 0).is_empty());
    }
}
