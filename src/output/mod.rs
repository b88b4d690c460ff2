//! Rendering plans, events and reports for people (text, colour) and scripts (JSON, dot).

pub mod plan;
pub mod progress;
pub mod style;
pub mod verify;

pub use style::Style;
