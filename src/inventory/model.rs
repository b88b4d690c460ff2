//! The validated inventory: what every other module reads.
//!
//! Parsing and validation (in `parse.rs` and `validate.rs`) turn a TOML file into
//! these types; once built, an [`Inventory`] is internally consistent: every link
//! names existing nodes and an existing CA, `via` chains end, remote paths are absolute.

use std::path::PathBuf;
use std::time::Duration;

pub use super::tls_target::{Starttls, TlsTarget};

/// Index of a node in [`Inventory::nodes`].
pub type NodeId = usize;
/// Index of a CA in [`Inventory::cas`].
pub type CaId = usize;

/// A whole fleet: CAs, nodes and the TLS links between them.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The inventory file this was read from.
    pub source: PathBuf,
    /// Local state directory (CA keys, journal, lock), resolved against the inventory's directory.
    pub state_dir: PathBuf,
    /// Where the run state is kept: `state_dir` (the default) or a PostgreSQL backend.
    pub state: super::StateLocation,
    /// CAs, sorted by name.
    pub cas: Vec<CaSpec>,
    /// Nodes, sorted by name.
    pub nodes: Vec<Node>,
    /// Links, expanded from list forms, one per (client, server, ca), in file order.
    pub links: Vec<Link>,
    /// `[verify]`: defaults of `certroll verify`'s expiry windows.
    pub verify: super::VerifyDefaults,
    /// Pools of restart-only services and how each node takes changes (docs/inventory.md#pools).
    pub pools: super::Pools,
}

/// Key algorithm of a CA and of the leaves it issues (a node may choose its own for its
/// leaf: `key_algorithm` in `[nodes.NAME]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyAlgorithm {
    /// Every algorithm, in the order the documentation lists them.
    pub const ALL: [KeyAlgorithm; 6] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
    ];

    /// The inventory spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
        }
    }

    /// The algorithm spelled `s` in an inventory.
    pub fn parse(s: &str) -> Option<KeyAlgorithm> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The modulus size of an RSA algorithm, in bits.
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyAlgorithm::Rsa2048 => Some(2048),
            KeyAlgorithm::Rsa3072 => Some(3072),
            KeyAlgorithm::Rsa4096 => Some(4096),
            _ => None,
        }
    }
}

/// Where a node's leaf private keys are generated (`key_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeySource {
    /// On the control host, then written to the node (the default).
    #[default]
    Control,
    /// On the node itself, from which only a certificate signing request comes back.
    Node,
}

impl KeySource {
    /// The inventory spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Control => "control",
            KeySource::Node => "node",
        }
    }
}

/// How a rotation visits nodes (`strategy` in `[ca.NAME]`, `--strategy`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// trust-add, leaf-swap and trust-prune as separate steps with per-node gates.
    #[default]
    Phased,
    /// One visit per node for trust-add and leaf-swap, in a topological order; then prune.
    Ordered,
}

/// What chain a node presents after its leaf swap (`chain` in `[ca.NAME]`, `--chain`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ChainMode {
    /// The new leaf alone.
    #[default]
    Plain,
    /// The new leaf and the cross certificate (new CA signed by the old one).
    CrossSigned,
}

/// A `[ca.NAME]` table.
#[derive(Debug, Clone)]
pub struct CaSpec {
    pub name: String,
    /// Distinguished name, e.g. `CN=Example Internal CA,O=Example`. Each generation
    /// appends ` G<n>` to the CN so that two generations never share a subject.
    pub subject: String,
    pub key_algorithm: KeyAlgorithm,
    pub validity: Duration,
    pub leaf_validity: Duration,
    pub renew_before: Duration,
    /// Default rotation strategy for this CA.
    pub strategy: Strategy,
    /// Default chain mode for this CA.
    pub chain: ChainMode,
    /// What happens to bundle certificates that are no generation of this CA.
    pub bundle_foreign: BundleForeign,
    /// Where the private keys of this CA's generations live (`key_store`).
    pub key_store: KeyStore,
}

/// `key_store`: where a CA's generation keys are kept at rest (docs/keys.md#ca-keys).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeyStore {
    /// `ca.key`, PKCS#8 PEM, mode 0600 (the default).
    #[default]
    File,
    /// `ca.key`, PKCS#8 encrypted PEM (PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC).
    Encrypted {
        /// Where the passphrase comes from.
        passphrase: SecretSource,
    },
    /// A PKCS#11 token: the key never leaves it; `ca.key.ref` names it.
    Pkcs11(Pkcs11Spec),
}

impl KeyStore {
    /// The inventory spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyStore::File => "file",
            KeyStore::Encrypted { .. } => "encrypted",
            KeyStore::Pkcs11(_) => "pkcs11",
        }
    }
}

/// Where a secret (passphrase, PIN) comes from; never the inventory itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SecretSource {
    /// The named environment variable (`passphrase_env`, `pin_env`).
    Env(String),
    /// A regular file not readable by group or other (`passphrase_file`, `pin_file`).
    File(PathBuf),
    /// Asked on the terminal; refused without one.
    #[default]
    Prompt,
}

/// `key_store = "pkcs11"`: the module, the token and the keys' base label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Spec {
    /// The PKCS#11 module (`pkcs11_module`), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token label (`pkcs11_token`).
    pub token: String,
    /// Base label of the keys certroll generates (`pkcs11_key_label`): `<base> G<N>`.
    pub key_label: String,
    /// Where the user PIN comes from.
    pub pin: SecretSource,
}

/// `bundle_foreign`: who owns the certificates of a trust bundle that certroll did not put there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BundleForeign {
    /// Keep them, in order; certroll changes only the anchors of its generations (default).
    #[default]
    Keep,
    /// certroll owns the whole file: a written bundle holds only its generations.
    Drop,
}

impl CaSpec {
    /// CA `name` with `subject` and every other key at its default in docs/inventory.md:
    /// ecdsa-p256, 10-year roots, 90-day leaves renewed 30 days before they expire,
    /// phased, plain chains.
    pub fn new(name: &str, subject: &str) -> CaSpec {
        const DAY: u64 = 86_400;
        CaSpec {
            name: name.to_string(),
            subject: subject.to_string(),
            key_algorithm: KeyAlgorithm::EcdsaP256,
            validity: Duration::from_secs(10 * 365 * DAY),
            leaf_validity: Duration::from_secs(90 * DAY),
            renew_before: Duration::from_secs(30 * DAY),
            strategy: Strategy::default(),
            chain: ChainMode::default(),
            bundle_foreign: BundleForeign::default(),
            key_store: KeyStore::File,
        }
    }
}

/// How certroll reaches a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportKind {
    /// Over SSH (optionally through `via`).
    Ssh(SshSettings),
    /// Files and commands on this machine.
    Local,
}

/// SSH settings of a node, after merging `[defaults].ssh` and expanding `~`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key file; `None` means ssh-agent only.
    pub identity_file: Option<PathBuf>,
    pub known_hosts: PathBuf,
}

/// Where one node keeps the files of one CA. Remote paths are absolute; local
/// paths are resolved against the inventory's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePaths {
    pub trust_bundle: String,
    pub cert: String,
    pub key: String,
    /// Where the proof-key (cross) certificate is shipped during a rollover, if anywhere.
    pub proof_cert: Option<String>,
    /// `keystore`, `truststore`, `combined_pem` (docs/layout.md#other-forms).
    pub keystore: Option<String>,
    pub truststore: Option<String>,
    pub combined_pem: Option<String>,
    /// The PEM key has no link at `key`: it stays inside the store (a node that reads its
    /// key only from a keystore or a combined PEM and whose inventory sets no `key`).
    pub key_in_store: bool,
}

/// A `[nodes.NAME]` table merged with `[defaults]`.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub transport: TransportKind,
    /// The node whose SSH session reaches this one.
    pub via: Option<NodeId>,
    /// Path templates; `{ca}` and `{node}` are substituted by [`Node::paths`].
    pub trust_bundle: String,
    pub cert: String,
    pub key: String,
    pub proof_cert: Option<String>,
    /// Shell command that makes the node's TLS software load the files.
    pub reload: Option<String>,
    /// Shell command that exits 0 once the node serves with the new files.
    pub confirm: Option<String>,
    pub confirm_timeout: Duration,
    /// Shell command run by `verify --live` to probe a server; `{host}`, `{port}`,
    /// `{server}` and `{name}` are substituted.
    pub probe: Option<String>,
    /// Where the node serves TLS (`tls_address`, `starttls`): certroll then confirms its
    /// reloads with a handshake of its own through the node's transport.
    pub tls: Option<TlsTarget>,
    /// Subject alternative names of the node's leaf (DNS names and IP addresses).
    pub dns_names: Vec<String>,
    /// `become`: how files are written and commands run once logged in.
    pub become_with: Become,
    /// Owner, group and modes of the files certroll writes; how many backups it keeps.
    pub files: FileSettings,
    /// The other forms of the node's files: keystores, truststores, combined PEM, OS trust.
    pub stores: super::StoreSettings,
}

/// `become` of a node: run as the login user, or through `sudo -n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Become {
    /// Everything runs as the login user (the default).
    #[default]
    Login,
    /// Files are written and commands run through `sudo -n` (never a password prompt).
    Sudo,
}

/// Owner, group and modes of a node's files (`owner`, `group`, `key_mode`, `cert_mode`,
/// `bundle_mode`) and `keep_backups`. `None` keeps what the file being replaced has
/// (a new file: the user certroll runs as, 0600 for keys, 0644 for the rest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSettings {
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Private key (permission bits).
    pub key_mode: Option<u32>,
    /// Leaf certificate and chain.
    pub cert_mode: Option<u32>,
    /// Trust bundle and proof-key certificate.
    pub bundle_mode: Option<u32>,
    /// Earlier runs' file sets kept after a run completes (0: none, so no old private key stays).
    pub keep_backups: u32,
    /// The algorithm of the node's leaf keys (`key_algorithm`); `None`: the CA's.
    pub key_algorithm: Option<KeyAlgorithm>,
    /// Where the node's leaf keys are generated (`key_source`).
    pub key_source: KeySource,
    /// The directory that holds the node's stores (`store_dir`, `{ca}` and `{node}`
    /// substituted by [`Node::store_dir`]); `None`: beside the certificate, or under
    /// `/var/lib/certroll/stores` when another user controls the certificate's directory.
    pub store_dir: Option<String>,
}

impl Node {
    /// The files this node keeps for CA `ca`.
    pub fn paths(&self, ca: &str) -> NodePaths {
        let fill = |t: &str| t.replace("{ca}", ca).replace("{node}", &self.name);
        let cert = fill(&self.cert);
        let key = if self.key_in_store() {
            // The key of the store's current version (crate::layout::store_dir).
            let dir = match self.store_dir(ca) {
                Some(d) => d,
                None => cert.rsplit_once('/').map_or(".", |(d, _)| d).to_string(),
            };
            format!(
                "{}/.certroll-{ca}/current/key.pem",
                dir.trim_end_matches('/')
            )
        } else {
            fill(&self.key)
        };
        NodePaths {
            trust_bundle: fill(&self.trust_bundle),
            cert,
            key,
            proof_cert: self.proof_cert.as_deref().map(fill),
            keystore: self.stores.keystore.as_deref().map(fill),
            truststore: self.stores.truststore.as_deref().map(fill),
            combined_pem: self.stores.combined_pem.as_deref().map(fill),
            key_in_store: self.key_in_store(),
        }
    }

    /// The directory of the node's stores for CA `ca` (`store_dir`), if the inventory sets one.
    pub fn store_dir(&self, ca: &str) -> Option<String> {
        let dir = self.files.store_dir.as_deref()?;
        Some(dir.replace("{ca}", ca).replace("{node}", &self.name))
    }

    /// The name a client uses to reach this node as a server (first SAN, else the node name).
    pub fn server_name(&self) -> &str {
        self.dns_names
            .first()
            .map(String::as_str)
            .unwrap_or(&self.name)
    }

    /// The algorithm of this node's leaf keys under CA `spec`.
    pub fn leaf_algorithm(&self, spec: &CaSpec) -> KeyAlgorithm {
        self.files.key_algorithm.unwrap_or(spec.key_algorithm)
    }

    /// SANs to put in the node's leaf: `dns_names`, or the node name when none are given.
    pub fn sans(&self) -> Vec<String> {
        if self.dns_names.is_empty() {
            vec![self.name.clone()]
        } else {
            self.dns_names.clone()
        }
    }

    pub fn is_local(&self) -> bool {
        self.transport == TransportKind::Local
    }
}

/// One `client → server` TLS link over one CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Link {
    pub client: NodeId,
    pub server: NodeId,
    /// The server also verifies the client's certificate.
    pub mutual: bool,
    pub ca: CaId,
}

impl Inventory {
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.nodes
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
    }

    pub fn ca_id(&self, name: &str) -> Option<CaId> {
        self.cas
            .binary_search_by(|c| c.name.as_str().cmp(name))
            .ok()
    }

    /// Links of one CA.
    pub fn links_of(&self, ca: CaId) -> impl Iterator<Item = &Link> + '_ {
        self.links.iter().filter(move |l| l.ca == ca)
    }

    /// Nodes that take part in at least one link of `ca`, ascending.
    pub fn members(&self, ca: CaId) -> Vec<NodeId> {
        let mut seen = vec![false; self.nodes.len()];
        for l in self.links_of(ca) {
            seen[l.client] = true;
            seen[l.server] = true;
        }
        (0..self.nodes.len()).filter(|&i| seen[i]).collect()
    }

    /// Per node, the peers that verify its certificate over `ca` (verifiers(n) in
    /// docs/design.md#words). Sorted, without duplicates.
    pub fn verifiers(&self, ca: CaId) -> Vec<Vec<NodeId>> {
        let mut v = vec![Vec::new(); self.nodes.len()];
        for l in self.links_of(ca) {
            v[l.server].push(l.client);
            if l.mutual {
                v[l.client].push(l.server);
            }
        }
        for list in &mut v {
            list.sort_unstable();
            list.dedup();
        }
        v
    }

    /// Per node, the peers whose certificate it verifies over `ca` (subjects(n) in
    /// docs/design.md#words). Sorted, without duplicates.
    pub fn subjects(&self, ca: CaId) -> Vec<Vec<NodeId>> {
        let mut s = vec![Vec::new(); self.nodes.len()];
        for l in self.links_of(ca) {
            s[l.client].push(l.server);
            if l.mutual {
                s[l.server].push(l.client);
            }
        }
        for list in &mut s {
            list.sort_unstable();
            list.dedup();
        }
        s
    }
}
