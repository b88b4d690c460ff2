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
/// A service the command needs is unavailable (`EX_UNAVAILABLE`): the PostgreSQL state
/// backend cannot be reached. Nothing was changed.
pub const UNAVAILABLE: i32 = 69;
/// An output file cannot be created (`EX_CANTCREAT`): `init` never replaces an inventory.
pub const CANT_CREATE: i32 = 73;
/// Refused in this state (`EX_NOPERM`: not permitted as things stand): the command is
/// well formed, but the CA store, the journal or the fleet does not allow it now — a
/// rollback after a completed rotation or with no rotation in progress, a bootstrap over
/// another CA's files, a rotation of a CA never created, a routine run from a public-only
/// generation. Nothing was changed; running it again as it is gives the same answer
/// (unlike [`INCOMPLETE`]), and the message says what would change it.
pub const REFUSED: i32 = 77;
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
