//! The one error of the run decisions and of the commands on top of them: what refused
//! or failed, and the exit code each kind maps to. It lives below the commands so that a
//! decision (which plan, which rollback) can refuse in the same words for `plan` and
//! `apply`, and the commands only map it to an exit code.

use crate::exit;
use crate::inventory::InventoryError;
use crate::journal::JournalError;
use crate::state::StateError;

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
