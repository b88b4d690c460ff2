//! `certroll ca import`: a CA certroll did not make, recorded as a generation of the store.
//!
//! A fleet usually has a CA already (docs/design.md#takeover). Importing it as the *current*
//! generation lets certroll rotate away from it with every gate of a rotation; importing an
//! operator's *next* generation (`--next`, e.g. a new intermediate signed offline by the same
//! root) lets `apply --rotate` roll the fleet onto it instead of onto a CA certroll creates.
//! Every check runs before anything is written: a refusal leaves the store as it was.
//!
//! This file holds the command's types and its order of work; the checks of the files
//! are in `import_validate.rs`, the choice of generation and the writes in
//! `import_record.rs`.

use std::path::PathBuf;

use time::OffsetDateTime;

use super::store::generation_dir;
use super::{CaStore, PkiError};
use crate::inventory::CaSpec;

#[path = "import_record.rs"]
mod record;
#[path = "import_validate.rs"]
mod validate;

use record::{record, slot};
use validate::validate;

/// A file given on the command line: where it came from (for messages) and its bytes.
#[derive(Clone)]
pub struct ImportSource {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for ImportSource {
    // The key file's bytes never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportSource")
            .field("path", &self.path)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// What was imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub generation: u32,
    pub subject: String,
    pub public_only: bool,
    /// The root nodes trust, when the issuing CA is an intermediate.
    pub anchor_subject: Option<String>,
    pub not_after: OffsetDateTime,
    /// Staged as the next generation (`--next`).
    pub next: bool,
}

/// Why an import was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotPem,
    NotCa,
    BadKey,
    KeyMismatch,
    Expired,
    NeedsAnchor,
    AnchorDoesNotCertify,
    InUse,
    Exists,
    NoCurrent,
    NextNeedsKey,
}

/// A refused or failed import. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("refusing to import {path} into CA {ca}: {reason}; nothing was written")]
    Refused {
        ca: String,
        path: PathBuf,
        kind: Refusal,
        reason: String,
    },
    #[error("failed to import into CA {ca}")]
    Store {
        ca: String,
        #[source]
        source: PkiError,
    },
}

impl ImportError {
    /// The kind of refusal, `None` for a store failure.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            ImportError::Refused { kind, .. } => Some(*kind),
            ImportError::Store { .. } => None,
        }
    }
}

/// The files of one import.
#[derive(Debug, Clone)]
pub struct ImportFiles {
    pub cert: ImportSource,
    pub key: Option<ImportSource>,
    /// The label of a key already in the CA's PKCS#11 token (`--pkcs11-key-label`),
    /// instead of a key file.
    pub token_label: Option<String>,
    pub anchor: Option<ImportSource>,
}

/// Why an import stops once the files are valid: a refusal, or the store failed.
enum Stop {
    Refuse(Refusal, String),
    Store(PkiError),
}

impl From<PkiError> for Stop {
    fn from(e: PkiError) -> Self {
        Stop::Store(e)
    }
}

impl CaStore {
    /// Checks the files and records them as the current generation of `spec` (or as the
    /// staged next one with `next`). The key, if any, is stored 0600 atomically. Every
    /// refusal comes before the first write.
    pub fn import(
        &self,
        spec: &CaSpec,
        files: &ImportFiles,
        next: bool,
        now: OffsetDateTime,
    ) -> Result<Imported, ImportError> {
        let refuse = |path: PathBuf, kind: Refusal, reason: String| ImportError::Refused {
            ca: spec.name.clone(),
            path,
            kind,
            reason,
        };
        let stop = |e: Stop| match e {
            Stop::Refuse(kind, reason) => refuse(files.cert.path.clone(), kind, reason),
            Stop::Store(source) => ImportError::Store {
                ca: spec.name.clone(),
                source,
            },
        };
        let mut ca = validate(files, now, self, spec)
            .map_err(|(path, kind, reason)| refuse(path, kind, reason))?;
        let root = self.ca_dir(spec).map_err(|e| stop(e.into()))?;
        let (generation, archive) = slot(&root, &ca, next, &spec.name).map_err(stop)?;
        ca.generation = generation;
        let key_file = self
            .key_file(spec, &ca, &generation_dir(&root, generation))
            .map_err(|e| stop(e.into()))?;
        record(&root, &ca, next, archive, key_file).map_err(|e| stop(e.into()))?;
        Ok(Imported {
            generation,
            subject: subject_of(&ca.cert_der),
            public_only: ca.key.is_none(),
            anchor_subject: ca.anchor_pem.as_ref().map(|_| subject_of(&ca.anchor_der())),
            not_after: ca.not_after,
            next,
        })
    }
}

fn subject_of(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
