//! Checking the certificate signing request a node sends back for a key it made itself
//! (`key_source = "node"`), before certroll issues a leaf for its public key.
//!
//! The node is not trusted to say anything but its public key: the request must be signed
//! by that key (proof of possession), name exactly the random nonce certroll passed in
//! (so an old or foreign request cannot be replayed), carry a key of the leaf's
//! algorithm and size, and ask for nothing else (no attributes, so no extension
//! request). The leaf itself is built from the inventory only; of the request, only the
//! public key is ever used.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519, OID_X509_COMMON_NAME,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::inventory::KeyAlgorithm;

/// A request larger than this (PEM text) is refused unread: an RSA-4096 request is < 2 KiB.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// What a node's request was found to be wrong about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrProblem {
    #[error("is {0} bytes long, more than the {MAX_CSR_BYTES} allowed")]
    TooLarge(usize),
    #[error("is not a PEM certificate request ({0})")]
    NotPem(String),
    #[error("does not parse ({0})")]
    Malformed(String),
    #[error("is not signed by the key it carries")]
    BadSignature,
    #[error("names subject {found:?}, not the nonce certroll sent")]
    WrongNonce { found: String },
    #[error("carries a {found} key, not the {expected} key the leaf needs")]
    WrongKey { expected: String, found: String },
    #[error("asks for attributes or extensions ({0}), which certroll never grants")]
    Attributes(String),
}

/// A node's request that failed a check; names the node, the CA and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the certificate request node {node} made for CA {ca} {problem}")]
pub struct CsrError {
    pub node: String,
    pub ca: String,
    pub problem: CsrProblem,
}

/// The public key of a checked request: a SubjectPublicKeyInfo, DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCsr {
    pub spki_der: Vec<u8>,
}

/// The key a leaf of `alg` must carry, as a request shows it.
/// (`key_kind` spells a request's key the same way, RSA with its modulus size.)
fn expected(alg: KeyAlgorithm) -> &'static str {
    alg.as_str()
}

/// Checks `pem` (what the node printed) against the `nonce` certroll sent and the leaf's
/// algorithm `alg`; returns the public key to certify.
pub fn check_csr(
    pem_text: &str,
    nonce: &str,
    alg: KeyAlgorithm,
    node: &str,
    ca: &str,
) -> Result<CheckedCsr, CsrError> {
    let fail = |problem| CsrError {
        node: node.to_string(),
        ca: ca.to_string(),
        problem,
    };
    check(pem_text, nonce, alg).map_err(fail)
}

fn check(pem_text: &str, nonce: &str, alg: KeyAlgorithm) -> Result<CheckedCsr, CsrProblem> {
    if pem_text.len() > MAX_CSR_BYTES {
        return Err(CsrProblem::TooLarge(pem_text.len()));
    }
    let block = pem::parse(pem_text.trim()).map_err(|e| CsrProblem::NotPem(e.to_string()))?;
    if block.tag() != "CERTIFICATE REQUEST" {
        return Err(CsrProblem::NotPem(format!("a {} block", block.tag())));
    }
    let der = block.contents();
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| CsrProblem::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrProblem::Malformed("trailing bytes".into()));
    }
    csr.verify_signature()
        .map_err(|_| CsrProblem::BadSignature)?;
    let info = &csr.certification_request_info;

    // The subject is exactly one CN holding the nonce.
    let mut names = info.subject.iter_attributes();
    let cn = match (names.next(), names.next()) {
        (Some(a), None) if *a.attr_type() == OID_X509_COMMON_NAME => a.as_str().ok(),
        _ => None,
    };
    if cn != Some(nonce) {
        return Err(CsrProblem::WrongNonce {
            found: info.subject.to_string(),
        });
    }

    if !info.attributes().is_empty() {
        let oids: Vec<String> = info
            .attributes()
            .iter()
            .map(|a| a.oid.to_id_string())
            .collect();
        return Err(CsrProblem::Attributes(oids.join(", ")));
    }

    let spki = &info.subject_pki;
    let found = key_kind(spki);
    let want = expected(alg);
    if found != want {
        return Err(CsrProblem::WrongKey {
            expected: want.to_string(),
            found,
        });
    }
    Ok(CheckedCsr {
        spki_der: spki.raw.to_vec(),
    })
}

/// The key of `spki` in the inventory's spelling (`ecdsa-p256`, `rsa-2048`...), or a
/// description of what it is.
fn key_kind(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> String {
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => "ecdsa-p256".into(),
            Some(c) if c == OID_NIST_EC_P384 => "ecdsa-p384".into(),
            Some(c) => format!("EC key on curve {}", c.to_id_string()),
            None => "EC key without a named curve".into(),
        };
    }
    if *alg == OID_SIG_ED25519 {
        return "ed25519".into();
    }
    if *alg == OID_PKCS1_RSAENCRYPTION {
        return match spki.parsed() {
            Ok(PublicKey::RSA(k)) => format!("rsa-{}", modulus_bits(k.modulus)),
            _ => "unreadable RSA key".into(),
        };
    }
    format!("key of type {}", alg.to_id_string())
}

/// The size of an RSA modulus (big-endian, maybe with leading zero bytes), in bits.
fn modulus_bits(modulus: &[u8]) -> usize {
    let m: &[u8] = match modulus.iter().position(|&b| b != 0) {
        Some(i) => &modulus[i..],
        None => return 0,
    };
    8 * m.len() - m[0].leading_zeros() as usize
}

#[cfg(test)]
#[path = "csr_tests.rs"]
mod tests;
