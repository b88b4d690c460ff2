//! The proof-key certificate a node may hold beside its bundle during a rotation
//! (docs/design.md#proof-key-certificates): the next root's subject and key, certified by
//! the current root, so that the node (or an auditor) can check the new anchor with the
//! old one before trusting it.
//!
//! While a rotation runs, a node that trusts both generations should hold it, and it must
//! be exactly that certificate: the next root's subject and public key, with a signature
//! that verifies under the current root's key. After the rotation it should be gone.

use x509_parser::prelude::{FromDer, X509Certificate};

use super::collect::FileState;
use super::finding::Finding;
use super::generations::Known;
use super::report::Generation;
use crate::materials::FileKind;
use crate::pki::parse_pem_certs;

/// Checks the proof-key certificate at `path`. `trusts_both` says whether the node's
/// bundle holds the current and the next generation (it has had its trust-add).
pub fn check_proof(
    path: &str,
    state: &FileState,
    known: &Known,
    trusts_both: bool,
    findings: &mut Vec<Finding>,
) {
    let next = known.get(Generation::Next);
    match state {
        FileState::Unreadable(message) => findings.push(Finding::Unreadable {
            file: FileKind::ProofCert,
            path: path.to_string(),
            message: message.clone(),
        }),
        FileState::Missing if next.is_some() && trusts_both => {
            findings.push(Finding::ProofMissing {
                path: path.to_string(),
            });
        }
        // Only a key made on the node is held as its public key; never this file.
        FileState::Missing | FileState::PublicKey(_) => {}
        FileState::Present(_) if next.is_none() => {
            findings.push(Finding::ProofStale {
                path: path.to_string(),
            });
        }
        FileState::Present(bytes) => {
            if let Err(detail) = prove(bytes, known) {
                findings.push(Finding::ProofInvalid {
                    path: path.to_string(),
                    detail,
                });
            }
        }
    }
}

/// Ok when `pem` is one certificate of the next root's subject and key, signed by the
/// current root.
fn prove(pem: &[u8], known: &Known) -> Result<(), String> {
    let (Some(current), Some(next)) = (known.get(Generation::Current), known.get(Generation::Next))
    else {
        return Err("the local CA store does not know both generations".into());
    };
    let certs = parse_pem_certs(pem).map_err(|e| format!("it does not parse: {e}"))?;
    let [cross] = certs.as_slice() else {
        return Err(format!(
            "it holds {} certificates, expected exactly one",
            certs.len()
        ));
    };
    if cross.spki_sha256 != next.spki_sha256 {
        return Err(format!(
            "it certifies another key than the next root G{}'s",
            next.number
        ));
    }
    if cross.subject != next.subject {
        return Err(format!(
            "its subject is {}, not the next root's {}",
            cross.subject, next.subject
        ));
    }
    let (_, cross_x509) =
        X509Certificate::from_der(&cross.der).map_err(|e| format!("it does not parse: {e}"))?;
    let (_, issuer) = X509Certificate::from_der(&current.der)
        .map_err(|e| format!("the current root does not parse: {e}"))?;
    cross_x509
        .verify_signature(Some(issuer.public_key()))
        .map_err(|_| {
            format!(
                "its signature does not verify under the current root G{}",
                current.number
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::InventoryBuilder;
    use crate::pki::{cross_sign, new_ca, CaCert};
    use time::OffsetDateTime;

    fn cas() -> (CaCert, CaCert, CaCert, String) {
        let spec = InventoryBuilder::new().link("a", "b").build().cas.remove(0);
        let now = OffsetDateTime::now_utc();
        let g1 = new_ca(&spec, 1, now).unwrap();
        let g2 = new_ca(&spec, 2, now).unwrap();
        let stranger = new_ca(&spec, 7, now).unwrap();
        let cross = cross_sign(&spec, &g2, &g1, now).unwrap();
        (g1, g2, stranger, cross)
    }

    fn known(g1: &CaCert, g2: Option<&CaCert>) -> Known {
        let mut k = Known::default();
        k.add(Generation::Current, 1, &g1.cert_pem).unwrap();
        if let Some(g2) = g2 {
            k.add(Generation::Next, 2, &g2.cert_pem).unwrap();
        }
        k
    }

    fn check(state: FileState, known: &Known, trusts_both: bool) -> Vec<Finding> {
        let mut f = Vec::new();
        check_proof("/etc/tls/cross.pem", &state, known, trusts_both, &mut f);
        f
    }

    fn present(pem: &str) -> FileState {
        FileState::Present(pem.as_bytes().to_vec())
    }

    #[test]
    fn the_real_cross_certificate_passes() {
        let (g1, g2, _, cross) = cas();
        assert_eq!(check(present(&cross), &known(&g1, Some(&g2)), true), vec![]);
    }

    #[test]
    fn a_cross_certificate_signed_by_another_ca_is_invalid() {
        let (g1, g2, stranger, _) = cas();
        let spec = InventoryBuilder::new().link("a", "b").build().cas.remove(0);
        let forged = cross_sign(&spec, &g2, &stranger, OffsetDateTime::now_utc()).unwrap();
        let f = check(present(&forged), &known(&g1, Some(&g2)), true);
        assert!(
            matches!(&f[..], [Finding::ProofInvalid { detail, .. }] if detail.contains("does not verify under the current root G1")),
            "{f:?}"
        );
    }

    #[test]
    fn a_certificate_of_another_key_is_invalid() {
        let (g1, g2, _, _) = cas();
        let f = check(present(&g1.cert_pem), &known(&g1, Some(&g2)), true);
        assert!(
            matches!(&f[..], [Finding::ProofInvalid { detail, .. }] if detail.contains("another key")),
            "{f:?}"
        );
    }

    #[test]
    fn missing_matters_only_once_the_node_trusts_both() {
        let (g1, g2, _, _) = cas();
        let k = known(&g1, Some(&g2));
        assert!(matches!(
            &check(FileState::Missing, &k, true)[..],
            [Finding::ProofMissing { .. }]
        ));
        assert_eq!(check(FileState::Missing, &k, false), vec![]);
        assert_eq!(check(FileState::Missing, &known(&g1, None), false), vec![]);
    }

    #[test]
    fn a_proof_left_after_the_rotation_is_stale() {
        let (g1, _, _, cross) = cas();
        let f = check(present(&cross), &known(&g1, None), false);
        assert!(matches!(&f[..], [Finding::ProofStale { .. }]), "{f:?}");
    }
}
