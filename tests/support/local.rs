//! A fleet of local-transport nodes in a temporary directory, driven through the real
//! `certroll` binary: the three nodes of the CLI tests (lb → app one way, app ⇄ db mutual,
//! every node's files under `nodes/<node>/`), with an inventory written from a few
//! settings so that a test reads like its spec:
//!
//! ```ignore
//! let fleet = LocalFleet::new("CN=Lifecycle CA").ca_key("renew_before", "5d").write();
//! fleet.certroll(&["apply", "--yes"]).expect_code(0);
//! fleet.edit(|s| s.node_key("db", "confirm", "test ! -e nodes/db/hold"));
//! ```
//!
//! Runs go through [`super::run`] (time limit, no terminal, `NO_COLOR`) in the fleet's
//! directory; a failed expectation prints the whole command and its output.
//!
//! The tests of day-to-day operation (`verify` and its windows and metrics, `ca extend`)
//! start from [`LocalFleet::ops`]: a CA subject with quotes in it, every node's directory
//! there, and a confirmation that fails while `nodes/<node>/fail` exists
//! ([`LocalFleet::fail_confirm`]), so that a run can be stopped in the middle of a rotation.

use std::path::{Path, PathBuf};

use certroll::pki::{issue_leaf, CaCert};
use time::OffsetDateTime;

use super::pki;
use super::run::{certroll, Run};

/// The nodes of the default topology, in inventory order.
pub const NODES: [&str; 3] = ["lb", "app", "db"];

/// The CA subject of [`LocalFleet::ops`]: its CN holds double quotes, which every output
/// format must escape.
pub const OPS_SUBJECT: &str = "CN=Ops \"Test\" CA,O=certroll tests";

/// One node of the inventory: its name, `dns_names` and more keys of its table.
#[derive(Debug, Clone)]
struct NodeSpec {
    name: String,
    dns: Vec<String>,
    keys: Vec<(String, String)>,
}

/// What the inventory says; every setting is a TOML key and a string value.
#[derive(Debug, Clone)]
pub struct Settings {
    subject: String,
    ca: Vec<(String, String)>,
    defaults: Vec<(String, String)>,
    nodes: Vec<NodeSpec>,
    links: Vec<String>,
    /// TOML text after the links (a `[verify]` table, ...).
    tables: String,
}

/// Sets `key` to `value` in `keys`, in place when it is there already.
fn set(keys: &mut Vec<(String, String)>, key: &str, value: &str) {
    match keys.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => keys.push((key.to_string(), value.to_string())),
    }
}

/// Appends `key = "value"` lines, each value a TOML string (escaped as TOML escapes it).
fn table(out: &mut String, keys: &[(String, String)]) {
    for (k, v) in keys {
        out.push_str(&format!("{k} = {}\n", toml::Value::String(v.clone())));
    }
}

impl Settings {
    /// CA `internal` named `subject`; local transport, files under `nodes/<node>/`, a
    /// reload that touches `nodes/<node>/reloaded` and a confirm that looks for it.
    pub fn new(subject: &str) -> Settings {
        let defaults = [
            ("transport", "local"),
            ("trust_bundle", "nodes/{node}/ca.pem"),
            ("cert", "nodes/{node}/cert.pem"),
            ("key", "nodes/{node}/key.pem"),
            ("reload", "touch nodes/{node}/reloaded"),
            ("confirm", "test -e nodes/{node}/reloaded"),
        ];
        let node = |name: &str| NodeSpec {
            name: name.into(),
            dns: vec![format!("{name}.test")],
            keys: Vec::new(),
        };
        Settings {
            subject: subject.into(),
            ca: Vec::new(),
            defaults: defaults
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            nodes: NODES.iter().map(|n| node(n)).collect(),
            links: vec![
                "client = \"lb\"\nserver = \"app\"\n".into(),
                "client = \"app\"\nserver = \"db\"\nmutual = true\n".into(),
            ],
            tables: String::new(),
        }
    }

    /// The settings of [`LocalFleet::ops`]: CA [`OPS_SUBJECT`] with `ca_keys`, and
    /// [`Settings::stoppable`].
    pub fn ops(ca_keys: &[(&str, &str)]) -> Settings {
        Settings::new(OPS_SUBJECT).ca_keys(ca_keys).stoppable()
    }

    /// A key of `[ca.internal]` (`leaf_validity`, `renew_before`, ...).
    pub fn ca_key(mut self, key: &str, value: &str) -> Self {
        set(&mut self.ca, key, value);
        self
    }

    /// Keys of `[ca.internal]`, in order (`[("leaf_validity", "4d"), ...]`).
    pub fn ca_keys(self, keys: &[(&str, &str)]) -> Self {
        keys.iter().fold(self, |s, (k, v)| s.ca_key(k, v))
    }

    /// A key of `[defaults]` (`confirm_timeout`, `proof_cert`, ...), replacing its value.
    pub fn default_key(mut self, key: &str, value: &str) -> Self {
        set(&mut self.defaults, key, value);
        self
    }

    /// Every node's reload command.
    pub fn reload(self, command: &str) -> Self {
        self.default_key("reload", command)
    }

    /// Every node's confirm command.
    pub fn confirm(self, command: &str) -> Self {
        self.default_key("confirm", command)
    }

    /// A node's confirmation fails, within a second, while `nodes/<node>/fail` exists
    /// ([`LocalFleet::fail_confirm`]).
    pub fn stoppable(self) -> Self {
        self.confirm("test -e nodes/{node}/reloaded && test ! -e nodes/{node}/fail")
            .default_key("confirm_timeout", "1s")
    }

    /// TOML tables written after the links (e.g. `[verify]`), replacing earlier ones.
    pub fn tables(mut self, text: &str) -> Self {
        self.tables = text.into();
        self
    }

    /// A key of one node's table (its own `reload`, `confirm`, ...).
    pub fn node_key(mut self, node: &str, key: &str, value: &str) -> Self {
        let n = self
            .nodes
            .iter_mut()
            .find(|n| n.name == node)
            .unwrap_or_else(|| panic!("the test fleet has no node {node}"));
        set(&mut n.keys, key, value);
        self
    }

    /// One more DNS name of `node`.
    pub fn dns(mut self, node: &str, name: &str) -> Self {
        let n = self
            .nodes
            .iter_mut()
            .find(|n| n.name == node)
            .unwrap_or_else(|| panic!("the test fleet has no node {node}"));
        n.dns.push(name.into());
        self
    }

    /// A node without DNS names, first in the inventory, and its one-way link to `server`.
    pub fn first_client(mut self, node: &str, server: &str) -> Self {
        self.nodes.insert(
            0,
            NodeSpec {
                name: node.into(),
                dns: Vec::new(),
                keys: Vec::new(),
            },
        );
        self.links
            .push(format!("client = \"{node}\"\nserver = \"{server}\"\n"));
        self
    }

    /// The inventory's text.
    pub fn toml(&self) -> String {
        let mut out = String::from("[ca.internal]\n");
        table(&mut out, &[("subject".into(), self.subject.clone())]);
        table(&mut out, &self.ca);
        out.push_str("\n[defaults]\n");
        table(&mut out, &self.defaults);
        for n in &self.nodes {
            out.push_str(&format!("\n[nodes.{}]\n", n.name));
            if !n.dns.is_empty() {
                out.push_str(&format!("dns_names = {:?}\n", n.dns));
            }
            table(&mut out, &n.keys);
        }
        for l in &self.links {
            out.push_str(&format!("\n[[links]]\n{l}"));
        }
        if !self.tables.is_empty() {
            out.push_str(&format!("\n{}\n", self.tables));
        }
        out
    }

    /// Creates the temporary directory and writes the inventory into it.
    pub fn write(self) -> LocalFleet {
        let fleet = LocalFleet::with_inventory(&self.toml());
        LocalFleet {
            settings: Some(self),
            ..fleet
        }
    }
}

/// The fleet's directory: `certroll.toml`, the state directory `.certroll/` and `nodes/`.
pub struct LocalFleet {
    dir: tempfile::TempDir,
    /// What the inventory was written from; `None` for a hand-written inventory.
    settings: Option<Settings>,
}

impl LocalFleet {
    /// The default fleet's settings with CA subject `subject`; finish with `.write()`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(subject: &str) -> Settings {
        Settings::new(subject)
    }

    /// The fleet of the day-to-day operation tests: [`Settings::ops`] written, with every
    /// node's directory.
    pub fn ops(ca_keys: &[(&str, &str)]) -> LocalFleet {
        Settings::ops(ca_keys).write().with_node_dirs()
    }

    /// A fleet whose inventory is `text`, as it is.
    pub fn with_inventory(text: &str) -> LocalFleet {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let fleet = LocalFleet {
            dir,
            settings: None,
        };
        fleet.write_file("certroll.toml", text);
        fleet
    }

    /// Rewrites the inventory with the settings `change` returns.
    pub fn edit(&mut self, change: impl FnOnce(Settings) -> Settings) {
        let settings = self
            .settings
            .take()
            .expect("the inventory was written from settings");
        let settings = change(settings);
        self.write_file("certroll.toml", settings.toml());
        self.settings = Some(settings);
    }

    /// Creates every node's directory (empty), as a fleet built by hand has them.
    pub fn with_node_dirs(self) -> Self {
        for n in NODES {
            let dir = self.path(&format!("nodes/{n}"));
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        self
    }

    /// Runs `certroll -i certroll.toml ARGS...` in the fleet's directory.
    pub fn certroll(&self, args: &[&str]) -> Run {
        certroll(&self.inventory(), args, |cmd| {
            cmd.current_dir(self.dir.path())
                .env_remove("CERTROLL_INVENTORY");
        })
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn inventory(&self) -> PathBuf {
        self.path("certroll.toml")
    }

    /// `rel` below the fleet's directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `nodes/<node>/`.
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.path(&format!("nodes/{node}"))
    }

    /// `nodes/<node>/<file>`.
    pub fn node_file(&self, node: &str, file: &str) -> PathBuf {
        self.node_dir(node).join(file)
    }

    /// The store directory of CA `internal`.
    pub fn ca_dir(&self) -> PathBuf {
        self.path(".certroll/ca/internal")
    }

    /// `certroll apply --yes ARGS...`, which must succeed.
    #[track_caller]
    pub fn apply_ok(&self, extra: &[&str]) -> Run {
        let args: Vec<&str> = ["apply", "--yes"].iter().chain(extra).copied().collect();
        let run = self.certroll(&args);
        run.expect_code(0);
        run
    }

    /// `certroll verify --format json ARGS...` parsed (any exit code), with the run.
    pub fn verify_json(&self, extra: &[&str]) -> (Run, serde_json::Value) {
        let args: Vec<&str> = ["verify", "--format", "json"]
            .iter()
            .chain(extra)
            .copied()
            .collect();
        let run = self.certroll(&args);
        let json = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("verify printed no JSON ({e})\n{run}"));
        (run, json)
    }

    /// Makes `node`'s confirmation fail (`on`) or succeed again (see
    /// [`Settings::stoppable`]).
    pub fn fail_confirm(&self, node: &str, on: bool) {
        let flag = self.node_file(node, "fail");
        if on {
            std::fs::write(&flag, "").unwrap_or_else(|e| panic!("create {}: {e}", flag.display()));
        } else {
            let _ = std::fs::remove_file(&flag);
        }
    }

    /// A file's text; empty when it is missing.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// A file's bytes; empty when it is missing.
    pub fn bytes(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_default()
    }

    /// Writes a file below the fleet's directory; returns its path.
    pub fn write_file(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// Removes a file below the fleet's directory, which must exist.
    pub fn remove(&self, rel: &str) {
        let p = self.path(rel);
        std::fs::remove_file(&p).unwrap_or_else(|e| panic!("remove {}: {e}", p.display()));
    }

    /// The operator's fleet before a takeover: every node but `skip` holds a leaf of `ca`
    /// and the bundle `[partner, ca]`.
    pub fn held_by(&self, ca: &CaCert, partner: &CaCert, skip: &[&str]) {
        let spec = pki::spec(
            certroll::inventory::KeyAlgorithm::EcdsaP256,
            "CN=Operator CA",
        );
        let now = OffsetDateTime::now_utc();
        for n in NODES.iter().filter(|n| !skip.contains(n)) {
            let leaf = issue_leaf(&spec, ca, n, &[format!("{n}.test")], now)
                .expect("issue an operator leaf");
            self.write_file(&format!("nodes/{n}/cert.pem"), &leaf.cert_pem);
            self.write_file(&format!("nodes/{n}/key.pem"), &leaf.key_pem);
            self.write_file(
                &format!("nodes/{n}/ca.pem"),
                partner.cert_pem.clone() + &ca.cert_pem,
            );
        }
    }
}
