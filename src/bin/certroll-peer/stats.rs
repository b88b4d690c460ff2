//! Handshake counters and the `stats.json` document a peer publishes. The JSON shape is the
//! contract with tests, demos and monitoring; it is documented in `docs/peer.md` and carries a
//! `format` number that changes when a field changes meaning.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::material::Hashes;

/// Version of the stats document layout.
pub const FORMAT: u32 = 1;

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The whole stats document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    pub format: u32,
    pub node: String,
    pub pid: u32,
    pub running: bool,
    pub started_unix_ms: u64,
    pub updated_unix_ms: u64,
    pub files: Files,
    pub loaded: Option<Loaded>,
    pub load_error: Option<String>,
    pub reloads: Reloads,
    pub server: Option<ServerStats>,
    pub targets: BTreeMap<String, TargetStats>,
}

/// The file paths, as given on the peer's command line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Files {
    pub bundle: String,
    pub cert: String,
    pub key: String,
}

/// The files currently in use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Loaded {
    #[serde(flatten)]
    pub hashes: Hashes,
    pub loaded_unix_ms: u64,
}

/// Outcome of load attempts since start (the initial load counts as one).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reloads {
    pub ok: u64,
    pub failed: u64,
}

/// The TLS server side: handshakes with connecting clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerStats {
    pub listen: String,
    pub require_client_cert: bool,
    pub ok: u64,
    pub failed: u64,
    pub last_error: Option<String>,
}

/// The TLS client side towards one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetStats {
    pub address: String,
    pub server_name: String,
    pub ok: u64,
    pub failed: u64,
    pub unreachable: u64,
    pub last_error: Option<String>,
    pub last_unreachable: Option<String>,
}

/// What one handshake attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The TCP connection worked but TLS did not; the text is the TLS library's reason.
    Failed(String),
    /// No TCP connection (refused, timed out, name not resolved).
    Unreachable(String),
}

impl TargetStats {
    pub fn new(address: &str, server_name: &str) -> Self {
        TargetStats {
            address: address.to_string(),
            server_name: server_name.to_string(),
            ok: 0,
            failed: 0,
            unreachable: 0,
            last_error: None,
            last_unreachable: None,
        }
    }

    pub fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Failed(reason) => {
                self.failed += 1;
                self.last_error = Some(reason);
            }
            Outcome::Unreachable(reason) => {
                self.unreachable += 1;
                self.last_unreachable = Some(reason);
            }
        }
    }
}

impl ServerStats {
    pub fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Failed(reason) | Outcome::Unreachable(reason) => {
                self.failed += 1;
                self.last_error = Some(reason);
            }
        }
    }
}

/// Writes `stats` to `path` atomically: a temporary file in the same directory, then rename.
pub fn write_atomic(path: &Path, stats: &Stats) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("json.tmp.{}", std::process::id()));
    let body = serde_json::to_vec_pretty(stats).map_err(std::io::Error::other)?;
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&body)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

/// Human-readable rendering for `certroll-peer stats`.
pub fn render(stats: &Stats) -> String {
    let mut out = String::new();
    let state = if stats.running { "running" } else { "stopped" };
    out.push_str(&format!(
        "node {} (pid {}, {state})\n",
        stats.node, stats.pid
    ));
    match &stats.loaded {
        Some(l) => out.push_str(&format!(
            "loaded: bundle {} cert {} key {}\n",
            l.hashes.bundle_sha256, l.hashes.cert_sha256, l.hashes.key_sha256
        )),
        None => out.push_str("loaded: nothing\n"),
    }
    if let Some(e) = &stats.load_error {
        out.push_str(&format!("last load error: {e}\n"));
    }
    out.push_str(&format!(
        "reloads: {} ok, {} failed\n",
        stats.reloads.ok, stats.reloads.failed
    ));
    if let Some(s) = &stats.server {
        out.push_str(&format!(
            "server {}{}: {} ok, {} failed, last error: {}\n",
            s.listen,
            if s.require_client_cert {
                " (mutual)"
            } else {
                ""
            },
            s.ok,
            s.failed,
            opt(&s.last_error)
        ));
    }
    for (name, t) in &stats.targets {
        out.push_str(&format!(
            "target {name} {}@{}: {} ok, {} failed, {} unreachable, last error: {}, last unreachable: {}\n",
            t.address,
            t.server_name,
            t.ok,
            t.failed,
            t.unreachable,
            opt(&t.last_error),
            opt(&t.last_unreachable)
        ));
    }
    out
}
