//! Inventory loading: one test per validation rule (message and position) in
//! `rules.rs`, and the happy paths (defaults, merging, list links, several CAs, local
//! paths, the example, generated fleets) in `happy.rs`.

use certroll::inventory::{self, Inventory, InventoryError};
use std::path::{Path, PathBuf};

mod happy;
mod rules;

pub const SOURCE: &str = "/srv/fleet/certroll.toml";

pub fn ok(text: &str) -> Inventory {
    inventory::parse_str(text, Path::new(SOURCE)).unwrap_or_else(|e| panic!("refused: {e}"))
}

/// A refusal: position, message, hint, and the text at the position.
struct Refusal {
    line: usize,
    column: usize,
    message: String,
    hint: String,
    at: String,
}

fn refused(text: &str) -> Refusal {
    match inventory::parse_str(text, Path::new(SOURCE)) {
        Err(InventoryError::Invalid {
            path,
            line,
            column,
            message,
            hint,
        }) => {
            assert_eq!(path, PathBuf::from(SOURCE));
            let at = text
                .lines()
                .nth(line - 1)
                .map(|l| l.chars().skip(column - 1).collect())
                .unwrap_or_default();
            Refusal {
                line,
                column,
                message,
                hint: hint.unwrap_or_default(),
                at,
            }
        }
        Err(e) => panic!("expected a positioned error, got {e}"),
        Ok(_) => panic!("inventory was accepted:\n{text}"),
    }
}

impl Refusal {
    /// Asserts the position and that the text there starts with `snippet`.
    fn at(&self, line: usize, column: usize, snippet: &str) -> &Self {
        assert_eq!(
            (self.line, self.column),
            (line, column),
            "wrong position for {:?}",
            self.message
        );
        assert!(
            self.at.starts_with(snippet),
            "at {:?}, expected {snippet:?}",
            self.at
        );
        self
    }

    fn says(&self, part: &str) -> &Self {
        assert!(
            self.message.contains(part),
            "message {:?} lacks {part:?}",
            self.message
        );
        self
    }

    fn hints(&self, part: &str) -> &Self {
        assert!(
            self.hint.contains(part),
            "hint {:?} lacks {part:?}",
            self.hint
        );
        self
    }
}

/// One CA, two local nodes: a valid base to which each test adds one mistake.
const BASE: &str = r#"[ca.internal]

[defaults]
transport = "local"

[nodes.app1]
[nodes.db1]
"#;

fn with_base(extra: &str) -> String {
    format!("{BASE}{extra}")
}
