//! One `apply` at a time: an advisory lock on `state_dir/lock`.
//!
//! The lock is taken with `File::try_lock` (flock), so the kernel releases it when the
//! holding process dies, however it dies; a stale lock file is never a problem. The holder
//! writes its pid, host, start time and command line into the file so that a refused
//! second run can say who is in the way.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the lock inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// Who holds the lock, as written by the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// RFC 3339.
    pub since: String,
    pub command: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on host {} since {} ({})",
            self.pid, self.host, self.since, self.command
        )
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another certroll run holds the lock {path}: {holder}; wait for it to finish")]
    Held { path: PathBuf, holder: Holder },
    #[error("another certroll run holds the lock {path} (its holder could not be read: {detail}); wait for it to finish")]
    HeldUnknown { path: PathBuf, detail: String },
    #[error("failed to {action} lock file {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    file: File,
    holder: Holder,
}

impl Lock {
    /// Takes `state_dir/lock` without waiting, recording `command` as the holder's command line.
    pub fn acquire(state_dir: &Path, command: &str) -> Result<Lock, LockError> {
        let path = state_dir.join(LOCK_FILE);
        let io = |action, source| LockError::Io {
            action,
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(|e| io("create the directory of", e))?;
        // Not truncated on open: until we hold the lock, its content belongs to the holder.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(held(&path, &mut file)),
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", e)),
        }
        let holder = Holder {
            pid: std::process::id(),
            host: super::hostname(),
            since: super::now_rfc3339(),
            command: command.to_string(),
        };
        let mut text =
            serde_json::to_string(&holder).map_err(|e| io("encode the holder for", e.into()))?;
        text.push('\n');
        file.set_len(0).map_err(|e| io("truncate", e))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| io("write", e))?;
        file.write_all(text.as_bytes())
            .map_err(|e| io("write", e))?;
        file.sync_data().map_err(|e| io("sync", e))?;
        Ok(Lock { path, file, holder })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The lock file, kept open: closing it would release the lock.
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// The refusal, naming the holder as it described itself.
fn held(path: &Path, file: &mut File) -> LockError {
    let mut text = String::new();
    let read = file.read_to_string(&mut text);
    let path = path.to_path_buf();
    match read {
        Err(e) => LockError::HeldUnknown {
            path,
            detail: e.to_string(),
        },
        Ok(_) => match serde_json::from_str::<Holder>(text.trim()) {
            Ok(holder) => LockError::Held { path, holder },
            Err(_) if text.trim().is_empty() => LockError::HeldUnknown {
                path,
                detail: "the holder is still writing it".to_string(),
            },
            Err(e) => LockError::HeldUnknown {
                path,
                detail: e.to_string(),
            },
        },
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
            LockError::Held { holder, .. } => assert_eq!(holder, first.holder()),
            other => panic!("expected Held, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("certroll apply --rotate"), "{msg}");
        assert!(
            msg.contains(&dir.path().join("lock").display().to_string()),
            "{msg}"
        );
        drop(first);
        let again = Lock::acquire(dir.path(), "certroll apply").unwrap();
        assert_eq!(again.holder().command, "certroll apply");
    }
}
