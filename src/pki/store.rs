//! The CA store in `state_dir/ca/<name>/`: one directory per generation, the pointer to
//! the current one, the next one while a rotation runs, archived generations after it.
//!
//! ```text
//! ca/<name>/current          "1"            generation in use
//! ca/<name>/next             "2"            only while a rotation runs
//! ca/<name>/g1/ca.pem, ca.key               root and its PKCS#8 key (0600)
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

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::PublicKeyData;
use time::OffsetDateTime;

use super::atomic::{create_private_dir, remove_durable, rename_durable, write_private};
use super::keys::load_key;
use super::{cross_sign, new_ca, CaCert, PkiError};
use crate::inventory::CaSpec;

/// The local store of CA generations.
#[derive(Debug, Clone)]
pub struct CaStore {
    pub dir: PathBuf,
}

impl CaStore {
    /// The store under `state_dir` (nothing is created until something is written).
    pub fn new(state_dir: &std::path::Path) -> Self {
        CaStore {
            dir: state_dir.join("ca"),
        }
    }

    /// The generation in use, if the CA was ever created.
    pub fn current(&self, spec: &CaSpec) -> Result<Option<CaCert>, PkiError> {
        let root = self.ca_dir(spec)?;
        match read_pointer(&root.join("current"))? {
            Some(generation) => {
                load_generation(&generation_dir(&root, generation), generation).map(Some)
            }
            None => Ok(None),
        }
    }

    /// The generation being rolled out, if a rotation is in progress.
    pub fn next(&self, spec: &CaSpec) -> Result<Option<CaCert>, PkiError> {
        let root = self.ca_dir(spec)?;
        match read_pointer(&root.join("next"))? {
            Some(generation) => {
                load_generation(&generation_dir(&root, generation), generation).map(Some)
            }
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

    /// Creates generation 1; an error if the CA already exists.
    pub fn init(&self, spec: &CaSpec, now: OffsetDateTime) -> Result<CaCert, PkiError> {
        let root = self.ca_dir(spec)?;
        let pointer = root.join("current");
        if read_pointer(&pointer)?.is_some() {
            return Err(PkiError::State {
                path: pointer,
                message: format!("refusing to create CA {}: it already exists", spec.name),
            });
        }
        let ca = new_ca(spec, 1, now)?;
        let dir = generation_dir(&root, 1);
        write_generation(&dir, &ca, None)?;
        write_private(&pointer, b"1\n")?;
        Ok(ca)
    }

    /// Creates the next generation and its cross certificate, persisted (0600) before
    /// returning. Idempotent: returns the existing next generation if there is one (a
    /// staged imported one stops being staged: the rotation to it has begun).
    ///
    /// A cross certificate is made only when the current generation holds its key and
    /// both generations are roots; otherwise there is none (`None`).
    pub fn begin_rotation(
        &self,
        spec: &CaSpec,
        now: OffsetDateTime,
    ) -> Result<(CaCert, Option<String>), PkiError> {
        let root = self.ca_dir(spec)?;
        if let Some(next) = self.next(spec)? {
            let dir = generation_dir(&root, next.generation);
            remove_durable(&dir.join(STAGED))?;
            let cross = self.cross(spec)?;
            if cross.is_some() || !self.cross_possible(spec, &next)? {
                return Ok((next, cross));
            }
            // A crash between the generation and its cross certificate: make it again.
            remove_durable(&root.join("next"))?;
        }
        let current = self.current(spec)?.ok_or_else(|| PkiError::State {
            path: root.join("current"),
            message: format!(
                "cannot rotate CA {}: it has no current generation; create it first",
                spec.name
            ),
        })?;
        // A generation a rollback abandoned keeps its number: the fresh one comes after it.
        let generation = current.generation.max(self.highest_abandoned(&root)?) + 1;
        let next = new_ca(spec, generation, now)?;
        let cross = if cross_possible(&current, &next) {
            Some(cross_sign(spec, &next, &current, now)?)
        } else {
            None
        };
        write_generation(&generation_dir(&root, generation), &next, cross.as_deref())?;
        write_private(&root.join("next"), format!("{generation}\n").as_bytes())?;
        Ok((next, cross))
    }

    fn cross_possible(&self, spec: &CaSpec, next: &CaCert) -> Result<bool, PkiError> {
        Ok(self
            .current(spec)?
            .is_some_and(|current| cross_possible(&current, next)))
    }

    /// Whether the next generation was imported with `--next` and its rotation has not begun.
    pub fn next_is_staged(&self, spec: &CaSpec) -> Result<bool, PkiError> {
        let root = self.ca_dir(spec)?;
        Ok(match read_pointer(&root.join("next"))? {
            Some(g) => generation_dir(&root, g).join(STAGED).exists(),
            None => false,
        })
    }

    /// Completes a rotation: the next generation becomes current, the old one is archived.
    ///
    /// Safe to repeat after a crash: with no rotation in progress it only archives
    /// generation directories older than the current one that are still in place.
    pub fn finish_rotation(&self, spec: &CaSpec) -> Result<(), PkiError> {
        let root = self.ca_dir(spec)?;
        let next_pointer = root.join("next");
        if let Some(next) = read_pointer(&next_pointer)? {
            load_generation(&generation_dir(&root, next), next)?;
            write_private(&root.join("current"), format!("{next}\n").as_bytes())?;
            remove_durable(&next_pointer)?;
        }
        let Some(current) = read_pointer(&root.join("current"))? else {
            return Ok(());
        };
        for generation in list_generations(&root)?
            .into_iter()
            .filter(|g| *g < current)
        {
            let archive = root.join("archive");
            create_private_dir(&archive)?;
            rename_durable(
                &generation_dir(&root, generation),
                &generation_dir(&archive, generation),
            )?;
        }
        Ok(())
    }

    /// Abandons a rotation after a rollback: the next generation is archived, never
    /// deleted, with a `ROLLED-BACK` note holding `note`; the current one stays in use.
    ///
    /// Safe to repeat after a crash: the note is written first, then the pointer removed,
    /// then the directory moved; a repeat finishes whatever is left. Returns the
    /// generation archived, if one was still in place.
    pub fn abandon_rotation(&self, spec: &CaSpec, note: &str) -> Result<Option<u32>, PkiError> {
        let root = self.ca_dir(spec)?;
        let next_pointer = root.join("next");
        if let Some(next) = read_pointer(&next_pointer)? {
            let dir = generation_dir(&root, next);
            if dir.is_dir() {
                write_private(&dir.join(ROLLED_BACK), note.as_bytes())?;
            }
            remove_durable(&next_pointer)?;
        }
        let current = read_pointer(&root.join("current"))?.unwrap_or(0);
        let mut archived = None;
        for generation in list_generations(&root)?
            .into_iter()
            .filter(|g| *g > current)
        {
            let dir = generation_dir(&root, generation);
            if !dir.join(ROLLED_BACK).exists() {
                continue;
            }
            let archive = root.join("archive");
            create_private_dir(&archive)?;
            rename_durable(&dir, &generation_dir(&archive, generation))?;
            archived = Some(generation);
        }
        Ok(archived)
    }

    /// The note of an archived generation a rollback abandoned, if it is one.
    pub fn rolled_back_note(&self, spec: &CaSpec, generation: u32) -> Option<String> {
        let dir = generation_dir(&self.ca_dir(spec).ok()?.join("archive"), generation);
        fs::read_to_string(dir.join(ROLLED_BACK)).ok()
    }

    /// The highest generation number a rollback abandoned (archived or not yet moved), 0
    /// if none.
    fn highest_abandoned(&self, root: &Path) -> Result<u32, PkiError> {
        let archive = root.join("archive");
        let archived = list_generations(&archive)?.into_iter().max().unwrap_or(0);
        let in_place = list_generations(root)?
            .into_iter()
            .filter(|&g| generation_dir(root, g).join(ROLLED_BACK).exists())
            .max()
            .unwrap_or(0);
        Ok(archived.max(in_place))
    }

    /// Archived generations, oldest first.
    pub fn archived(&self, spec: &CaSpec) -> Result<Vec<CaCert>, PkiError> {
        let archive = self.ca_dir(spec)?.join("archive");
        list_generations(&archive)?
            .into_iter()
            .map(|g| load_generation(&generation_dir(&archive, g), g))
            .collect()
    }

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

/// The note a rollback leaves in the generation it abandons.
pub const ROLLED_BACK: &str = "ROLLED-BACK";

/// Marker of an imported next generation whose rotation has not begun.
pub(super) const STAGED: &str = "staged";
/// Marker of an imported generation: `with-key` or `public-only`.
const IMPORTED: &str = "imported";

/// A cross certificate needs the current key, and only certifies a root by a root.
fn cross_possible(current: &CaCert, next: &CaCert) -> bool {
    current.can_issue()
        && next.can_issue()
        && current.anchor_pem.is_none()
        && next.anchor_pem.is_none()
}

pub(super) fn generation_dir(root: &Path, generation: u32) -> PathBuf {
    root.join(format!("g{generation}"))
}

/// Writes a generation's files; the markers last but one, `staged` (if any) before them.
pub(super) fn write_generation(
    dir: &Path,
    ca: &CaCert,
    cross: Option<&str>,
) -> Result<(), PkiError> {
    create_private_dir(dir)?;
    if let Some(key) = &ca.key_pem {
        write_private(&dir.join("ca.key"), key.as_bytes())?;
    }
    write_private(&dir.join("ca.pem"), ca.cert_pem.as_bytes())?;
    if let Some(anchor) = &ca.anchor_pem {
        write_private(&dir.join("anchor.pem"), anchor.as_bytes())?;
    }
    if let Some(cross) = cross {
        write_private(&dir.join("cross.pem"), cross.as_bytes())?;
    }
    if ca.imported {
        let kind: &[u8] = if ca.can_issue() {
            b"with-key\n"
        } else {
            b"public-only\n"
        };
        write_private(&dir.join(IMPORTED), kind)?;
    }
    Ok(())
}

/// Reads a generation pointer (`current`, `next`); `None` if the file does not exist.
pub(super) fn read_pointer(path: &Path) -> Result<Option<u32>, PkiError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PkiError::Io {
                action: "read generation pointer".into(),
                path: path.into(),
                source,
            })
        }
    };
    match text.trim().parse::<u32>() {
        Ok(g) if g >= 1 => Ok(Some(g)),
        _ => Err(PkiError::Store {
            path: path.into(),
            message: format!("expected a generation number, found {:?}", text.trim()),
        }),
    }
}

fn read_text(path: &Path, action: &str) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        action: action.into(),
        path: path.into(),
        source,
    })
}

/// Reads an optional store file; `None` if it does not exist.
fn read_optional(path: &Path, action: &str) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            action: action.into(),
            path: path.into(),
            source,
        }),
    }
}

/// Loads `dir/ca.pem` and `dir/ca.key`, checking that the key is private (0600) and
/// belongs to the certificate; an imported public-only generation has no key, an
/// imported intermediate has its `anchor.pem`.
pub(super) fn load_generation(dir: &Path, generation: u32) -> Result<CaCert, PkiError> {
    let cert_path = dir.join("ca.pem");
    let key_path = dir.join("ca.key");
    let cert_pem = read_text(&cert_path, "read CA certificate")?;
    let damaged = |path: &Path, message: String| PkiError::Store {
        path: path.into(),
        message,
    };
    let imported = read_optional(&dir.join(IMPORTED), "read import marker")?;
    let anchor_pem = read_optional(&dir.join("anchor.pem"), "read CA anchor")?;
    if let Some(anchor) = &anchor_pem {
        let parses = pem::parse(anchor).is_ok_and(|p| p.tag() == "CERTIFICATE");
        if !parses {
            return Err(damaged(
                &dir.join("anchor.pem"),
                "not a PEM certificate".into(),
            ));
        }
    }
    let public_only = imported.as_deref().map(str::trim) == Some("public-only");
    if public_only {
        let cert_der = pem::parse(&cert_pem)
            .ok()
            .filter(|p| p.tag() == "CERTIFICATE")
            .map(|p| p.into_contents())
            .ok_or_else(|| damaged(&cert_path, "not a PEM certificate".into()))?;
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| damaged(&cert_path, format!("not valid X.509: {e}")))?;
        let not_after = x509.validity().not_after.to_datetime();
        return Ok(CaCert {
            generation,
            cert_pem,
            cert_der,
            key_pem: None,
            not_after,
            anchor_pem,
            imported: true,
        });
    }
    let key_pem = read_text(&key_path, "read CA key")?;

    let mode = fs::metadata(&key_path)
        .map_err(|source| PkiError::Io {
            action: "inspect CA key".into(),
            path: key_path.clone(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(damaged(
            &key_path,
            format!(
                "CA key has mode {:o}; it must be 0600 (chmod 600 it)",
                mode & 0o777
            ),
        ));
    }
    let cert_der = pem::parse(&cert_pem)
        .ok()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.into_contents())
        .ok_or_else(|| damaged(&cert_path, "not a PEM certificate".into()))?;
    let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|e| damaged(&cert_path, format!("not valid X.509: {e}")))?;
    let key = load_key(&key_pem).map_err(|m| damaged(&key_path, m))?;
    if key.subject_public_key_info() != x509.public_key().raw {
        return Err(damaged(
            &key_path,
            format!("the key does not belong to {}", cert_path.display()),
        ));
    }
    let not_after = x509.validity().not_after.to_datetime();
    Ok(CaCert {
        generation,
        cert_pem,
        cert_der,
        key_pem: Some(key_pem),
        not_after,
        anchor_pem,
        imported: imported.is_some(),
    })
}

/// Generation numbers of the `g<N>` directories in `dir`, ascending (none if `dir` is absent).
pub(super) fn list_generations(dir: &Path) -> Result<Vec<u32>, PkiError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PkiError::Io {
                action: "list directory".into(),
                path: dir.into(),
                source,
            })
        }
    };
    let mut generations = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| PkiError::Io {
            action: "list directory".into(),
            path: dir.into(),
            source,
        })?;
        let name = entry.file_name();
        let parsed = name
            .to_str()
            .and_then(|n| n.strip_prefix('g'))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(g) = parsed.filter(|_| entry.path().is_dir()) {
            generations.push(g);
        }
    }
    generations.sort_unstable();
    Ok(generations)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
