//! Everything a state backend holds, as bytes: the journal and every file of the CA store
//! with its mode. `certroll state push` and `pull` move one between the local directory
//! and PostgreSQL; the PostgreSQL backend also unpacks its CA store into a private
//! directory for the command with [`Snapshot::write_store`].

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::StateError;
use crate::journal::JOURNAL_FILE;

/// The CA store's directory under a state root.
pub const STORE_DIR: &str = "ca";

/// One file of the CA store: its path below the state root (`ca/internal/g1/ca.pem`, with
/// `/`), its permission bits and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFile {
    pub path: String,
    pub mode: u32,
    pub content: Vec<u8>,
}

/// A backend's whole content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The journal, byte for byte (a torn last line included).
    pub journal: Vec<u8>,
    /// The CA store's files, sorted by path.
    pub files: Vec<StoreFile>,
}

fn io(action: &str, path: &Path, e: std::io::Error) -> StateError {
    StateError::Other(format!("failed to {action} {}: {e}", path.display()))
}

impl Snapshot {
    /// True when there is neither a journal nor a CA store.
    pub fn is_empty(&self) -> bool {
        self.journal.is_empty() && self.files.is_empty()
    }

    /// Reads `root/journal.jsonl` and `root/ca/**` (nothing when absent).
    pub fn read_dir(root: &Path) -> Result<Snapshot, StateError> {
        let journal_path = root.join(JOURNAL_FILE);
        let journal = match fs::read(&journal_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io("read", &journal_path, e)),
        };
        let mut files = Vec::new();
        walk(root, &root.join(STORE_DIR), &mut files)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Snapshot { journal, files })
    }

    /// Writes the snapshot into `root` (journal and CA store), refusing a root that holds
    /// state already: nothing there is ever replaced.
    pub fn write_dir(&self, root: &Path) -> Result<(), StateError> {
        let existing = Snapshot::read_dir(root)?;
        if !existing.is_empty() {
            return Err(StateError::Refused(format!(
                "the state directory {} holds a journal or a CA store already; nothing was \
                 written\n  hint: move it away first, then pull again",
                root.display()
            )));
        }
        create_private_dir(root)?;
        self.write_store(root)?;
        if !self.journal.is_empty() {
            write_file(&root.join(JOURNAL_FILE), 0o600, &self.journal)?;
        }
        Ok(())
    }

    /// Writes the CA store's files below `root`, directories 0700.
    pub fn write_store(&self, root: &Path) -> Result<(), StateError> {
        for f in &self.files {
            let rel = checked(&f.path)?;
            let path = root.join(rel);
            if let Some(parent) = path.parent() {
                create_private_dir(parent)?;
            }
            write_file(&path, f.mode, &f.content)?;
        }
        Ok(())
    }
}

/// A stored path that stays below the root: relative, under `ca/`, no `..`.
fn checked(path: &str) -> Result<PathBuf, StateError> {
    let p = PathBuf::from(path);
    let plain = p.is_relative()
        && p.starts_with(STORE_DIR)
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if plain {
        Ok(p)
    } else {
        Err(StateError::Config(format!(
            "the state backend holds a CA store file named {path:?}, outside the store; \
             nothing was written"
        )))
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<StoreFile>) -> Result<(), StateError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io("list", dir, e))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| io("inspect", &path, e))?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let content = fs::read(&path).map_err(|e| io("read", &path, e))?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(StoreFile {
                path: rel.to_string_lossy().into_owned(),
                mode: meta.permissions().mode() & 0o777,
                content,
            });
        } else {
            return Err(StateError::Other(format!(
                "the CA store holds {}, which is neither a file nor a directory; nothing was \
                 copied",
                path.display()
            )));
        }
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), StateError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io("create", dir, e))
}

fn write_file(path: &Path, mode: u32, content: &[u8]) -> Result<(), StateError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("create", path, e))?;
    f.write_all(content).map_err(|e| io("write", path, e))?;
    f.set_permissions(fs::Permissions::from_mode(mode & 0o777))
        .map_err(|e| io("set the mode of", path, e))?;
    f.sync_all().map_err(|e| io("sync", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_directory_round_trips_byte_for_byte() {
        let a = tempfile::tempdir().unwrap();
        let g1 = a.path().join("ca/internal/g1");
        fs::create_dir_all(&g1).unwrap();
        fs::write(a.path().join("ca/internal/current"), "1\n").unwrap();
        fs::write(g1.join("ca.pem"), "PEM").unwrap();
        fs::set_permissions(g1.join("ca.pem"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(a.path().join(JOURNAL_FILE), "{\"torn\"").unwrap();
        let snap = Snapshot::read_dir(a.path()).unwrap();
        let b = tempfile::tempdir().unwrap();
        let root = b.path().join("state");
        snap.write_dir(&root).unwrap();
        assert_eq!(Snapshot::read_dir(&root).unwrap(), snap);
        assert_eq!(fs::read(root.join(JOURNAL_FILE)).unwrap(), b"{\"torn\"");
        let again = snap.write_dir(&root).unwrap_err();
        assert!(again.to_string().contains("holds a journal"), "{again}");
    }

    #[test]
    fn stored_paths_outside_the_store_are_refused() {
        let snap = Snapshot {
            journal: Vec::new(),
            files: vec![StoreFile {
                path: "ca/../../etc/x".into(),
                mode: 0o600,
                content: Vec::new(),
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        assert!(snap.write_store(dir.path()).is_err());
    }
}
