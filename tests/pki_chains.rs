//! Proves the certificates certroll issues with two independent verifiers, rustls-webpki
//! and the `openssl` command: new leaves chain to the new root, a leaf served with the
//! cross certificate chains to the old root alone, a bare new leaf does not, and a bundle
//! holding both generations accepts leaves of either one (distinct subjects + AKI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use certroll::inventory::{CaSpec, KeyAlgorithm};
use certroll::pki::{
    cross_sign, issue_leaf, issue_leaf_with, new_ca, parse_pem_certs, CaCert, CaStore, CertInfo,
    Leaf,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;
use webpki::{EndEntityCert, KeyUsage};

mod support;
use support::pki::{self, ALGORITHMS, DAY};

fn spec(alg: KeyAlgorithm) -> CaSpec {
    pki::spec(alg, "CN=Chain Test CA,O=Example,C=DE")
}

/// Two generations, their cross certificate, and a leaf from each.
struct Rollover {
    old: CaCert,
    new: CaCert,
    cross: String,
    old_leaf: Leaf,
    new_leaf: Leaf,
}

fn rollover(alg: KeyAlgorithm, now: OffsetDateTime) -> Rollover {
    let spec = spec(alg);
    let old = new_ca(&spec, 1, now).unwrap();
    let new = new_ca(&spec, 2, now).unwrap();
    let cross = cross_sign(&spec, &new, &old, now).unwrap();
    let sans = ["app1.internal".to_string(), "10.0.0.21".to_string()];
    let old_leaf = issue_leaf(&spec, &old, "app1", &sans, now).unwrap();
    let new_leaf = issue_leaf(&spec, &new, "app1", &sans, now).unwrap();
    Rollover {
        old,
        new,
        cross,
        old_leaf,
        new_leaf,
    }
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from(pem::parse(pem).unwrap().into_contents())
}

fn one(pem: &str) -> CertInfo {
    let mut certs = parse_pem_certs(pem.as_bytes()).unwrap();
    assert_eq!(certs.len(), 1);
    certs.remove(0)
}

/// rustls-webpki path validation of `leaf` (with `intermediates`) against `roots`, for
/// server and client use, and for the leaf's DNS and IP names.
fn webpki_ok(leaf: &str, intermediates: &[&str], roots: &[&CaCert]) -> Result<(), webpki::Error> {
    let algs = [
        webpki::ring::ECDSA_P256_SHA256,
        webpki::ring::ECDSA_P256_SHA384,
        webpki::ring::ECDSA_P384_SHA256,
        webpki::ring::ECDSA_P384_SHA384,
        webpki::ring::ED25519,
        webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    ];
    let root_ders: Vec<CertificateDer<'static>> = roots
        .iter()
        .map(|r| CertificateDer::from(r.cert_der.clone()))
        .collect();
    let anchors: Vec<_> = root_ders
        .iter()
        .map(|d| webpki::anchor_from_trusted_cert(d).unwrap())
        .collect();
    let inter: Vec<CertificateDer<'static>> = intermediates.iter().map(|p| der(p)).collect();
    let leaf_der = der(leaf);
    let ee = EndEntityCert::try_from(&leaf_der).unwrap();
    let now = UnixTime::now();
    ee.verify_for_usage(
        &algs,
        &anchors,
        &inter,
        now,
        KeyUsage::server_auth(),
        None,
        None,
    )?;
    ee.verify_for_usage(
        &algs,
        &anchors,
        &inter,
        now,
        KeyUsage::client_auth(),
        None,
        None,
    )?;
    ee.verify_is_valid_for_subject_name(&ServerName::try_from("app1.internal").unwrap())?;
    ee.verify_is_valid_for_subject_name(&ServerName::try_from("10.0.0.21").unwrap())?;
    Ok(())
}

fn openssl() -> &'static str {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "the openssl command is required for these tests: apt-get install openssl"
    );
    "openssl"
}

fn write(dir: &Path, name: &str, parts: &[&str]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, parts.concat()).unwrap();
    path
}

/// `openssl verify -x509_strict` of `leaf` against `ca_file` (only), optionally with an
/// untrusted intermediate file, for TLS server and client purposes.
fn openssl_ok(
    dir: &Path,
    leaf: &str,
    ca_file: &[&str],
    untrusted: Option<&str>,
) -> Result<(), String> {
    let leaf_path = write(dir, "leaf.pem", &[leaf]);
    let ca_path = write(dir, "ca.pem", ca_file);
    for purpose in ["sslserver", "sslclient"] {
        let mut cmd = Command::new(openssl());
        cmd.args(["verify", "-x509_strict", "-purpose", purpose, "-CAfile"])
            .arg(&ca_path);
        if let Some(inter) = untrusted {
            cmd.arg("-untrusted")
                .arg(write(dir, "untrusted.pem", &[inter]));
        }
        let out = cmd.arg(&leaf_path).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() || !text.contains(": OK") {
            return Err(text);
        }
    }
    Ok(())
}

#[test]
fn new_leaf_validates_against_new_root() {
    let dir = tempfile::tempdir().unwrap();
    for alg in ALGORITHMS {
        let r = rollover(alg, OffsetDateTime::now_utc());
        webpki_ok(&r.new_leaf.cert_pem, &[], &[&r.new]).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        openssl_ok(dir.path(), &r.new_leaf.cert_pem, &[&r.new.cert_pem], None)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
    }
}

#[test]
fn cross_signed_chain_validates_against_old_root_alone() {
    let dir = tempfile::tempdir().unwrap();
    for alg in ALGORITHMS {
        let r = rollover(alg, OffsetDateTime::now_utc());
        webpki_ok(&r.new_leaf.cert_pem, &[&r.cross], &[&r.old])
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        openssl_ok(
            dir.path(),
            &r.new_leaf.cert_pem,
            &[&r.old.cert_pem],
            Some(&r.cross),
        )
        .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        // The cross certificate itself is a CA certificate issued by the old root.
        let out = Command::new(openssl())
            .args(["verify", "-x509_strict", "-CAfile"])
            .arg(write(dir.path(), "old.pem", &[&r.old.cert_pem]))
            .arg(write(dir.path(), "cross.pem", &[&r.cross]))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{alg:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // With both anchors the path may also stop at the new root.
        webpki_ok(&r.new_leaf.cert_pem, &[&r.cross], &[&r.old, &r.new]).unwrap();
        webpki_ok(&r.new_leaf.cert_pem, &[&r.cross], &[&r.new]).unwrap();
        openssl_ok(
            dir.path(),
            &r.new_leaf.cert_pem,
            &[&r.new.cert_pem],
            Some(&r.cross),
        )
        .unwrap();
    }
}

#[test]
fn bare_new_leaf_does_not_validate_against_old_root() {
    let dir = tempfile::tempdir().unwrap();
    for alg in ALGORITHMS {
        let r = rollover(alg, OffsetDateTime::now_utc());
        let err = webpki_ok(&r.new_leaf.cert_pem, &[], &[&r.old]).unwrap_err();
        assert!(
            matches!(err, webpki::Error::UnknownIssuer),
            "{alg:?}: {err:?}"
        );
        let err =
            openssl_ok(dir.path(), &r.new_leaf.cert_pem, &[&r.old.cert_pem], None).unwrap_err();
        assert!(err.contains("unable to get local issuer"), "{alg:?}: {err}");
        let err = webpki_ok(&r.old_leaf.cert_pem, &[], &[&r.new]).unwrap_err();
        assert!(
            matches!(err, webpki::Error::UnknownIssuer),
            "{alg:?}: {err:?}"
        );
    }
}

#[test]
fn bundle_with_both_generations_accepts_both_leaves_in_either_order() {
    let dir = tempfile::tempdir().unwrap();
    for alg in ALGORITHMS {
        let r = rollover(alg, OffsetDateTime::now_utc());
        for bundle in [
            [&r.old.cert_pem, &r.new.cert_pem],
            [&r.new.cert_pem, &r.old.cert_pem],
        ] {
            let bundle = [bundle[0].as_str(), bundle[1].as_str()];
            for leaf in [&r.old_leaf, &r.new_leaf] {
                openssl_ok(dir.path(), &leaf.cert_pem, &bundle, None)
                    .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
                webpki_ok(&leaf.cert_pem, &[], &[&r.old, &r.new]).unwrap();
            }
        }
    }
}

#[test]
fn certificate_fields_are_what_peers_need() {
    for alg in ALGORITHMS {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let r = rollover(alg, now);
        let (old, new, cross, leaf) = (
            one(&r.old.cert_pem),
            one(&r.new.cert_pem),
            one(&r.cross),
            one(&r.new_leaf.cert_pem),
        );
        let serials = [
            &old.serial_hex,
            &new.serial_hex,
            &cross.serial_hex,
            &leaf.serial_hex,
        ];
        for (i, a) in serials.iter().enumerate() {
            assert_eq!(a.len(), 32, "{alg:?}: 16-byte serial expected, got {a}");
            assert!(
                u8::from_str_radix(&a[..2], 16).unwrap() < 0x80,
                "negative serial {a}"
            );
            assert!(
                serials[i + 1..].iter().all(|b| b != a),
                "{alg:?}: repeated serial {a}"
            );
        }
        assert!(
            old.subject.contains("CN=Chain Test CA G1")
                && new.subject.contains("CN=Chain Test CA G2"),
            "{}",
            new.subject
        );
        assert!(new.subject.contains("O=Example") && new.subject.contains("C=DE"));
        assert_eq!(
            (cross.subject.as_str(), cross.issuer.as_str()),
            (new.subject.as_str(), old.subject.as_str())
        );
        assert!(old.is_ca && new.is_ca && cross.is_ca && !leaf.is_ca);
        assert_eq!(cross.spki_sha256, new.spki_sha256);
        assert_eq!(cross.subject_key_id, new.subject_key_id);
        assert_eq!(cross.authority_key_id, old.subject_key_id);
        assert!(old.subject_key_id.is_some() && new.subject_key_id != old.subject_key_id);
        assert_eq!(leaf.authority_key_id, new.subject_key_id);
        assert!(leaf.subject_key_id.is_some());
        assert_eq!(
            leaf.sans,
            vec!["app1.internal".to_string(), "10.0.0.21".to_string()]
        );
        assert_eq!(leaf.subject, "CN=app1");
        let hour = time::Duration::hours(1);
        assert_eq!(
            (leaf.not_before, leaf.not_after),
            (now - hour, now + time::Duration::days(90))
        );
        assert_eq!(
            (new.not_before, new.not_after),
            (now - hour, now + time::Duration::days(3650))
        );
        assert_eq!(r.new.not_after, new.not_after);
        assert_eq!(cross.not_after, old.not_after.min(new.not_after));
        extensions_in_detail(
            alg,
            &r.new.cert_der,
            &der(&r.cross),
            &der(&r.new_leaf.cert_pem),
        );
    }
}

/// Basic constraints without pathLen, key usages and EKUs, read with x509-parser directly.
fn extensions_in_detail(alg: KeyAlgorithm, root: &[u8], cross: &[u8], leaf: &[u8]) {
    for ca in [root, cross] {
        let (_, c) = x509_parser::parse_x509_certificate(ca).unwrap();
        let bc = c.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca && bc.path_len_constraint.is_none(), "{alg:?}: {bc:?}");
        let ku = c.key_usage().unwrap().unwrap().value;
        assert!(
            ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature(),
            "{alg:?}"
        );
    }
    let (_, l) = x509_parser::parse_x509_certificate(leaf).unwrap();
    let eku = l.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth, "{alg:?}");
    let ku = l.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign(), "{alg:?}");
    assert_eq!(ku.key_encipherment(), alg.rsa_bits().is_some(), "{alg:?}");
    assert!(!l.basic_constraints().unwrap().unwrap().value.ca);
}

/// A node may choose its leaf's algorithm (`key_algorithm` in `[nodes.NAME]`): an RSA leaf
/// for an old Java service under an ECDSA CA, and the reverse, chain for both verifiers.
#[test]
fn leaves_of_another_algorithm_than_their_ca_validate() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let sans = ["app1.internal".to_string(), "10.0.0.21".to_string()];
    for (ca_alg, leaf_alg) in [
        (KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048),
        (KeyAlgorithm::Rsa3072, KeyAlgorithm::EcdsaP384),
        (KeyAlgorithm::Ed25519, KeyAlgorithm::Rsa4096),
    ] {
        let spec = spec(ca_alg);
        let ca = new_ca(&spec, 1, now).unwrap();
        let leaf = issue_leaf_with(&spec, leaf_alg, &ca, "app1", &sans, now).unwrap();
        let key = certroll::pki::keys::load_key(&leaf.key_pem).unwrap();
        assert_eq!(certroll::pki::keys::algorithm_of(&key), Some(leaf_alg));
        openssl_ok(dir.path(), &leaf.cert_pem, &[&ca.cert_pem], None)
            .unwrap_or_else(|e| panic!("{ca_alg:?} CA, {leaf_alg:?} leaf: {e}"));
        webpki_ok(&leaf.cert_pem, &[], &[&ca]).unwrap();
        let leaf_der = der(&leaf.cert_pem);
        let (_, l) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
        let ku = l.key_usage().unwrap().unwrap().value;
        assert_eq!(ku.key_encipherment(), leaf_alg.rsa_bits().is_some());
    }
}

#[test]
fn leaf_and_cross_never_outlive_their_issuers() {
    let now = OffsetDateTime::now_utc();
    let mut short = spec(KeyAlgorithm::EcdsaP256);
    short.validity = Duration::from_secs(30 * DAY);
    let old = new_ca(&short, 1, now).unwrap();
    let leaf = issue_leaf(&short, &old, "app1", &["app1".into()], now).unwrap();
    assert_eq!(leaf.not_after, old.not_after);
    assert_eq!(one(&leaf.cert_pem).not_after, old.not_after);
    let new = new_ca(&spec(KeyAlgorithm::EcdsaP256), 2, now).unwrap();
    assert_eq!(
        one(&cross_sign(&short, &new, &old, now).unwrap()).not_after,
        old.not_after
    );
    let expired = issue_leaf(
        &short,
        &old,
        "app1",
        &["app1".into()],
        now + time::Duration::days(31),
    );
    let err = expired.unwrap_err().to_string();
    assert!(
        err.contains("app1") && err.contains("expired") && err.contains("internal"),
        "{err}"
    );
}

#[test]
fn store_generations_chain_and_keep_keys_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let spec = spec(KeyAlgorithm::EcdsaP384);
    let store = CaStore::new(state.path());
    let now = OffsetDateTime::now_utc();
    let old = store.init(&spec, now).unwrap();
    let (new, cross) = store.begin_rotation(&spec, now).unwrap();
    let cross = cross.expect("a certroll rotation has a cross certificate");
    let leaf = issue_leaf(
        &spec,
        &new,
        "app1",
        &["app1.internal".into(), "10.0.0.21".into()],
        now,
    )
    .unwrap();
    openssl_ok(dir.path(), &leaf.cert_pem, &[&old.cert_pem], Some(&cross)).unwrap();
    for g in ["g1", "g2"] {
        let key = state.path().join("ca/internal").join(g).join("ca.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            key.display()
        );
        let out = Command::new(openssl())
            .args(["pkey", "-noout", "-in"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl cannot read {}",
            key.display()
        );
    }
}
