//! The lifecycle of a CA's generations in the store: the first one (`init`), the next
//! one and its cross certificate while a rotation runs (`begin_rotation`), and the end of
//! a rotation, completed (`finish_rotation`) or abandoned by a rollback
//! (`abandon_rotation`). Every step is safe to repeat after a crash: pointers move last.

use std::fs;
use std::path::Path;

use time::OffsetDateTime;

use super::super::atomic::{remove_durable, write_private};
use super::super::{cross_sign, new_ca_with_key, CaCert, PkiError};
use super::{
    archive_generation, generation_dir, list_generations, load_public, read_pointer,
    write_generation, CaStore, ROLLED_BACK, STAGED,
};
use crate::inventory::CaSpec;

impl CaStore {
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
        let dir = generation_dir(&root, 1);
        let ca = new_ca_with_key(spec, 1, self.new_key(spec, 1, &dir)?, now)?;
        let key_file = self.key_file(spec, &ca, &dir)?;
        write_generation(&dir, &ca, None, key_file)?;
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
            if cross.is_some() || !self.cross_possible(spec, &next, now)? {
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
        let generation = current.generation.max(highest_abandoned(&root)?) + 1;
        let dir = generation_dir(&root, generation);
        let next = new_ca_with_key(spec, generation, self.new_key(spec, generation, &dir)?, now)?;
        let cross = if cross_possible(&current, &next, now) {
            Some(cross_sign(spec, &next, &current, now)?)
        } else {
            None
        };
        let key_file = self.key_file(spec, &next, &dir)?;
        write_generation(&dir, &next, cross.as_deref(), key_file)?;
        write_private(&root.join("next"), format!("{generation}\n").as_bytes())?;
        Ok((next, cross))
    }

    fn cross_possible(
        &self,
        spec: &CaSpec,
        next: &CaCert,
        now: OffsetDateTime,
    ) -> Result<bool, PkiError> {
        Ok(self
            .current(spec)?
            .is_some_and(|current| cross_possible(&current, next, now)))
    }

    /// Completes a rotation: the next generation becomes current, the old one is archived.
    ///
    /// Safe to repeat after a crash: with no rotation in progress it only archives
    /// generation directories older than the current one that are still in place.
    pub fn finish_rotation(&self, spec: &CaSpec) -> Result<(), PkiError> {
        let root = self.ca_dir(spec)?;
        let next_pointer = root.join("next");
        if let Some(next) = read_pointer(&next_pointer)? {
            load_public(&root, next, &spec.name)?;
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
            archive_generation(&root, generation)?;
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
            if !generation_dir(&root, generation).join(ROLLED_BACK).exists() {
                continue;
            }
            archive_generation(&root, generation)?;
            archived = Some(generation);
        }
        Ok(archived)
    }

    /// The note of an archived generation a rollback abandoned, if it is one.
    pub fn rolled_back_note(&self, spec: &CaSpec, generation: u32) -> Option<String> {
        let dir = generation_dir(&self.ca_dir(spec).ok()?.join("archive"), generation);
        fs::read_to_string(dir.join(ROLLED_BACK)).ok()
    }
}

/// The highest generation number a rollback abandoned (archived or not yet moved), 0
/// if none.
fn highest_abandoned(root: &Path) -> Result<u32, PkiError> {
    let archive = root.join("archive");
    let archived = list_generations(&archive)?.into_iter().max().unwrap_or(0);
    let in_place = list_generations(root)?
        .into_iter()
        .filter(|&g| generation_dir(root, g).join(ROLLED_BACK).exists())
        .max()
        .unwrap_or(0);
    Ok(archived.max(in_place))
}

/// A cross certificate needs both keys, two roots, and a current generation that has not
/// expired (it cannot outlive the CA that signs it: a rotation away from an expired CA
/// goes without one, docs/operations.md#an-expiring-ca).
fn cross_possible(current: &CaCert, next: &CaCert, now: OffsetDateTime) -> bool {
    current.not_after > now
        && current.can_issue()
        && next.can_issue()
        && current.anchor_pem.is_none()
        && next.anchor_pem.is_none()
}
