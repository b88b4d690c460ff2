//! One `apply` at a time: an advisory lock on the state directory itself.
//!
//! The lock is a `flock` on the state directory's own descriptor, so the kernel releases
//! it when the holding process dies, however it dies, and deleting a file cannot break it:
//! a directory holding CA keys and a journal cannot be unlinked under a running apply.
//! After locking, the directory is checked to still be the one at the path (a directory
//! renamed and replaced between open and lock is tried again, a bounded number of times).
//!
//! `state_dir/lock` only describes the holder: pid, host, start time and command line, so
//! that a refused second run can say who is in the way. That record is itself guarded by a
//! short `flock` on the lock file: a taker holds it while it tries the directory lock and,
//! on success, writes its record; a refused taker holds it while it reads the record. So a
//! refusal always names the process that holds the lock, never one that has finished.
//! `certroll status` asks the same way ([`Lock::state`]), without creating anything; the
//! shared lock it holds for an instant is waited out by a taker (200 ms at most).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::private;

/// File name of the lock inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// How long a taker waits for another taker to finish writing or reading the holder record.
const RECORD_WAIT: Duration = Duration::from_secs(5);
/// How long a taker retries the directory lock before it concludes that a run holds it.
const READER_GRACE: Duration = Duration::from_millis(200);
/// How often the directory is re-opened when it was replaced while being locked.
const REOPEN_ATTEMPTS: usize = 5;

/// Who holds the lock, as written by the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// RFC 3339.
    pub since: String,
    pub command: String,
    /// The user running it (written by the PostgreSQL backend's lease).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The run it is executing, once journaled (PostgreSQL backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The lease's last renewal (PostgreSQL backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<String>,
    /// The lease's fencing token (PostgreSQL backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on host {} since {} ({})",
            self.pid, self.host, self.since, self.command
        )?;
        if let Some(user) = &self.user {
            write!(f, ", user {user}")?;
        }
        if let Some(run) = &self.run {
            write!(f, ", run {run}")?;
        }
        if let Some(beat) = &self.heartbeat {
            write!(f, ", last heartbeat {beat}")?;
        }
        if let Some(epoch) = self.epoch {
            write!(f, ", lease epoch {epoch}")?;
        }
        Ok(())
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another certroll run holds the lock on {path}: {holder}; wait for it to finish")]
    Held { path: PathBuf, holder: Box<Holder> },
    #[error("another certroll run holds the lock on {path} (its holder could not be read: {detail}); wait for it to finish")]
    HeldUnknown { path: PathBuf, detail: String },
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Whether a run holds the lock, as seen by a reader such as `certroll status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// No run holds the lock (or there is no state directory yet).
    Free,
    /// A run holds it; `None` when its record could not be read.
    Held(Option<Holder>),
}

/// The held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    /// The state directory, flocked: this descriptor is the lock.
    dir: File,
    /// The holder record, kept open.
    file: File,
    holder: Holder,
}

impl Lock {
    /// Takes the lock on `state_dir` without waiting for another run, recording `command`
    /// as the holder's command line. Creates the directory (0700) and `lock` (0600).
    pub fn acquire(state_dir: &Path, command: &str) -> Result<Lock, LockError> {
        let path = state_dir.join(LOCK_FILE);
        private::create_dir(state_dir)
            .map_err(|e| io("create the state directory", state_dir, e))?;
        let file = private::open_file(&path, false).map_err(|e| io("open lock file", &path, e))?;
        let record = RecordGuard::take(&file);
        let dir = match lock_dir(state_dir, Exclusive::Yes)? {
            Some(dir) => dir,
            None => return Err(held(state_dir, &file, record.is_held())),
        };
        let holder = Holder {
            pid: std::process::id(),
            host: super::hostname(),
            since: super::now_rfc3339(),
            command: command.to_string(),
            user: None,
            run: None,
            heartbeat: None,
            epoch: None,
        };
        write_holder(&file, &holder).map_err(|e| io("write lock file", &path, e))?;
        drop(record);
        Ok(Lock {
            path,
            dir,
            file,
            holder,
        })
    }

    /// Whether a run holds the lock on `state_dir`, and who. Creates nothing: without a
    /// state directory, nothing holds it.
    pub fn state(state_dir: &Path) -> Result<LockState, LockError> {
        if !state_dir.is_dir() {
            return Ok(LockState::Free);
        }
        let path = state_dir.join(LOCK_FILE);
        // Without the record (missing, or not readable by this user) the directory lock
        // still answers whether a run is going on; only its holder stays unknown.
        let file = File::open(&path).ok();
        let record = file.as_ref().map(RecordGuard::take);
        let Some(dir) = lock_dir(state_dir, Exclusive::No)? else {
            let holder = file
                .as_ref()
                .filter(|_| record.as_ref().is_some_and(RecordGuard::is_held))
                .and_then(|f| read_holder(f).ok());
            return Ok(LockState::Held(holder));
        };
        drop(dir);
        Ok(LockState::Free)
    }

    /// The holder record's path, `state_dir/lock`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The locked state directory, kept open: closing it would release the lock.
    pub fn dir(&self) -> &File {
        &self.dir
    }

    /// The holder record, kept open.
    pub fn file(&self) -> &File {
        &self.file
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Exclusive {
    Yes,
    No,
}

/// Opens and locks `state_dir` itself; `None` when another process holds the lock.
/// A shared lock (for a reader) is released as soon as the returned file is dropped.
fn lock_dir(state_dir: &Path, mode: Exclusive) -> Result<Option<File>, LockError> {
    for _ in 0..REOPEN_ATTEMPTS {
        let dir =
            File::open(state_dir).map_err(|e| io("open the state directory", state_dir, e))?;
        let locked = match mode {
            Exclusive::Yes => try_exclusive(&dir),
            Exclusive::No => dir.try_lock_shared(),
        };
        match locked {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io("lock the state directory", state_dir, e))
            }
        }
        // The directory locked must be the one the path names now.
        let ours = dir
            .metadata()
            .map_err(|e| io("inspect the state directory", state_dir, e))?;
        match std::fs::metadata(state_dir) {
            Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => return Ok(Some(dir)),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("inspect the state directory", state_dir, e)),
        }
    }
    Err(io(
        "lock the state directory",
        state_dir,
        std::io::Error::other(format!(
            "it was replaced {REOPEN_ATTEMPTS} times while being locked"
        )),
    ))
}

/// The exclusive lock, tried for up to [`READER_GRACE`]: a `status` holds a shared lock for
/// an instant while it looks, and must not make an `apply` that starts then give up.
fn try_exclusive(dir: &File) -> Result<(), std::fs::TryLockError> {
    let deadline = Instant::now() + READER_GRACE;
    loop {
        match dir.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// The short lock on the holder record, released when dropped.
struct RecordGuard<'f> {
    file: Option<&'f File>,
}

impl<'f> RecordGuard<'f> {
    /// Waits (at most [`RECORD_WAIT`]) for other takers to finish with the record. If one
    /// is stuck, goes on without the guard: the directory lock still decides who runs,
    /// only the record read may then be out of date.
    fn take(file: &'f File) -> Self {
        let deadline = Instant::now() + RECORD_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return RecordGuard { file: Some(file) },
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return RecordGuard { file: None },
            }
        }
    }

    fn is_held(&self) -> bool {
        self.file.is_some()
    }
}

impl Drop for RecordGuard<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.file {
            // Closing the file would release it too; an unlock error leaves nothing held.
            let _ = f.unlock();
        }
    }
}

fn write_holder(mut file: &File, holder: &Holder) -> std::io::Result<()> {
    let mut text = serde_json::to_string(holder).map_err(std::io::Error::other)?;
    text.push('\n');
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

fn read_holder(mut file: &File) -> Result<Holder, String> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    file.read_to_string(&mut text).map_err(|e| e.to_string())?;
    if text.trim().is_empty() {
        return Err("the lock file is empty".to_string());
    }
    serde_json::from_str(text.trim()).map_err(|e| e.to_string())
}

/// The refusal, naming the holder as it described itself.
fn held(state_dir: &Path, file: &File, record_guarded: bool) -> LockError {
    let path = state_dir.to_path_buf();
    if !record_guarded {
        return LockError::HeldUnknown {
            path,
            detail: "another certroll process kept its record busy".to_string(),
        };
    }
    match read_holder(file) {
        Ok(holder) => LockError::Held {
            path,
            holder: Box::new(holder),
        },
        Err(detail) => LockError::HeldUnknown { path, detail },
    }
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> LockError {
    LockError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::acquire(dir.path(), "certroll apply --rotate").unwrap();
        let err = Lock::acquire(dir.path(), "certroll apply").unwrap_err();
        match &err {
            LockError::Held { holder, .. } => assert_eq!(holder.as_ref(), first.holder()),
            other => panic!("expected Held, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("certroll apply --rotate"), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        drop(first);
        let again = Lock::acquire(dir.path(), "certroll apply").unwrap();
        assert_eq!(again.holder().command, "certroll apply");
    }

    #[test]
    fn lock_bypass_by_deleting_the_lock_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::acquire(dir.path(), "certroll apply").unwrap();
        std::fs::remove_file(dir.path().join(LOCK_FILE)).unwrap();
        let err = Lock::acquire(dir.path(), "certroll apply").unwrap_err();
        assert!(
            matches!(err, LockError::HeldUnknown { .. }),
            "a second run took the lock after its file was deleted: {err:?}"
        );
        assert_eq!(
            Lock::state(dir.path()).unwrap(),
            LockState::Held(None),
            "status must see the run too"
        );
        drop(first);
        Lock::acquire(dir.path(), "certroll apply").unwrap();
    }

    #[test]
    fn lock_refusal_never_names_a_finished_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        // A finished run (pid 1 here) left its record behind.
        let stale = Holder {
            pid: 1,
            host: "h".into(),
            since: "then".into(),
            command: "certroll apply (finished)".into(),
            user: None,
            run: None,
            heartbeat: None,
            epoch: None,
        };
        std::fs::write(&path, serde_json::to_string(&stale).unwrap()).unwrap();
        // A new taker has locked the directory and not yet written its record.
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let state_dir = dir.path().to_path_buf();
        let taker = std::thread::spawn(move || {
            let file = private::open_file(&state_dir.join(LOCK_FILE), false).unwrap();
            let record = RecordGuard::take(&file);
            assert!(record.is_held());
            let dir = lock_dir(&state_dir, Exclusive::Yes).unwrap().unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let me = Holder {
                pid: 2,
                host: "h".into(),
                since: "now".into(),
                command: "certroll apply (running)".into(),
                user: None,
                run: None,
                heartbeat: None,
                epoch: None,
            };
            write_holder(&file, &me).unwrap();
            drop(record);
            done_rx.recv().unwrap();
            drop(dir);
        });
        locked_rx.recv().unwrap();
        let err = Lock::acquire(dir.path(), "certroll apply").unwrap_err();
        match &err {
            LockError::Held { holder, .. } => assert_eq!(holder.pid, 2, "{err}"),
            other => panic!("expected the running holder, got {other:?}"),
        }
        match Lock::state(dir.path()).unwrap() {
            LockState::Held(Some(h)) => assert_eq!(h.pid, 2),
            other => panic!("expected the running holder, got {other:?}"),
        }
        done_tx.send(()).unwrap();
        taker.join().unwrap();
    }

    #[test]
    fn local_lock_record_is_written_as_before_backends_existed() {
        // The lease fields of the PostgreSQL backend never reach the local `lock` file.
        let dir = tempfile::tempdir().unwrap();
        let lock = Lock::acquire(dir.path(), "certroll apply").unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        let keys: Vec<String> =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text)
                .unwrap()
                .keys()
                .cloned()
                .collect();
        assert_eq!(keys, ["command", "host", "pid", "since"], "{text}");
        assert!(text.ends_with("}\n"), "{text}");
        drop(lock);
    }

    #[test]
    fn lock_state_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        assert_eq!(Lock::state(&state_dir).unwrap(), LockState::Free);
        assert!(!state_dir.exists());
        std::fs::create_dir(&state_dir).unwrap();
        assert_eq!(Lock::state(&state_dir).unwrap(), LockState::Free);
        assert!(!state_dir.join(LOCK_FILE).exists());
        let lock = Lock::acquire(&state_dir, "certroll apply").unwrap();
        assert_eq!(
            Lock::state(&state_dir).unwrap(),
            LockState::Held(Some(lock.holder().clone()))
        );
        drop(lock);
        assert_eq!(Lock::state(&state_dir).unwrap(), LockState::Free);
    }
}
