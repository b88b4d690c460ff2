//! Before a run writes to any node: every node of the plan that writes a keystore or
//! truststore must have a password file certroll may use (present, a regular file no other
//! user may read, not empty), and every store already on it must be a file that password
//! opens. Otherwise the run is refused with the file's path and exit 78, and no node is
//! touched: a store that would be rewritten with another password, or over a directory,
//! would break its application at the next restart. Likewise a node with `os_trust` must
//! have its update command (`update-ca-certificates`, `update-ca-trust`, or its
//! `os_trust_update`): anchors installed that no update command ever takes in would leave
//! its clients untrusting. And a node whose keystore the prune of a cross-signed rotation
//! makes again on the node (the control host no longer holds its key then) must have
//! `openssl`: refused at the start, not half-way through the rotation.
//!
//! A store can break between two runs (its password file deleted or opened to every user,
//! the keystore replaced by a directory), so the check is made on every path that writes
//! to nodes: a new run (rotation, rollback, maintenance) and the resumption of an unfinished
//! one. [`check`] returns the proof [`StoresUsable`], which the executing side of a run
//! requires, so that no path can execute a plan without it.

use super::CommandError;
use crate::collect::parallel_map;
use crate::inventory::{CaId, Inventory, NodeId};
use crate::materials::reads_chain;
use crate::plan::Plan;
use crate::stores::read::{read_stores, StoreFile};
use crate::transport::Connector;

/// The proof that [`check`] found the stores of a plan's nodes usable; only [`check`] makes
/// one, and a run executes only with one.
#[derive(Debug)]
pub struct StoresUsable(());

/// Which run the check is made for: it names the refusal's first words.
#[derive(Debug, Clone, Copy)]
pub enum Before<'a> {
    /// A new run, before the confirmation and before any CA material is made.
    NewRun,
    /// The unfinished run of this id, before it is resumed.
    Resume(&'a str),
}

/// Checks the stores of every node of `plan` for CA `ca` (see the module's text) before
/// the run `before`.
pub fn check(
    inv: &Inventory,
    ca: CaId,
    plan: &Plan,
    connector: &dyn Connector,
    before: Before<'_>,
) -> Result<StoresUsable, CommandError> {
    let ca_name = &inv.cas[ca].name;
    let with_stores: Vec<NodeId> = plan
        .order
        .iter()
        .copied()
        .filter(|&n| {
            let p = inv.nodes[n].paths(ca_name);
            p.keystore.is_some()
                || p.truststore.is_some()
                || p.combined_pem.is_some()
                || inv.nodes[n].stores.os_trust.is_some()
        })
        .collect();
    let problems = parallel_map(&with_stores, 8, |&n| {
        let node = &inv.nodes[n];
        let t = match connector.connect(n) {
            Ok(t) => t,
            // An unreachable node is the run's own business (it retries and reports).
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        if let Some(o) = &node.stores.os_trust {
            if let Some(why) = missing_update(t.as_ref(), &node.name, &o.update) {
                out.push(why);
                return out;
            }
        }
        let remade = node.paths(ca_name).keystore.is_some()
            && plan
                .steps
                .iter()
                .any(|s| s.node == n && reads_chain(&s.actions, plan.chain));
        if remade && !has_program(t.as_ref(), "openssl") {
            out.push(format!(
                "openssl is not installed on node {}: the trust-prune of a cross-signed rotation makes its keystore {} again there, from the key the node holds (install openssl, or rotate with chain = \"plain\")",
                node.name,
                node.paths(ca_name).keystore.unwrap_or_default()
            ));
            return out;
        }
        if let Some(file) = node.store_password_file(ca_name) {
            if let Err(e) = crate::layout::store_password(t.as_ref(), node, &file) {
                out.push(e.to_string());
                return out;
            }
        }
        for StoreFile {
            kind, path, opened, ..
        } in read_stores(t.as_ref(), node, ca_name)
        {
            if let Some(Err(why)) = opened {
                out.push(format!(
                    "the {} {path} on node {} cannot be used: {why}",
                    kind.label(),
                    node.name
                ));
            }
        }
        out
    });
    let problems: Vec<String> = problems.into_iter().flatten().collect();
    if problems.is_empty() {
        return Ok(StoresUsable(()));
    }
    let (doing, after) = match before {
        Before::NewRun => ("start".to_string(), String::new()),
        Before::Resume(run) => (
            format!("resume run {run}"),
            format!("; then `certroll apply` resumes run {run} where it stopped"),
        ),
    };
    Err(CommandError::BadInput(format!(
        "refusing to {doing}: {}; nothing was changed\n  hint: fix what is named (a store certroll cannot open would be rewritten under a password its application does not use; anchors that no update command takes in would not be trusted){after}",
        problems.join("; ")
    )))
}

/// The command that finds `program` on a node (as the user the steps run as).
fn look_for(program: &str) -> String {
    format!(
        "command -v -- {} >/dev/null 2>&1",
        crate::shell::shell_quote(program)
    )
}

/// Whether `program` is found on the node; a node that cannot be asked is the run's own
/// business (it retries and reports).
fn has_program(t: &dyn crate::transport::Transport, program: &str) -> bool {
    t.exec(&look_for(program), std::time::Duration::from_secs(30))
        .map_or(true, |out| out.success())
}

/// Why the OS trust update command `update` cannot run on node `node`, if it cannot: its
/// program is not found there (as the user the steps run as).
fn missing_update(t: &dyn crate::transport::Transport, node: &str, update: &str) -> Option<String> {
    let program = update.split_whitespace().next().unwrap_or_default();
    match t.exec(&look_for(program), std::time::Duration::from_secs(30)) {
        Ok(out) if out.success() => None,
        Ok(_) => Some(format!(
            "the OS trust update command {program} is not installed on node {node} (os_trust: install the distribution's ca-certificates package, or set os_trust_update)"
        )),
        Err(e) => Some(format!("failed to look for the OS trust update command {program} on node {node}: {e}")),
    }
}
