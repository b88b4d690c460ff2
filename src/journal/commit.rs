//! Group commit: one fsync makes every record written before it durable, so the records
//! of steps running at once share their syncs instead of queueing for one each.
//!
//! The journal's guarantee (docs/performance.md, "Journal syncs"):
//!
//! * A record that announces a side effect — a run-start, a step-start (the files a step
//!   is about to write) — is on disk before [`super::Journal`] returns from writing it,
//!   so before the side effect happens. So is a run-end.
//! * A step-done or step-failed record is written (into the file, so into the page cache)
//!   at once, and synced by the next sync of any record: the next step-start of any step,
//!   or the run-end. Every record is appended before it is synced, so the records on disk
//!   are always a prefix of those written.
//! * `kill -9` of certroll loses nothing that was written: the kernel keeps the file.
//!   A crash of the whole machine can lose the step-done and step-failed records written
//!   since the last sync. Such a step then reads as started and not done, exactly as if
//!   the crash had come just before its step-done was written; a resumed run re-checks it
//!   on the node (files as journaled: reload and confirm again; else apply again), as it
//!   does for any step caught between its start and its end. A step that waits for it
//!   cannot have started: its step-start would have synced the step-done before it.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Counts the records written and the records known to be on disk.
#[derive(Debug)]
pub(super) struct GroupCommit {
    /// A second handle on the journal file, synced without holding the writers' lock.
    file: File,
    /// Records written so far (incremented after each record's `write`).
    written: AtomicU64,
    /// Records known to be on disk; held during a sync, so that a writer whose record a
    /// running sync covers waits for it instead of syncing again.
    synced: Mutex<u64>,
    /// Syncs made (for the measurements of docs/performance.md and the tests).
    syncs: AtomicU64,
}

impl GroupCommit {
    pub fn new(file: File) -> Self {
        GroupCommit {
            file,
            written: AtomicU64::new(0),
            synced: Mutex::new(0),
            syncs: AtomicU64::new(0),
        }
    }

    /// Counts one record written; returns its number. Called by the writer that appended
    /// it, after the append and before letting the next writer in.
    pub fn wrote(&self) -> u64 {
        self.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Returns once record `seq` (and every one before it) is on disk: at once if a sync
    /// since covered it, else after one sync that covers every record written so far.
    pub fn sync_to(&self, seq: u64) -> io::Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        if *synced >= seq {
            return Ok(());
        }
        // Every record counted here was appended before it was counted.
        let upto = self.written.load(Ordering::SeqCst);
        self.file.sync_data()?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        *synced = upto;
        Ok(())
    }

    /// Syncs made so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    #[test]
    fn one_sync_covers_every_record_written_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("j")).unwrap();
        let c = GroupCommit::new(f.try_clone().unwrap());
        let mut seqs = Vec::new();
        for i in 0..5 {
            writeln!(f, "record {i}").unwrap();
            seqs.push(c.wrote());
        }
        c.sync_to(seqs[2]).unwrap();
        for s in seqs {
            c.sync_to(s).unwrap();
        }
        assert_eq!(c.syncs(), 1, "the later records rode along");
        writeln!(f, "record 5").unwrap();
        let s = c.wrote();
        c.sync_to(s).unwrap();
        assert_eq!(c.syncs(), 2);
    }

    #[test]
    fn writers_at_once_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("j")).unwrap();
        let c = Arc::new(GroupCommit::new(f.try_clone().unwrap()));
        let writer = Arc::new(Mutex::new(f));
        std::thread::scope(|s| {
            for t in 0..8 {
                let (c, writer) = (Arc::clone(&c), Arc::clone(&writer));
                s.spawn(move || {
                    for i in 0..50 {
                        let seq = {
                            let mut w = writer.lock().unwrap();
                            writeln!(w, "thread {t} record {i}").unwrap();
                            c.wrote()
                        };
                        c.sync_to(seq).unwrap();
                    }
                });
            }
        });
        assert_eq!(c.written.load(Ordering::SeqCst), 400);
        assert_eq!(*c.synced.lock().unwrap(), 400, "every record is on disk");
        assert!(c.syncs() <= 400);
    }
}
