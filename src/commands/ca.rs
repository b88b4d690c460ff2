//! `certroll ca import`: record a CA certroll did not make as the current (or, with `--next`,
//! the staged next) generation of a `[ca.NAME]` (docs/design.md#takeover, docs/takeover.md).
//!
//! Holds the run lock while it works, and refuses while a run of the CA is unfinished:
//! importing over a generation a run is using would change what the run deploys.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::{keys, select_ca, CommandError};
use crate::exit;
use crate::inventory::KeyStore;
use crate::output::escape;
use crate::pki::import::ImportFiles;
use crate::pki::{CaStore, ImportError, ImportSource};

/// Arguments of `certroll ca import`.
#[derive(Debug, Clone, Default)]
pub struct ImportArgs {
    pub inventory: PathBuf,
    /// The `[ca.NAME]` to import into.
    pub ca: String,
    pub cert: PathBuf,
    pub key: Option<PathBuf>,
    /// The label of a key already in the CA's PKCS#11 token, instead of `key`.
    pub pkcs11_key_label: Option<String>,
    pub anchor: Option<PathBuf>,
    /// Stage the next generation instead of recording the current one.
    pub next: bool,
}

/// Runs `certroll ca import`; returns the exit code.
pub fn import(args: &ImportArgs) -> Result<i32, CommandError> {
    let (inv, state) = super::load_with_state(&args.inventory)?;
    let ca = select_ca(&inv, Some(&args.ca))?;
    let spec = &inv.cas[ca];
    let files = ImportFiles {
        cert: read_source(&args.cert, "CA certificate")?,
        key: args
            .key
            .as_deref()
            .map(|p| read_source(p, "CA private key"))
            .transpose()?,
        token_label: args.pkcs11_key_label.clone(),
        anchor: args
            .anchor
            .as_deref()
            .map(|p| read_source(p, "anchor certificate"))
            .transpose()?,
    };
    let command = format!("certroll ca import {}", spec.name);
    let (lease, unfinished) = super::lease_for_ca(&*state, &spec.name, &command)?;
    if let Some(run) = unfinished {
        return Err(CommandError::BadInput(format!(
            "refusing to import {} into CA {}: run {} of this CA is unfinished and uses its \
             generations; nothing was written\n  hint: finish it with `certroll apply` first",
            args.cert.display(),
            spec.name,
            run
        )));
    }
    // An encrypted store encrypts the imported key; a pkcs11 store finds it in the token.
    let store = match (&files.key, &args.pkcs11_key_label, &spec.key_store) {
        (None, None, _) | (_, _, KeyStore::File) => CaStore::new(&inv.state_dir),
        _ => CaStore::new(&inv.state_dir).with_unlock(keys::unlock(spec, true)?),
    };
    let done = store
        .import(spec, &files, args.next, OffsetDateTime::now_utc())
        .map_err(|e| match e {
            ImportError::Refused { .. } => CommandError::BadInput(e.to_string()),
            ImportError::Store { .. } => CommandError::Other(anyhow::Error::new(e)),
        })?;
    state.save_store(&*lease)?;
    let kind = if done.public_only {
        "public-only: certroll will only rotate away from it"
    } else {
        "with its key: certroll issues from it"
    };
    let role = if done.next {
        "staged as the next generation; `certroll apply --rotate` rolls the fleet onto it"
    } else {
        "recorded as the current generation"
    };
    // Subjects come from the certificates: shown, never obeyed by the terminal.
    crate::outln!(
        "imported {} into CA {} as G{} ({kind}), {role}",
        escape::line(&done.subject),
        spec.name,
        done.generation
    );
    if let Some(anchor) = &done.anchor_subject {
        crate::outln!(
            "  anchor: {} (bundles hold it; leaves are served with the intermediate)",
            escape::line(anchor)
        );
    }
    let until = done
        .not_after
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| done.not_after.to_string());
    crate::outln!("  valid until {until}");
    Ok(exit::OK)
}

/// Reads a file named on the command line, refusing what is not a small regular file:
/// a file that cannot be read is bad input (exit 78), like one that is not a CA.
fn read_source(path: &Path, what: &str) -> Result<ImportSource, CommandError> {
    const LIMIT: u64 = 1 << 20;
    let refused = |why: String| {
        CommandError::BadInput(format!(
            "failed to read {what} {}: {why}; nothing was written",
            path.display()
        ))
    };
    let meta = std::fs::metadata(path).map_err(|e| refused(e.to_string()))?;
    if !meta.is_file() || meta.len() > LIMIT {
        return Err(refused("not a regular file of at most 1 MiB".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| refused(e.to_string()))?;
    Ok(ImportSource {
        path: path.to_path_buf(),
        bytes,
    })
}
