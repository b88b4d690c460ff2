//! The commands behind the binary: each one loads the inventory, calls the planner, the
//! executor or the verifier, and renders the result. `main.rs` only parses arguments and
//! maps a [`CommandError`] to an exit code.

use std::path::Path;
use std::sync::Arc;

use crate::exit;
use anyhow::Context;

use crate::inventory::{self, CaId, CaSpec, Inventory, InventoryError};
use crate::journal::{Journal, JournalError, RunState};
use crate::pki::{CaCert, CaStore};
use crate::state::{StateBackend, StateError};
use crate::transport::{self, Connector, HostKeyPolicy};

pub mod apply;
pub mod ca;
pub mod decide;
pub mod facts;
pub mod holdings;
pub mod init;
pub mod keys;
pub mod plan;
pub mod rollback;
mod routine_params;
pub mod state;
pub mod status;
pub mod verify;

/// A command's failure, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The inventory is invalid: exit 78 (66 when it cannot be read at all), nothing changed.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// The arguments do not fit this inventory (e.g. `--ca` missing or unknown): exit 64.
    #[error("{0}")]
    Usage(String),
    /// The command is well formed but refused in the state of the CA store, the journal or
    /// the fleet (e.g. `--rollback` after a completed rotation): exit 77, nothing changed.
    #[error("{0}")]
    Refused(String),
    /// An input file is not what the command needs (e.g. `ca import` of a certificate that
    /// is not a CA): exit 78, nothing changed.
    #[error("{0}")]
    BadInput(String),
    /// A file the command writes cannot be created, or would replace one (`init`): exit 73,
    /// nothing written.
    #[error("{0}")]
    CantCreate(String),
    /// The run could not finish now (lock held, a step failed); run again later: exit 75.
    #[error("{0}")]
    Incomplete(String),
    /// The state backend cannot be reached (PostgreSQL down or unreachable): exit 69.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: exit 1.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<JournalError> for CommandError {
    fn from(e: JournalError) -> Self {
        match e {
            // The lease was broken: resumable once the lock is free.
            JournalError::LeaseLost { .. } => CommandError::Incomplete(e.to_string()),
            e => CommandError::Other(e.into()),
        }
    }
}

impl From<StateError> for CommandError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Lock(e) => CommandError::Incomplete(crate::error::chain(&e)),
            StateError::Journal(e) => e.into(),
            StateError::Config(m) => CommandError::BadInput(m),
            StateError::Unavailable(m) => CommandError::Unavailable(m),
            StateError::Refused(m) => CommandError::Refused(m),
            StateError::LeaseLost(m) => CommandError::Incomplete(m),
            StateError::Other(m) => CommandError::Other(anyhow::anyhow!(m)),
        }
    }
}

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

impl CommandError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::Inventory(e) if e.is_unreadable() => exit::NO_INPUT,
            CommandError::Inventory(_) => exit::BAD_INVENTORY,
            CommandError::Usage(_) => exit::USAGE,
            CommandError::Refused(_) => exit::REFUSED,
            CommandError::BadInput(_) => exit::BAD_INVENTORY,
            CommandError::CantCreate(_) => exit::CANT_CREATE,
            CommandError::Incomplete(_) => exit::INCOMPLETE,
            CommandError::Unavailable(_) => exit::UNAVAILABLE,
            // A key store the operator must fix (wrong passphrase, token missing) is
            // configuration, wherever it was found.
            CommandError::Other(e)
                if e.chain().any(|c| {
                    c.downcast_ref::<crate::pki::PkiError>()
                        .is_some_and(crate::pki::PkiError::is_key_store)
                }) =>
            {
                exit::BAD_INVENTORY
            }
            // A run stopped because its lease was broken, or because the state backend
            // went away mid-run: resumable.
            CommandError::Other(e)
                if e.chain().any(|c| {
                    matches!(
                        c.downcast_ref::<JournalError>(),
                        Some(JournalError::LeaseLost { .. } | JournalError::Backend { .. })
                    )
                }) =>
            {
                exit::INCOMPLETE
            }
            CommandError::Other(_) => exit::FAILURE,
        }
    }
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

/// What the CA store holds for one CA, read once per command.
#[derive(Debug, Clone, Default)]
pub struct CaGenerations {
    /// The generation in use; `None` if the CA was never created.
    pub current: Option<CaCert>,
    /// The generation being rolled out, while a rotation is in progress.
    pub next: Option<CaCert>,
    /// The cross certificate of `next` (signed by `current`), PEM.
    pub cross: Option<String>,
    /// `next` was imported with `ca import --next` and its rotation has not begun: it
    /// waits for `--rotate` (a plain run does not roll it out).
    pub next_staged: bool,
}

impl CaGenerations {
    /// Reads the current and next generations of `spec` and the cross certificate.
    pub fn read(store: &CaStore, spec: &CaSpec) -> Result<Self, CommandError> {
        let read = || {
            format!(
                "failed to read the CA store {}",
                store.dir.join(&spec.name).display()
            )
        };
        Ok(CaGenerations {
            current: store.current(spec).with_context(read)?,
            next: store.next(spec).with_context(read)?,
            cross: store.cross(spec).with_context(read)?,
            next_staged: store.next_is_staged(spec).with_context(read)?,
        })
    }

    /// The generation numbers: (current, next).
    pub fn numbers(&self) -> (Option<u32>, Option<u32>) {
        (
            self.current.as_ref().map(|c| c.generation),
            self.next.as_ref().map(|c| c.generation),
        )
    }
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
