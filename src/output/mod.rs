//! Rendering plans, events and reports for people (text, colour) and scripts (JSON, dot).

pub mod progress;
