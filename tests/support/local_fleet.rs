//! A fleet of three local-transport nodes in a temporary directory, driven through the
//! real `certroll` binary: `lb → app` one-way and `app ⇄ db` mutual, files under
//! `nodes/<node>/`, reload and confirm as `touch` and `test`. A node's confirmation fails
//! while `nodes/<node>/fail` exists ([`LocalFleet::fail_confirm`]), so a run can be
//! stopped in the middle of a rotation.
//!
//! Used by the tests of day-to-day operation (`verify --format prometheus`, the expiry
//! windows, `ca extend`); the CA's keys and the inventory's extra tables are the test's.

use std::fs;
use std::path::{Path, PathBuf};

pub use super::run::Run;

/// The fleet's nodes, sorted.
pub const NODES: [&str; 3] = ["app", "db", "lb"];

/// A local fleet and its inventory; dropping it removes the directory.
pub struct LocalFleet {
    pub dir: tempfile::TempDir,
}

impl LocalFleet {
    /// A fleet whose `[ca.internal]` gets `ca_keys` (TOML lines, e.g. `leaf_validity =
    /// "4d"`) and whose inventory ends with `extra` (e.g. a `[verify]` table).
    pub fn new(ca_keys: &str, extra: &str) -> LocalFleet {
        let fleet = LocalFleet {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        };
        fleet.write_inventory(ca_keys, extra);
        for n in NODES {
            fs::create_dir_all(fleet.node_dir(n)).expect("create a node directory");
        }
        fleet
    }

    /// Rewrites the inventory (same nodes and links).
    pub fn write_inventory(&self, ca_keys: &str, extra: &str) {
        let text = format!(
            "[certroll]\nstate_dir = \".certroll\"\n\n\
             [ca.internal]\nsubject = \"CN=Ops \\\"Test\\\" CA,O=certroll tests\"\n{ca_keys}\n\n\
             [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{{node}}/ca.pem\"\n\
             cert = \"nodes/{{node}}/cert.pem\"\nkey = \"nodes/{{node}}/key.pem\"\n\
             reload = \"touch nodes/{{node}}/reloaded\"\n\
             confirm = \"test -e nodes/{{node}}/reloaded && test ! -e nodes/{{node}}/fail\"\n\
             confirm_timeout = \"1s\"\n\n\
             [nodes.lb]\ndns_names = [\"lb.test\"]\n[nodes.app]\ndns_names = [\"app.test\"]\n\
             [nodes.db]\ndns_names = [\"db.test\"]\n\n\
             [[links]]\nclient = \"lb\"\nserver = \"app\"\n\n\
             [[links]]\nclient = \"app\"\nserver = \"db\"\nmutual = true\n\n{extra}\n"
        );
        fs::write(self.inventory(), text).expect("write the inventory");
    }

    pub fn inventory(&self) -> PathBuf {
        self.dir.path().join("certroll.toml")
    }

    /// `nodes/<node>/` (relative paths of the inventory are resolved against its directory).
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join("nodes").join(node)
    }

    /// `nodes/<node>/<file>`.
    pub fn path(&self, node: &str, file: &str) -> PathBuf {
        self.node_dir(node).join(file)
    }

    /// The CA store directory of `internal`.
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.path().join(".certroll/ca/internal")
    }

    /// Runs `certroll -i INVENTORY ARGS...` from the fleet's directory (node commands use
    /// relative paths), without a terminal, with a time limit.
    pub fn certroll(&self, args: &[&str]) -> Run {
        let dir = self.dir.path().to_path_buf();
        super::run::certroll(&self.inventory(), args, |cmd| {
            cmd.current_dir(dir);
        })
    }

    /// `certroll apply --yes ARGS...`, which must succeed.
    #[track_caller]
    pub fn apply_ok(&self, extra: &[&str]) -> Run {
        let mut args = vec!["apply", "--yes"];
        args.extend_from_slice(extra);
        let run = self.certroll(&args);
        run.expect_code(0);
        run
    }

    /// Makes the node's confirmation fail (`on`) or succeed again.
    pub fn fail_confirm(&self, node: &str, on: bool) {
        let flag = self.path(node, "fail");
        if on {
            fs::write(&flag, "").expect("create the failure flag");
        } else {
            let _ = fs::remove_file(&flag);
        }
    }

    /// `verify --format json ARGS...` parsed (any exit code), with the run.
    pub fn verify_json(&self, extra: &[&str]) -> (Run, serde_json::Value) {
        let mut args = vec!["verify", "--format", "json"];
        args.extend_from_slice(extra);
        let run = self.certroll(&args);
        let json = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("verify printed no JSON ({e})\n{run}"));
        (run, json)
    }
}

/// Whether `path` exists (for readable assertions).
pub fn exists(path: &Path) -> bool {
    path.exists()
}
