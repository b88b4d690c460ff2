//! Waves: the earliest parallel layer of each step.
