//! Carrying out a plan: bounded parallelism, confirmation gates, retries.
//!
//! The executor never starts a step before every step in its `after` list is confirmed:
//! that is what keeps every link working while the CA rolls (docs/design.md#gates). It
//! does not know what a step writes; a [`StepWork`] decides that, so the scheduling can be
//! proven with fakes and the real work can be wired to the PKI and the transports elsewhere.
//! [`step`] holds the building blocks of the real work: atomic writes, reload, confirm.

use std::fmt;

use serde::Serialize;

use crate::plan::Step;
use crate::transport::{sha256_hex, ErrorKind, TransportError};

mod changes;
mod events;
mod fleet;
mod health;
mod node_keys;
mod pool_gate;
mod pool_status;
mod retry;
mod run;
pub mod step;

/// What a step's files must hash to; the journal records it (see [`crate::journal`]).
pub use crate::journal::FileHash;
pub use changes::changes_of;
pub use events::{Event, EventSink, NullSink};
pub use fleet::{FleetWork, RunMaterial, RESTART_PENDING};
pub use pool_status::{pool_status, DownMember, PoolStatus};
pub use retry::RetryPolicy;
pub use run::{execute, ExecError, ExecOptions, Outcome};

/// One change to one file of a node. `data` may hold a private key: never log it.
#[derive(Clone, PartialEq, Eq)]
pub enum FileOp {
    /// Write `data` atomically with permission bits `mode`; `what` names the file in messages.
    Write {
        path: String,
        data: Vec<u8>,
        mode: u32,
        what: String,
    },
    /// Remove the file (keeping a backup); missing is not an error.
    Remove { path: String, what: String },
    /// Make a keystore or combined PEM on the node from the new version's certificate and
    /// the key made there (`key_source = "node"`): its bytes never cross the transport; it
    /// is checked by its presence ([`ASSEMBLED`]) and by `verify` on the node's side.
    Assemble { path: String, what: String },
    /// Put the key made on the node (`key_source = "node"`), waiting in the store's
    /// pending directory `pending`, in place. Its bytes never cross the transport: it is
    /// checked by the SHA-256 of its public key (SubjectPublicKeyInfo, DER), `spki_sha256`.
    NodeKey {
        path: String,
        pending: String,
        spki_sha256: String,
        what: String,
    },
}

/// The prefix of a journaled hash that is the SHA-256 of a key's public key, as the node
/// derives it (a key made on the node), rather than of the file's bytes.
pub const PUBLIC_KEY_HASH: &str = "spki:";

/// The journaled "hash" of a file made on the node ([`FileOp::Assemble`]): only its
/// presence is checked.
pub const ASSEMBLED: &str = "assembled-on-node";

impl FileOp {
    pub fn path(&self) -> &str {
        match self {
            FileOp::Write { path, .. }
            | FileOp::Remove { path, .. }
            | FileOp::Assemble { path, .. }
            | FileOp::NodeKey { path, .. } => path,
        }
    }

    pub fn what(&self) -> &str {
        match self {
            FileOp::Write { what, .. }
            | FileOp::Remove { what, .. }
            | FileOp::Assemble { what, .. }
            | FileOp::NodeKey { what, .. } => what,
        }
    }

    /// What the file must look like once the operation has landed.
    pub fn hash(&self) -> FileHash {
        match self {
            FileOp::Write { path, data, .. } => FileHash {
                path: path.clone(),
                sha256: Some(sha256_hex(data)),
            },
            FileOp::Remove { path, .. } => FileHash {
                path: path.clone(),
                sha256: None,
            },
            FileOp::Assemble { path, .. } => FileHash {
                path: path.clone(),
                sha256: Some(ASSEMBLED.to_string()),
            },
            FileOp::NodeKey {
                path, spki_sha256, ..
            } => FileHash {
                path: path.clone(),
                sha256: Some(format!("{PUBLIC_KEY_HASH}{spki_sha256}")),
            },
        }
    }
}

impl fmt::Debug for FileOp {
    /// Shows where and how much, never the content (it may be a private key).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileOp::Write {
                path,
                data,
                mode,
                what,
            } => f
                .debug_struct("Write")
                .field("path", path)
                .field("what", what)
                .field("mode", &format_args!("{mode:o}"))
                .field("data", &format_args!("<{} bytes redacted>", data.len()))
                .finish(),
            FileOp::Assemble { path, what } => f
                .debug_struct("Assemble")
                .field("path", path)
                .field("what", what)
                .finish(),
            FileOp::Remove { path, what } => f
                .debug_struct("Remove")
                .field("path", path)
                .field("what", what)
                .finish(),
            FileOp::NodeKey {
                path,
                pending,
                spki_sha256,
                what,
            } => f
                .debug_struct("NodeKey")
                .field("path", path)
                .field("what", what)
                .field("pending", pending)
                .field("spki_sha256", spki_sha256)
                .finish(),
        }
    }
}

/// What a step will write, computed by [`StepWork::prepare`] without side effects.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    pub ops: Vec<FileOp>,
}

impl Prepared {
    /// The journaled form: paths and hashes only.
    pub fn hashes(&self) -> Vec<FileHash> {
        self.ops.iter().map(FileOp::hash).collect()
    }
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared").field("ops", &self.ops).finish()
    }
}

/// How a step failed; decides whether the executor tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepErrorKind {
    /// Connection lost, refused, timed out: retried with backoff.
    Transient,
    /// The files did not read back as written, or the confirm command never exited 0.
    ConfirmFailed,
    /// Anything else (permission denied, bad input): not retried.
    Permanent,
    /// A host key is unknown or changed, or certroll was interrupted (SIGINT/SIGTERM):
    /// not retried, and no further step of the run starts anywhere (steps in flight
    /// finish). See docs/design.md#safety.
    StopRun,
}

/// A failed step. The message names the node, the action and the file or command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub kind: StepErrorKind,
    pub message: String,
}

impl StepError {
    pub fn new(kind: StepErrorKind, message: impl Into<String>) -> Self {
        StepError {
            kind,
            message: message.into(),
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(StepErrorKind::Transient, message)
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(StepErrorKind::Permanent, message)
    }

    pub fn confirm_failed(message: impl Into<String>) -> Self {
        Self::new(StepErrorKind::ConfirmFailed, message)
    }

    pub fn is_transient(&self) -> bool {
        self.kind == StepErrorKind::Transient
    }
}

impl From<TransportError> for StepError {
    fn from(e: TransportError) -> Self {
        let kind = match e.kind {
            ErrorKind::Transient => StepErrorKind::Transient,
            ErrorKind::HostKeyUnknown | ErrorKind::HostKeyChanged | ErrorKind::Interrupted => {
                StepErrorKind::StopRun
            }
            ErrorKind::Auth | ErrorKind::Io | ErrorKind::FileRefused => StepErrorKind::Permanent,
        };
        StepError {
            kind,
            message: e.to_string(),
        }
    }
}

/// The work of one step, separate from its scheduling.
pub trait StepWork: Send + Sync {
    /// Computes what the step will write (fresh keys are generated here), without side effects.
    fn prepare(&self, step: &Step) -> Result<Prepared, StepError>;
    /// Writes the files, runs reload, waits for confirmation (hash read-back, then the confirm command).
    fn apply(&self, step: &Step, prepared: &Prepared) -> Result<(), StepError>;
    /// On resume, for a step journaled as started but not done: are the journaled files on the node?
    fn files_match(&self, step: &Step, expected: &[FileHash]) -> Result<bool, StepError>;
    /// Reload + confirm only (used when files_match says the write had landed).
    fn reconfirm(&self, step: &Step) -> Result<(), StepError>;
    /// What certroll's own TLS confirm proved of the step's node, once `apply` or
    /// `reconfirm` succeeded (journaled with `step-done`); `None` without that confirm.
    fn proof(&self, _step: &Step) -> Option<String> {
        None
    }
    /// One health check of the step's node after its reload, without reloading again: its
    /// confirm command once and, with `tls_address`, certroll's own TLS confirm. Used by
    /// the health gate of pools (`min_healthy_time`); passes by default.
    fn healthy(&self, _step: &Step) -> Result<(), StepError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_file_content() {
        let secret = b"-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n".to_vec();
        let p = Prepared {
            ops: vec![
                FileOp::Write {
                    path: "/etc/tls/key.pem".into(),
                    data: secret,
                    mode: 0o600,
                    what: "key".into(),
                },
                FileOp::Remove {
                    path: "/etc/tls/cross.pem".into(),
                    what: "proof-key certificate".into(),
                },
            ],
        };
        let shown = format!("{p:?} {:#?}", p);
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(
            shown.contains("/etc/tls/key.pem") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn hashes_are_content_digests_or_absent() {
        let p = Prepared {
            ops: vec![
                FileOp::Write {
                    path: "/a".into(),
                    data: b"abc".to_vec(),
                    mode: 0o644,
                    what: "bundle".into(),
                },
                FileOp::Remove {
                    path: "/b".into(),
                    what: "cross".into(),
                },
            ],
        };
        let h = p.hashes();
        assert_eq!(
            h[0].sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            h[1],
            FileHash {
                path: "/b".into(),
                sha256: None
            }
        );
    }

    #[test]
    fn transport_errors_keep_their_retry_class() {
        use crate::transport::ErrorKind;
        let t = TransportError::new(
            "app1",
            "write key /etc/tls/key.pem",
            ErrorKind::Transient,
            "connection reset",
        );
        let e = StepError::from(t);
        assert!(e.is_transient());
        assert_eq!(
            e.message,
            "failed to write key /etc/tls/key.pem on node app1: connection reset"
        );
        let p = TransportError::new("app1", "write key /k", ErrorKind::Io, "permission denied");
        assert_eq!(StepError::from(p).kind, StepErrorKind::Permanent);
    }
}
