//! The append-only journal of a run and the lock that allows one `apply` at a time.
//!
//! `state_dir/journal.jsonl` holds one JSON record per line: run-start, step-start (with the
//! paths and SHA-256 of the files the step is about to write), step-done, step-failed and
//! run-end. Every record is synced to disk before the side effect it announces (a step's
//! end rides along with the next sync: [`commit`] says exactly what a crash can lose), so
//! that an interrupted run can be resumed without guessing: a step journaled as started
//! but not done is re-checked on the node, never assumed. Only hashes
//! reach the journal, never file contents, so no private key is ever written here.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::plan::{Mode, Step, StepId};

mod commit;
mod file_sink;
mod lock;
mod private;
mod record;
mod state;

pub use file_sink::FileSink;
pub use lock::{Holder, Lock, LockError, LockState};
pub use record::{NeedRecord, Record, RunHeader, RunParams, RunStatus, RESTART_PENDING};
pub use state::{RunState, StartedStep};

/// Where the journal's lines are kept: a file in the state directory ([`FileSink`]) or a
/// state backend's table (see [`crate::state`]). The journal itself (records, the run's
/// state, torn lines) is the same whatever the sink.
pub trait JournalSink: Send + Sync + std::fmt::Debug {
    /// Names the journal in messages: its file, or the backend's table.
    fn path(&self) -> &Path;
    /// The whole journal as text.
    fn read_all(&self) -> Result<String, JournalError>;
    /// Appends one line (ending in `\n`), or fails without a partial record the reader
    /// would take for a complete one. Returns the line's number for [`JournalSink::sync_to`].
    /// A sink may keep the line only in memory or the page cache until then (the file
    /// sink's group commit); one whose every append is durable on its own returns at once
    /// from `sync_to`.
    fn append(&self, line: &[u8]) -> Result<u64, JournalError>;
    /// Returns once line `seq` and every line before it are durable.
    fn sync_to(&self, seq: u64) -> Result<(), JournalError>;
    /// Syncs made so far (0 for a sink whose appends are durable on their own).
    fn syncs(&self) -> u64;
    /// If the last write was cut by a crash, ends its line so the next record stands alone.
    fn end_torn_line(&self) -> Result<(), JournalError>;
}

/// File name of the journal inside the state directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// Highest version of the run-start record this build understands. A journal written
/// before records carried a version is version 1; a newer version is refused, never guessed.
/// Version 2 added rollback runs (mode `rollback` and its parameters).
pub const JOURNAL_VERSION: u32 = 2;

/// The version a run-start record of `mode` is written with: the lowest that knows it, so
/// that a certroll that predates rollback still reads the journals of other runs, and names
/// a rollback's header as newer rather than damaged.
pub fn record_version(mode: Mode) -> u32 {
    match mode {
        Mode::Rollback => 2,
        Mode::Bootstrap | Mode::Renew | Mode::Rotate => 1,
    }
}

/// The expected state of one file after a step: its SHA-256 (hex), or `None` for "absent".
/// This, and never the content, is what the journal records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub path: String,
    pub sha256: Option<String>,
}

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("failed to {action} journal {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journal {path} is damaged at line {line}: {message}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot record step {step} in journal {path}: no run was begun or resumed")]
    NoRun { path: PathBuf, step: String },
    /// The state backend refused or failed a journal operation (see [`crate::state`]).
    #[error("failed to {action} journal {path}: {message}")]
    Backend {
        action: &'static str,
        path: PathBuf,
        message: String,
    },
    /// The run's lease was broken or taken over: this process may no longer write.
    #[error(
        "stopped: cannot {action} journal {path}: this run no longer holds the lock \
         (lease epoch {epoch} was ended{by}); nothing more was written\n  \
         hint: `certroll lock` shows who holds it now; run `certroll apply` again to resume \
         once it is free"
    )]
    LeaseLost {
        action: &'static str,
        path: PathBuf,
        epoch: i64,
        by: String,
    },
    #[error(
        "journal {path} line {line} was written by a newer certroll (record version {version}, \
         this one reads up to {JOURNAL_VERSION}); nothing was changed\n  \
         hint: finish or inspect the run with the certroll that started it"
    )]
    Newer {
        path: PathBuf,
        line: usize,
        version: u32,
    },
}

/// The journal of one state directory or backend. Writes are serialized; the records
/// that announce a side effect are durable before they return (in the state directory,
/// synced in groups: [`commit`]); `&self` methods can be called from several threads.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    sink: Box<dyn JournalSink>,
    /// The run being recorded, with its state so far. Lock order: this, then the sink's.
    current: Mutex<Option<RunState>>,
}

impl Journal {
    /// Opens (creating if needed) `state_dir/journal.jsonl` for appending.
    pub fn open(state_dir: &Path) -> Result<Journal, JournalError> {
        Ok(Journal::with_sink(Box::new(FileSink::open(state_dir)?)))
    }

    /// The journal kept by `sink`.
    pub fn with_sink(sink: Box<dyn JournalSink>) -> Journal {
        Journal {
            path: sink.path().to_path_buf(),
            sink,
            current: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The latest run recorded in `state_dir` (of CA `ca` when given), read without
    /// creating or changing anything (for `certroll status`). `None` when there is no
    /// journal.
    pub fn read_last_run(
        state_dir: &Path,
        ca: Option<&str>,
    ) -> Result<Option<RunState>, JournalError> {
        let path = state_dir.join(JOURNAL_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => state::last_run(&path, &String::from_utf8_lossy(&bytes), ca),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(JournalError::Io {
                action: "read",
                path,
                source,
            }),
        }
    }

    /// The latest run recorded, finished or not, reconstructed from the journal.
    /// A torn line (a write cut by a crash) is skipped and reported in `warnings`.
    pub fn last_run(&self) -> Result<Option<RunState>, JournalError> {
        state::last_run(&self.path, &self.read_all()?, None)
    }

    /// The latest run recorded for CA `ca`, finished or not (a rollback looks for the
    /// rotation of its CA even when a run of another CA came after it).
    pub fn last_run_of(&self, ca: &str) -> Result<Option<RunState>, JournalError> {
        state::last_run(&self.path, &self.read_all()?, Some(ca))
    }

    fn read_all(&self) -> Result<String, JournalError> {
        self.sink.read_all()
    }

    /// Begins a new run and records its run-start. Returns the run id.
    pub fn begin_run(&self, header: RunHeader) -> Result<String, JournalError> {
        let run = new_run_id();
        self.start(&run, header, false, None)?;
        Ok(run)
    }

    /// Resumes an unfinished run (from [`Journal::last_run`]): records a run-start with the
    /// same id; steps keep the state the earlier runs left them in.
    pub fn resume_run(&self, previous: &RunState) -> Result<(), JournalError> {
        self.start(
            &previous.run,
            previous.header.clone(),
            true,
            Some(previous.clone()),
        )
    }

    /// The run being recorded and its state so far.
    pub fn current_run(&self) -> Option<RunState> {
        self.lock_current().clone()
    }

    /// Records that `step` is about to write `files` on `node`.
    pub fn step_start(
        &self,
        step: &Step,
        node: &str,
        files: &[FileHash],
    ) -> Result<(), JournalError> {
        self.append_step(step.id, |run, time| Record::StepStart {
            run,
            time,
            step: step.id,
            node: node.to_string(),
            actions: step.actions.clone(),
            files: files.to_vec(),
        })
    }

    /// Records that `step` is confirmed.
    pub fn step_done(&self, step: StepId) -> Result<(), JournalError> {
        self.step_done_proven(step, None)
    }

    /// Records that `step` is confirmed, with what the built-in TLS confirm proved.
    pub fn step_done_proven(&self, step: StepId, proof: Option<&str>) -> Result<(), JournalError> {
        self.append_step(step, |run, time| Record::StepDone {
            run,
            time,
            step,
            proof: proof.map(str::to_string),
        })
    }

    /// Records that `step` failed with `error`.
    pub fn step_failed(&self, step: StepId, error: &str) -> Result<(), JournalError> {
        self.step_failed_on(step, None, error)
    }

    /// Records that `step` on `node` failed with `error` (the node is journaled too).
    pub fn step_failed_on(
        &self,
        step: StepId,
        node: Option<&str>,
        error: &str,
    ) -> Result<(), JournalError> {
        self.append_step(step, |run, time| Record::StepFailed {
            run,
            time,
            step,
            node: node.map(str::to_string),
            error: error.to_string(),
        })
    }

    /// Records the end of the current run.
    pub fn end_run(&self, status: RunStatus) -> Result<(), JournalError> {
        self.append_step(usize::MAX, |run, time| Record::RunEnd { run, time, status })
    }

    fn start(
        &self,
        run: &str,
        h: RunHeader,
        resumed: bool,
        base: Option<RunState>,
    ) -> Result<(), JournalError> {
        let record = Record::RunStart {
            version: record_version(h.mode),
            run: run.to_string(),
            time: now_rfc3339(),
            fingerprint: h.fingerprint,
            mode: h.mode,
            ca: h.ca,
            strategy: h.strategy,
            chain: h.chain,
            generations: h.generations,
            host: hostname(),
            pid: std::process::id(),
            resumed,
            params: h.params,
        };
        // Lock order everywhere: current run, then the sink.
        let mut current = self.lock_current();
        self.sink.end_torn_line()?;
        let seq = self.write_record(&record)?;
        let mut state = base.unwrap_or_else(|| RunState::empty(run));
        state.apply(&record);
        *current = Some(state);
        drop(current);
        self.sync_to(seq)
    }

    /// Syncs made so far by this journal (one per group of records; see [`commit`]); a
    /// sink whose every write is durable on its own makes none.
    pub fn syncs(&self) -> u64 {
        self.sink.syncs()
    }

    fn sync_to(&self, seq: u64) -> Result<(), JournalError> {
        self.sink.sync_to(seq)
    }

    fn append_step(
        &self,
        step: StepId,
        make: impl FnOnce(String, String) -> Record,
    ) -> Result<(), JournalError> {
        let mut current = self.lock_current();
        let Some(state) = current.as_mut() else {
            let step = if step == usize::MAX {
                "run-end".to_string()
            } else {
                step.to_string()
            };
            return Err(JournalError::NoRun {
                path: self.path.clone(),
                step,
            });
        };
        let record = make(state.run.clone(), now_rfc3339());
        // What announces a side effect is on disk before it; a step's end rides along
        // with the next sync (see [`commit`]).
        let durable = matches!(record, Record::StepStart { .. } | Record::RunEnd { .. });
        let seq = self.write_record(&record)?;
        state.apply(&record);
        drop(current);
        if durable {
            self.sync_to(seq)?;
        }
        Ok(())
    }

    /// Appends one line (durable at once, or at the next [`Journal::sync_to`] of a
    /// number at least this one's); returns its number.
    fn write_record(&self, record: &Record) -> Result<u64, JournalError> {
        let mut line = serde_json::to_vec(record).map_err(|e| JournalError::Io {
            action: "encode a record for",
            path: self.path.clone(),
            source: e.into(),
        })?;
        line.push(b'\n');
        self.sink.append(&line)
    }

    fn lock_current(&self) -> MutexGuard<'_, Option<RunState>> {
        // The state is updated only after a record is written; poisoning leaves it consistent.
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The current time, RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("unknown-time"))
}

/// This machine's host name, for the journal and the lock.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| String::from("unknown-host"))
}

/// A run id: UTC start time and a random suffix, e.g. `20261121T140203Z-3f9a0c1d`.
fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    format!("{stamp}-{:08x}", rand::random::<u32>())
}
