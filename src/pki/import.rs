//! `certroll ca import`: a CA certroll did not make, recorded as a generation of the store.
//!
//! A fleet usually has a CA already (DESIGN §7). Importing it as the *current* generation
//! lets certroll rotate away from it with every gate of a rotation; importing an operator's
//! *next* generation (`--next`, e.g. a new intermediate signed offline by the same root)
//! lets `apply --rotate` roll the fleet onto it instead of onto a CA certroll creates.
//! Every check runs before anything is written: a refusal leaves the store as it was.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::PublicKeyData;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

use super::atomic::{create_private_dir, remove_durable, rename_durable, write_private};
use super::keys::load_key;
use super::store::{
    generation_dir, list_generations, load_generation, read_pointer, write_generation, STAGED,
};
use super::{CaCert, CaStore, PkiError};
use crate::inventory::CaSpec;

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
        let mut ca =
            validate(files, now).map_err(|(path, kind, reason)| refuse(path, kind, reason))?;
        let root = self.ca_dir(spec).map_err(|e| stop(e.into()))?;
        let (generation, archive) = slot(&root, &ca, next).map_err(stop)?;
        ca.generation = generation;
        record(&root, &ca, next, archive).map_err(|e| stop(e.into()))?;
        Ok(Imported {
            generation,
            subject: subject_of(&ca.cert_der),
            public_only: ca.key_pem.is_none(),
            anchor_subject: ca.anchor_pem.as_ref().map(|_| subject_of(&ca.anchor_der())),
            not_after: ca.not_after,
            next,
        })
    }
}

/// The generation number the import takes, and the current generation it replaces (to
/// archive). Refuses what would change a generation a run uses; the only write is the
/// removal of a staged next generation that `--next` replaces, after every check.
fn slot(root: &Path, ca: &CaCert, next: bool) -> Result<(u32, Option<u32>), Stop> {
    let current = read_pointer(&root.join("current"))?;
    let staged = match read_pointer(&root.join("next"))? {
        Some(g) if generation_dir(root, g).join(STAGED).exists() => Some(g),
        Some(g) => {
            return Err(Stop::Refuse(
                Refusal::InUse,
                format!(
                    "a rotation to generation G{g} is in progress and uses the store's \
                     generations; finish it with `certroll apply` first"
                ),
            ))
        }
        None => None,
    };
    if next {
        return next_slot(root, ca, current, staged).map(|g| (g, None));
    }
    if let Some(g) = staged {
        return Err(Stop::Refuse(
            Refusal::InUse,
            format!(
                "generation G{g} is staged as the next generation on top of the current one; \
                 the current generation cannot be replaced under it"
            ),
        ));
    }
    if let Some(cur) = current {
        if !load_generation(&generation_dir(root, cur), cur)?.imported {
            return Err(Stop::Refuse(
                Refusal::Exists,
                format!(
                    "CA already has generation G{cur}, created by certroll; to bring the next \
                     generation yourself, import it with --next"
                ),
            ));
        }
    }
    let mut all = list_generations(root)?;
    all.extend(list_generations(&root.join("archive"))?);
    Ok((all.into_iter().max().unwrap_or(0) + 1, current))
}

/// `--next`: the generation after the current one, which must exist and differ.
fn next_slot(
    root: &Path,
    ca: &CaCert,
    current: Option<u32>,
    staged: Option<u32>,
) -> Result<u32, Stop> {
    if ca.key_pem.is_none() {
        return Err(Stop::Refuse(
            Refusal::NextNeedsKey,
            "a next generation needs its private key (--key): certroll issues the fleet's new \
             leaves from it"
                .into(),
        ));
    }
    let Some(cur) = current else {
        return Err(Stop::Refuse(
            Refusal::NoCurrent,
            "CA has no current generation to rotate from; import the CA the fleet uses now \
             first (without --next)"
                .into(),
        ));
    };
    if load_generation(&generation_dir(root, cur), cur)?.cert_der == ca.cert_der {
        return Err(Stop::Refuse(
            Refusal::Exists,
            format!("it is the current generation G{cur} already"),
        ));
    }
    if let Some(g) = staged {
        // Replacing a staged generation nobody used: unpoint it, then remove it.
        remove_durable(&root.join("next"))?;
        remove_dir(&generation_dir(root, g))?;
    }
    Ok(cur + 1)
}

/// Writes the generation, then its pointer (and archives the one it replaces).
fn record(root: &Path, ca: &CaCert, next: bool, replaced: Option<u32>) -> Result<(), PkiError> {
    let dir = generation_dir(root, ca.generation);
    create_private_dir(root)?;
    // An unreferenced directory is left over from an interrupted attempt.
    remove_dir(&dir)?;
    write_generation(&dir, ca, None)?;
    let pointer = format!("{}\n", ca.generation);
    if next {
        write_private(&dir.join(STAGED), b"")?;
        return write_private(&root.join("next"), pointer.as_bytes());
    }
    write_private(&root.join("current"), pointer.as_bytes())?;
    if let Some(old) = replaced {
        let archive = root.join("archive");
        create_private_dir(&archive)?;
        rename_durable(&generation_dir(root, old), &generation_dir(&archive, old))?;
    }
    Ok(())
}

fn remove_dir(dir: &Path) -> Result<(), PkiError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PkiError::Io {
            action: "remove unused generation directory".into(),
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn subject_of(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_default()
}

type Refused = (PathBuf, Refusal, String);

/// Every check of an import, on the files alone: CA, validity, key, anchor.
fn validate(files: &ImportFiles, now: OffsetDateTime) -> Result<CaCert, Refused> {
    let cert_path = files.cert.path.clone();
    let cert_der = single_cert(&files.cert)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).map_err(|e| {
        (
            cert_path.clone(),
            Refusal::NotPem,
            format!("not valid X.509: {e}"),
        )
    })?;
    check_ca(&cert, &cert_path, now)?;
    let key_pem = match &files.key {
        Some(key) => Some(check_key(key, &cert)?),
        None => None,
    };
    let anchor_pem = match &files.anchor {
        Some(anchor) => Some(check_anchor(anchor, &cert, now)?),
        None => {
            if cert.issuer() != cert.subject() || cert.verify_signature(None).is_err() {
                return Err((
                    cert_path,
                    Refusal::NeedsAnchor,
                    format!(
                        "{} is issued by {}, not self-signed; pass the root the nodes trust \
                         with --anchor FILE",
                        cert.subject(),
                        cert.issuer()
                    ),
                ));
            }
            None
        }
    };
    let cert_pem = super::cert_pem(&cert_der);
    Ok(CaCert {
        generation: 0,
        cert_pem,
        not_after: cert.validity().not_after.to_datetime(),
        cert_der,
        key_pem,
        anchor_pem,
        imported: true,
    })
}

/// The one certificate of a PEM file, DER.
fn single_cert(src: &ImportSource) -> Result<Vec<u8>, Refused> {
    let fail = |reason: String| (src.path.clone(), Refusal::NotPem, reason);
    let blocks = pem::parse_many(&src.bytes).map_err(|e| fail(format!("not valid PEM: {e}")))?;
    let mut certs = blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE");
    let first = certs
        .next()
        .ok_or_else(|| fail("it holds no PEM CERTIFICATE block".into()))?;
    let more = certs.count();
    if more > 0 {
        return Err(fail(format!(
            "it holds {} certificates; pass the issuing CA alone, and its root with --anchor",
            more + 1
        )));
    }
    Ok(first.into_contents())
}

fn check_ca(cert: &X509Certificate<'_>, path: &Path, now: OffsetDateTime) -> Result<(), Refused> {
    if !cert.is_ca() {
        return Err((
            path.to_path_buf(),
            Refusal::NotCa,
            format!(
                "{} is not a CA certificate (basicConstraints has no CA:TRUE); pass the \
                 certificate of the CA that issues the fleet's leaves",
                cert.subject()
            ),
        ));
    }
    let (from, until) = (
        cert.validity().not_before.to_datetime(),
        cert.validity().not_after.to_datetime(),
    );
    if until <= now || from > now {
        let when = if until <= now {
            format!("expired at {until}")
        } else {
            format!("is not valid before {from}")
        };
        return Err((
            path.to_path_buf(),
            Refusal::Expired,
            format!(
                "{} {when}; a fleet cannot be rotated away from a CA its peers no longer \
                 accept — bootstrap a new CA instead",
                cert.subject()
            ),
        ));
    }
    Ok(())
}

/// The key must be PKCS#8 and belong to the certificate. Messages never quote it.
fn check_key(key: &ImportSource, cert: &X509Certificate<'_>) -> Result<String, Refused> {
    let text = std::str::from_utf8(&key.bytes).map_err(|_| {
        (
            key.path.clone(),
            Refusal::BadKey,
            "the key file is not PEM text".to_string(),
        )
    })?;
    let pair = load_key(text).map_err(|m| {
        (
            key.path.clone(),
            Refusal::BadKey,
            format!("{m} (convert it with `openssl pkcs8 -topk8 -nocrypt`)"),
        )
    })?;
    if pair.subject_public_key_info() != cert.public_key().raw {
        return Err((
            key.path.clone(),
            Refusal::KeyMismatch,
            format!("the key does not belong to {}", cert.subject()),
        ));
    }
    Ok(text.to_string())
}

/// The anchor must be a valid CA and have signed the issuing CA.
fn check_anchor(
    anchor: &ImportSource,
    cert: &X509Certificate<'_>,
    now: OffsetDateTime,
) -> Result<String, Refused> {
    let der = single_cert(anchor)?;
    let (_, root) = x509_parser::parse_x509_certificate(&der).map_err(|e| {
        (
            anchor.path.clone(),
            Refusal::NotPem,
            format!("not valid X.509: {e}"),
        )
    })?;
    check_ca(&root, &anchor.path, now)?;
    let signed =
        root.subject() == cert.issuer() && cert.verify_signature(Some(root.public_key())).is_ok();
    if !signed {
        return Err((
            anchor.path.clone(),
            Refusal::AnchorDoesNotCertify,
            format!(
                "the anchor {} did not sign {} (its issuer is {}); pass the root that certified it",
                root.subject(),
                cert.subject(),
                cert.issuer()
            ),
        ));
    }
    Ok(super::cert_pem(&der))
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
