//! Driving the real `certroll` binary from tests: a control directory holding the
//! inventory and the state directory, commands run with a time limit and no terminal,
//! and readers for what a run leaves behind (CA store, journal, `status` JSON, a digest of
//! a whole directory tree), plus `openssl verify` to check chains with a second, independent X.509 implementation.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use super::fleet::Fleet;
use super::inventory::{FleetInventory, CA};
pub use super::run::Run;
use super::run::{finish, prepare};

/// A certroll process started in the background.
pub struct Background {
    args: Vec<String>,
    child: Child,
}

impl Background {
    /// The process id (named by the lock holder's message).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to end (with the usual time limit).
    pub fn wait(self) -> Run {
        finish(self.args, self.child)
    }
}

/// The control host's side of a test: `dir/certroll.toml` and `dir/.certroll/`.
pub struct Control {
    pub dir: PathBuf,
    pub inventory: PathBuf,
}

impl Control {
    /// Writes the inventory into `<fleet dir>/control/`.
    pub fn new(fleet: &Fleet, inv: &FleetInventory) -> Control {
        let dir = fleet.dir().join("control");
        let inventory = inv.write(&dir);
        Control { dir, inventory }
    }

    /// Replaces the inventory file.
    pub fn rewrite(&self, inv: &FleetInventory) {
        inv.write(&self.dir);
    }

    /// Runs `certroll -i INVENTORY ARGS...` without a terminal and waits for it.
    pub fn certroll(&self, args: &[&str]) -> Run {
        let bg = self.spawn(args);
        bg.wait()
    }

    /// Starts `certroll -i INVENTORY ARGS...` without waiting.
    pub fn spawn(&self, args: &[&str]) -> Background {
        let mut full = vec!["-i".to_string(), self.inventory.display().to_string()];
        full.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_certroll"));
        cmd.args(&full)
            .current_dir(&self.dir)
            .env_remove("CERTROLL_INVENTORY");
        let child = prepare(&mut cmd)
            .spawn()
            .expect("start the certroll binary");
        full.insert(0, "certroll".to_string());
        Background { args: full, child }
    }

    /// `certroll apply --yes ARGS...`, which must exit 0.
    #[track_caller]
    pub fn apply_ok(&self, extra: &[&str]) -> Run {
        let mut args = vec!["apply", "--yes"];
        args.extend_from_slice(extra);
        let run = self.certroll(&args);
        run.expect_code(0);
        run
    }

    /// `certroll status --format json`, parsed (whatever its exit code).
    pub fn status(&self) -> serde_json::Value {
        let run = self.certroll(&["status", "--format", "json"]);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("status JSON does not parse: {e}\n{run}"))
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join(".certroll")
    }

    /// `state_dir/ca/internal/`.
    pub fn ca_dir(&self) -> PathBuf {
        self.state_dir().join("ca").join(CA)
    }

    /// The root certificate of a live generation, `ca/internal/g<N>/ca.pem`.
    pub fn ca_pem(&self, generation: u32) -> PathBuf {
        self.ca_dir().join(format!("g{generation}")).join("ca.pem")
    }

    /// The root certificate of an archived generation.
    pub fn archived_pem(&self, generation: u32) -> PathBuf {
        self.ca_dir()
            .join("archive")
            .join(format!("g{generation}"))
            .join("ca.pem")
    }

    /// The generation the store's `current` pointer names.
    pub fn current_generation(&self) -> u32 {
        let p = self.ca_dir().join("current");
        let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", p.display()))
    }

    /// Every record of `state_dir/journal.jsonl`.
    pub fn journal(&self) -> Vec<serde_json::Value> {
        let p = self.state_dir().join("journal.jsonl");
        let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        text.lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("journal line does not parse: {e}: {l}"))
            })
            .collect()
    }
}

/// What `openssl ARGS...` prints on stdout, run in `dir`; it must succeed.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `openssl verify -CAfile CA [-untrusted CERT] CERT`; Err carries openssl's output.
/// The certificate file's extra certificates (its chain) are offered as intermediates.
pub fn openssl_verify(ca_file: &Path, cert_file: &Path) -> Result<(), String> {
    let text = fs::read_to_string(cert_file).unwrap_or_default();
    let mut cmd = Command::new("openssl");
    cmd.arg("verify").arg("-CAfile").arg(ca_file);
    if text.matches("BEGIN CERTIFICATE").count() > 1 {
        cmd.arg("-untrusted").arg(cert_file);
    }
    let out = cmd
        .arg(cert_file)
        .output()
        .expect("run openssl (apt-get install -y openssl)");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(all)
    }
}

/// Every certificate of a PEM file, parsed.
pub fn pem_certs(path: &Path) -> Vec<certroll::pki::CertInfo> {
    certroll::pki::parse_pem_certs(&read(path))
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

/// The subjects of every certificate of a PEM file, in file order.
pub fn pem_subjects(path: &Path) -> Vec<String> {
    pem_certs(path).into_iter().map(|c| c.subject).collect()
}

/// Permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// A file's bytes; panics with the path when it cannot be read.
pub fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Everything under `root`, for before/after comparisons: each entry's path (relative to
/// `root`), kind, mode, and the SHA-256 of a file's bytes or a link's target; empty when
/// `root` does not exist. Bounded: a tree of more than 10,000 entries fails the test.
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    use sha2::Digest;
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    if !root.exists() {
        return out;
    }
    while let Some(dir) = todo.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let meta = fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
            let mode = meta.permissions().mode() & 0o7777;
            let what = if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).expect("a link's target");
                format!("link {}", target.display())
            } else if meta.is_dir() {
                todo.push(path.clone());
                format!("dir {mode:04o}")
            } else {
                format!(
                    "file {mode:04o} {}",
                    hex::encode(sha2::Sha256::digest(read(&path)))
                )
            };
            let rel = path.strip_prefix(root).expect("below the root");
            out.insert(rel.display().to_string(), what);
            assert!(
                out.len() <= 10_000,
                "{} holds more than 10,000 entries",
                root.display()
            );
        }
    }
    out
}
