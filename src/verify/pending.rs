//! Restarts left pending: a node whose trust-prune was written without a restart
//! (`restart_on_prune = false`) holds the right files, yet its running process still
//! trusts the old anchor. The files cannot show that, so `verify` reads it from the
//! journal: the node is reported as pending (a warning), not as healthy, until a later
//! step restarts it.

use std::path::Path;

use super::{Finding, Report};
use crate::journal::Journal;

/// Adds a [`Finding::RestartPending`] to every node the last run of its CA left pending.
/// A journal that cannot be read adds nothing here: `status` and `apply` report it.
pub fn restart_pending(report: &mut Report, state_dir: &Path) {
    for ca in &mut report.cas {
        let Ok(Some(run)) = Journal::read_last_run(state_dir, Some(&ca.ca)) else {
            continue;
        };
        for node in ca
            .nodes
            .iter_mut()
            .filter(|n| run.restart_pending.contains(&n.name))
        {
            node.findings.push(Finding::RestartPending {
                run: run.run.clone(),
            });
        }
    }
}
