//! Rendering plans, events and reports for people (text, colour) and scripts (JSON, dot).

pub mod escape;
pub mod plan;
pub mod progress;
pub mod prometheus;
pub mod status;
pub mod style;
pub mod textfile;
pub mod verify;

pub use style::Style;

/// The result of writing to standard output, where a reader that went away early
/// (`certroll plan | head -1`) ends the output, not the command: a broken pipe is success.
pub fn unless_reader_left(written: std::io::Result<()>) -> std::io::Result<()> {
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// What `--format` asks of `plan`, `apply`, `status` and `verify`: text for people, JSON
/// for scripts (a report, or NDJSON events for `apply`), dot for a plan's graph. `dot`
/// is offered by `plan` only, prometheus (the exposition format) by `verify` only;
/// elsewhere they read as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Dot,
    Prometheus,
}
