//! Certificates: CA generations, cross certificates and node leaves (rcgen), and the
//! local CA store in `state_dir` (keys 0600, written atomically, never sent anywhere).

use time::OffsetDateTime;

use crate::inventory::CaSpec;

mod atomic;
pub mod csr;
pub mod encrypted;
pub mod extend;
pub mod import;
mod inspect;
mod issue;
mod key;
pub mod keys;
mod names;
mod store;
mod throwaway;
pub mod token;
mod unlock;

pub use import::{ImportError, ImportSource, Imported};
#[cfg(test)]
pub(crate) use inspect::stand_in_cert;
pub use inspect::{cert_info, cert_pem, parse_pem_certs, CertInfo};
pub use issue::{
    cross_sign, issue_leaf, issue_leaf_for_key, issue_leaf_with, issue_node_leaf, new_ca,
    new_ca_with_key, new_intermediate,
};
pub use key::{CaKey, CaSigner, TokenKey, TokenKeyRef};
pub use store::CaStore;
pub use throwaway::{issue_throwaway, Throwaway, THROWAWAY_LIFETIME};
pub use unlock::{Unlock, Unlocked};

/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("failed to {action} for CA {ca}: {message}")]
    Generate {
        ca: String,
        action: String,
        message: String,
    },
    #[error("failed to {action} {path}")]
    Io {
        action: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA store {path} is damaged: {message}")]
    Store {
        path: std::path::PathBuf,
        message: String,
    },
    /// The store is intact but the request does not fit its state (e.g. creating a CA twice).
    #[error("{message} (CA store {path})")]
    State {
        path: std::path::PathBuf,
        message: String,
    },
    /// The key of a generation cannot be unlocked: wrong passphrase or PIN, token or key
    /// missing, no secret given. Configuration the operator fixes (exit 78).
    #[error("cannot use the key of CA {ca} {generation} ({path}): {message}")]
    KeyStore {
        ca: String,
        /// `G<N>`, or `new generation`.
        generation: String,
        path: std::path::PathBuf,
        message: String,
    },
}

impl PkiError {
    /// Whether the operator's key-store settings or secrets are at fault (exit 78).
    pub fn is_key_store(&self) -> bool {
        matches!(self, PkiError::KeyStore { .. })
    }
}

/// One CA generation: the issuing CA certificate and its private key (PKCS#8 PEM).
///
/// certroll's own generations are self-signed roots with their key. An imported
/// generation (`certroll ca import`) may lack the key (public-only: certroll never issues
/// from it, it only rotates away from it) and may be an intermediate under a root the
/// nodes trust (`anchor_pem`): bundles then hold the anchor and leaves carry the
/// intermediate as their chain.
#[derive(Clone)]
pub struct CaCert {
    /// 1 for the first CA of a fleet, then 2, 3...
    pub generation: u32,
    /// The issuing CA certificate.
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// Never logged, never journaled, never sent to a node. `None`: public-only.
    pub key: Option<CaKey>,
    pub not_after: OffsetDateTime,
    /// The root nodes trust when the issuing CA is an intermediate, PEM.
    pub anchor_pem: Option<String>,
    /// Brought by the operator (`ca import`) rather than created by certroll.
    pub imported: bool,
}

impl CaCert {
    /// The certificate a trust bundle holds for this generation: the anchor, or the root itself.
    pub fn anchor(&self) -> &str {
        self.anchor_pem.as_deref().unwrap_or(&self.cert_pem)
    }

    /// The anchor's DER (empty if it does not parse, which the store refuses on load).
    pub fn anchor_der(&self) -> Vec<u8> {
        pem::parse(self.anchor())
            .map(|p| p.into_contents())
            .unwrap_or_default()
    }

    /// What a leaf of this generation is served with after itself: the intermediate.
    pub fn chain_extra(&self) -> Option<&str> {
        self.anchor_pem.as_ref().map(|_| self.cert_pem.as_str())
    }

    /// Whether certroll holds the key, i.e. may issue leaves and cross certificates.
    pub fn can_issue(&self) -> bool {
        self.key.is_some()
    }

    /// Whether both generations are trusted through the same anchor (same root).
    pub fn same_anchor(&self, other: &CaCert) -> bool {
        self.anchor_der() == other.anchor_der()
    }

    /// The private key, or why there is none (the message never includes key material).
    pub(crate) fn key(&self) -> Result<&CaKey, String> {
        self.key.as_ref().ok_or_else(|| {
            format!(
                "generation G{} was imported without its private key (public-only): certroll \
                 cannot issue from it",
                self.generation
            )
        })
    }

    /// The key's PKCS#8 PEM when it is in memory (a `file` store, or an unlocked
    /// `encrypted` one); `None` for a token key, a locked one, or public-only.
    pub fn key_pem(&self) -> Option<&str> {
        match &self.key {
            Some(CaKey::Pem(pem)) => Some(pem.as_str()),
            _ => None,
        }
    }

    /// A signer for this generation's key, or why there is none (public-only, locked, token
    /// not open).
    pub fn signer(&self) -> Result<CaSigner, String> {
        self.key()?.signer()
    }
}

impl std::fmt::Debug for CaCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaCert")
            .field("generation", &self.generation)
            .field("not_after", &self.not_after)
            .field("public_only", &self.key.is_none())
            .field("key", &self.key)
            .field("anchored", &self.anchor_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// A node's certificate and its private key (PKCS#8 PEM).
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The subject CN suffix of generation `n`, e.g. " G2".
pub fn generation_suffix(generation: u32) -> String {
    format!(" G{generation}")
}

#[allow(dead_code)]
fn _assert_spec(_: &CaSpec) {}
