//! The state a run needs — its journal, the lock, the CA store — behind one interface,
//! [`StateBackend`], with two implementations: the local state directory ([`local`], the
//! default, byte for byte what certroll always wrote) and a PostgreSQL database
//! ([`postgres`], for teams and CI: any control host can see, lock and resume any run).
//!
//! A command opens the backend once ([`open`]) from the inventory's `[certroll]` table and
//! passes it down; nothing else in the commands asks which backend it is.
//! docs/state.md describes both, the lease and its fencing.

use std::path::Path;

use crate::inventory::{Inventory, KeyStore, StateLocation};
use crate::journal::{Holder, Journal, JournalError, LockError, LockState, RunState};

pub mod local;
mod pg_conn;
mod pg_journal;
mod pg_lease;
mod pg_schema;
pub mod postgres;
mod snapshot;

pub use snapshot::{Snapshot, StoreFile};

/// Why the state backend could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The lock is held by another run (exit 75).
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The configuration is wrong: a URL without a database, wrong credentials, a schema of
    /// a newer certroll, another fleet's state, a key store the backend may not hold
    /// (exit 78). Nothing was written.
    #[error("{0}")]
    Config(String),
    /// The server cannot be reached (exit 69). Nothing was written.
    #[error("{0}")]
    Unavailable(String),
    /// This run's lease was broken or taken over: it stopped, resumable (exit 75).
    #[error("{0}")]
    LeaseLost(String),
    /// The state is in a state that refuses the command (a run unfinished; exit 77).
    #[error("{0}")]
    Refused(String),
    /// Anything else (I/O on the state directory, a failed query).
    #[error("{0}")]
    Other(String),
}

/// The lock a run holds until it ends: a `flock` on the state directory, or a lease in the
/// database renewed by a heartbeat. Released when dropped (or when the process dies).
pub trait Lease: Send + Sync + std::fmt::Debug {
    /// Who holds it: this process.
    fn holder(&self) -> &Holder;
    /// The fencing token every journal write carries (0 for the local lock, which cannot
    /// be broken while its process lives).
    fn epoch(&self) -> i64;
    /// The flag the lease's heartbeat sets when it could not renew in time or found the
    /// lease taken (`None` for a lock that cannot be lost while its process lives).
    fn lost(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        None
    }
}

/// What ending a lease with `certroll lock break` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The holder whose lease was ended; `None` when none was held.
    pub holder: Option<Holder>,
    /// The new epoch: writes carrying an older one are refused.
    pub epoch: i64,
}

/// The run state of one fleet: journal, lock, CA store.
pub trait StateBackend: Send + Sync + std::fmt::Debug {
    /// Names the backend in messages: the state directory, or the database (no password).
    fn describe(&self) -> String;
    /// Names the journal in messages: its file, or the backend's table.
    fn journal_place(&self) -> String;
    /// The directory the CA store of this command works in (`<root>/ca/<name>/…`): the
    /// state directory, or a private copy of the database's store for this command.
    fn store_root(&self) -> &Path;
    /// Takes the lock for a run, or says who holds it.
    fn acquire(&self, command: &str) -> Result<Box<dyn Lease>, StateError>;
    /// Who holds the lock now, without taking it or creating anything.
    fn lock_state(&self) -> Result<LockState, StateError>;
    /// Ends the current lease and bumps the epoch (`certroll lock break`).
    fn break_lock(&self) -> Result<Broken, StateError>;
    /// The journal, written under `lease` (every write fenced by its epoch).
    fn open_journal(&self, lease: &dyn Lease) -> Result<Journal, StateError>;
    /// The latest run (of CA `ca` when given), read without writing anything.
    fn read_last_run(&self, ca: Option<&str>) -> Result<Option<RunState>, JournalError>;
    /// Saves what the command changed in the CA store under [`StateBackend::store_root`]
    /// (nothing to do for the local directory, which is the store itself).
    fn save_store(&self, lease: &dyn Lease) -> Result<(), StateError>;
    /// Everything the backend holds, for `certroll state push`/`pull`.
    fn export(&self) -> Result<Snapshot, StateError>;
    /// Replaces everything the backend holds with `snapshot`, under `lease`.
    fn import(&self, snapshot: &Snapshot, lease: &dyn Lease) -> Result<(), StateError>;
}

/// Opens the state backend the inventory names. A PostgreSQL backend is connected and its
/// schema checked (created or migrated) here, and refused for a `file` key store.
pub fn open(inv: &Inventory) -> Result<Box<dyn StateBackend>, StateError> {
    match &inv.state {
        StateLocation::Local => Ok(Box::new(local::LocalState::new(&inv.state_dir))),
        StateLocation::Postgres { source, lease } => {
            refuse_plain_keys(inv)?;
            let backend = postgres::PgState::open(inv, source, *lease)?;
            Ok(Box::new(backend))
        }
    }
}

/// The local backend of `inv.state_dir`, whatever the inventory names (for `state push`
/// and `state pull`).
pub fn open_local(inv: &Inventory) -> local::LocalState {
    local::LocalState::new(&inv.state_dir)
}

/// A CA key kept as a plain PEM file may not leave the machine: refused with a hint.
fn refuse_plain_keys(inv: &Inventory) -> Result<(), StateError> {
    match inv
        .cas
        .iter()
        .find(|c| matches!(c.key_store, KeyStore::File))
    {
        Some(ca) => Err(StateError::Config(format!(
            "CA {} keeps its key in a plain file (key_store = \"file\"), which the PostgreSQL \
             state backend may not hold; nothing was written\n  hint: set key_store = \
             \"encrypted\" (with passphrase_env or passphrase_file) or \"pkcs11\" in \
             [ca.{}], or keep the local state_dir (docs/state.md)",
            ca.name, ca.name
        ))),
        None => Ok(()),
    }
}
