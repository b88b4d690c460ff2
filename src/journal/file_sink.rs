//! The journal's lines in `state_dir/journal.jsonl`: the local state directory's sink.
//!
//! Records are appended at once and synced in groups ([`super::commit`]): one sync makes
//! every line written before it durable, and the journal asks for it before any side
//! effect a record announces. A line cut short by a crash is ended by the next process
//! before it writes (the reader skips it with a warning). The file is created 0600 in a
//! 0700 directory.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::commit::GroupCommit;
use super::{private, JournalError, JournalSink, JOURNAL_FILE};

/// `state_dir/journal.jsonl`, open for appending.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: Mutex<File>,
    /// Syncs a second handle on the file, outside the writers' lock.
    commit: GroupCommit,
}

impl FileSink {
    /// Opens (creating if needed) `state_dir/journal.jsonl` for appending.
    pub fn open(state_dir: &Path) -> Result<FileSink, JournalError> {
        let path = state_dir.join(JOURNAL_FILE);
        let io = |action, source| JournalError::Io {
            action,
            path: path.clone(),
            source,
        };
        private::create_dir(state_dir).map_err(|e| io("create the directory of", e))?;
        let file = private::open_file(&path, true).map_err(|e| io("open", e))?;
        let syncer = file.try_clone().map_err(|e| io("open", e))?;
        Ok(FileSink {
            path,
            file: Mutex::new(file),
            commit: GroupCommit::new(syncer),
        })
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> JournalError {
        JournalError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }

    fn lock_file(&self) -> MutexGuard<'_, File> {
        // A panic while holding the guard cannot leave the file half-written in a way the
        // reader does not tolerate (torn lines are skipped), so a poisoned lock is usable.
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl JournalSink for FileSink {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_all(&self) -> Result<String, JournalError> {
        let mut text = String::new();
        let mut file = self.lock_file();
        file.seek(SeekFrom::Start(0))
            .map_err(|e| self.io("read", e))?;
        file.read_to_string(&mut text)
            .map_err(|e| self.io("read", e))?;
        Ok(text)
    }

    fn append(&self, line: &[u8]) -> Result<u64, JournalError> {
        let mut file = self.lock_file();
        file.write_all(line).map_err(|e| self.io("append to", e))?;
        // Counted before the next writer may append: every line counted is in the file.
        Ok(self.commit.wrote())
    }

    fn sync_to(&self, seq: u64) -> Result<(), JournalError> {
        self.commit.sync_to(seq).map_err(|e| self.io("sync", e))
    }

    fn syncs(&self) -> u64 {
        self.commit.syncs()
    }

    fn end_torn_line(&self) -> Result<(), JournalError> {
        let mut file = self.lock_file();
        let len = file.metadata().map_err(|e| self.io("inspect", e))?.len();
        if len == 0 {
            return Ok(());
        }
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1))
            .map_err(|e| self.io("read", e))?;
        file.read_exact(&mut last).map_err(|e| self.io("read", e))?;
        if last[0] != b'\n' {
            file.write_all(b"\n")
                .map_err(|e| self.io("repair the torn last line of", e))?;
        }
        Ok(())
    }
}
