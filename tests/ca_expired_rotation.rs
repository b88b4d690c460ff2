//! A rotation away from a CA that has already expired (the emergency of
//! docs/operations.md#an-expiring-ca when nobody rotated or extended it in time): the
//! fleet's links fail before the run, the plan says what its gates mean then, no cross
//! certificate can be made, and the run brings every node to the new generation, which
//! `openssl verify` accepts on every pair of nodes.

mod support;

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use support::cli::openssl_verify;
use support::local::{LocalFleet, NODES};

/// When the old CA and its leaves expired: two days ago, long past any backdating.
fn expired_at() -> OffsetDateTime {
    OffsetDateTime::now_utc() - Duration::days(2)
}

/// The old CA, a root valid until two days ago: (certificate PEM, key PEM, issuer).
fn expired_ca() -> (String, String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("a CA key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Ops \"Test\" CA G1");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = expired_at() - Duration::days(365);
    params.not_after = expired_at();
    let cert = params.self_signed(&key).expect("self-sign the CA");
    let key_pem = key.serialize_pem();
    (cert.pem(), key_pem, Issuer::new(params, key))
}

/// A leaf of `node` that expired with its CA, and its key.
fn expired_leaf(issuer: &Issuer<'static, KeyPair>, node: &str) -> (String, String) {
    let key = KeyPair::generate().expect("a leaf key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node);
    params.distinguished_name = dn;
    let name = format!("{node}.test");
    params.subject_alt_names = vec![SanType::DnsName(name.try_into().expect("a DNS name"))];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = expired_at() - Duration::days(90);
    params.not_after = expired_at();
    let cert = params.signed_by(&key, issuer).expect("sign the leaf");
    (cert.pem(), key.serialize_pem())
}

fn write_private(path: &Path, text: &str) {
    fs::write(path, text).expect("write a private file");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod 0600");
}

/// The fleet as certroll left it long ago: generation 1 in the store (the store's own
/// layout: `current`, `g1/ca.pem`, `g1/ca.key`) and on every node, all expired.
fn expired_fleet() -> LocalFleet {
    let fleet = LocalFleet::ops(&[]);
    let (ca_pem, ca_key, issuer) = expired_ca();
    let g1 = fleet.ca_dir().join("g1");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&g1)
        .expect("create the store");
    write_private(&g1.join("ca.pem"), &ca_pem);
    write_private(&g1.join("ca.key"), &ca_key);
    write_private(&fleet.ca_dir().join("current"), "1\n");
    for n in NODES {
        let (leaf, key) = expired_leaf(&issuer, n);
        fs::write(fleet.node_file(n, "ca.pem"), &ca_pem).expect("write the bundle");
        fs::write(fleet.node_file(n, "cert.pem"), leaf).expect("write the leaf");
        write_private(&fleet.node_file(n, "key.pem"), &key);
        fs::write(fleet.node_file(n, "reloaded"), "").expect("mark the node reloaded");
    }
    fleet
}

#[test]
fn a_rotation_away_from_an_expired_ca_says_so_and_brings_every_node_to_the_new_generation() {
    let fleet = expired_fleet();
    let (before, report) = fleet.verify_json(&[]);
    assert_eq!(before.code, 2, "{before}");
    assert_eq!(report["cas"][0]["safe"], false, "{before}");
    assert!(before.stdout.contains("expired CA certificate"), "{before}");

    let plan = fleet.certroll(&["plan", "--rotate"]);
    plan.expect_code(0)
        .expect_stdout("the current generation G1 expired at")
        .expect_stdout("no worse than before");
    // A cross certificate cannot outlive the expired CA that would sign it.
    fleet
        .certroll(&["plan", "--rotate", "--chain", "cross-signed"])
        .expect_code(64)
        .expect_output("G1 has expired");

    let run = fleet.certroll(&["apply", "--rotate", "--yes"]);
    run.expect_code(0).expect_output("no worse than before");
    assert!(
        !fleet.ca_dir().join("g2/cross.pem").exists()
            && !fleet.ca_dir().join("archive/g2/cross.pem").exists(),
        "no cross certificate signed by an expired CA"
    );
    let (after, _) = fleet.verify_json(&[]);
    assert_eq!(after.code, 0, "{after}");
    for n in NODES {
        for peer in NODES {
            openssl_verify(
                &fleet.node_file(n, "ca.pem"),
                &fleet.node_file(peer, "cert.pem"),
            )
            .unwrap_or_else(|e| panic!("{peer}'s leaf under {n}'s bundle: {e}"));
        }
    }
}
