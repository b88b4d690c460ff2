//! The CA store in `state_dir/ca/<name>/`: one directory per generation, the pointer to
//! the current one, the next one while a rotation runs, archived generations after it.

use std::path::PathBuf;

use time::OffsetDateTime;

use super::{CaCert, PkiError};
use crate::inventory::CaSpec;

/// The local store of CA generations.
#[derive(Debug, Clone)]
pub struct CaStore {
    pub dir: PathBuf,
}

impl CaStore {
    /// The store under `state_dir` (nothing is created until something is written).
    pub fn new(state_dir: &std::path::Path) -> Self {
        CaStore { dir: state_dir.join("ca") }
    }

    /// The generation in use, if the CA was ever created.
    pub fn current(&self, _spec: &CaSpec) -> Result<Option<CaCert>, PkiError> {
        todo!()
    }

    /// The generation being rolled out, if a rotation is in progress.
    pub fn next(&self, _spec: &CaSpec) -> Result<Option<CaCert>, PkiError> {
        todo!()
    }

    /// The cross certificate of the next generation (signed by the current one), PEM.
    pub fn cross(&self, _spec: &CaSpec) -> Result<Option<String>, PkiError> {
        todo!()
    }

    /// Creates generation 1; an error if the CA already exists.
    pub fn init(&self, _spec: &CaSpec, _now: OffsetDateTime) -> Result<CaCert, PkiError> {
        todo!()
    }

    /// Creates the next generation and its cross certificate, persisted (0600) before
    /// returning. Idempotent: returns the existing next generation if there is one.
    pub fn begin_rotation(&self, _spec: &CaSpec, _now: OffsetDateTime) -> Result<(CaCert, String), PkiError> {
        todo!()
    }

    /// Completes a rotation: the next generation becomes current, the old one is archived.
    pub fn finish_rotation(&self, _spec: &CaSpec) -> Result<(), PkiError> {
        todo!()
    }

    /// Archived generations, oldest first.
    pub fn archived(&self, _spec: &CaSpec) -> Result<Vec<CaCert>, PkiError> {
        todo!()
    }
}
