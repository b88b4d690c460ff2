//! A bootstrapped certroll fleet on real sshd nodes, driven through the real `certroll`
//! binary: the tests of `certroll verify` describe a topology, get a fleet whose every
//! node holds the bundle, leaf and key that `certroll apply --yes` installed, and then
//! break one thing on one node through its host directory.
//!
//! ```ignore
//! let f = FleetSpec::new()
//!     .one_way("lb1", "app1")
//!     .mutual("app1", "db1")
//!     .dns("app1", "app1.internal")
//!     .bootstrap();
//! f.certroll(&["verify"]).expect_code(0);
//! ```
//!
//! Every node reads its files at `/srv/certroll-node/tls/{ca,cert,key}.pem` and confirms
//! a step with `test ! -e /srv/certroll-node/confirm-fails`, so a test makes a node's
//! confirmation fail by creating that file ([`VerifyFleet::fail_confirm`]).
//!
//! The faults themselves are certificates and keys wrong in exactly one way, made with
//! the same library calls (and rcgen) that `certroll apply` uses: a root of another CA,
//! a key that belongs to no certificate, a leaf that expired yesterday on the node's own
//! key, a leaf that lacks the node's DNS name.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use certroll::inventory::{self, CaSpec, Inventory};
use certroll::pki::{issue_leaf, new_ca, Leaf};
use certroll::pki::{CaCert, CaStore};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use super::fleet::Fleet;
pub use super::run::{run_command, Run};

/// How long a failing `confirm` is retried before the step fails.
pub const CONFIRM_TIMEOUT: &str = "8s";
/// The CA every fleet of these tests uses.
pub const CA: &str = "internal";

/// One of the three files a node keeps for the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Bundle,
    Cert,
    Key,
}

impl TlsFile {
    /// The file's name under `/srv/certroll-node/tls/`.
    pub fn file_name(self) -> &'static str {
        match self {
            TlsFile::Bundle => "ca.pem",
            TlsFile::Cert => "cert.pem",
            TlsFile::Key => "key.pem",
        }
    }

    /// The `file` field of a finding about this file.
    pub fn finding_label(self) -> &'static str {
        match self {
            TlsFile::Bundle => "trust-bundle",
            TlsFile::Cert => "cert",
            TlsFile::Key => "key",
        }
    }
}

/// The topology and per-node settings of a fleet, before it exists.
#[derive(Debug, Default, Clone)]
pub struct FleetSpec {
    /// (client, server, mutual), in inventory order.
    links: Vec<(String, String, bool)>,
    dns: BTreeMap<String, Vec<String>>,
    probes: BTreeMap<String, String>,
}

impl FleetSpec {
    pub fn new() -> FleetSpec {
        FleetSpec::default()
    }

    /// The fleet most tests use: `lb1 → app1` (one-way) and `app1 ⇄ db1` (mutual), with
    /// `app1.internal` and `db1.internal` as the servers' names and lb1 named after itself.
    pub fn standard() -> FleetSpec {
        FleetSpec::new()
            .one_way("lb1", "app1")
            .mutual("app1", "db1")
            .dns("app1", "app1.internal")
            .dns("db1", "db1.internal")
    }

    /// `client → server`: the client verifies the server.
    pub fn one_way(mut self, client: &str, server: &str) -> FleetSpec {
        self.links.push((client.into(), server.into(), false));
        self
    }

    /// `client ⇄ server`: both sides verify each other.
    pub fn mutual(mut self, client: &str, server: &str) -> FleetSpec {
        self.links.push((client.into(), server.into(), true));
        self
    }

    /// Adds a name to the node's `dns_names` (the first one is the name clients check).
    pub fn dns(mut self, node: &str, name: &str) -> FleetSpec {
        self.dns.entry(node.into()).or_default().push(name.into());
        self
    }

    /// The node's `probe` command for `verify --live`.
    pub fn probe(mut self, node: &str, template: &str) -> FleetSpec {
        self.probes.insert(node.into(), template.into());
        self
    }

    /// Every node named by a link, sorted.
    pub fn node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .links
            .iter()
            .flat_map(|(c, s, _)| [c.clone(), s.clone()])
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Starts one sshd per node, writes the inventory, runs `certroll apply --yes` (the
    /// bootstrap: CA generation 1, every bundle and leaf) and checks that it succeeded.
    pub fn bootstrap(self) -> VerifyFleet {
        let f = self.start();
        f.certroll(&["apply", "--yes"]).expect_code(0);
        f
    }

    /// Starts the sshds and writes the inventory, installing nothing.
    pub fn start(self) -> VerifyFleet {
        let names = self.node_names();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let fleet = Fleet::start(&refs);
        let control = fleet.dir().join("control");
        fs::create_dir_all(&control).expect("create the control directory");
        let inventory = control.join("certroll.toml");
        fs::write(&inventory, self.inventory_text(&fleet)).expect("write the inventory");
        VerifyFleet {
            fleet,
            inventory,
            spec: self,
        }
    }

    fn inventory_text(&self, fleet: &Fleet) -> String {
        let tls = fleet.remote_path("tls");
        let flag = fleet.remote_path("confirm-fails");
        let mut text = format!(
            "[certroll]\nstate_dir = \"state\"\n\n\
             [ca.{CA}]\nsubject = \"CN=Verify SSH Test CA\"\nkey_algorithm = \"ecdsa-p256\"\n\
             validity = \"10y\"\nleaf_validity = \"90d\"\nrenew_before = \"30d\"\n\n\
             [defaults]\n{ssh}\ntrust_bundle = \"{tls}/ca.pem\"\ncert = \"{tls}/cert.pem\"\n\
             key = \"{tls}/key.pem\"\nconfirm = \"test ! -e {flag}\"\n\
             confirm_timeout = \"{CONFIRM_TIMEOUT}\"\n\n",
            ssh = fleet.defaults_ssh_line(),
        );
        for name in self.node_names() {
            text += &format!("[nodes.{name}]\n{}\n", fleet.node_ssh_line(&name));
            if let Some(dns) = self.dns.get(&name) {
                text += &format!("dns_names = {dns:?}\n");
            }
            if let Some(probe) = self.probes.get(&name) {
                text += &format!("probe = {probe:?}\n");
            }
            text += "\n";
        }
        for (client, server, mutual) in &self.links {
            text += &format!(
                "[[links]]\nclient = {client:?}\nserver = {server:?}\nmutual = {mutual}\n\n"
            );
        }
        text
    }
}

/// A running fleet with its inventory; dropping it stops the sshds.
pub struct VerifyFleet {
    pub fleet: Fleet,
    pub inventory: PathBuf,
    pub spec: FleetSpec,
}

impl VerifyFleet {
    /// Runs `certroll -i INVENTORY ARGS...` without a terminal and with `NO_COLOR`.
    pub fn certroll(&self, args: &[&str]) -> Run {
        let mut full = vec!["-i", self.inventory.to_str().expect("UTF-8 path")];
        full.extend_from_slice(args);
        run_command(
            Command::new(env!("CARGO_BIN_EXE_certroll")).args(&full),
            std::iter::once("certroll")
                .chain(args.iter().copied())
                .map(String::from)
                .collect(),
        )
    }

    /// The parsed inventory.
    pub fn load(&self) -> Inventory {
        inventory::load(&self.inventory)
            .unwrap_or_else(|e| panic!("load {}: {e}", self.inventory.display()))
    }

    /// The CA of the inventory.
    pub fn ca_spec(&self) -> CaSpec {
        self.load().cas[0].clone()
    }

    /// The CA store in the inventory's state directory.
    pub fn store(&self) -> CaStore {
        CaStore::new(&self.load().state_dir)
    }

    /// The current generation of the CA (panics before the bootstrap).
    pub fn current_ca(&self) -> CaCert {
        self.store()
            .current(&self.ca_spec())
            .expect("read the CA store")
            .expect("the CA has a current generation")
    }

    /// Where `file` of `node` lives on this machine (the node's host directory).
    pub fn path(&self, node: &str, file: TlsFile) -> PathBuf {
        let remote = self.fleet.remote_path(&format!("tls/{}", file.file_name()));
        self.fleet.host_path(node, &remote)
    }

    /// The path of `file` as the node itself sees it (what findings name).
    pub fn remote_path(&self, file: TlsFile) -> String {
        self.fleet.remote_path(&format!("tls/{}", file.file_name()))
    }

    pub fn read(&self, node: &str, file: TlsFile) -> Vec<u8> {
        let path = self.path(node, file);
        fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Replaces `file` of `node`, keeping its mode (0600 for a fresh key, else 0644).
    pub fn write(&self, node: &str, file: TlsFile, data: impl AsRef<[u8]>) {
        let path = self.path(node, file);
        let mode = fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(if file == TlsFile::Key { 0o600 } else { 0o644 });
        fs::write(&path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self.chmod(node, file, mode);
    }

    pub fn remove(&self, node: &str, file: TlsFile) {
        let path = self.path(node, file);
        fs::remove_file(&path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
    }

    pub fn chmod(&self, node: &str, file: TlsFile, mode: u32) {
        let path = self.path(node, file);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
    }

    /// From now on the node's `confirm` command fails (every step on it times out).
    pub fn fail_confirm(&self, node: &str) {
        fs::write(self.confirm_flag(node), b"").expect("create the confirm-fails flag");
    }

    /// The node's `confirm` command succeeds again.
    pub fn fix_confirm(&self, node: &str) {
        fs::remove_file(self.confirm_flag(node)).expect("remove the confirm-fails flag");
    }

    /// Creates an empty marker file `name` in the node's own directory.
    pub fn touch(&self, node: &str, name: &str) {
        fs::write(self.fleet.node(node).dir.join(name), b"").expect("create a marker file");
    }

    fn confirm_flag(&self, node: &str) -> PathBuf {
        self.fleet.node(node).dir.join("confirm-fails")
    }
}

/// A path's mode bits (for assertions).
pub fn mode_of(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

// Faults: certificates and keys wrong in exactly one way.

/// Generation 1 of a CA that is not `spec` (its own key and the subject `subject`).
pub fn foreign_root(spec: &CaSpec, subject: &str) -> CaCert {
    let mut other = spec.clone();
    other.name = "foreign".into();
    other.subject = subject.into();
    new_ca(&other, 1, OffsetDateTime::now_utc()).expect("create a foreign CA")
}

/// A fresh PKCS#8 private key of the same algorithm family, matching no certificate.
pub fn unrelated_key_pem() -> String {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .expect("generate a key")
        .serialize_pem()
}

/// A correct leaf from `ca` for `node` whose names are `sans` instead of the node's.
pub fn leaf_with_names(spec: &CaSpec, ca: &CaCert, node: &str, sans: &[&str]) -> Leaf {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    issue_leaf(spec, ca, node, &sans, OffsetDateTime::now_utc()).expect("issue a leaf")
}

/// A leaf for `node` (CN and `sans`) signed by `ca` on the node's own key `key_pem`,
/// valid from 30 days ago until yesterday. Returns the certificate PEM.
pub fn expired_leaf_pem(ca: &CaCert, node: &str, sans: &[&str], key_pem: &str) -> String {
    let key = KeyPair::from_pem(key_pem).expect("the node's key is a PKCS#8 key");
    let ca_key = KeyPair::from_pem(ca.key_pem().expect("certroll holds its CA key"))
        .expect("the CA key is a PKCS#8 key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node);
    params.distinguished_name = dn;
    params.subject_alt_names = sans
        .iter()
        .map(|s| SanType::DnsName((*s).try_into().expect("a valid DNS name")))
        .collect();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let issuer = Issuer::from_ca_cert_der(&ca.cert_der.clone().into(), ca_key)
        .expect("the CA certificate parses");
    params
        .signed_by(&key, &issuer)
        .expect("sign the expired leaf")
        .pem()
}
