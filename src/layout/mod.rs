//! How a node's files for one CA sit on disk, so that what its software reads together
//! always belongs together (docs/design.md#safety).
//!
//! The real files live in versioned directories of one hidden *store* beside the
//! certificate; the paths the software is configured with are symlinks through one
//! `current` link, and a change is switched by renaming a new `current` over the old one
//! (one rename(2)), the layout Kubernetes uses for mounted secrets:
//!
//! ```text
//! /etc/tls/cert.pem -> .certroll-internal/current/cert.pem
//! /etc/tls/key.pem  -> .certroll-internal/current/key.pem
//! /etc/tls/ca.pem   -> .certroll-internal/current/bundle.pem
//! /etc/tls/.certroll-internal/current -> v-<run>.<id>      (the one link that is switched)
//! /etc/tls/.certroll-internal/v-<run>.<id>/{cert,key,bundle,proof}.pem
//! /etc/tls/.certroll-internal/before-<run> -> the version the run found (its way back)
//! ```
//!
//! A path outside the certificate's directory gets an absolute link into the store. A
//! reader that opens the key and then the certificate sees one version or the other, never
//! a mix, except across the single switch itself. Plain files are migrated the first time
//! (see [`script`]); every phase of a change leaves a matching pair and can be run again.
//! Nothing but directories is added to the served directory, so a server that loads every
//! file of it never sees a backup.

use std::time::Duration;

use crate::inventory::{Become, Node, NodePaths, TransportKind};
use crate::transport::{ErrorKind, ExecOutput, Stage, Transport, TransportError};
use script_io::command;

pub mod inspect;
mod keygen;
pub mod keys_script;
mod os_trust;
pub mod os_trust_script;
mod password;
pub mod safety_script;
pub mod script;
pub mod script_io;

pub use inspect::inspect_store;
pub use keygen::{keygen, public_key, NodeKeyRequest, KEYGEN_TIMEOUT};
pub use os_trust::{install_os_trust, OsTrustInstall};
pub use os_trust_script::OS_UPDATE_EXITED;
pub use password::{store_password, BAD_PASSWORD_FILE};

/// The line that ends the file data on the script's standard input (then a space and the
/// step's nonce).
const END_MARKER: &str = "certroll-end-of-data";

/// How long writing a file set may take on top of the node's reload (`confirm_timeout`).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(120);

/// One file of a node's set for one CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Bundle,
    Cert,
    Key,
    Proof,
    /// `keystore`: PKCS#12 with the leaf key and chain.
    Keystore,
    /// `truststore`: PKCS#12 or JKS with the node's anchors.
    Truststore,
    /// `combined_pem`: the chain then the key.
    Combined,
}

impl Role {
    /// Every role, in the order the script handles them.
    pub const ALL: [Role; 7] = [
        Role::Bundle,
        Role::Cert,
        Role::Key,
        Role::Proof,
        Role::Keystore,
        Role::Truststore,
        Role::Combined,
    ];

    /// The file's name inside a version directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Role::Bundle => "bundle.pem",
            Role::Cert => "cert.pem",
            Role::Key => "key.pem",
            Role::Proof => "proof.pem",
            Role::Keystore => "keystore.p12",
            Role::Truststore => "truststore.ks",
            Role::Combined => "combined.pem",
        }
    }

    /// Mode of a new file when the inventory sets none: files with a private key 0600,
    /// the rest 0644.
    pub fn default_mode(self) -> u32 {
        match self {
            Role::Key | Role::Keystore | Role::Combined => 0o600,
            _ => 0o644,
        }
    }

    /// The mode the inventory sets for this role (`key_mode`, `cert_mode`, `bundle_mode`).
    pub fn explicit_mode(self, node: &Node) -> Option<u32> {
        let f = &node.files;
        match self {
            Role::Key | Role::Keystore | Role::Combined => f.key_mode,
            Role::Cert => f.cert_mode,
            Role::Bundle | Role::Proof | Role::Truststore => f.bundle_mode,
        }
    }

    /// The role's path among a node's paths, if the node has that file.
    pub fn path(self, paths: &NodePaths) -> Option<&str> {
        match self {
            Role::Bundle => Some(&paths.trust_bundle),
            Role::Cert => Some(&paths.cert),
            Role::Key => Some(&paths.key),
            Role::Proof => paths.proof_cert.as_deref(),
            Role::Keystore => paths.keystore.as_deref(),
            Role::Truststore => paths.truststore.as_deref(),
            Role::Combined => paths.combined_pem.as_deref(),
        }
    }

    /// The path the script links to the store, `-` for none: a PEM key that stays inside
    /// the store ([`NodePaths::key_in_store`]) has no link.
    fn link_path(self, paths: &NodePaths) -> Option<&str> {
        match self {
            Role::Key if paths.key_in_store => Some("-"),
            _ => self.path(paths),
        }
    }

    /// The role whose path is `path`.
    pub fn of(paths: &NodePaths, path: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.path(paths) == Some(path))
    }
}

/// The store of a node's files for CA `ca`: `.certroll-<ca>` in the certificate's directory.
pub fn store_dir(paths: &NodePaths, ca: &str) -> String {
    let dir = parent(&paths.cert);
    format!("{}/.certroll-{ca}", dir.trim_end_matches('/'))
}

/// A store's own bookkeeping beside its versions: the lock held around changes, the script
/// that owns the store now (fencing), and the node the store belongs to.
pub const BOOKKEEPING: [&str; 3] = [".lock", ".owner", ".node"];

/// Where stores go when another user controls the certificate's directory and the
/// inventory sets no `store_dir`: `<this>/<ca>-<hash of that directory>` (root only).
pub const FALLBACK_STORES: &str = "/var/lib/certroll/stores";

/// The first four words of every store command: the preferred store (`.certroll-<ca>` in
/// `store_dir`, else beside the certificate), the fallback directory (`-` when the
/// inventory chose the place), the CA and the node the store belongs to.
fn store_words(node: &Node, ca: &str) -> [String; 4] {
    let (store, fallback) = match node.store_dir(ca) {
        Some(dir) => (
            format!("{}/.certroll-{ca}", dir.trim_end_matches('/')),
            "-".to_string(),
        ),
        None => (store_dir(&node.paths(ca), ca), FALLBACK_STORES.to_string()),
    };
    [store, fallback, ca.to_string(), node.name.clone()]
}

/// What the symlink at `path` holds: relative when it sits beside the store, else absolute.
pub fn link_target(path: &str, store: &str, role: Role) -> String {
    let (store_parent, store_name) = store.rsplit_once('/').unwrap_or(("", store));
    let inside = format!("{store_name}/current/{}", role.file_name());
    if parent(path) == store_parent || (store_parent.is_empty() && parent(path) == "/") {
        inside
    } else {
        format!("{store}/current/{}", role.file_name())
    }
}

/// The directory of a path (`/` for a file at the root).
fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((dir, _)) => dir,
        None => ".",
    }
}

/// What a step does to one file of the set.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    Write(&'a [u8]),
    Remove,
    /// The key [`keygen`] made on the node, in the pending directory `.key-<tag>` named here.
    NodeKey(&'a str),
    /// A keystore or combined PEM made on the node from the new version's `cert.pem` and
    /// `key.pem` (`key_source = "node"`); a keystore with the password of the node's
    /// `store_password_file`, read there.
    Assemble,
}

/// Options of [`apply`].
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions<'a> {
    /// Run by the same remote command once the files are in place (saves a round trip).
    pub reload: Option<&'a str>,
    /// The node's confirm command: its first attempt runs in the same remote command,
    /// right after a reload that exited 0 (or right after the switch, without a reload).
    pub confirm: Option<&'a str>,
    /// After the switch, remove the versions no longer needed (as [`cleanup`] does): for
    /// the node's last step of a run, so that a complete run leaves no old private key.
    pub clean: bool,
    /// `os_trust`: the CA's anchors to install in the operating system's trust store after
    /// the switch, its update command run before the reload when they changed.
    pub os_trust: Option<OsTrustInstall<'a>>,
    /// Test hook: stop the script at this phase (1..=8), as a crash there would.
    #[doc(hidden)]
    pub stop_at: u8,
    /// Test hook: at this phase, touch `<file>.reached` and wait (at most 60 s) until
    /// `<file>` exists, as a script whose certroll was killed may still be running.
    #[doc(hidden)]
    pub pause_at: Option<(u8, String)>,
}

/// What [`apply`] did. `reload` is the reload command's result when one was given;
/// `confirm` the first confirm attempt's, when one was given and it ran (not after a
/// failed reload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The OS trust store's update command's result, when it ran (`os_trust`).
    pub os_update: Option<ExecOutput>,
    pub reload: Option<ExecOutput>,
    pub confirm: Option<ExecOutput>,
}

/// A file-set change that failed.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// `key_source = "node"` on a node without `openssl`.
    #[error("failed to {action} on node {node}: openssl is not installed there, and key_source = \"node\" needs it on the node to make and check its keys (install openssl, or set key_source = \"control\")")]
    NoOpenssl { node: String, action: String },
    /// The script refused or failed before the switch (`ownership` when an owner or group
    /// could not be given): what the software reads is as it was.
    #[error("failed to {action} on node {node}: {message}")]
    Node {
        node: String,
        action: String,
        message: String,
        ownership: bool,
    },
}

/// Whether the script may assume it runs as root (then it does not re-check owners).
fn runs_as_root(node: &Node) -> bool {
    use std::os::unix::fs::MetadataExt;
    match &node.transport {
        _ if node.become_with == Become::Sudo => true,
        TransportKind::Ssh(s) => s.user == "root",
        // /proc/self belongs to this process's effective user.
        TransportKind::Local => std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0),
    }
}

/// Writes `changes` into a new version of the node's set for `ca` and switches `current`
/// to it in one rename; roles not in `changes` are carried over unchanged. `run` tags the
/// version and the run's backup link. With `opts.reload`, the reload runs right after.
pub fn apply(
    t: &dyn Transport,
    node: &Node,
    ca: &str,
    run: &str,
    changes: &[(Role, Change<'_>)],
    opts: &ApplyOptions<'_>,
) -> Result<Applied, LayoutError> {
    let paths = node.paths(ca);
    let words = store_words(node, ca);
    let store = words[0].clone();
    let tag = format!("{run}.{}", hex::encode(rand::random::<[u8; 4]>()));
    let stop = match &opts.pause_at {
        Some((phase, file)) => format!("p{phase}:{file}"),
        None => opts.stop_at.to_string(),
    };
    let mut args: Vec<String> = vec!["apply".into()];
    args.extend(words);
    args.extend([
        tag,
        run.to_string(),
        node.files.owner.clone().unwrap_or_default(),
        node.files.group.clone().unwrap_or_default(),
        if runs_as_root(node) { "1" } else { "0" }.into(),
        stop,
        opts.reload.unwrap_or_default().to_string(),
        opts.confirm.unwrap_or_default().to_string(),
        END_MARKER.to_string(),
        if opts.clean {
            node.files.keep_backups.to_string()
        } else {
            "-".to_string()
        },
    ]);
    let (os_words, os_data) = OsTrustInstall::words(opts.os_trust.as_ref(), ca);
    args.extend(os_words);
    let mut input = Vec::new();
    for role in Role::ALL {
        let Some(path) = role.link_path(&paths) else {
            continue;
        };
        let change = changes.iter().find(|(r, _)| *r == role).map(|(_, c)| *c);
        let (action, size) = match change {
            Some(Change::Write(data)) => {
                input.extend_from_slice(data);
                ("w", data.len().to_string())
            }
            Some(Change::Remove) => ("r", "0".into()),
            Some(Change::NodeKey(pending)) => ("n", pending.to_string()),
            Some(Change::Assemble) => match (role, node.store_password_file(ca)) {
                (Role::Keystore, Some(file)) => match node.stores.pkcs12_profile {
                    crate::stores::Pkcs12Profile::Modern => ("p", file),
                    crate::stores::Pkcs12Profile::Legacy => ("P", file),
                },
                _ => ("c", "0".into()),
            },
            None => ("k", "0".into()),
        };
        let xmode = role
            .explicit_mode(node)
            .map_or("-".to_string(), |m| format!("{m:o}"));
        args.extend([
            role.file_name().to_string(),
            path.to_string(),
            action.to_string(),
            size,
            xmode,
            format!("{:o}", role.default_mode()),
        ]);
    }
    input.extend_from_slice(&os_data);
    // The end of the data, then the step's nonce: the script's markers carry it.
    let nonce = script_io::nonce();
    input.extend_from_slice(format!("{END_MARKER} {nonce}\n").as_bytes());
    let action = format!("write the files of CA {ca} through {store}");
    let timeout = WRITE_TIMEOUT + node.confirm_timeout;
    let out = if opts.reload.is_some() || opts.confirm.is_some() || opts.os_trust.is_some() {
        // The node's commands get the time limit each had as a command of its own, and
        // SIGINT/SIGTERM stop them (never the file change before them). The markers carry
        // the nonce: nothing a node's command prints moves the deadline or the signal rule.
        let (in_place, reloaded) = (
            script_io::files_in_place(&nonce),
            script_io::reload_exited(&nonce),
        );
        let stages = [
            Stage {
                marker: &in_place,
                limit: node.confirm_timeout,
            },
            Stage {
                marker: &reloaded,
                limit: node.confirm_timeout,
            },
        ];
        let stages = if opts.reload.is_some() {
            &stages[..]
        } else {
            &stages[..1]
        };
        t.exec_staged(&command(&args), &input, timeout, stages)?
    } else {
        t.exec_input(&command(&args), &input, timeout)?
    };
    let r = script_io::parse(&out.stdout, &out.stderr, opts.reload.is_some(), &nonce);
    if !r.in_place {
        return Err(failure(node, action, &out));
    }
    let os_update = r.os_update.clone();
    if os_update.as_ref().is_some_and(|o| !o.success()) {
        // The reload and the confirm did not run after a failed update.
        return Ok(Applied {
            os_update,
            reload: None,
            confirm: None,
        });
    }
    let reload = opts.reload.map(|_| ExecOutput {
        status: r.reload_status,
        stdout: r.reload_stdout.clone(),
        stderr: r.reload_stderr.clone(),
    });
    // The confirm ran only after a reload that exited 0 (or without a reload).
    let confirmed = opts.reload.is_none() || r.reload_status == Some(0);
    let confirm = opts.confirm.filter(|_| confirmed).map(|_| ExecOutput {
        status: r.confirm_status,
        stdout: r.confirm_stdout.clone(),
        stderr: r.confirm_stderr.clone(),
    });
    Ok(Applied {
        os_update,
        reload,
        confirm,
    })
}

/// Removes what the runs before no longer need from the node's set for `ca`: every version
/// but `current` and the `keep_backups` most recent runs' backups, leftovers of interrupted
/// changes, and `<file>.<run>.bak` files earlier versions of certroll left beside the files.
pub fn cleanup(t: &dyn Transport, node: &Node, ca: &str) -> Result<(), LayoutError> {
    let paths = node.paths(ca);
    let words = store_words(node, ca);
    let store = words[0].clone();
    let mut args = vec!["cleanup".to_string()];
    args.extend(words);
    args.push(node.files.keep_backups.to_string());
    args.extend(
        Role::ALL
            .into_iter()
            .filter_map(|r| r.link_path(&paths))
            .map(str::to_string),
    );
    let out = t.exec_input(&command(&args), &[], WRITE_TIMEOUT)?;
    if out.success() {
        return Ok(());
    }
    let action = format!("remove old backups of CA {ca} from {store}");
    Err(failure(node, action, &out))
}

fn failure(node: &Node, action: String, out: &ExecOutput) -> LayoutError {
    // A node whose keys are made on the control host needs openssl only to make its
    // keystore again at a cross-signed prune: the script's own message says so.
    if out.status == Some(14) && node.files.key_source == crate::inventory::KeySource::Node {
        return LayoutError::NoOpenssl {
            node: node.name.clone(),
            action,
        };
    }
    let said: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let last = said
        .iter()
        .rev()
        .find(|l| l.starts_with("certroll: "))
        .or(said.last())
        .map(|l| l.trim_start_matches("certroll: ").to_string());
    let message = match (last, out.status) {
        (Some(m), _) => m,
        (None, Some(code)) => format!("the file script exited {code} without a message"),
        (None, None) => "the file script was killed or timed out".to_string(),
    };
    LayoutError::Node {
        node: node.name.clone(),
        action,
        message,
        ownership: out.status == Some(11),
    }
}

impl LayoutError {
    /// True when retrying may help (a lost connection); never for refusals.
    pub fn is_transient(&self) -> bool {
        matches!(self, LayoutError::Transport(e) if e.kind == ErrorKind::Transient)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod keygen_tests;

#[cfg(test)]
mod inspect_tests;

#[cfg(test)]
mod stores_tests;

#[cfg(test)]
mod hostile_tests;

#[cfg(test)]
mod os_trust_tests;
