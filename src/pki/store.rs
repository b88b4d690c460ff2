//! The CA store in `state_dir/ca/<name>/`: one directory per generation, the pointer to
//! the current one, the next one while a rotation runs, archived generations after it.
//!
//! ```text
//! ca/<name>/current          "1"            generation in use
//! ca/<name>/next             "2"            only while a rotation runs
//! ca/<name>/g1/ca.pem, ca.key               root and its PKCS#8 key (0600; encrypted
//!                                            PKCS#8 with key_store = "encrypted")
//! ca/<name>/gN/ca.key.ref                     key_store = "pkcs11": which token key, no secret
//! ca/<name>/g2/ca.pem, ca.key, cross.pem    cross.pem: G2 signed by G1
//! ca/<name>/archive/g1/                     generations retired by finish_rotation
//! ca/<name>/archive/g2/ROLLED-BACK          a next generation abandoned by a rollback
//! ca/<name>/gN/anchor.pem                    imported intermediate: the root nodes trust
//! ca/<name>/gN/imported                      "with-key" or "public-only" (`ca import`)
//! ca/<name>/gN/staged                        imported next generation not yet rolled out
//! ```
//!
//! Directories are 0700 and every file is written atomically with mode 0600. Pointers
//! are written last, so a crash leaves either the old state or a complete new one; an
//! unreferenced generation directory is simply regenerated on the next attempt.
//!
//! This file holds the store itself and its read side (which generation is current,
//! next, crossed); the generation directories are in `store_generation.rs`, the keys in
//! `store_keys.rs`, and the rotation lifecycle in `store_rotation.rs`.

use std::path::{Path, PathBuf};

use super::{CaCert, PkiError, Unlock};
use crate::inventory::CaSpec;

#[path = "store_extend.rs"]
mod extend;
#[path = "store_generation.rs"]
mod generation;
#[path = "store_keys.rs"]
mod keys;
#[path = "store_rotation.rs"]
mod rotation;

pub(super) use generation::{
    archive_generation, generation_dir, list_generations, load_public, read_pointer,
    write_generation,
};
use generation::{load_generation, read_optional};
use keys::KeyCtx;

/// The note a rollback leaves in the generation it abandons.
pub const ROLLED_BACK: &str = "ROLLED-BACK";

/// Marker of an imported next generation whose rotation has not begun.
pub(super) const STAGED: &str = "staged";

/// The local store of CA generations.
#[derive(Debug, Clone)]
pub struct CaStore {
    pub dir: PathBuf,
    /// What the command unlocked: without it, encrypted keys load locked and token keys
    /// cannot sign.
    pub unlock: Unlock,
}

impl CaStore {
    /// The store under `state_dir` (nothing is created until something is written).
    pub fn new(state_dir: &std::path::Path) -> Self {
        CaStore {
            dir: state_dir.join("ca"),
            unlock: Unlock::default(),
        }
    }

    /// The same store with the secrets and tokens a command unlocked.
    pub fn with_unlock(mut self, unlock: Unlock) -> Self {
        self.unlock = unlock;
        self
    }

    /// How generations of `spec` are loaded: with what this command unlocked for it.
    fn keys<'a>(&'a self, spec: &'a CaSpec) -> KeyCtx<'a> {
        KeyCtx {
            ca: &spec.name,
            unlock: Some(&self.unlock),
        }
    }

    /// The generation in use, if the CA was ever created.
    pub fn current(&self, spec: &CaSpec) -> Result<Option<CaCert>, PkiError> {
        self.pointed(spec, "current")
    }

    /// The generation being rolled out, if a rotation is in progress.
    pub fn next(&self, spec: &CaSpec) -> Result<Option<CaCert>, PkiError> {
        self.pointed(spec, "next")
    }

    /// The generation the pointer file `pointer` (`current`, `next`) names, with its key
    /// unlocked as far as this command can.
    fn pointed(&self, spec: &CaSpec, pointer: &str) -> Result<Option<CaCert>, PkiError> {
        let root = self.ca_dir(spec)?;
        match read_pointer(&root.join(pointer))? {
            Some(generation) => load_generation(
                &generation_dir(&root, generation),
                generation,
                &self.keys(spec),
            )
            .map(Some),
            None => Ok(None),
        }
    }

    /// The cross certificate of the next generation (signed by the current one), PEM.
    pub fn cross(&self, spec: &CaSpec) -> Result<Option<String>, PkiError> {
        let root = self.ca_dir(spec)?;
        match read_pointer(&root.join("next"))? {
            // A generation with no cross certificate (imported, or rotated from a
            // public-only one) simply has none.
            Some(generation) => read_optional(
                &generation_dir(&root, generation).join("cross.pem"),
                "read cross certificate",
            ),
            None => Ok(None),
        }
    }

    /// Whether the next generation was imported with `--next` and its rotation has not begun.
    pub fn next_is_staged(&self, spec: &CaSpec) -> Result<bool, PkiError> {
        let root = self.ca_dir(spec)?;
        Ok(match read_pointer(&root.join("next"))? {
            Some(g) => generation_dir(&root, g).join(STAGED).exists(),
            None => false,
        })
    }

    /// Archived generations, oldest first.
    pub fn archived(&self, spec: &CaSpec) -> Result<Vec<CaCert>, PkiError> {
        let archive = self.ca_dir(spec)?.join("archive");
        list_generations(&archive)?
            .into_iter()
            .map(|g| load_public(&archive, g, &spec.name))
            .collect()
    }

    /// Where generation `generation` of `spec` (in use, not archived) keeps its issuing
    /// CA certificate, or with `anchor` the trust anchor of an imported intermediate.
    pub fn generation_file(&self, spec: &CaSpec, generation: u32, anchor: bool) -> PathBuf {
        let file = if anchor { "anchor.pem" } else { "ca.pem" };
        generation_dir(&self.dir.join(&spec.name), generation).join(file)
    }

    /// `state_dir/ca/<name>`, refusing a CA name that is not a plain directory name.
    pub(super) fn ca_dir(&self, spec: &CaSpec) -> Result<PathBuf, PkiError> {
        let name = &spec.name;
        let plain =
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
        if !plain {
            return Err(PkiError::Store {
                path: self.dir.clone(),
                message: format!("CA name {name:?} cannot be used as a directory name"),
            });
        }
        Ok(self.dir.join(name))
    }
}

/// The store's damage report for `path`.
fn damaged(path: &Path, message: String) -> PkiError {
    PkiError::Store {
        path: path.into(),
        message,
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
