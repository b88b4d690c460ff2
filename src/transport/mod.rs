//! How certroll touches a node: read and write files, run commands.
//!
//! [`Transport`] is one live connection to one node; [`Connector`] opens them (one SSH
//! session per node, reused for the run; `via` jumps through another node's session).
//! Every error names the action, the node and the path or command.

use std::sync::Arc;
use std::time::Duration;

use crate::inventory::{Inventory, NodeId};

mod become_sudo;
mod child_env;
#[cfg(test)]
pub(crate) mod fake;
pub mod known_hosts;
pub mod limits;
pub mod local;
mod process;
mod remote;
mod session;
pub mod ssh;
mod staged;
mod stream;
#[cfg(debug_assertions)]
pub mod trace;
mod tunnel;

pub use become_sudo::Sudo;
pub use child_env::SecretEnv;
pub use staged::Stage;
pub use stream::ByteStream;

/// Output of a command run on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status; `None` when the command was killed by a signal or timed out.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// What kind of failure a transport error is; decides whether the executor retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Connection refused, reset, timed out: worth retrying with backoff.
    Transient,
    /// The host key is not in known_hosts (and `--accept-new-host-keys` was not given).
    HostKeyUnknown,
    /// The host key differs from the one in known_hosts: possible attack, never retried.
    HostKeyChanged,
    /// Authentication refused.
    Auth,
    /// Permission denied, no such directory, disk full, read-back mismatch...
    Io,
    /// A node file certroll will not read: not a regular file (a FIFO, a device, a
    /// directory), or larger than [`limits::MAX_FILE_BYTES`]. Never retried.
    FileRefused,
    /// A command was stopped (its process group killed) because certroll received
    /// SIGINT or SIGTERM. Never retried; the run stops.
    Interrupted,
}

/// A failed transport operation.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} on node {node}: {message}")]
pub struct TransportError {
    pub node: String,
    /// What was being done, including the path or command, e.g. "write trust bundle /etc/tls/ca.pem".
    pub action: String,
    pub kind: ErrorKind,
    pub message: String,
}

impl TransportError {
    pub fn new(
        node: &str,
        action: impl Into<String>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        TransportError {
            node: node.to_string(),
            action: action.into(),
            kind,
            message: message.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

/// How an error names running `command`: the command itself when it is one short line,
/// else its first line cut at [`SHOWN_COMMAND`] characters and its size. A step's command
/// carries the whole node-side script (tens of kilobytes, quoted once more under sudo);
/// its first line, `set -- 'apply' 'STORE' …`, says which script and which store.
pub fn run_action(command: &str) -> String {
    let first = command.lines().next().unwrap_or_default();
    if first.len() == command.len() && first.chars().count() <= SHOWN_COMMAND {
        return format!("run `{command}`");
    }
    let shown: String = first.chars().take(SHOWN_COMMAND).collect();
    format!("run `{shown}…` ({} bytes)", command.len())
}

/// The most characters of a command an error shows ([`run_action`]).
pub const SHOWN_COMMAND: usize = 200;

/// Options of an atomic write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions<'a> {
    /// File mode: 0o600 for keys, 0o644 for certificates and bundles.
    pub mode: u32,
    /// If the target exists, it is kept as `<target>.<backup_tag>.bak` before being replaced.
    pub backup_tag: Option<&'a str>,
    /// Human label used in messages ("trust bundle", "certificate", "key").
    pub what: &'a str,
}

/// One entry of a directory listing (symbolic links are not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
    /// A regular file (not a directory, link, FIFO, socket or device).
    pub regular: bool,
    pub size: u64,
}

/// At most this many entries of one directory are listed.
pub const MAX_DIR_ENTRIES: usize = 4096;

/// One live connection to one node. Implementations are used from several threads.
pub trait Transport: Send + Sync {
    /// Node name, for messages.
    fn node(&self) -> &str;

    /// Reads a whole file; `Ok(None)` if it does not exist. Follows symbolic links, but
    /// refuses ([`ErrorKind::FileRefused`]) what is not a regular file or is larger than
    /// [`limits::MAX_FILE_BYTES`], without waiting on it.
    fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, TransportError>;

    /// Permission bits of a file (e.g. `0o600`); `Ok(None)` if it does not exist.
    fn file_mode(&self, path: &str) -> Result<Option<u32>, TransportError>;

    /// Writes atomically: a temporary file in the same directory, fsync, rename over the
    /// target; then reads it back and compares its SHA-256. Creates missing parent
    /// directories (0755). Temporary files left in that directory by an earlier, killed
    /// write of the same file (`.<name>.certroll-<12 hex digits>`) are removed first.
    fn write_file(
        &self,
        path: &str,
        data: &[u8],
        opts: WriteOptions<'_>,
    ) -> Result<(), TransportError>;

    /// Removes a file, keeping a backup when `backup_tag` is given. Missing is not an error.
    fn remove_file(&self, path: &str, backup_tag: Option<&str>) -> Result<(), TransportError>;

    /// Runs a shell command (`sh -c`, stdin from /dev/null) in its own process group
    /// with a time limit. The call returns when the command's shell exits, whether or
    /// not a background child it left still holds its output (that child is neither
    /// waited for nor killed, and what it writes later is discarded); at the deadline,
    /// or on SIGINT/SIGTERM ([`ErrorKind::Interrupted`]), the whole process group is
    /// killed and the call returns at once with `status: None`. At most
    /// [`limits::MAX_OUTPUT_BYTES`] of each stream is kept.
    fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, TransportError>;

    /// Runs a shell command with `input` on its standard input (then end of file), with a
    /// time limit. This is how secrets reach a node's scripts: never in a command line,
    /// which other users of the node can read in the process list. For certroll's own
    /// scripts, which leave nothing running behind them: the command's output may be
    /// carried straight to certroll, and its end may be the end of that output (a node
    /// command that may leave a child behind goes through [`Transport::exec`] or
    /// [`Transport::exec_staged`]).
    fn exec_input(
        &self,
        command: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let _ = (input, timeout);
        Err(TransportError::new(
            self.node(),
            run_action(command),
            ErrorKind::Io,
            "this transport cannot pass input to a command",
        ))
    }

    /// [`Transport::exec_input`] for a command that does certroll's own work first and then
    /// runs the node's commands (the file script, then the node's reload and first confirm):
    /// when the command prints the marker of one of `stages` (in order) on its standard
    /// output, its deadline becomes that moment plus the stage's limit, and from the first
    /// stage on SIGINT/SIGTERM stop it as they stop [`Transport::exec`] (the process group
    /// is killed, [`ErrorKind::Interrupted`]); before, a signal waits for the command.
    /// Whatever the node's commands leave behind is treated as by [`Transport::exec`].
    /// Transports that cannot follow stages run it as [`Transport::exec_input`].
    fn exec_staged(
        &self,
        command: &str,
        input: &[u8],
        timeout: Duration,
        stages: &[Stage<'_>],
    ) -> Result<ExecOutput, TransportError> {
        let _ = stages;
        self.exec_input(command, input, timeout)
    }

    /// Opens a TCP byte stream to `host:port` *as the node reaches it* (an SSH node
    /// connects from its own end of the session; a local node from this machine), with
    /// `timeout` on the connect and on every read and write. Used by certroll's own TLS
    /// confirm. Refused and timed-out connections are [`ErrorKind::Transient`].
    fn open_stream(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Box<dyn ByteStream>, TransportError> {
        let _ = timeout;
        Err(TransportError::new(
            self.node(),
            stream::connect_action(host, port),
            ErrorKind::Io,
            "this transport cannot open TCP streams",
        ))
    }

    /// Lists a directory (at most [`MAX_DIR_ENTRIES`] entries); `Ok(None)` if it does not
    /// exist, or if this transport cannot list directories.
    fn list_dir(&self, _path: &str) -> Result<Option<Vec<DirEntry>>, TransportError> {
        Ok(None)
    }
}

/// Host-key policy for SSH connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostKeyPolicy {
    /// Add unknown host keys to known_hosts on first contact (never a changed one).
    pub accept_new: bool,
}

/// Opens transports to nodes, one per node for the whole run.
pub trait Connector: Send + Sync {
    fn connect(&self, node: NodeId) -> Result<Arc<dyn Transport>, TransportError>;
}

/// The connector for an inventory: local nodes get [`local::LocalTransport`], SSH nodes
/// an [`ssh::SshTransport`] (jumping through `via` nodes), sessions cached per node.
/// Nodes with `become = "sudo"` get their transport wrapped in [`Sudo`]. No command run
/// on this machine inherits the variables of `secrets`.
pub fn connector(inv: &Inventory, policy: HostKeyPolicy, secrets: SecretEnv) -> Arc<dyn Connector> {
    Arc::new(ssh::FleetConnector::new(inv.clone(), policy, secrets))
}

/// Whether `data` holds a PEM private key of any kind (PKCS#8, SEC1, PKCS#1, OpenSSH,
/// encrypted): such a file is never left readable by others in a backup.
pub fn holds_private_key(data: &[u8]) -> bool {
    const END: &[u8] = b"PRIVATE KEY-----";
    data.windows(END.len()).any(|w| w == END)
}

/// SHA-256 of data, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::run_action;

    /// Regression: a step that could not be sent printed its whole command, the node-side
    /// script of 35 kB, as the action of its error.
    #[test]
    fn an_error_names_a_long_command_by_its_first_line_and_its_size() {
        assert_eq!(run_action("sudo -n true"), "run `sudo -n true`");
        let script = format!("set -- 'apply' '/srv/tls'\n{}", "x=1\n".repeat(9000));
        assert_eq!(
            run_action(&script),
            format!("run `set -- 'apply' '/srv/tls'…` ({} bytes)", script.len())
        );
        let long = "é".repeat(5000);
        let action = run_action(&long);
        assert!(action.chars().count() < 250, "{action}");
        assert!(action.ends_with("(10000 bytes)"), "{action}");
    }
}
