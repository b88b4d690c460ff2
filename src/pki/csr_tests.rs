//! Requests made with rcgen (and one by openssl in the layout tests) against every check.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData, SanType};

use super::*;

const NONCE: &str = "certroll-3f9a0c1d5e6f7a8b";

fn request(alg: &'static rcgen::SignatureAlgorithm, cn: &str, sans: bool) -> String {
    let key = KeyPair::generate_for(alg).unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    if sans {
        params.subject_alt_names = vec![SanType::DnsName("evil.example".try_into().unwrap())];
    }
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn problem(pem: &str, alg: KeyAlgorithm) -> CsrProblem {
    check_csr(pem, NONCE, alg, "app1", "internal")
        .unwrap_err()
        .problem
}

#[test]
fn a_good_request_gives_its_public_key() {
    for (alg, kind) in [
        (&rcgen::PKCS_ECDSA_P256_SHA256, KeyAlgorithm::EcdsaP256),
        (&rcgen::PKCS_ECDSA_P384_SHA384, KeyAlgorithm::EcdsaP384),
        (&rcgen::PKCS_ED25519, KeyAlgorithm::Ed25519),
    ] {
        let pem = request(alg, NONCE, false);
        let ok = check_csr(&pem, NONCE, kind, "app1", "internal").unwrap();
        assert!(rcgen::SubjectPublicKeyInfo::from_der(&ok.spki_der).is_ok());
    }
}

#[test]
fn another_nonce_is_refused_and_named() {
    let pem = request(&rcgen::PKCS_ECDSA_P256_SHA256, "certroll-old", false);
    let err = check_csr(&pem, NONCE, KeyAlgorithm::EcdsaP256, "app1", "internal").unwrap_err();
    assert!(matches!(err.problem, CsrProblem::WrongNonce { .. }));
    assert_eq!(
        err.to_string(),
        "the certificate request node app1 made for CA internal names subject \"CN=certroll-old\", not the nonce certroll sent"
    );
}

#[test]
fn a_broken_signature_is_refused() {
    let pem = request(&rcgen::PKCS_ECDSA_P256_SHA256, NONCE, false);
    let block = pem::parse(&pem).unwrap();
    let mut der = block.contents().to_vec();
    // The signature is the last BIT STRING: change its last byte.
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let bad = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    assert_eq!(
        problem(&bad, KeyAlgorithm::EcdsaP256),
        CsrProblem::BadSignature
    );
}

#[test]
fn another_algorithm_or_size_is_refused() {
    let pem = request(&rcgen::PKCS_ECDSA_P384_SHA384, NONCE, false);
    assert_eq!(
        problem(&pem, KeyAlgorithm::EcdsaP256),
        CsrProblem::WrongKey {
            expected: "ecdsa-p256".into(),
            found: "ecdsa-p384".into()
        }
    );
    let pem = request(&rcgen::PKCS_ED25519, NONCE, false);
    assert!(matches!(
        problem(&pem, KeyAlgorithm::EcdsaP384),
        CsrProblem::WrongKey { .. }
    ));
}

#[test]
fn an_extension_request_is_refused() {
    let pem = request(&rcgen::PKCS_ECDSA_P256_SHA256, NONCE, true);
    let p = problem(&pem, KeyAlgorithm::EcdsaP256);
    assert!(matches!(p, CsrProblem::Attributes(_)), "{p:?}");
}

#[test]
fn oversize_and_non_pem_are_refused_unparsed() {
    let big = "A".repeat(MAX_CSR_BYTES + 1);
    assert_eq!(
        problem(&big, KeyAlgorithm::EcdsaP256),
        CsrProblem::TooLarge(MAX_CSR_BYTES + 1)
    );
    assert!(matches!(
        problem("hello", KeyAlgorithm::EcdsaP256),
        CsrProblem::NotPem(_)
    ));
    let cert = pem::encode(&pem::Pem::new("CERTIFICATE", vec![0x30, 0x00]));
    assert!(matches!(
        problem(&cert, KeyAlgorithm::EcdsaP256),
        CsrProblem::NotPem(_)
    ));
}

#[test]
fn the_leaf_for_a_request_is_the_leaf_certroll_would_issue() {
    use crate::inventory::CaSpec;
    let spec = CaSpec::new("internal", "CN=Test CA,O=Example");
    let now = time::OffsetDateTime::now_utc();
    let ca = crate::pki::new_ca(&spec, 1, now).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, NONCE);
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let checked = check_csr(&pem, NONCE, KeyAlgorithm::EcdsaP256, "app1", "internal").unwrap();
    let sans = vec!["app1.example".to_string()];
    let cert = crate::pki::issue_leaf_for_key(
        &spec,
        KeyAlgorithm::EcdsaP256,
        &ca,
        "app1",
        &sans,
        now,
        &checked.spki_der,
    )
    .unwrap();
    let reference = crate::pki::issue_leaf(&spec, &ca, "app1", &sans, now).unwrap();
    let der = |p: &str| pem::parse(p).unwrap().into_contents();
    let (cert_der, ref_der) = (der(&cert), der(&reference.cert_pem));
    let (_, a) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    let (_, b) = x509_parser::parse_x509_certificate(&ref_der).unwrap();
    assert_eq!(a.public_key().raw, key.subject_public_key_info().as_slice());
    assert_eq!(a.subject().to_string(), b.subject().to_string());
    assert_eq!(a.validity().not_after, b.validity().not_after);
    let exts = |c: &x509_parser::certificate::X509Certificate<'_>| {
        c.extensions()
            .iter()
            .map(|e| e.oid.to_id_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(exts(&a), exts(&b));
    let (_, issuer) = x509_parser::parse_x509_certificate(&ca.cert_der).unwrap();
    assert!(a.verify_signature(Some(issuer.public_key())).is_ok());
}
