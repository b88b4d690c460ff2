//! Crash-safe local writes for the CA store: a file is either the old content or the new
//! one, never half of it, and a private key is never readable by anyone else, not even
//! for an instant (the temporary file is created 0600, then written, synced, renamed).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::PkiError;

fn io_error(action: &str, path: &Path, source: std::io::Error) -> PkiError {
    PkiError::Io {
        action: action.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` and its missing parents with mode 0700; an existing directory keeps
/// its parents as they are but is tightened to 0700 itself.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_error("create directory", dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| io_error("set mode 0700 on", dir, e))
}

/// Writes `bytes` to `path` atomically with mode 0600: temporary file in the same
/// directory (created 0600), write, fsync, rename over `path`, fsync the directory.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    let dir = parent(path)?;
    let tmp = temp_path(path);
    let result = write_then_rename(&tmp, path, bytes);
    if result.is_err() {
        // Best effort: the temporary file holds nothing the final file would not.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|e| io_error("create temporary file", tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| io_error("write", tmp, e))?;
    file.sync_all().map_err(|e| io_error("sync", tmp, e))?;
    drop(file);
    fs::rename(tmp, path).map_err(|e| io_error(&format!("rename {} to", tmp.display()), path, e))
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce: u64 = rand::random();
    path.with_file_name(format!(".{name}.tmp.{}.{nonce:016x}", std::process::id()))
}

fn parent(path: &Path) -> Result<&Path, PkiError> {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| PkiError::Store {
            path: path.to_path_buf(),
            message: "a store file must live in a directory".into(),
        })
}

/// Makes a rename or a removal in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), PkiError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync directory", dir, e))
}

/// Renames `from` to `to` (same file system) and syncs both parent directories.
pub(crate) fn rename_durable(from: &Path, to: &Path) -> Result<(), PkiError> {
    fs::rename(from, to).map_err(|e| io_error(&format!("move {} to", from.display()), to, e))?;
    sync_dir(parent(to)?)?;
    let from_dir = parent(from)?;
    if Some(from_dir) != to.parent() {
        sync_dir(from_dir)?;
    }
    Ok(())
}

/// Removes a file and syncs its directory; a missing file is not an error.
pub(crate) fn remove_durable(path: &Path) -> Result<(), PkiError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent(path)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_0600_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        create_private_dir(&sub).unwrap();
        assert_eq!(
            fs::metadata(&sub).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let file = sub.join("k.pem");
        write_private(&file, b"one").unwrap();
        write_private(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = fs::read_dir(&sub).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary files left behind");
    }

    #[test]
    fn error_names_action_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope/k.pem");
        let err = write_private(&missing, b"x").unwrap_err().to_string();
        assert!(
            err.contains("create temporary file") && err.contains("nope"),
            "{err}"
        );
    }
}
