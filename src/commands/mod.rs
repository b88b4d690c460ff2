//! The commands behind the binary: each one loads the inventory, calls the session (which
//! decides the run: [`crate::session`]), the executor or the verifier, and renders the
//! result. `main.rs` only parses arguments and maps a [`CommandError`] to an exit code.

use std::path::Path;
use std::sync::Arc;

use crate::inventory::{self, CaId, Inventory};
use crate::journal::{Journal, RunState};
use crate::state::StateBackend;
use crate::transport::{self, Connector, HostKeyPolicy};

pub use crate::session::{CaGenerations, CommandError};

pub mod apply;
pub mod ca;
pub mod ca_extend;
pub mod init;
pub mod keys;
pub mod plan;
mod routine_params;
pub mod state;
pub mod status;
pub mod verify;

/// Opens the inventory's state backend once for a command (see [`crate::state`]).
pub fn open_state(inv: &Inventory) -> Result<Box<dyn StateBackend>, CommandError> {
    Ok(crate::state::open(inv)?)
}

/// Loads the inventory and opens its state backend. The inventory's `state_dir` is then
/// where this command's CA store is ([`StateBackend::store_root`]): the state directory
/// itself, or the private copy of a PostgreSQL backend's store, which lives as long as
/// the backend returned.
pub fn load_with_state(path: &Path) -> Result<(Inventory, Box<dyn StateBackend>), CommandError> {
    let mut inv = load(path)?;
    let state = open_state(&inv)?;
    inv.state_dir = state.store_root().to_path_buf();
    Ok((inv, state))
}

/// The connector of a command: `policy` for SSH host keys, and no command run on this
/// machine inherits a CA's passphrase or PIN variable ([`keys::secret_env`]).
pub fn connector(inv: &Inventory, policy: HostKeyPolicy) -> Arc<dyn Connector> {
    transport::connector(inv, policy, keys::secret_env(inv))
}

/// Loads the inventory, mapping errors to [`CommandError::Inventory`].
pub fn load(path: &Path) -> Result<Inventory, CommandError> {
    Ok(inventory::load(path)?)
}

/// The latest run of the journal; a torn last line (a write cut short by a crash) is
/// reported once, on stderr, with its line number.
pub fn last_run(journal: &Journal) -> Result<Option<RunState>, CommandError> {
    let last = journal.last_run()?;
    for w in last.iter().flat_map(|r| &r.warnings) {
        crate::errln!("warning: {}", crate::output::escape::block(w));
    }
    Ok(last)
}

/// The CA a command works on: `--ca NAME`, or the only CA.
pub fn select_ca(inv: &Inventory, name: Option<&str>) -> Result<CaId, CommandError> {
    match name {
        Some(n) => inv.ca_id(n).ok_or_else(|| {
            let known: Vec<&str> = inv.cas.iter().map(|c| c.name.as_str()).collect();
            CommandError::Usage(format!(
                "unknown CA {n:?} (the inventory defines: {})",
                known.join(", ")
            ))
        }),
        None if inv.cas.len() == 1 => Ok(0),
        None => {
            let known: Vec<&str> = inv.cas.iter().map(|c| c.name.as_str()).collect();
            Err(CommandError::Usage(format!(
                "the inventory defines several CAs ({}): choose one with --ca NAME",
                known.join(", ")
            )))
        }
    }
}

/// Asks `question` on the terminal (y/N); `refusal` is the usage error when standard input
/// is not a terminal (cron, CI), where nothing can be confirmed.
pub(super) fn ask(refusal: &str, question: &str) -> Result<bool, CommandError> {
    use anyhow::Context;
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(CommandError::Usage(refusal.into()));
    }
    crate::err!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("failed to read the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Takes the fleet's lease for `command`, then reads the journal: the lease and, when the
/// latest run is one of CA `ca` and unfinished, that run's id. A command that changes the
/// CA's generations refuses while there is one.
pub(super) fn lease_for_ca(
    state: &dyn StateBackend,
    ca: &str,
    command: &str,
) -> Result<(Box<dyn crate::state::Lease>, Option<String>), CommandError> {
    use anyhow::Context;
    let lease = state.acquire(command)?;
    let journal = state.open_journal(&*lease)?;
    let last = journal.last_run().context("failed to read the journal")?;
    let unfinished = last
        .filter(|r| r.header.ca == ca && r.end != Some(crate::journal::RunStatus::Complete))
        .map(|r| r.run);
    Ok((lease, unfinished))
}
