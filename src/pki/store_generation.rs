//! One generation directory of the CA store (`g<N>/`), its pointers (`current`, `next`)
//! and the `archive/`: how a generation is written, found, loaded and checked, and moved
//! out of the way. Everything the rotation lifecycle and `ca import` do to the disk goes
//! through here.

use std::fs;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::super::atomic::{create_private_dir, rename_durable, write_private};
use super::super::{CaCert, PkiError};
use super::damaged;
use super::keys::{load_key_of, KeyCtx};

/// Marker of an imported generation: `with-key` or `public-only`.
const IMPORTED: &str = "imported";

/// The directory of generation `generation` under `root` (the CA's, or its archive).
pub(in crate::pki) fn generation_dir(root: &Path, generation: u32) -> PathBuf {
    root.join(format!("g{generation}"))
}

/// Moves generation `generation` from `root` into `root/archive/`.
pub(in crate::pki) fn archive_generation(root: &Path, generation: u32) -> Result<(), PkiError> {
    let archive = root.join("archive");
    create_private_dir(&archive)?;
    rename_durable(
        &generation_dir(root, generation),
        &generation_dir(&archive, generation),
    )
}

/// Loads generation `generation` under `root` for its certificates alone: nothing is
/// unlocked, its key (if any) loads locked.
pub(in crate::pki) fn load_public(
    root: &Path,
    generation: u32,
    ca: &str,
) -> Result<CaCert, PkiError> {
    load_generation(
        &generation_dir(root, generation),
        generation,
        &KeyCtx::none(ca),
    )
}

/// Writes a generation's files; the markers last but one, `staged` (if any) before them.
/// `key_file` is what `CaStore::key_file` made of the key.
pub(in crate::pki) fn write_generation(
    dir: &Path,
    ca: &CaCert,
    cross: Option<&str>,
    key_file: Option<(&str, Zeroizing<String>)>,
) -> Result<(), PkiError> {
    create_private_dir(dir)?;
    if let Some((name, text)) = &key_file {
        write_private(&dir.join(name), text.as_bytes())?;
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
pub(in crate::pki) fn read_pointer(path: &Path) -> Result<Option<u32>, PkiError> {
    let Some(text) = read_optional(path, "read generation pointer")? else {
        return Ok(None);
    };
    match text.trim().parse::<u32>() {
        Ok(g) if g >= 1 => Ok(Some(g)),
        _ => Err(damaged(
            path,
            format!("expected a generation number, found {:?}", text.trim()),
        )),
    }
}

fn io_error(action: &str, path: &Path) -> impl FnOnce(std::io::Error) -> PkiError {
    let (action, path) = (action.to_string(), path.to_path_buf());
    move |source| PkiError::Io {
        action,
        path,
        source,
    }
}

/// Reads a store file that must exist.
pub(super) fn read_text(path: &Path, action: &str) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io_error(action, path))
}

/// Reads an optional store file; `None` if it does not exist.
pub(super) fn read_optional(path: &Path, action: &str) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io_error(action, path)(source)),
    }
}

/// Loads `dir/ca.pem` and its key (`ca.key`, or `ca.key.ref` for a token key), checking
/// that a key file is private (0600) and that the key belongs to the certificate when it
/// can be read; an imported public-only generation has no key, an imported intermediate
/// has its `anchor.pem`.
pub(super) fn load_generation(
    dir: &Path,
    generation: u32,
    keys: &KeyCtx<'_>,
) -> Result<CaCert, PkiError> {
    let cert_path = dir.join("ca.pem");
    let cert_pem = read_text(&cert_path, "read CA certificate")?;
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
    let cert_der = pem::parse(&cert_pem)
        .ok()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.into_contents())
        .ok_or_else(|| damaged(&cert_path, "not a PEM certificate".into()))?;
    let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|e| damaged(&cert_path, format!("not valid X.509: {e}")))?;
    let not_after = x509.validity().not_after.to_datetime();
    let public_only = imported.as_deref().map(str::trim) == Some("public-only");
    let key = if public_only {
        None
    } else {
        Some(load_key_of(dir, generation, keys, x509.public_key().raw)?)
    };
    Ok(CaCert {
        generation,
        cert_pem,
        cert_der,
        key,
        not_after,
        anchor_pem,
        imported: imported.is_some(),
    })
}

/// Generation numbers of the `g<N>` directories in `dir`, ascending (none if `dir` is absent).
pub(in crate::pki) fn list_generations(dir: &Path) -> Result<Vec<u32>, PkiError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io_error("list directory", dir)(source)),
    };
    let mut generations = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("list directory", dir))?;
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
