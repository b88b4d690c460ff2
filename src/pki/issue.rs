//! Issuing certificates with rcgen: roots, cross certificates, leaves.

use time::OffsetDateTime;

use super::{CaCert, Leaf, PkiError};
use crate::inventory::CaSpec;

/// Creates generation `generation` of CA `spec`: a fresh key and a self-signed root.
pub fn new_ca(_spec: &CaSpec, _generation: u32, _now: OffsetDateTime) -> Result<CaCert, PkiError> {
    todo!()
}

/// The cross certificate: `new`'s subject and public key signed by `old` (PEM).
pub fn cross_sign(_spec: &CaSpec, _new: &CaCert, _old: &CaCert, _now: OffsetDateTime) -> Result<String, PkiError> {
    todo!()
}

/// A leaf for a node, signed by `ca`, with `sans` (DNS names and IP addresses).
pub fn issue_leaf(_spec: &CaSpec, _ca: &CaCert, _node: &str, _sans: &[String], _now: OffsetDateTime) -> Result<Leaf, PkiError> {
    todo!()
}

/// What certroll needs to know of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub der: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    pub serial_hex: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
    /// DNS and IP SANs, as text.
    pub sans: Vec<String>,
    /// SHA-256 of the DER SubjectPublicKeyInfo, hex.
    pub spki_sha256: String,
}

/// Parses every CERTIFICATE block of a PEM file.
pub fn parse_pem_certs(_pem: &[u8]) -> Result<Vec<CertInfo>, String> {
    todo!()
}
