//! Where an import goes in the store and how it is written: the generation number it
//! takes (refusing to touch a generation a rotation uses or certroll created), then the
//! generation's files, its pointer, and the archiving of the one it replaces.

use std::fs;
use std::path::Path;

use super::super::atomic::{create_private_dir, remove_durable, write_private};
use super::super::store::{
    archive_generation, generation_dir, list_generations, load_public, read_pointer,
    write_generation, STAGED,
};
use super::super::{CaCert, PkiError};
use super::{Refusal, Stop};

/// The generation number the import takes, and the current generation it replaces (to
/// archive). Refuses what would change a generation a run uses; the only write is the
/// removal of a staged next generation that `--next` replaces, after every check.
pub(super) fn slot(
    root: &Path,
    ca: &CaCert,
    next: bool,
    name: &str,
) -> Result<(u32, Option<u32>), Stop> {
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
        return next_slot(root, ca, current, staged, name).map(|g| (g, None));
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
        if !load_public(root, cur, name)?.imported {
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
    name: &str,
) -> Result<u32, Stop> {
    if ca.key.is_none() {
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
    if load_public(root, cur, name)?.cert_der == ca.cert_der {
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
/// `key_file` is what `CaStore::key_file` made of the key.
pub(super) fn record(
    root: &Path,
    ca: &CaCert,
    next: bool,
    replaced: Option<u32>,
    key_file: Option<(&str, zeroize::Zeroizing<String>)>,
) -> Result<(), PkiError> {
    let dir = generation_dir(root, ca.generation);
    create_private_dir(root)?;
    // An unreferenced directory is left over from an interrupted attempt.
    remove_dir(&dir)?;
    write_generation(&dir, ca, None, key_file)?;
    let pointer = format!("{}\n", ca.generation);
    if next {
        write_private(&dir.join(STAGED), b"")?;
        return write_private(&root.join("next"), pointer.as_bytes());
    }
    write_private(&root.join("current"), pointer.as_bytes())?;
    if let Some(old) = replaced {
        archive_generation(root, old)?;
    }
    Ok(())
}

/// Removes a generation directory no pointer names; nothing to do if it is absent.
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
