//! The state one running peer shares between its threads: the files in use (swapped whole
//! on a successful reload, kept on a failed one, like a real server), the counters, and the
//! stop flag. Every handshake takes a snapshot of the files when it starts, so a reload never
//! changes a handshake in flight.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

use crate::material::{self, FilePaths, Hashes, Material};
use crate::stats::{self, Files, Loaded, Outcome, Reloads, ServerStats, Stats, TargetStats};

/// Shared state of a running peer.
pub struct PeerState {
    pub node: String,
    pub state_dir: PathBuf,
    pub paths: FilePaths,
    pub require_client_cert: bool,
    material: RwLock<Option<Arc<Material>>>,
    stats: Mutex<Stats>,
    stop: AtomicBool,
}

/// Answer to a `confirm` request: are the loaded files the files on disk?
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confirmation {
    pub matches: bool,
    pub loaded: Option<Hashes>,
    pub on_disk: Option<Hashes>,
    /// Why they do not match, in words.
    pub detail: Option<String>,
}

impl PeerState {
    pub fn new(
        node: String,
        state_dir: PathBuf,
        paths: FilePaths,
        require_client_cert: bool,
    ) -> Self {
        let now = stats::now_unix_ms();
        let stats = Stats {
            format: stats::FORMAT,
            node: node.clone(),
            pid: std::process::id(),
            running: true,
            started_unix_ms: now,
            updated_unix_ms: now,
            files: Files {
                bundle: paths.bundle.display().to_string(),
                cert: paths.cert.display().to_string(),
                key: paths.key.display().to_string(),
            },
            loaded: None,
            load_error: None,
            reloads: Reloads::default(),
            server: None,
            targets: BTreeMap::new(),
        };
        PeerState {
            node,
            state_dir,
            paths,
            require_client_cert,
            material: RwLock::new(None),
            stats: Mutex::new(stats),
            stop: AtomicBool::new(false),
        }
    }

    fn stats(&self) -> MutexGuard<'_, Stats> {
        // A panicking thread cannot leave the counters inconsistent beyond one increment.
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The files in use now, if any loaded successfully.
    pub fn current(&self) -> Option<Arc<Material>> {
        self.material
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Loads the files from disk; on success they replace the files in use, on failure the
    /// files in use stay and the error is recorded.
    pub fn reload(&self) -> Result<Hashes, material::LoadError> {
        match material::load(&self.paths, &self.node, self.require_client_cert) {
            Ok(m) => {
                let hashes = m.hashes.clone();
                *self
                    .material
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(m));
                let mut s = self.stats();
                s.reloads.ok += 1;
                s.load_error = None;
                s.loaded = Some(Loaded {
                    hashes: hashes.clone(),
                    loaded_unix_ms: stats::now_unix_ms(),
                });
                Ok(hashes)
            }
            Err(e) => {
                let mut s = self.stats();
                s.reloads.failed += 1;
                s.load_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Compares the hashes of the files in use with the files on disk now.
    pub fn confirm(&self) -> Confirmation {
        let loaded = self.current().map(|m| m.hashes.clone());
        let on_disk = material::hash_on_disk(&self.paths, &self.node);
        let (on_disk, disk_error) = match on_disk {
            Ok(h) => (Some(h), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let detail = match (&loaded, &on_disk) {
            (None, _) => Some(format!("node {} has no files loaded", self.node)),
            (_, None) => disk_error,
            (Some(l), Some(d)) => mismatch_detail(l, d, &self.paths, &self.node),
        };
        Confirmation {
            matches: detail.is_none(),
            loaded,
            on_disk,
            detail,
        }
    }

    pub fn register_server(&self, listen: String) {
        self.stats().server = Some(ServerStats {
            listen,
            require_client_cert: self.require_client_cert,
            ok: 0,
            failed: 0,
            last_error: None,
        });
    }

    pub fn register_target(&self, name: &str, address: &str, server_name: &str) {
        self.stats()
            .targets
            .insert(name.to_string(), TargetStats::new(address, server_name));
    }

    pub fn record_server(&self, outcome: Outcome) {
        if let Some(server) = self.stats().server.as_mut() {
            server.record(outcome);
        }
    }

    pub fn record_target(&self, name: &str, outcome: Outcome) {
        if let Some(target) = self.stats().targets.get_mut(name) {
            target.record(outcome);
        }
    }

    /// A copy of the counters, stamped with the current time.
    pub fn snapshot(&self) -> Stats {
        let mut s = self.stats();
        s.updated_unix_ms = stats::now_unix_ms();
        s.clone()
    }

    pub fn mark_stopped(&self) {
        self.stats().running = false;
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Names each file whose loaded hash differs from the one on disk; `None` if all match.
fn mismatch_detail(
    loaded: &Hashes,
    disk: &Hashes,
    paths: &FilePaths,
    node: &str,
) -> Option<String> {
    let mut differ = Vec::new();
    if loaded.bundle_sha256 != disk.bundle_sha256 {
        differ.push(format!("trust bundle {}", paths.bundle.display()));
    }
    if loaded.cert_sha256 != disk.cert_sha256 {
        differ.push(format!("certificate {}", paths.cert.display()));
    }
    if loaded.key_sha256 != disk.key_sha256 {
        differ.push(format!("private key {}", paths.key.display()));
    }
    if differ.is_empty() {
        None
    } else {
        Some(format!(
            "node {node} is not serving the files on disk: changed since the last reload: {}",
            differ.join(", ")
        ))
    }
}
