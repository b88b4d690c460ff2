//! The executor against a fake fleet: gates, parallelism, failures, retries, the journal,
//! resume, and the lock.

mod fake;
mod lock;
mod pools;
mod resume;
mod scheduling;
