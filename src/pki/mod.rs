//! Certificates: CA generations, cross certificates and node leaves (rcgen), and the
//! local CA store in `state_dir` (keys 0600, written atomically, never sent anywhere).

use time::OffsetDateTime;

use crate::inventory::CaSpec;

mod atomic;
mod inspect;
mod issue;
mod names;
mod store;

pub use inspect::{parse_pem_certs, CertInfo};
pub use issue::{cross_sign, issue_leaf, new_ca};
pub use store::CaStore;

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
}

/// One CA generation: the self-signed root and its private key (PKCS#8 PEM).
#[derive(Clone)]
pub struct CaCert {
    /// 1 for the first CA of a fleet, then 2, 3...
    pub generation: u32,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// Never logged, never journaled, never sent to a node.
    pub key_pem: String,
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for CaCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaCert")
            .field("generation", &self.generation)
            .field("not_after", &self.not_after)
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
