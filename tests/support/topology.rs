//! Who talks TLS to whom in a zero-downtime test fleet, and the certroll inventory for it.
//!
//! ```ignore
//! let topo = Topology::new()
//!     .one_way(&["lb1", "lb2"], &["app1", "app2"])
//!     .mutual(&["app1", "app2"], &["db1"]);
//! ```
//!
//! Every node keeps its files under [`TLS_DIR`] of its fleet directory and runs one
//! `certroll-peer` whose state directory is [`PEER_DIR`]. The inventory's `reload` and
//! `confirm` commands run `certroll-peer` inside the node's namespace over SSH, where the
//! node directory is seen at `REMOTE_ROOT`, so the control socket path stays short there.
//! Every node's only DNS name is [`Topology::dns_name`], the name its clients check.

use std::collections::BTreeSet;
use std::path::Path;

use super::fleet::Fleet;

/// Where a node's bundle, certificate, key and cross certificate live, relative to its root.
pub const TLS_DIR: &str = "tls";
/// The `certroll-peer` state directory (control socket, stats.json), relative to the root.
pub const PEER_DIR: &str = "peer";
/// The CA every test fleet rotates.
pub const CA_NAME: &str = "internal";
/// The `certroll-peer` binary; its host path is visible inside every node's namespace.
pub const PEER_BIN: &str = env!("CARGO_BIN_EXE_certroll-peer");

/// One `client → server` TLS link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub client: String,
    pub server: String,
    pub mutual: bool,
}

impl Link {
    /// `client → server` (or `client ⇄ server` for mutual TLS), for messages.
    pub fn label(&self) -> String {
        let arrow = if self.mutual { "⇄" } else { "→" };
        format!("{} {arrow} {}", self.client, self.server)
    }
}

/// Nodes and the links between them.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    nodes: BTreeSet<String>,
    links: Vec<Link>,
}

impl Topology {
    pub fn new() -> Topology {
        Topology::default()
    }

    /// Every client verifies every server (one-way TLS).
    pub fn one_way(self, clients: &[&str], servers: &[&str]) -> Topology {
        self.add(clients, servers, false)
    }

    /// Every client and every server verify each other (mutual TLS).
    pub fn mutual(self, clients: &[&str], servers: &[&str]) -> Topology {
        self.add(clients, servers, true)
    }

    fn add(mut self, clients: &[&str], servers: &[&str], mutual: bool) -> Topology {
        for client in clients {
            for server in servers {
                assert_ne!(client, server, "a node cannot link to itself");
                self.nodes.insert(client.to_string());
                self.nodes.insert(server.to_string());
                self.links.push(Link {
                    client: client.to_string(),
                    server: server.to_string(),
                    mutual,
                });
            }
        }
        // A server asks every client for a certificate or none: a one-way client of a
        // mutual server would be verified on a link the inventory does not declare.
        for node in &self.nodes {
            let kinds: BTreeSet<bool> = self.clients_of(node).map(|l| l.mutual).collect();
            assert!(
                kinds.len() <= 1,
                "server {node} has both one-way and mutual clients; the peer harness needs one kind"
            );
        }
        self
    }

    /// Node names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.nodes.iter().map(String::as_str).collect()
    }

    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// The name clients dial and check: the node's only SAN.
    pub fn dns_name(node: &str) -> String {
        format!("{node}.zdt.test")
    }

    /// Links on which `node` is the client.
    pub fn servers_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
        self.links.iter().filter(move |l| l.client == node)
    }

    /// Links on which `node` is the server.
    pub fn clients_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
        self.links.iter().filter(move |l| l.server == node)
    }

    pub fn is_server(&self, node: &str) -> bool {
        self.clients_of(node).next().is_some()
    }

    /// True when `node` serves mutual links (it then demands client certificates).
    pub fn requires_client_cert(&self, node: &str) -> bool {
        self.clients_of(node).any(|l| l.mutual)
    }

    /// A path under the node's root as the node sees it, e.g. `/srv/certroll-node/tls/ca.pem`.
    pub fn remote_file(fleet: &Fleet, file: &str) -> String {
        fleet.remote_path(&format!("{TLS_DIR}/{file}"))
    }

    /// The inventory of this topology on `fleet`, with `state_dir` on the control host.
    pub fn inventory_toml(&self, fleet: &Fleet, state_dir: &Path) -> String {
        let peer_dir = fleet.remote_path(PEER_DIR);
        let mut text = format!(
            "[certroll]\nstate_dir = {state:?}\n\n\
             [ca.{CA_NAME}]\nsubject = \"CN=certroll zero-downtime test CA,O=certroll\"\n\n\
             [defaults]\n{ssh}\n\
             trust_bundle = {bundle:?}\ncert = {cert:?}\nkey = {key:?}\nproof_cert = {cross:?}\n\
             reload = \"{PEER_BIN} reload --state-dir {peer_dir}\"\n\
             confirm = \"{PEER_BIN} confirm --state-dir {peer_dir}\"\n\
             confirm_timeout = \"30s\"\n\n",
            state = state_dir.display().to_string(),
            ssh = fleet.defaults_ssh_line(),
            bundle = Self::remote_file(fleet, "ca.pem"),
            cert = Self::remote_file(fleet, "cert.pem"),
            key = Self::remote_file(fleet, "key.pem"),
            cross = Self::remote_file(fleet, "cross.pem"),
        );
        for node in &self.nodes {
            text += &format!(
                "[nodes.{node}]\n{}\ndns_names = [{:?}]\n\n",
                fleet.node_ssh_line(node),
                Self::dns_name(node)
            );
        }
        for link in &self.links {
            text += &format!(
                "[[links]]\nclient = {:?}\nserver = {:?}\nmutual = {}\n\n",
                link.client, link.server, link.mutual
            );
        }
        text
    }
}
