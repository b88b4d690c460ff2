//! Restarts left pending: a node whose trust-prune was written without a restart
//! (`restart_on_prune = false`) holds the right files, yet its running process still
//! trusts the old anchor. The files cannot show that, so `verify` reads it from the
//! journal: the node is reported as pending (a warning), not as healthy, until a later
//! step restarts it.

use super::{Finding, Report};
use crate::journal::{JournalError, RunState};

/// Adds a [`Finding::RestartPending`] to every node the last run of its CA left pending.
/// `last_run` reads the last run of a CA from the journal, wherever the state backend
/// keeps it. A journal that cannot be read adds nothing here: `status` and `apply` report it.
pub fn restart_pending(
    report: &mut Report,
    last_run: impl Fn(&str) -> Result<Option<RunState>, JournalError>,
) {
    for ca in &mut report.cas {
        let Ok(Some(run)) = last_run(&ca.ca) else {
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
