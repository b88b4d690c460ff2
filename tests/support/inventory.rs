//! A builder for inventories of a running [`Fleet`], so that a test reads like the fleet
//! it describes:
//!
//! ```ignore
//! let inv = FleetInventory::new(&fleet)
//!     .ca("leaf_validity", "90d")
//!     .node_key("app1", "confirm", "false")
//!     .via("db1", "app1")
//!     .link("lb1", "app1")
//!     .mutual_link("app1", "db1")
//!     .write(&dir);
//! ```
//!
//! Every node keeps its files under `/srv/certroll-node/tls/` and runs
//! `touch /srv/certroll-node/reloaded` as its reload command, so a test can check on the host
//! (through [`Fleet::host_path`]) what certroll wrote and whether it reloaded the node.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::fleet::Fleet;

/// Name of the single CA of the inventories built here.
pub const CA: &str = "internal";
/// Remote paths of a node's files (the same on every node).
pub const BUNDLE: &str = "/srv/certroll-node/tls/ca.pem";
pub const CERT: &str = "/srv/certroll-node/tls/cert.pem";
pub const KEY: &str = "/srv/certroll-node/tls/key.pem";
pub const PROOF: &str = "/srv/certroll-node/tls/cross.pem";
/// Touched by every node's reload command.
pub const RELOADED: &str = "/srv/certroll-node/reloaded";

/// One `[[links]]` table.
struct Link {
    client: String,
    server: String,
    mutual: bool,
}

/// An inventory of (some of) the nodes of a fleet, rendered as TOML.
pub struct FleetInventory<'a> {
    fleet: &'a Fleet,
    nodes: Vec<String>,
    ca: BTreeMap<String, String>,
    defaults: BTreeMap<String, String>,
    node_keys: BTreeMap<String, BTreeMap<String, String>>,
    via: BTreeMap<String, String>,
    users: BTreeMap<String, String>,
    links: Vec<Link>,
}

/// A TOML string literal.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

impl<'a> FleetInventory<'a> {
    /// Every node of the fleet, direct SSH on 127.0.0.1, the default file layout, no links.
    pub fn new(fleet: &'a Fleet) -> Self {
        let mut defaults = BTreeMap::new();
        defaults.insert("trust_bundle".into(), quoted(BUNDLE));
        defaults.insert("cert".into(), quoted(CERT));
        defaults.insert("key".into(), quoted(KEY));
        defaults.insert("reload".into(), quoted(&format!("touch {RELOADED}")));
        defaults.insert("confirm_timeout".into(), quoted("20s"));
        let mut ca = BTreeMap::new();
        ca.insert("subject".into(), quoted("CN=Apply Test CA"));
        ca.insert("key_algorithm".into(), quoted("ecdsa-p256"));
        FleetInventory {
            fleet,
            nodes: fleet.names(),
            ca,
            defaults,
            node_keys: BTreeMap::new(),
            via: BTreeMap::new(),
            users: BTreeMap::new(),
            links: Vec::new(),
        }
    }

    /// Sets a key of `[ca.internal]` (a string value, e.g. `("leaf_validity", "10d")`).
    pub fn ca(mut self, key: &str, value: &str) -> Self {
        self.ca.insert(key.into(), quoted(value));
        self
    }

    /// Sets a string key of `[defaults]`, e.g. `("confirm", "test -e /x")`.
    pub fn default_key(mut self, key: &str, value: &str) -> Self {
        self.defaults.insert(key.into(), quoted(value));
        self
    }

    /// Removes a key of `[defaults]` (e.g. `key`, so that a node's own table decides).
    pub fn without_default(mut self, key: &str) -> Self {
        self.defaults.remove(key);
        self
    }

    /// Sets a string key of one node's table.
    pub fn node_key(mut self, node: &str, key: &str, value: &str) -> Self {
        self.node_keys
            .entry(node.into())
            .or_default()
            .insert(key.into(), quoted(value));
        self
    }

    /// Sets a key of one node's table to a raw TOML value (a number, a boolean).
    pub fn node_raw(mut self, node: &str, key: &str, value: &str) -> Self {
        self.node_keys
            .entry(node.into())
            .or_default()
            .insert(key.into(), value.into());
        self
    }

    /// `node` is logged in to as `user` instead of root.
    pub fn login_user(mut self, node: &str, user: &str) -> Self {
        self.users.insert(node.into(), user.into());
        self
    }

    /// Ships the cross certificate to every node during a rollover.
    pub fn with_proof_cert(self) -> Self {
        self.default_key("proof_cert", PROOF)
    }

    /// `node` is reached through `jump`, by the host name that only resolves inside the fleet.
    pub fn via(mut self, node: &str, jump: &str) -> Self {
        self.via.insert(node.into(), jump.into());
        self
    }

    /// A one-way link `client → server`.
    pub fn link(mut self, client: &str, server: &str) -> Self {
        self.links.push(Link {
            client: client.into(),
            server: server.into(),
            mutual: false,
        });
        self
    }

    /// A mutual-TLS link `client ↔ server`.
    pub fn mutual_link(mut self, client: &str, server: &str) -> Self {
        self.links.push(Link {
            client: client.into(),
            server: server.into(),
            mutual: true,
        });
        self
    }

    /// The inventory as TOML.
    pub fn render(&self) -> String {
        let mut out = String::from("[certroll]\nstate_dir = \".certroll\"\n\n");
        out += &format!("[ca.{CA}]\n");
        for (k, v) in &self.ca {
            out += &format!("{k} = {v}\n");
        }
        out += "\n[defaults]\n";
        out += &self.fleet.defaults_ssh_line();
        out.push('\n');
        for (k, v) in &self.defaults {
            out += &format!("{k} = {v}\n");
        }
        for name in &self.nodes {
            out += &format!("\n[nodes.{name}]\n");
            match self.via.get(name) {
                Some(jump) => {
                    out += &format!(
                        "ssh = {{ host = {}, port = {} }}\nvia = {}\n",
                        quoted(&self.fleet.internal_host(name)),
                        self.fleet.node(name).port,
                        quoted(jump)
                    );
                }
                None => match self.users.get(name) {
                    Some(user) => {
                        out += &format!(
                            "ssh = {{ host = \"127.0.0.1\", port = {}, user = {} }}\n",
                            self.fleet.node(name).port,
                            quoted(user)
                        );
                    }
                    None => {
                        out += &self.fleet.node_ssh_line(name);
                        out.push('\n');
                    }
                },
            }
            for (k, v) in self.node_keys.get(name).into_iter().flatten() {
                out += &format!("{k} = {v}\n");
            }
        }
        for l in &self.links {
            out += &format!(
                "\n[[links]]\nclient = {}\nserver = {}\nmutual = {}\n",
                quoted(&l.client),
                quoted(&l.server),
                l.mutual
            );
        }
        out
    }

    /// Writes `dir/certroll.toml` (creating `dir`) and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = dir.join("certroll.toml");
        fs::write(&path, self.render()).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}
