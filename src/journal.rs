//! The append-only journal of a run and the lock that allows one `apply` at a time.
