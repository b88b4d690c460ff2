//! `certroll ca extend` end to end on a local fleet: the CA certificate re-issued with
//! its key, a routine `apply` putting it in every bundle, `openssl verify` as an
//! independent reader of every chain, and the refusals (public-only generation, leaves
//! whose authority key identifier names the issuer and serial), each leaving the store
//! as it was.

mod support;

use std::fs;

use support::cli::{openssl, openssl_verify, pem_certs};
use support::local::{LocalFleet, NODES};

/// A CA of 30 days, leaves of 10 days renewed 3 days before.
const SHORT: [(&str, &str); 3] = [
    ("validity", "30d"),
    ("leaf_validity", "10d"),
    ("renew_before", "3d"),
];

#[test]
fn extend_reissues_the_ca_with_its_key_and_a_routine_apply_puts_it_in_every_bundle() {
    let fleet = LocalFleet::ops(&SHORT);
    fleet.apply_ok(&[]);
    let store_pem = fleet.ca_dir().join("g1/ca.pem");
    let old = pem_certs(&store_pem).remove(0);

    let run = fleet.certroll(&["ca", "extend", "internal"]);
    run.expect_code(0).expect_stdout("extended CA internal G1");
    let new = pem_certs(&store_pem).remove(0);
    assert_eq!(new.subject, old.subject);
    assert_eq!(new.spki_sha256, old.spki_sha256);
    assert_eq!(new.subject_key_id, old.subject_key_id);
    assert_ne!(new.serial_hex, old.serial_hex);
    assert!(new.not_after >= old.not_after);
    let kept = fleet
        .ca_dir()
        .join(format!("g1/extended/ca-{}.pem", old.serial_hex));
    assert!(kept.exists(), "the old certificate is kept on record");

    // The leaves the old certificate signed chain to the new one (openssl reads it).
    for n in NODES {
        openssl_verify(&store_pem, &fleet.node_file(n, "cert.pem"))
            .unwrap_or_else(|e| panic!("{n}'s leaf under the extended CA: {e}"));
    }
    // verify names the bundles still to do; every link still handshakes.
    let (run, report) = fleet.verify_json(&[]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(report["cas"][0]["safe"], true, "{run}");
    let outdated = run.stdout.matches("outdated-ca-certificate").count();
    assert_eq!(outdated, NODES.len(), "{run}");

    // A routine run installs it; afterwards every bundle holds the new certificate only.
    fleet.apply_ok(&[]);
    let (run, _) = fleet.verify_json(&[]);
    assert_eq!(run.code, 0, "{run}");
    for n in NODES {
        let bundle = pem_certs(&fleet.node_file(n, "ca.pem"));
        let ders: Vec<&Vec<u8>> = bundle.iter().map(|c| &c.der).collect();
        assert_eq!(ders, vec![&new.der], "bundle of {n}");
        for peer in NODES {
            openssl_verify(
                &fleet.node_file(n, "ca.pem"),
                &fleet.node_file(peer, "cert.pem"),
            )
            .unwrap_or_else(|e| panic!("{peer}'s leaf under {n}'s bundle: {e}"));
        }
    }
}

#[test]
fn extend_refuses_a_public_only_generation_and_writes_nothing() {
    let fleet = LocalFleet::ops(&[]);
    let dir = fleet.root();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "old.key",
            "-out",
            "old.pem",
            "-days",
            "30",
            "-subj",
            "/CN=Old Fleet CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    let cert = dir.join("old.pem");
    fleet
        .certroll(&[
            "ca",
            "import",
            "internal",
            "--cert",
            cert.to_str().expect("UTF-8"),
        ])
        .expect_code(0);
    let before = fs::read(fleet.ca_dir().join("g1/ca.pem")).expect("imported certificate");
    let run = fleet.certroll(&["ca", "extend", "internal"]);
    run.expect_code(77).expect_output("public-only");
    assert_eq!(
        fs::read(fleet.ca_dir().join("g1/ca.pem")).expect("store"),
        before
    );
    assert!(!fleet.ca_dir().join("g1/extended").exists());
}

#[test]
fn extend_refuses_when_a_leaf_names_the_ca_certificate_issuer_and_serial() {
    let fleet = LocalFleet::ops(&SHORT);
    fleet.apply_ok(&[]);
    // app's leaf re-issued by openssl from the same CA key, with an authority key
    // identifier that also names the CA certificate's issuer and serial number.
    let g1 = fleet.ca_dir().join("g1");
    let node = fleet.node_dir("app");
    fs::write(
        node.join("ext.cnf"),
        "authorityKeyIdentifier=keyid:always,issuer:always\nsubjectAltName=DNS:app.test\n",
    )
    .expect("write the extension file");
    openssl(
        &node,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "app.csr",
            "-subj",
            "/CN=app",
        ],
    );
    let ca_pem = g1.join("ca.pem");
    let ca_key = g1.join("ca.key");
    openssl(
        &node,
        &[
            "x509",
            "-req",
            "-in",
            "app.csr",
            "-CA",
            ca_pem.to_str().expect("UTF-8"),
            "-CAkey",
            ca_key.to_str().expect("UTF-8"),
            "-CAcreateserial",
            "-days",
            "5",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
    );
    let before = fs::read(&ca_pem).expect("store certificate");
    let run = fleet.certroll(&["ca", "extend", "internal"]);
    run.expect_code(77)
        .expect_output("node app:")
        .expect_output("issuer and serial number");
    assert_eq!(fs::read(&ca_pem).expect("store certificate"), before);
    assert!(!g1.join("extended").exists(), "nothing was written");
}
