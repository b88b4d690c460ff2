//! What the CA store holds for one CA (the current and next generations, the cross
//! certificate, a staged import), read once per command: the CA store's side of the run
//! to decide.

use anyhow::Context;

use super::error::CommandError;
use crate::inventory::CaSpec;
use crate::pki::{CaCert, CaStore};

/// What the CA store holds for one CA, read once per command.
#[derive(Debug, Clone, Default)]
pub struct CaGenerations {
    /// The generation in use; `None` if the CA was never created.
    pub current: Option<CaCert>,
    /// The generation being rolled out, while a rotation is in progress.
    pub next: Option<CaCert>,
    /// The cross certificate of `next` (signed by `current`), PEM.
    pub cross: Option<String>,
    /// `next` was imported with `ca import --next` and its rotation has not begun: it
    /// waits for `--rotate` (a plain run does not roll it out).
    pub next_staged: bool,
}

impl CaGenerations {
    /// Reads the current and next generations of `spec` and the cross certificate.
    pub fn read(store: &CaStore, spec: &CaSpec) -> Result<Self, CommandError> {
        let read = || {
            format!(
                "failed to read the CA store {}",
                store.dir.join(&spec.name).display()
            )
        };
        Ok(CaGenerations {
            current: store.current(spec).with_context(read)?,
            next: store.next(spec).with_context(read)?,
            cross: store.cross(spec).with_context(read)?,
            next_staged: store.next_is_staged(spec).with_context(read)?,
        })
    }

    /// The generation numbers: (current, next).
    pub fn numbers(&self) -> (Option<u32>, Option<u32>) {
        (
            self.current.as_ref().map(|c| c.generation),
            self.next.as_ref().map(|c| c.generation),
        )
    }
}
