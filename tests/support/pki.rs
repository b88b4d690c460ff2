//! Fixtures shared by the certificate and handshake tests: every key algorithm, a CA
//! spec with the inventory's defaults, a SoftHSM2 token for `key_store = "pkcs11"` (made
//! by `softhsm`), and certificates made as another CA would make them (a takeover's
//! operator and partner CAs, a hand-made self-signed certificate).

use certroll::inventory::{CaSpec, KeyAlgorithm};

pub use super::softhsm::{softhsm_token, SOFTHSM_MODULE};

/// The algorithms every chain and handshake test runs with: each family once (RSA at its
/// smallest size; 3072 and 4096 bits have tests of their own, as their keys take seconds).
pub const ALGORITHMS: [KeyAlgorithm; 4] = [
    KeyAlgorithm::EcdsaP256,
    KeyAlgorithm::EcdsaP384,
    KeyAlgorithm::Ed25519,
    KeyAlgorithm::Rsa2048,
];

pub const DAY: u64 = 86_400;

/// CA `internal` with `subject`, 10-year roots, 90-day leaves renewed 30 days early.
pub fn spec(alg: KeyAlgorithm, subject: &str) -> CaSpec {
    CaSpec {
        key_algorithm: alg,
        ..CaSpec::new("internal", subject)
    }
}

/// Generation 1 of a CA named `subject` (ECDSA P-256), made as another CA would be: the
/// operator's or a partner's CA of a takeover.
pub fn ca(subject: &str) -> certroll::pki::CaCert {
    certroll::pki::new_ca(
        &spec(KeyAlgorithm::EcdsaP256, subject),
        1,
        time::OffsetDateTime::now_utc(),
    )
    .expect("create a test CA")
}

/// A self-signed certificate whose common name is `cn`, a CA or not, made outside
/// certroll (with rcgen directly).
pub fn self_signed_pem(cn: &str, is_ca: bool) -> String {
    let key = rcgen::KeyPair::generate().expect("generate a key");
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).expect("certificate parameters");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    if is_ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    params.self_signed(&key).expect("self-sign").pem()
}
