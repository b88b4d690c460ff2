//! Fixtures shared by the certificate and handshake tests: every key algorithm, and a CA
//! spec with the inventory's defaults.

use certroll::inventory::{CaSpec, KeyAlgorithm};

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
