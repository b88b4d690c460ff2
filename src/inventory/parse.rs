//! Reading the TOML file: plain serde structures first, positions only on failure.
//!
//! [`parse_str`] deserializes the text into [`RawInventory`] (no spans: fast on big
//! fleets), then `validate` applies the rules. A failed rule names the path of the
//! offending value; only then is the text parsed again with spans to turn that path into
//! a line and column. Syntax and schema errors (unknown keys, wrong types) already carry
//! a position from the TOML parser.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::locate::{line_col, Locator};
use super::raw::RawInventory;
use super::validate::{self, Problem};
use super::Inventory;

/// Why an inventory was refused. Display names the file, the position and the offending name.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// No file at the path: says where it looked and how to name another one.
    #[error("no inventory file at {}\n  hint: name the inventory with -i PATH or CERTROLL_INVENTORY=PATH \
             (the default is certroll.toml in the current directory); to start one, `certroll init \
             my-fleet` writes a commented starter inventory, then: certroll -i my-fleet/certroll.toml plan", path.display())]
    NotFound { path: PathBuf },
    /// The file exists but cannot be read; the cause is the I/O error.
    #[error("failed to read inventory {}", path.display())]
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

impl InventoryError {
    /// The file could not be read at all (missing or unreadable), as opposed to refused:
    /// there is no position to give.
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            InventoryError::NotFound { .. } | InventoryError::Read { .. }
        )
    }
}

/// Reads and validates the inventory at `path`.
pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            // Absolute, so the message says where it looked, whatever the working directory.
            let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            InventoryError::NotFound { path }
        } else {
            InventoryError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let text =
        String::from_utf8(bytes).map_err(|e| not_utf8(path, e.as_bytes(), e.utf8_error()))?;
    parse_str(&text, path)
}

/// A file that is not UTF-8: the line and column of the first bad byte (column counted in
/// characters of the valid text before it).
fn not_utf8(path: &Path, bytes: &[u8], e: std::str::Utf8Error) -> InventoryError {
    let valid = e.valid_up_to();
    // Invariant: `valid_up_to` bytes are valid UTF-8, so this never falls back.
    let before = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
    let (line, column) = line_col(before, valid);
    InventoryError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        message: format!(
            "invalid inventory: byte 0x{:02x} is not UTF-8 (a TOML file must be UTF-8 text)",
            bytes[valid]
        ),
        hint: Some("re-save the file as UTF-8, e.g. iconv -f LATIN1 -t UTF-8".to_owned()),
    }
}

/// Parses and validates inventory text; `source` is used in messages and to resolve relative paths.
pub fn parse_str(text: &str, source: &Path) -> Result<Inventory, InventoryError> {
    let raw = parse_raw(text, source)?;
    validate::build(raw, source).map_err(|problem| locate_problem(text, source, problem))
}

/// Deserializes the text without applying defaults or rules: the file as written.
///
/// Large files are parsed in slices when that provably means the same (see `chunked`);
/// otherwise, and for every error, the whole text is parsed at once.
pub fn parse_raw(text: &str, source: &Path) -> Result<RawInventory, InventoryError> {
    if let Some(raw) = super::chunked::parse(text) {
        return Ok(raw);
    }
    toml::from_str(text).map_err(|e| syntax_error(text, source, &e))
}

fn syntax_error(text: &str, source: &Path, e: &toml::de::Error) -> InventoryError {
    let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
    let message = e.message().trim_end().to_owned();
    let hint = unknown_key_hint(&message);
    InventoryError::Invalid {
        path: source.to_path_buf(),
        line,
        column,
        message: format!("invalid inventory: {message}"),
        hint,
    }
}

/// For an unknown key (serde's "unknown field `x`, expected one of `a`, `b`"): the known
/// key it is a typo of, if one is close, and where every key is described.
fn unknown_key_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    // The expected keys are the back-quoted words after the unknown one.
    let known = expected.split('`').skip(1).step_by(2);
    let docs = "see docs/inventory.md for the keys each table accepts";
    Some(match validate::closest(unknown, known) {
        Some(key) => format!("did you mean `{key}`? ({docs})"),
        None => docs.to_owned(),
    })
}

/// Turns a failed rule into an error with the line and column of the offending value.
fn locate_problem(text: &str, source: &Path, problem: Problem) -> InventoryError {
    let locator = Locator::new(text);
    let position = |span: Option<Range<usize>>| line_col(text, span.map_or(0, |s| s.start));
    let (line, column) = position(locator.find_any(&problem.at));
    let mut message = problem.message;
    if let Some(also) = &problem.also {
        let (l, c) = position(locator.find_any(std::slice::from_ref(also)));
        message.push_str(&format!(" (first at {}:{l}:{c})", source.display()));
    }
    InventoryError::Invalid {
        path: source.to_path_buf(),
        line,
        column,
        message,
        hint: problem.hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (usize, usize, String) {
        match parse_str(text, Path::new("/inv/fleet.toml")) {
            Err(InventoryError::Invalid {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_have_positions() {
        let (l, c, m) = err("[ca.x]\nsubject = \n");
        assert_eq!((l, c), (2, 11), "{m}");
        assert!(m.starts_with("invalid inventory:"), "{m}");
    }

    #[test]
    fn unknown_keys_have_positions() {
        let (l, c, m) = err("[ca.x]\n[nodes.a]\nhots = \"h\"\n");
        assert_eq!((l, c), (3, 1));
        assert!(m.contains("unknown field `hots`"), "{m}");
    }

    #[test]
    fn display_names_file_position_and_hint() {
        let e = parse_str("[ca.x]\n[nodes.a]\n", Path::new("/inv/fleet.toml")).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with("/inv/fleet.toml:2:8: node a is reached over ssh"),
            "{shown}"
        );
        assert!(shown.contains("\n  hint: add ssh = "), "{shown}");
    }

    #[test]
    fn no_inventory_says_where_it_looked_once_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("certroll.toml");
        let e = load(&path).unwrap_err();
        assert!(e.is_unreadable());
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("no inventory file at {}", path.display())),
            "{shown}"
        );
        for part in ["-i PATH", "CERTROLL_INVENTORY", "certroll init"] {
            assert!(shown.contains(part), "{shown}");
        }
        assert!(
            std::error::Error::source(&e).is_none(),
            "the cause would repeat it"
        );
    }

    #[test]
    fn non_utf8_inventory_gives_the_position_of_the_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("certroll.toml");
        std::fs::write(&path, b"[ca.x]\nsubject = \"CN=caf\xe9\"\n").unwrap();
        match load(&path).unwrap_err() {
            InventoryError::Invalid {
                line,
                column,
                message,
                ..
            } => {
                assert_eq!((line, column), (2, 18), "{message}");
                assert!(message.contains("0xe9 is not UTF-8"), "{message}");
            }
            other => panic!("expected a positioned error, got {other}"),
        }
    }

    #[test]
    fn minimal_inventory_loads() {
        let inv = parse_str("[ca.x]\n", Path::new("/inv/fleet.toml")).unwrap();
        assert_eq!(inv.state_dir, PathBuf::from("/inv/.certroll"));
        assert_eq!(inv.cas.len(), 1);
        assert!(inv.nodes.is_empty() && inv.links.is_empty());
    }
}
