//! The executor against a fake fleet: gates, parallelism, failures, retries, the journal,
//! resume, and the lock.

mod fake;
mod lock;
mod resume;
mod scheduling;
