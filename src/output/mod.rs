//! Rendering plans, events and reports for people (text, colour) and scripts (JSON, dot).

pub mod plan;
pub mod progress;
pub mod status;
pub mod style;
pub mod verify;

pub use style::Style;

/// What `--format` asks of `plan`, `apply`, `status` and `verify`: text for people, JSON
/// for scripts (a report, or NDJSON events for `apply`), dot for a plan's graph. `dot`
/// is offered by `plan` only; elsewhere it reads as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Dot,
}
