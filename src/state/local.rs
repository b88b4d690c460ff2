//! The local state directory as a [`StateBackend`]: `state_dir/journal.jsonl`, the `flock`
//! of `state_dir` with its `lock` record, and the CA store in `state_dir/ca/`. This is
//! exactly what certroll did before backends existed; it needs no server.

use std::path::{Path, PathBuf};

use super::{Broken, Lease, Snapshot, StateBackend, StateError};
use crate::journal::{Holder, Journal, JournalError, Lock, LockState, RunState};

/// The state directory of a fleet.
#[derive(Debug, Clone)]
pub struct LocalState {
    dir: PathBuf,
}

impl LocalState {
    pub fn new(state_dir: &Path) -> Self {
        LocalState {
            dir: state_dir.to_path_buf(),
        }
    }
}

/// The `flock` of the state directory, held while this lives.
#[derive(Debug)]
struct LocalLease(Lock);

impl Lease for LocalLease {
    fn holder(&self) -> &Holder {
        self.0.holder()
    }

    fn epoch(&self) -> i64 {
        0
    }
}

impl StateBackend for LocalState {
    fn describe(&self) -> String {
        format!("state directory {}", self.dir.display())
    }

    fn journal_place(&self) -> String {
        self.dir
            .join(crate::journal::JOURNAL_FILE)
            .display()
            .to_string()
    }

    fn store_root(&self) -> &Path {
        &self.dir
    }

    fn acquire(&self, command: &str) -> Result<Box<dyn Lease>, StateError> {
        Ok(Box::new(LocalLease(Lock::acquire(&self.dir, command)?)))
    }

    fn lock_state(&self) -> Result<LockState, StateError> {
        Ok(Lock::state(&self.dir)?)
    }

    fn break_lock(&self) -> Result<Broken, StateError> {
        // The kernel holds the local lock for its process: it ends only with the process.
        match Lock::state(&self.dir)? {
            LockState::Free => Ok(Broken {
                holder: None,
                epoch: 0,
            }),
            LockState::Held(holder) => Err(StateError::Refused(format!(
                "the lock on {} is held by a living process{}; a local lock cannot be broken, \
                 it ends with its process\n  hint: stop that process (SIGTERM lets it journal \
                 where it stopped)",
                self.dir.display(),
                holder.map(|h| format!(" ({h})")).unwrap_or_default()
            ))),
        }
    }

    fn open_journal(&self, _lease: &dyn Lease) -> Result<Journal, StateError> {
        Ok(Journal::open(&self.dir)?)
    }

    fn read_last_run(&self, ca: Option<&str>) -> Result<Option<RunState>, JournalError> {
        Journal::read_last_run(&self.dir, ca)
    }

    fn save_store(&self, _lease: &dyn Lease) -> Result<(), StateError> {
        Ok(())
    }

    fn export(&self) -> Result<Snapshot, StateError> {
        Snapshot::read_dir(&self.dir)
    }

    fn import(&self, snapshot: &Snapshot, _lease: &dyn Lease) -> Result<(), StateError> {
        snapshot.write_dir(&self.dir)
    }
}
