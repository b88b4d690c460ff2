//! Building an [`Inventory`] in code: for tests, property tests and generators.
//!
//! ```
//! use certroll::inventory::InventoryBuilder;
//! let inv = InventoryBuilder::new()
//!     .link("lb1", "app1")
//!     .mutual("app1", "db1")
//!     .build();
//! assert_eq!(inv.nodes.len(), 3);
//! ```
//! Nodes are local, with paths under `nodes/{node}/` and no reload or confirm command.

use std::path::PathBuf;
use std::time::Duration;

use super::{CaSpec, Inventory, KeyAlgorithm, Link, Node, TransportKind};

/// Accumulates CAs, nodes and links; [`InventoryBuilder::build`] sorts and indexes them.
#[derive(Debug, Clone, Default)]
pub struct InventoryBuilder {
    cas: Vec<CaSpec>,
    nodes: Vec<String>,
    links: Vec<(String, String, bool, String)>,
    dns: Vec<(String, Vec<String>)>,
    current_ca: Option<String>,
}

impl InventoryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a CA with default settings; later links use it.
    pub fn ca(mut self, name: &str) -> Self {
        self.ensure_ca(name);
        self.current_ca = Some(name.to_string());
        self
    }

    /// Sets the key algorithm of the current CA.
    pub fn key_algorithm(mut self, alg: KeyAlgorithm) -> Self {
        let name = self.current_ca_name();
        self.ensure_ca(&name);
        if let Some(ca) = self.cas.iter_mut().find(|c| c.name == name) {
            ca.key_algorithm = alg;
        }
        self
    }

    /// Adds a node that takes part in no link (yet).
    pub fn node(mut self, name: &str) -> Self {
        self.ensure_node(name);
        self
    }

    /// Gives a node its SANs.
    pub fn dns(mut self, node: &str, names: &[&str]) -> Self {
        self.ensure_node(node);
        self.dns.push((
            node.to_string(),
            names.iter().map(|s| s.to_string()).collect(),
        ));
        self
    }

    /// One-way link: the client verifies the server.
    pub fn link(self, client: &str, server: &str) -> Self {
        self.add_link(client, server, false)
    }

    /// Mutual link: both sides verify each other.
    pub fn mutual(self, client: &str, server: &str) -> Self {
        self.add_link(client, server, true)
    }

    fn add_link(mut self, client: &str, server: &str, mutual: bool) -> Self {
        let ca = self.current_ca_name();
        self.ensure_ca(&ca);
        self.ensure_node(client);
        self.ensure_node(server);
        self.links
            .push((client.to_string(), server.to_string(), mutual, ca));
        self
    }

    fn current_ca_name(&self) -> String {
        self.current_ca
            .clone()
            .unwrap_or_else(|| "internal".to_string())
    }

    fn ensure_ca(&mut self, name: &str) {
        if self.cas.iter().any(|c| c.name == name) {
            return;
        }
        self.cas
            .push(CaSpec::new(name, &format!("CN=certroll {name} CA")));
    }

    fn ensure_node(&mut self, name: &str) {
        if !self.nodes.iter().any(|n| n == name) {
            self.nodes.push(name.to_string());
        }
    }

    /// Sorts CAs and nodes by name and resolves links to ids.
    pub fn build(mut self) -> Inventory {
        if self.cas.is_empty() {
            self.ensure_ca("internal");
        }
        self.cas.sort_by(|a, b| a.name.cmp(&b.name));
        self.nodes.sort();
        let multi = self.cas.len() > 1;
        let nodes: Vec<Node> = self
            .nodes
            .iter()
            .map(|name| local_node(name, &self.dns, multi))
            .collect();
        let id = |name: &str| self.nodes.binary_search_by(|n| n.as_str().cmp(name));
        let ca_id = |name: &str| self.cas.binary_search_by(|c| c.name.as_str().cmp(name));
        let links = self
            .links
            .iter()
            .map(|(c, s, mutual, ca)| Link {
                // Invariant: add_link registered both nodes and the CA.
                client: id(c).unwrap_or_default(),
                server: id(s).unwrap_or_default(),
                mutual: *mutual,
                ca: ca_id(ca).unwrap_or_default(),
            })
            .collect();
        Inventory {
            source: PathBuf::from("certroll.toml"),
            state_dir: PathBuf::from(".certroll"),
            state: Default::default(),
            cas: self.cas,
            nodes,
            links,
            verify: super::VerifyDefaults::default(),
            pools: Default::default(),
        }
    }
}

fn local_node(name: &str, dns: &[(String, Vec<String>)], multi_ca: bool) -> Node {
    let dir = if multi_ca {
        "nodes/{node}/{ca}"
    } else {
        "nodes/{node}"
    };
    let dns_names = dns
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, d)| d.clone())
        .unwrap_or_default();
    Node {
        name: name.to_string(),
        transport: TransportKind::Local,
        via: None,
        trust_bundle: format!("{dir}/ca.pem"),
        cert: format!("{dir}/cert.pem"),
        key: format!("{dir}/key.pem"),
        proof_cert: None,
        reload: None,
        confirm: None,
        confirm_timeout: Duration::from_secs(60),
        probe: None,
        tls: None,
        dns_names,
        become_with: Default::default(),
        files: Default::default(),
        stores: Default::default(),
    }
}
