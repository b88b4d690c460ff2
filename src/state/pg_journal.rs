//! The journal's lines in `certroll_journal`, each written only while this run's lease is
//! the current one.
//!
//! A line is inserted by `INSERT … SELECT … FROM certroll_lease WHERE epoch = $mine`: the
//! database checks the fencing token in the same statement that writes, so a run whose
//! lease was broken or taken over writes nothing more, however late its request arrives.
//! Each line also carries a sequence number unique within its epoch; a statement resent
//! after a lost connection (`pg_conn.rs`) finds its line already there and does not write
//! it twice.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::pg_conn::Conn;
use super::StateError;
use crate::journal::{JournalError, JournalSink};

/// Reads the whole journal, in write order.
pub fn read_all(conn: &mut Conn) -> Result<Vec<u8>, StateError> {
    conn.run("read the journal", |c| {
        let rows = c.query("SELECT line FROM certroll_journal ORDER BY seq", &[])?;
        Ok(rows
            .iter()
            .flat_map(|r| r.get::<_, Vec<u8>>(0))
            .collect::<Vec<u8>>())
    })
}

/// The run id of a run-start line.
fn run_started(line: &[u8]) -> Option<String> {
    match serde_json::from_slice::<crate::journal::Record>(line) {
        Ok(crate::journal::Record::RunStart { run, .. }) => Some(run),
        _ => None,
    }
}

/// The journal of one lease.
#[derive(Debug)]
pub struct PgSink {
    path: PathBuf,
    inner: Mutex<Inner>,
    epoch: i64,
    lost: Option<Arc<AtomicBool>>,
}

#[derive(Debug)]
struct Inner {
    conn: Conn,
    /// Sequence number of the next line within this epoch.
    next: i64,
}

impl PgSink {
    pub fn new(conn: Conn, place: &str, epoch: i64, lost: Option<Arc<AtomicBool>>) -> Self {
        PgSink {
            path: PathBuf::from(format!("{place} (table certroll_journal)")),
            inner: Mutex::new(Inner { conn, next: 0 }),
            epoch,
            lost,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // `next` only advances after a write succeeded: a poisoned guard is consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn backend(&self, action: &'static str, e: StateError) -> JournalError {
        JournalError::Backend {
            action,
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn lost_error(&self, inner: &mut Inner, action: &'static str) -> JournalError {
        let by = super::pg_lease::state(&mut inner.conn)
            .ok()
            .and_then(|s| match s {
                crate::journal::LockState::Held(Some(h)) => Some(format!("; held now by {h}")),
                _ => None,
            })
            .unwrap_or_default();
        JournalError::LeaseLost {
            action,
            path: self.path.clone(),
            epoch: self.epoch,
            by,
        }
    }
}

impl JournalSink for PgSink {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_all(&self) -> Result<String, JournalError> {
        let mut inner = self.lock();
        let bytes = read_all(&mut inner.conn).map_err(|e| self.backend("read", e))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Each line is one INSERT that commits on its own, fenced by the lease's epoch: it is
    /// durable when this returns, so [`JournalSink::sync_to`] has nothing left to do.
    fn append(&self, line: &[u8]) -> Result<u64, JournalError> {
        let mut inner = self.lock();
        if self.lost.as_ref().is_some_and(|l| l.load(Ordering::SeqCst)) {
            return Err(self.lost_error(&mut inner, "append to"));
        }
        let (epoch, wseq) = (self.epoch, inner.next);
        let written = inner.conn.run("append to the journal", |c| {
            let n = c.execute(
                "INSERT INTO certroll_journal (epoch, wseq, line)
                 SELECT $1, $2, $3 FROM certroll_lease
                 WHERE id = 1 AND epoch = $1 AND holder IS NOT NULL
                 ON CONFLICT (epoch, wseq) DO NOTHING",
                &[&epoch, &wseq, &line],
            )?;
            if n == 1 {
                if let Some(run) = run_started(line) {
                    // The lease names the run it executes (shown by `certroll lock`).
                    c.execute(
                        "UPDATE certroll_lease SET holder = jsonb_set(holder::jsonb, '{run}',
                             to_jsonb($2::text))::text
                         WHERE id = 1 AND epoch = $1 AND holder IS NOT NULL",
                        &[&epoch, &run],
                    )?;
                }
                return Ok(true);
            }
            // Nothing inserted: written already by an attempt whose answer was lost, or
            // refused because the lease is no longer this run's.
            let there = c.query_opt(
                "SELECT 1 FROM certroll_journal WHERE epoch = $1 AND wseq = $2",
                &[&epoch, &wseq],
            )?;
            Ok(there.is_some())
        });
        match written {
            Ok(true) => {
                inner.next += 1;
                // Counts from 1, like the file sink's lines (`next` is never negative).
                Ok(inner.next.unsigned_abs())
            }
            Ok(false) => {
                if let Some(l) = &self.lost {
                    l.store(true, Ordering::SeqCst);
                }
                Err(self.lost_error(&mut inner, "append to"))
            }
            Err(e) => Err(self.backend("append to", e)),
        }
    }

    fn sync_to(&self, _seq: u64) -> Result<(), JournalError> {
        Ok(())
    }

    fn syncs(&self) -> u64 {
        0
    }

    fn end_torn_line(&self) -> Result<(), JournalError> {
        // A line is one row, written whole or not at all; only a journal pushed from a
        // state directory can end without a newline, and it is ended here like a file's.
        let mut inner = self.lock();
        let bytes = read_all(&mut inner.conn).map_err(|e| self.backend("read", e))?;
        if bytes.last().is_some_and(|b| *b != b'\n') {
            drop(inner);
            self.append(b"\n")?;
        }
        Ok(())
    }
}
