//! `certroll apply` end to end: the real binary against a fleet of real sshd nodes.
//!
//! Each test starts its own fleet (`support::Fleet`), writes an inventory for it with
//! `support::inventory::FleetInventory`, runs certroll as an operator would (no terminal,
//! `--yes`) and checks what the run left behind: exit codes and messages, the files on
//! every node (through the host side of the node's directory), their modes, the local CA
//! store, the journal and `certroll status`. Chains are checked with `openssl verify`, an
//! X.509 implementation independent of the one certroll uses.
//!
//! Requirements: root, `/usr/sbin/sshd` (openssh-server) and `openssl`.

#[path = "../support/mod.rs"]
mod support;

mod bootstrap;
mod cross_signed_stores;
mod failures;
mod files;
mod host_keys;
mod hostile;
mod hostile_store;
mod node_keys;
mod node_stores;
mod os_trust;
mod renew;
mod repair;
mod rotate;
mod round_trips;
mod rsa;
mod stores;
mod stores_resume;
mod sudo;
mod via;

use std::path::{Path, PathBuf};

use support::cli::{mode, openssl_verify, pem_subjects, Control};
use support::inventory::{BUNDLE, CERT, KEY, RELOADED};
use support::Fleet;

/// The subject of generation `n` of the test CA, as x509-parser prints it.
pub fn ca_subject(generation: u32) -> String {
    format!("CN=Apply Test CA G{generation}")
}

/// The host path of a node's remote file.
pub fn on_node(fleet: &Fleet, node: &str, remote: &str) -> PathBuf {
    fleet.host_path(node, remote)
}

/// Subjects of the certificates in a node's trust bundle.
pub fn bundle_subjects(fleet: &Fleet, node: &str) -> Vec<String> {
    pem_subjects(&on_node(fleet, node, BUNDLE))
}

/// The node's bundle, certificate and key, as bytes (for before/after comparisons).
pub fn node_files(fleet: &Fleet, node: &str) -> [Vec<u8>; 3] {
    [BUNDLE, CERT, KEY].map(|p| support::cli::read(&on_node(fleet, node, p)))
}

/// Everything under a node's directory ([`support::cli::tree`]), for before/after
/// comparisons.
pub fn node_tree(fleet: &Fleet, node: &str) -> std::collections::BTreeMap<String, String> {
    support::cli::tree(&fleet.node(node).dir)
}

/// A node holds exactly what generation `generation` gives it: a bundle of that root
/// alone, a leaf that `openssl verify` chains to the CA store's root of that
/// generation (`root_pem`), a 0600 key, bundle and leaf 0644; and its reload command ran.
#[track_caller]
pub fn assert_node_on(fleet: &Fleet, node: &str, generation: u32, root_pem: &std::path::Path) {
    assert_node_on_with_key_mode(fleet, node, generation, root_pem, 0o600);
}

/// [`assert_node_on`] for a node whose inventory sets `key_mode`.
#[track_caller]
pub fn assert_node_on_with_key_mode(
    fleet: &Fleet,
    node: &str,
    generation: u32,
    root_pem: &std::path::Path,
    key_mode: u32,
) {
    for remote in [BUNDLE, CERT, KEY, RELOADED] {
        let p = on_node(fleet, node, remote);
        assert!(
            p.exists(),
            "node {node} has no {remote} after the run ({})",
            p.display()
        );
    }
    assert_eq!(
        bundle_subjects(fleet, node),
        vec![ca_subject(generation)],
        "node {node}'s trust bundle should hold G{generation} only"
    );
    let key = on_node(fleet, node, KEY);
    assert_eq!(
        mode(&key),
        key_mode,
        "node {node}'s key {} must be {key_mode:04o}",
        key.display()
    );
    for public in [BUNDLE, CERT] {
        let p = on_node(fleet, node, public);
        assert_eq!(
            mode(&p),
            0o644,
            "node {node}'s {public} is written 0644 ({})",
            p.display()
        );
    }
    let cert = on_node(fleet, node, CERT);
    if let Err(out) = openssl_verify(root_pem, &cert) {
        panic!(
            "node {node}'s leaf does not chain to G{generation} ({}): openssl says:\n{out}",
            root_pem.display()
        );
    }
}

/// Every step of the last run, as `certroll status --format json` lists it:
/// `(node, actions joined by '+', state)`.
pub fn status_steps(ctl: &Control) -> Vec<(String, String, String)> {
    let status = ctl.status();
    status["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("status JSON has no steps: {status:#}"))
        .iter()
        .map(|s| {
            let actions: Vec<&str> = s["actions"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            (
                s["node"].as_str().unwrap_or_default().to_string(),
                actions.join("+"),
                s["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// `certroll verify` exits 0 (every node and link healthy).
#[track_caller]
pub fn assert_verify_ok(ctl: &Control) {
    ctl.certroll(&["verify"]).expect_code(0);
}

/// One step of the last run as the journal tells it: where (line numbers) it started,
/// was confirmed or failed.
#[derive(Debug)]
pub struct JournaledStep {
    pub step: u64,
    pub node: String,
    /// Actions joined by '+', e.g. `trust-add+leaf-swap`.
    pub actions: String,
    pub started: Option<usize>,
    pub done: Option<usize>,
    pub failed: Option<String>,
}

/// The id of the last run that the journal `records` start.
pub fn last_run(records: &[serde_json::Value]) -> serde_json::Value {
    records
        .iter()
        .rev()
        .find(|r| r["record"] == "run-start")
        .map(|r| r["run"].clone())
        .expect("the journal records a run")
}

/// What `openssl ARGS... -in path` prints, which must succeed.
pub fn openssl(args: &[&str], path: &Path) -> String {
    let path = path.display().to_string();
    let args: Vec<&str> = args.iter().copied().chain(["-in", path.as_str()]).collect();
    support::cli::openssl(Path::new("."), &args)
}

/// The steps of the last run recorded in `state_dir/journal.jsonl`, in order of first start.
pub fn journaled_steps(ctl: &Control) -> Vec<JournaledStep> {
    let records = ctl.journal();
    let run = last_run(&records);
    let mut steps: Vec<JournaledStep> = Vec::new();
    for (line, r) in records.iter().enumerate().filter(|(_, r)| r["run"] == run) {
        let id = r["step"].as_u64();
        let existing = steps.iter().position(|s| Some(s.step) == id);
        match (r["record"].as_str(), existing) {
            (Some("step-start"), None) => steps.push(JournaledStep {
                step: id.expect("step-start has a step"),
                node: r["node"].as_str().unwrap_or_default().to_string(),
                actions: r["actions"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>())
                    .unwrap_or_default()
                    .join("+"),
                started: Some(line),
                done: None,
                failed: None,
            }),
            (Some("step-done"), Some(i)) => steps[i].done = Some(line),
            (Some("step-failed"), Some(i)) => {
                steps[i].failed = r["error"].as_str().map(str::to_string)
            }
            // Failed before writing anything (e.g. its node could not be read).
            (Some("step-failed"), None) => steps.push(JournaledStep {
                step: id.expect("step-failed has a step"),
                node: r["node"].as_str().unwrap_or_default().to_string(),
                actions: String::new(),
                started: None,
                done: None,
                failed: r["error"].as_str().map(str::to_string),
            }),
            _ => {}
        }
    }
    steps
}
