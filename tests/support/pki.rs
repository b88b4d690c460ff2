//! Fixtures shared by the certificate and handshake tests: every key algorithm, and a CA
//! spec with the inventory's defaults.

use certroll::inventory::{CaSpec, KeyAlgorithm};

/// Every key algorithm the inventory accepts.
pub const ALGORITHMS: [KeyAlgorithm; 3] = [
    KeyAlgorithm::EcdsaP256,
    KeyAlgorithm::EcdsaP384,
    KeyAlgorithm::Ed25519,
];

pub const DAY: u64 = 86_400;

/// CA `internal` with `subject`, 10-year roots, 90-day leaves renewed 30 days early.
pub fn spec(alg: KeyAlgorithm, subject: &str) -> CaSpec {
    CaSpec {
        key_algorithm: alg,
        ..CaSpec::new("internal", subject)
    }
}
