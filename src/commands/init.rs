//! `certroll init [DIR]`: write a commented starter inventory, and nothing else.
//!
//! Starting a fleet used to mean copying `examples/local`, which after `scripts/demo.sh`
//! also copies the demo's CA keys, journal and node files. `init` writes one file,
//! `DIR/certroll.toml` (creating `DIR` when needed): two local nodes that work as they are,
//! so that `plan`, `apply` and `verify` can be tried at once, and an SSH node commented
//! out to copy from. It never replaces a file: an existing inventory is refused (exit 73,
//! `EX_CANTCREAT`) and left as it was.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::CommandError;
use crate::exit;

/// The starter inventory; it loads as it is (tested below).
pub const STARTER: &str = include_str!("init_inventory.toml");

/// The file name `init` writes in its directory: the default inventory of every command.
pub const FILE_NAME: &str = "certroll.toml";

/// Arguments of `certroll init`.
#[derive(Debug, Clone, Default)]
pub struct InitArgs {
    /// Where to write `certroll.toml` (created when missing).
    pub dir: PathBuf,
}

/// Runs `certroll init`; returns the exit code.
pub fn run(args: &InitArgs) -> Result<i32, CommandError> {
    let path = write_starter(&args.dir)?;
    let shown = path.display();
    crate::outln!(
        "wrote a starter inventory to {shown}: two nodes on this machine to try certroll with, \
         and an SSH node commented out to copy from\n  next: certroll -i {shown} plan \
         (then edit it to describe your fleet; every key is in docs/inventory.md)"
    );
    Ok(exit::OK)
}

/// Writes [`STARTER`] to `dir/certroll.toml`, creating `dir` if needed; refuses to replace
/// an existing file (the check and the creation are one step: `O_EXCL`).
pub fn write_starter(dir: &Path) -> Result<PathBuf, CommandError> {
    let path = dir.join(FILE_NAME);
    let cant = |what: &str, e: std::io::Error| {
        CommandError::CantCreate(format!(
            "failed to {what} for the starter inventory {}: {e}; nothing was written",
            path.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| cant("create its directory", e))?;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(CommandError::CantCreate(format!(
                "refusing to overwrite the inventory {}: it already exists; nothing was \
                 written\n  hint: choose another directory (`certroll init DIR`), or move the \
                 file away first",
                path.display()
            )))
        }
        Err(e) => return Err(cant("create the file", e)),
    };
    file.write_all(STARTER.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| cant("write", e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_inventory_loads_with_two_local_nodes_and_one_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_starter(dir.path()).unwrap();
        let inv = crate::inventory::load(&path).unwrap();
        assert_eq!(inv.nodes.len(), 2);
        assert_eq!(inv.cas.len(), 1);
        assert_eq!(inv.cas[0].name, "internal");
    }

    #[test]
    fn the_starter_ssh_example_loads_once_uncommented() {
        let (head, example) = STARTER
            .split_once("# [nodes.db1]")
            .expect("the SSH example");
        let uncommented: String = std::iter::once("[nodes.db1]\n".to_string())
            .chain(
                example
                    .lines()
                    .skip(1)
                    .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(""))),
            )
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, format!("{head}{uncommented}")).unwrap();
        let inv = crate::inventory::load(&path).unwrap();
        assert_eq!(inv.nodes.len(), 3, "{head}{uncommented}");
    }

    #[test]
    fn init_refuses_to_overwrite_an_existing_inventory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "# mine\n").unwrap();
        let err = write_starter(dir.path()).unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(err.exit_code(), exit::CANT_CREATE);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
    }
}
