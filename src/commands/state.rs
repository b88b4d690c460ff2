//! `certroll lock` (who holds the lock; `lock break` ends a lease) and `certroll state
//! push` / `state pull` (move a fleet's state between its local `state_dir` and the
//! PostgreSQL backend the inventory names). See docs/state.md.

use std::path::PathBuf;

use anyhow::Context;

use super::{load, CommandError};
use crate::exit;
use crate::inventory::{Inventory, StateLocation};
use crate::journal::{Journal, JournalSink, LockState, RunState};
use crate::state::{self, Snapshot, StateBackend};

/// What `certroll lock` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockAction {
    Show,
    /// `lock break`, `yes`: without asking.
    Break {
        yes: bool,
    },
}

/// Runs `certroll lock [break]`. `lock` exits 0 when free, 75 when held.
pub fn lock(inventory: &std::path::Path, action: LockAction) -> Result<i32, CommandError> {
    let inv = load(inventory)?;
    let backend = super::open_state(&inv)?;
    let held = backend.lock_state()?;
    let unfinished = backend
        .read_last_run(None)?
        .filter(|r| !r.is_complete())
        .map(|r| r.run);
    match (action, held) {
        (LockAction::Show, LockState::Free) => {
            crate::outln!("the lock on {} is free", backend.describe());
            if let Some(run) = unfinished {
                crate::outln!("run {run} is unfinished; `certroll apply` resumes it");
            }
            Ok(exit::OK)
        }
        (LockAction::Show, LockState::Held(holder)) => {
            let who = holder.map_or_else(|| "an unknown holder".to_string(), |h| h.to_string());
            crate::outln!("the lock on {} is held by {who}", backend.describe());
            if let Some(run) = unfinished {
                crate::outln!("  run: {run}");
            }
            Ok(exit::INCOMPLETE)
        }
        (LockAction::Break { yes }, held) => {
            if let LockState::Held(h) = &held {
                let who = h
                    .as_ref()
                    .map_or_else(|| "an unknown holder".to_string(), |h| h.to_string());
                crate::errln!("the lock on {} is held by {who}", backend.describe());
            }
            if !yes
                && !super::ask(
                    "refusing to break the lock without confirmation: standard input is not a \
                 terminal\n  hint: pass --yes",
                    "End this lease? Its run stops at its next write.",
                )?
            {
                crate::outln!("nothing was changed");
                return Ok(exit::OK);
            }
            let broken = backend.break_lock()?;
            match broken.holder {
                Some(h) => crate::outln!(
                    "ended the lease of {h}; the lock's epoch is now {}: that run can no longer \
                     write, `certroll apply` resumes it",
                    broken.epoch
                ),
                None => crate::outln!(
                    "no lease was held; the lock's epoch is now {}",
                    broken.epoch
                ),
            };
            Ok(exit::OK)
        }
    }
}

/// Direction of `certroll state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Local `state_dir` → PostgreSQL.
    Push,
    /// PostgreSQL → local `state_dir`.
    Pull,
}

/// Runs `certroll state push|pull`: both sides locked, refused while a run is unfinished
/// on either, refused into a side that holds state already; byte for byte.
pub fn transfer(inventory: &std::path::Path, way: Transfer) -> Result<i32, CommandError> {
    let inv = load(inventory)?;
    if inv.state == StateLocation::Local {
        return Err(CommandError::BadInput(format!(
            "the inventory {} names no PostgreSQL state backend; nothing was copied\n  hint: set \
             [certroll] state or state_env (docs/state.md)",
            inv.source.display()
        )));
    }
    let remote = super::open_state(&inv)?;
    let local = state::open_local(&inv);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let (from, to): (&dyn StateBackend, &dyn StateBackend) = match way {
        Transfer::Push => (&local, &*remote),
        Transfer::Pull => (&*remote, &local),
    };
    let from_lease = from.acquire(&command)?;
    let to_lease = to.acquire(&command)?;
    let snapshot = from.export()?;
    for (side, snap) in [(from, &snapshot), (to, &to.export()?)] {
        if let Some(run) = unfinished(&inv, snap)? {
            return Err(CommandError::Refused(format!(
                "run {run} in {} is unfinished; nothing was copied\n  hint: finish it with \
                 `certroll apply` first",
                side.describe()
            )));
        }
    }
    to.import(&snapshot, &*to_lease)?;
    drop(to_lease);
    drop(from_lease);
    crate::outln!(
        "copied the journal ({} bytes) and the CA store ({} files) from {} to {}",
        snapshot.journal.len(),
        snapshot.files.len(),
        from.describe(),
        to.describe()
    );
    let _ = inv;
    Ok(exit::OK)
}

/// The unfinished run of a snapshot's journal, if any.
fn unfinished(inv: &Inventory, snap: &Snapshot) -> Result<Option<String>, CommandError> {
    let journal = Journal::with_sink(Box::new(Bytes {
        path: inv.state_dir.join(crate::journal::JOURNAL_FILE),
        text: String::from_utf8_lossy(&snap.journal).into_owned(),
    }));
    let last: Option<RunState> = journal.last_run().context("failed to read the journal")?;
    // Incomplete and interrupted runs are unfinished too: `apply` resumes them.
    Ok(last.filter(|r| !r.is_complete()).map(|r| r.run))
}

/// A journal already read, for checking it.
#[derive(Debug)]
struct Bytes {
    path: PathBuf,
    text: String,
}

impl JournalSink for Bytes {
    fn path(&self) -> &std::path::Path {
        &self.path
    }
    fn read_all(&self) -> Result<String, crate::journal::JournalError> {
        Ok(self.text.clone())
    }
    fn append(&self, _line: &[u8]) -> Result<u64, crate::journal::JournalError> {
        Ok(0)
    }
    fn sync_to(&self, _seq: u64) -> Result<(), crate::journal::JournalError> {
        Ok(())
    }
    fn syncs(&self) -> u64 {
        0
    }
    fn end_torn_line(&self) -> Result<(), crate::journal::JournalError> {
        Ok(())
    }
}
