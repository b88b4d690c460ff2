//! Process exit codes, in one place so that the binary, the docs and the tests agree.
//!
//! The values follow BSD `sysexits.h` where a meaning exists there, and the
//! monitoring-plugin convention for `certroll verify`.

/// Everything done, or nothing to do.
pub const OK: i32 = 0;
/// An unexpected failure (I/O on the control host, a bug).
pub const FAILURE: i32 = 1;
/// `plan --detailed-exitcode`: the plan has work to do.
pub const PLAN_HAS_WORK: i32 = 2;
/// Command-line usage error (`EX_USAGE`).
pub const USAGE: i32 = 64;
/// The inventory file is missing or cannot be read (`EX_NOINPUT`). Nothing was changed.
pub const NO_INPUT: i32 = 66;
/// An output file cannot be created (`EX_CANTCREAT`): `init` never replaces an inventory.
pub const CANT_CREATE: i32 = 73;
/// Incomplete run, try again later: a step failed or a node was down (`EX_TEMPFAIL`).
pub const INCOMPLETE: i32 = 75;
/// Stopped by SIGINT (128 + 2, the shell convention); SIGTERM gives [`INCOMPLETE`].
/// The run was journaled as interrupted and resumes with the next `apply`.
pub const INTERRUPTED: i32 = 130;
/// Bad inventory (`EX_CONFIG`): the error gives file:line:column. Nothing was changed.
pub const BAD_INVENTORY: i32 = 78;

/// `certroll verify`: all links and nodes healthy.
pub const VERIFY_OK: i32 = 0;
/// `certroll verify`: something needs attention soon (e.g. a leaf expiring).
pub const VERIFY_WARNING: i32 = 1;
/// `certroll verify`: a link would fail or a key does not match.
pub const VERIFY_CRITICAL: i32 = 2;
/// `certroll verify`: a node could not be read (unreachable, host key refused).
pub const VERIFY_UNKNOWN: i32 = 3;
