//! The state directory and the files certroll keeps in it, private whatever the umask.
//!
//! The state directory holds CA keys, the journal and the lock. Under a permissive umask
//! (`umask 000`) the plain `create_dir_all` and `OpenOptions::create` would leave them
//! world-readable and world-writable (a forged journal record is an attack on resume).
//! Here the directory is created 0700 and the journal and lock files 0600, and the mode
//! is set explicitly after creation so that no umask can widen it.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of the state directory when certroll creates it.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the journal and the lock file.
pub const FILE_MODE: u32 = 0o600;

/// Creates the state directory (and missing parents) 0700. An existing directory is left
/// as the operator made it.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
}

/// Opens (creating if needed) a state file for reading and writing (`append` for the
/// journal), mode 0600. A file left group- or world-accessible is tightened to 0600.
pub fn open_file(path: &Path, append: bool) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).create(true).mode(FILE_MODE);
    if append {
        opts.append(true);
    } else {
        // Not truncated on open: the lock file's content belongs to its holder.
        opts.write(true).truncate(false);
    }
    let file = opts.open(path)?;
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    // The umask itself is exercised through the binary (tests/cli_state_dir.rs), since
    // changing it here would affect every test thread.
    #[test]
    fn state_dir_and_files_are_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/state");
        create_dir(&state).unwrap();
        assert_eq!(mode(&state), DIR_MODE);
        let f = state.join("journal.jsonl");
        drop(open_file(&f, true).unwrap());
        assert_eq!(mode(&f), FILE_MODE);
    }

    #[test]
    fn loose_state_files_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("lock");
        fs::write(&f, "x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
        drop(open_file(&f, false).unwrap());
        assert_eq!(mode(&f), FILE_MODE);
        assert_eq!(fs::read_to_string(&f).unwrap(), "x");
    }
}
