//! Token keys on a SoftHSM2 token made for the test: certificates signed through the
//! token verify with openssl, the keys cannot leave it, and every way of getting the
//! token wrong gives an error that names module, token and label.
//!
//! SoftHSM reads `SOFTHSM2_CONF` once per process, at `C_Initialize`, so every check
//! lives in this one test.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::PublicKeyData;
use time::OffsetDateTime;

use super::*;
use crate::inventory::{CaSpec, KeyAlgorithm, SecretSource};
use crate::pki::{issue_leaf, new_ca_with_key, CaKey, TokenKey};

#[path = "../../tests/support/softhsm.rs"]
mod fixture;

use fixture::SOFTHSM_MODULE as MODULE;

const PIN: &str = "5678";

/// A fresh SoftHSM token labelled `label` in a temporary directory; `SOFTHSM2_CONF` is
/// set for this process.
fn softhsm(dir: &Path, label: &str) -> Pkcs11Spec {
    let conf = fixture::softhsm_token(dir, label, PIN);
    std::env::set_var("SOFTHSM2_CONF", &conf);
    Pkcs11Spec {
        module: PathBuf::from(MODULE),
        token: label.into(),
        key_label: "test ca".into(),
        pin: SecretSource::Prompt,
    }
}

fn openssl_verify(dir: &Path, ca_pem: &str, leaf_pem: &str, name: &str) {
    let ca = dir.join(format!("{name}-ca.pem"));
    let leaf = dir.join(format!("{name}-leaf.pem"));
    std::fs::write(&ca, ca_pem).unwrap();
    std::fs::write(&leaf, leaf_pem).unwrap();
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&ca)
        .arg(&leaf)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "{name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn token_keys_sign_verifiable_certificates_and_stay_inside() {
    let dir = tempfile::tempdir().unwrap();
    let spec11 = softhsm(dir.path(), "certroll test");
    let token = Token::open(&spec11, PIN).unwrap();
    let now = OffsetDateTime::now_utc();

    for (i, alg) in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::Rsa2048,
    ]
    .into_iter()
    .enumerate()
    {
        let spec = CaSpec {
            key_algorithm: alg,
            ..CaSpec::new("internal", "CN=internal CA")
        };
        let label = format!("test ca G{}", i + 1);
        let reference = token.generate(alg, &label).unwrap();
        assert_eq!(reference.label, label);
        assert!(
            !token.is_extractable(&reference).unwrap(),
            "{label} is extractable or not sensitive"
        );
        // Generating again under the same label reuses the key (a retried generation).
        assert_eq!(token.generate(alg, &label).unwrap(), reference);
        let key = CaKey::Token(TokenKey {
            reference,
            token: Some(token.clone()),
        });
        let ca = new_ca_with_key(&spec, (i + 1) as u32, key, now).unwrap();
        let leaf = issue_leaf(&spec, &ca, "db1", &["db1.internal".into()], now).unwrap();
        openssl_verify(dir.path(), &ca.cert_pem, &leaf.cert_pem, alg.as_str());
        // The key in the token is the certificate's.
        let signer = ca.signer().unwrap();
        let (_, x509) = x509_parser::parse_x509_certificate(&ca.cert_der).unwrap();
        assert_eq!(signer.subject_public_key_info(), x509.public_key().raw);
    }

    // A key someone else put in the token is found by its label.
    let found = token.find("test ca G1").unwrap();
    assert_eq!(found.token, "certroll test");
    let missing = token.find("no such key").unwrap_err().to_string();
    assert!(
        missing.contains("\"no such key\"")
            && missing.contains("\"certroll test\"")
            && missing.contains(MODULE),
        "{missing}"
    );

    // Login state belongs to the application while any session is open: close ours.
    drop(token);
    let wrong_pin = Token::open(&spec11, "0000").unwrap_err();
    assert!(
        matches!(wrong_pin, TokenError::WrongPin { .. }),
        "{wrong_pin}"
    );
    assert!(wrong_pin.to_string().contains("wrong PIN"));

    let other = Pkcs11Spec {
        token: "no such token".into(),
        ..spec11.clone()
    };
    let no_token = Token::open(&other, PIN).unwrap_err().to_string();
    assert!(
        no_token.contains("no token labelled \"no such token\"")
            && no_token.contains("\"certroll test\""),
        "{no_token}"
    );

    let gone = Pkcs11Spec {
        module: dir.path().join("missing.so"),
        ..spec11
    };
    let no_module = Token::open(&gone, PIN).unwrap_err().to_string();
    assert!(
        no_module.contains("missing.so") && no_module.contains("no such file"),
        "{no_module}"
    );
}
