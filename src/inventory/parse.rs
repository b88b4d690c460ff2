//! Reading the TOML file: serde structures with spans, merged with `[defaults]`.

use std::path::{Path, PathBuf};

use super::Inventory;

/// Why an inventory was refused. Display names the file, the position and the offending name.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("failed to read inventory {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A syntax or schema error, or a failed validation rule, at a place in the file.
    #[error("{path}:{line}:{column}: {message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        hint: Option<String>,
    },
}

/// Reads and validates the inventory at `path`.
pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&text, path)
}

/// Parses and validates inventory text; `source` is used in messages and to resolve relative paths.
pub fn parse_str(_text: &str, _source: &Path) -> Result<Inventory, InventoryError> {
    todo!("inventory parsing")
}
