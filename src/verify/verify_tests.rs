//! Test fleet for the verifier: nodes are in-memory file sets behind a fake transport,
//! certificates are made with rcgen directly, so each check is tested on its own.

use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use super::{verify, CaInput, Generation, Known, Report, VerifyOptions};
use crate::inventory::{Inventory, InventoryBuilder, NodeId};
use crate::transport::fake::FakeNode;
use crate::transport::{Connector, ErrorKind, Transport, TransportError};

#[path = "verify_findings_tests.rs"]
mod findings;
#[path = "verify_rotation_tests.rs"]
mod rotation;

/// One CA generation made with rcgen.
pub struct Gen {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Gen {
    pub fn new(number: u32) -> Gen {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("verify test CA G{number}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        Gen {
            issuer: CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `sans`, valid from `from` to `until` relative to now.
    pub fn leaf_at(&self, sans: &[String], from: Duration, until: Duration) -> (String, String) {
        let mut params = CertificateParams::new(sans.to_vec()).unwrap();
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now + from;
        params.not_after = now + until;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn leaf(&self, sans: &[String]) -> (String, String) {
        self.leaf_at(sans, Duration::hours(-1), Duration::days(90))
    }
}

/// Connects to the fake nodes; a node listed in `down` refuses.
pub struct FakeConnector {
    pub nodes: Vec<Arc<FakeNode>>,
    pub down: Mutex<Vec<NodeId>>,
}

impl Connector for FakeConnector {
    fn connect(&self, node: NodeId) -> Result<Arc<dyn Transport>, TransportError> {
        if self.down.lock().unwrap().contains(&node) {
            let name = &self.nodes[node].name;
            return Err(TransportError::new(
                name,
                "connect to 10.0.0.9:22",
                ErrorKind::HostKeyChanged,
                "host key differs from known_hosts",
            ));
        }
        Ok(self.nodes[node].clone())
    }
}

/// lb1 → app1 (one-way), app1 ⇄ db1 (mutual), every node installed from G1.
pub struct Fleet {
    pub inv: Inventory,
    pub g1: Gen,
    pub g2: Gen,
    pub conn: FakeConnector,
    pub known: Known,
}

impl Fleet {
    pub fn new() -> Fleet {
        let inv = InventoryBuilder::new()
            .dns("app1", &["app1.internal"])
            .dns("db1", &["db1.internal", "10.0.0.5"])
            .link("lb1", "app1")
            .mutual("app1", "db1")
            .build();
        let conn = FakeConnector {
            nodes: inv
                .nodes
                .iter()
                .map(|n| Arc::new(FakeNode::new(&n.name)))
                .collect(),
            down: Mutex::default(),
        };
        let (g1, g2) = (Gen::new(1), Gen::new(2));
        let mut known = Known::default();
        known.add(Generation::Current, 1, &g1.pem()).unwrap();
        let mut f = Fleet {
            inv,
            g1,
            g2,
            conn,
            known,
        };
        for name in ["lb1", "app1", "db1"] {
            f.set(name, &[1], 1);
        }
        f
    }

    pub fn id(&self, name: &str) -> NodeId {
        self.inv.node_id(name).unwrap()
    }

    pub fn gen(&self, n: u32) -> &Gen {
        if n == 1 {
            &self.g1
        } else {
            &self.g2
        }
    }

    /// Writes a file on a node.
    pub fn put(&self, node: &str, file: &str, data: &[u8], mode: u32) {
        let path = format!("nodes/{node}/{file}");
        let n = &self.conn.nodes[self.id(node)];
        n.files.lock().unwrap().insert(path, (data.to_vec(), mode));
    }

    pub fn remove(&self, node: &str, file: &str) {
        let n = &self.conn.nodes[self.id(node)];
        n.files
            .lock()
            .unwrap()
            .remove(&format!("nodes/{node}/{file}"));
    }

    /// Bundle of generations `bundle`, leaf (and key) from generation `leaf`.
    pub fn set(&mut self, node: &str, bundle: &[u32], leaf: u32) {
        let pem: String = bundle.iter().map(|&g| self.gen(g).pem()).collect();
        self.put(node, "ca.pem", pem.as_bytes(), 0o644);
        let sans = self.inv.nodes[self.id(node)].sans();
        let (cert, key) = self.gen(leaf).leaf(&sans);
        self.put(node, "cert.pem", cert.as_bytes(), 0o644);
        self.put(node, "key.pem", key.as_bytes(), 0o600);
    }

    /// Starts a rotation: G2 becomes the next generation.
    pub fn rotating(&mut self) {
        self.known.add(Generation::Next, 2, &self.g2.pem()).unwrap();
    }

    pub fn run_with(&self, opts: VerifyOptions) -> Report {
        let input = CaInput {
            ca: 0,
            known: self.known.clone(),
            store_error: None,
            issuers: Vec::new(),
        };
        verify(&self.inv, &[input], &self.conn, &opts)
    }

    pub fn run(&self) -> Report {
        self.run_with(VerifyOptions::default())
    }
}

/// The findings' kinds of node `name`, as their JSON tags.
pub fn kinds(report: &Report, name: &str) -> Vec<String> {
    let node = report.cas[0].nodes.iter().find(|n| n.name == name).unwrap();
    node.findings
        .iter()
        .map(|f| {
            serde_json::to_value(f).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// The link `client → server`.
pub fn link<'a>(report: &'a Report, client: &str, server: &str) -> &'a super::LinkReport {
    report.cas[0]
        .links
        .iter()
        .find(|l| l.client_name == client && l.server_name == server)
        .unwrap()
}
