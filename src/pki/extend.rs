//! Same-key extension of a CA certificate (`certroll ca extend`): the generation's
//! certificate re-issued with the same key, subject and subject key identifier and a new
//! validity, for a CA about to expire when a rotation cannot be done in time.
//!
//! Every leaf the old certificate signed verifies under the new one, because a verifier
//! finds a leaf's issuer by name and key identifier and checks the signature with the
//! key, all of which are unchanged. That holds only for leaves whose Authority Key
//! Identifier names the key alone: one that also names the issuer's issuer and serial
//! number (`authorityCertIssuer` + `authorityCertSerialNumber`) is bound to the old
//! certificate's serial and is refused by strict verifiers under the new one, so
//! [`binds_issuer_serial`] finds such leaves and the command refuses. Only certroll's own
//! self-signed generations are extended: an intermediate is re-issued by its root, which
//! certroll does not hold (docs/operations.md#an-expiring-ca).

use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;

use super::issue::{generate_error, same_ca_params, signing_error, window};
use super::{CaCert, PkiError};
use crate::inventory::CaSpec;

/// Why a generation cannot be extended with its own key (a sentence for the operator).
pub fn refusal(ca: &CaCert) -> Option<String> {
    if ca.key.is_none() {
        return Some(format!(
            "generation G{} was imported without its private key (public-only): certroll \
             cannot re-issue its certificate; rotate away from it (`certroll apply --rotate`) \
             or import the key",
            ca.generation
        ));
    }
    if ca.anchor_pem.is_some() {
        return Some(format!(
            "generation G{} is an intermediate under an imported root: re-issuing it needs \
             the root's key, which certroll does not hold; have the root re-issue it and \
             `certroll ca import` the result, or rotate",
            ca.generation
        ));
    }
    None
}

/// The generation's certificate re-issued with its key, subject and subject key
/// identifier, valid from now for the CA's `validity`, with a new serial number.
pub fn extend(spec: &CaSpec, ca: &CaCert, now: OffsetDateTime) -> Result<CaCert, PkiError> {
    let action = format!("extend the certificate of G{}", ca.generation);
    let fail = |message: String| generate_error(spec, &action, message);
    if let Some(why) = refusal(ca) {
        return Err(fail(why));
    }
    let signer = ca.signer().map_err(&fail)?;
    let mut params = same_ca_params(ca).map_err(&fail)?;
    let (not_before, not_after) = window(now, spec.validity, None).map_err(&fail)?;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params
        .self_signed(&signer)
        .map_err(|e| fail(signing_error(&signer, e)))?;
    Ok(CaCert {
        generation: ca.generation,
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key: ca.key.clone(),
        not_after,
        anchor_pem: None,
        imported: ca.imported,
    })
}

/// Whether a certificate's Authority Key Identifier names its issuer's issuer and serial
/// number (not only the key): such a certificate does not chain to a re-issued CA
/// certificate. A certificate that does not parse is not judged here (`verify` reports it).
pub fn binds_issuer_serial(der: &[u8]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let binds = cert
        .iter_extensions()
        .any(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.authority_cert_issuer.is_some() || a.authority_cert_serial.is_some()
            }
            _ => false,
        });
    binds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{issue_leaf, parse_pem_certs};

    #[test]
    fn the_extended_certificate_keeps_key_subject_and_key_id_and_still_verifies_old_leaves() {
        let now = OffsetDateTime::now_utc();
        let spec = CaSpec::new("internal", "CN=Test CA");
        let old = crate::pki::new_ca(&spec, 1, now - time::Duration::days(3000)).unwrap();
        let new = extend(&spec, &old, now).unwrap();
        let (o, n) = (
            parse_pem_certs(old.cert_pem.as_bytes()).unwrap().remove(0),
            parse_pem_certs(new.cert_pem.as_bytes()).unwrap().remove(0),
        );
        assert_eq!(o.subject, n.subject);
        assert_eq!(o.spki_sha256, n.spki_sha256);
        assert_eq!(o.subject_key_id, n.subject_key_id);
        assert_ne!(o.serial_hex, n.serial_hex);
        assert!(n.not_after > o.not_after);
        // A leaf of the old certificate names the key only: it chains to the new one.
        let leaf = issue_leaf(&spec, &old, "app", &["app.test".into()], now).unwrap();
        let der = pem::parse(&leaf.cert_pem).unwrap().into_contents();
        assert!(!binds_issuer_serial(&der));
        let root_der = rustls_pki_types::CertificateDer::from(new.cert_der.clone());
        let anchor = webpki::anchor_from_trusted_cert(&root_der).unwrap();
        let leaf_der = rustls_pki_types::CertificateDer::from(der);
        let ee = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
        let t = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(now.unix_timestamp()).unwrap(),
        ));
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &[],
            t,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .unwrap();
    }

    #[test]
    fn public_only_and_intermediate_generations_are_refused_with_the_reason() {
        let now = OffsetDateTime::now_utc();
        let spec = CaSpec::new("internal", "CN=Test CA");
        let root = crate::pki::new_ca(&spec, 1, now).unwrap();
        let mut public = root.clone();
        public.key = None;
        let why = refusal(&public).unwrap();
        assert!(why.contains("public-only"), "{why}");
        let err = extend(&spec, &public, now).unwrap_err().to_string();
        assert!(err.contains("public-only"), "{err}");
        let mid = crate::pki::new_intermediate(&spec, 2, &root, now).unwrap();
        assert!(refusal(&mid).unwrap().contains("root's key"));
        assert!(refusal(&root).is_none());
    }
}
