//! The forms a node's software reads its key, chain and anchors in, besides the PEM files:
//! a PKCS#12 keystore, a PKCS#12 or JKS truststore, a combined PEM (chain then key in one
//! file) and the operating system's trust store (docs/layout.md#other-forms).
//!
//! Every form is one [`StoreForm`] backend, in a file of its own: it renders its bytes from
//! the node's leaf key, chain and anchors ([`StoreContents`]) and parses them back for
//! `verify` and for the simulator, which must see exactly what the node's software loads.
//! A form's file is one more file of the node's versioned set (see [`crate::layout`]), so it
//! is switched with the PEM files in the same rename.

use zeroize::Zeroizing;

pub mod combined_pem;
pub mod jks;
pub mod os_trust;
pub mod pkcs12;
pub mod read;

/// The password of a truststore whose inventory names no `store_password_file`: Java's
/// own default for its `cacerts`, which every Java tool tries first.
pub const DEFAULT_TRUSTSTORE_PASSWORD: &str = "changeit";

/// A store password, wiped from memory when dropped and never printed by `Debug`.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    pub fn new(text: &str) -> Self {
        Password(Zeroizing::new(text.to_string()))
    }

    /// The password's text, for a backend that encrypts or checks with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

// Equal when the texts are: lets the structures that carry a password compare.
impl PartialEq for Password {
    fn eq(&self, other: &Self) -> bool {
        *self.0 == *other.0
    }
}

impl Eq for Password {}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// What a store holds, in DER: the leaf's PKCS#8 key and its chain (leaf first) for a
/// keystore or combined PEM, the anchors for a truststore.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoreContents {
    /// The leaf's private key, PKCS#8 DER.
    pub key: Option<Zeroizing<Vec<u8>>>,
    /// Only the public key (SubjectPublicKeyInfo, DER) of the leaf's private key, for a
    /// store opened on its node (`key_source = "node"`), whose key never leaves it.
    pub public_key: Option<Vec<u8>>,
    /// The leaf certificate then the certificates that follow it.
    pub chain: Vec<Vec<u8>>,
    /// Trust anchors, each with whether Java would load it as trusted.
    pub anchors: Vec<Anchor>,
}

impl std::fmt::Debug for StoreContents {
    // Key material never reaches a log through Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreContents")
            .field("key", &self.key.as_ref().map(|k| k.len()))
            .field("public_key", &self.public_key.as_ref().map(Vec::len))
            .field("chain", &self.chain.len())
            .field("anchors", &self.anchors.len())
            .finish()
    }
}

impl StoreContents {
    /// The SubjectPublicKeyInfo (DER) of the private key the store holds: the one its node
    /// derived, or the one of its key; `None` without a key certroll can read.
    pub fn spki(&self) -> Option<Vec<u8>> {
        use rcgen::PublicKeyData;
        self.public_key.clone().or_else(|| {
            let key = self.key.as_ref()?;
            let pair = rcgen::KeyPair::try_from(key.as_slice()).ok()?;
            Some(pair.subject_public_key_info())
        })
    }
}

/// A trust anchor of a truststore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub der: Vec<u8>,
    /// A JKS trusted-certificate entry, or a PKCS#12 certificate bag carrying Java's
    /// trusted-certificate attribute (OID 2.16.840.1.113894.746875.1.1): without it, Java
    /// loads no anchor from a PKCS#12 truststore.
    pub java_trusted: bool,
}

/// Why a store could not be rendered or read. Never holds the password or key bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The password does not open the store (its MAC or digest does not match).
    #[error("the password does not open it (wrong password, or the file was changed)")]
    WrongPassword,
    /// The bytes are not a store of this form.
    #[error("it is not a {form} file: {why}")]
    NotThisForm { form: &'static str, why: String },
    /// The contents cannot be put into this form.
    #[error("cannot make a {form} file: {why}")]
    Render { form: &'static str, why: String },
}

/// One form of a node's files: renders its bytes and reads them back.
pub trait StoreForm {
    /// The form's name in messages and findings (`PKCS#12 keystore`, `JKS truststore`, ...).
    fn name(&self) -> &'static str;
    /// The bytes of the form holding `contents`, protected by `password` where the form has one.
    fn render(&self, contents: &StoreContents, password: &Password) -> Result<Vec<u8>, StoreError>;
    /// What `bytes` hold, opened with `password` where the form has one.
    fn read(&self, bytes: &[u8], password: &Password) -> Result<StoreContents, StoreError>;
}

/// `pkcs12_profile`: how a PKCS#12 file is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pkcs12Profile {
    /// PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC, HMAC-SHA256 MAC: read by Java
    /// 11.0.12+ / 17 and OpenSSL 1.1.1 and 3 without extra flags (the default).
    #[default]
    Modern,
    /// PBE-SHA1-3DES for keys and certificates, HMAC-SHA1 MAC: for readers older than
    /// those (Java 8 before 8u301); OpenSSL 3 still reads it without `-legacy`.
    Legacy,
}

impl Pkcs12Profile {
    /// The profile an inventory value names.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "modern" => Some(Pkcs12Profile::Modern),
            "legacy" => Some(Pkcs12Profile::Legacy),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Pkcs12Profile::Modern => "modern",
            Pkcs12Profile::Legacy => "legacy",
        }
    }
}

/// `truststore_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TruststoreFormat {
    #[default]
    Pkcs12,
    Jks,
}

impl TruststoreFormat {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pkcs12" => Some(TruststoreFormat::Pkcs12),
            "jks" => Some(TruststoreFormat::Jks),
            _ => None,
        }
    }
}

/// The backend of a node's truststore.
pub fn truststore_form(format: TruststoreFormat, profile: Pkcs12Profile) -> Box<dyn StoreForm> {
    match format {
        TruststoreFormat::Pkcs12 => Box::new(pkcs12::Pkcs12 {
            profile,
            role: pkcs12::Pkcs12Role::Truststore,
        }),
        TruststoreFormat::Jks => Box::new(jks::Jks),
    }
}

/// The backend of a node's keystore (always PKCS#12).
pub fn keystore_form(profile: Pkcs12Profile) -> Box<dyn StoreForm> {
    Box::new(pkcs12::Pkcs12 {
        profile,
        role: pkcs12::Pkcs12Role::Keystore,
    })
}

/// The DER certificates of a PEM text, in order (other blocks skipped).
pub fn pem_certs(pem_text: &[u8]) -> Vec<Vec<u8>> {
    pem::parse_many(pem_text)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.into_contents())
        .collect()
}

/// The PKCS#8 DER of the first private key block of a PEM text.
pub fn pem_key(pem_text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    pem::parse_many(pem_text)
        .ok()?
        .into_iter()
        .find(|p| p.tag() == "PRIVATE KEY")
        .map(|p| Zeroizing::new(p.into_contents()))
}

/// The contents of a keystore or combined PEM: the key of `key_pem`, the chain of `chain_pem`.
pub fn leaf_contents(key_pem: &[u8], chain_pem: &[u8]) -> StoreContents {
    StoreContents {
        key: pem_key(key_pem),
        chain: pem_certs(chain_pem),
        ..StoreContents::default()
    }
}

/// The contents of a truststore: every certificate of the trust bundle, as Java anchors.
pub fn trust_contents(bundle_pem: &[u8]) -> StoreContents {
    StoreContents {
        anchors: pem_certs(bundle_pem)
            .into_iter()
            .map(|der| Anchor {
                der,
                java_trusted: true,
            })
            .collect(),
        ..StoreContents::default()
    }
}

/// A stable alias for an anchor: `anchor-` and the first 16 hex digits of its SHA-256.
pub fn anchor_alias(der: &[u8]) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(der);
    format!("anchor-{}", &hex::encode(h)[..16])
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod interop_tests;
