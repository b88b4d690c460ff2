//! Keys made on the node: `keygen`, the `n` action and `pubkey` on real files, run by the
//! local transport in a temporary directory with the system's openssl.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::inventory::{FileSettings, KeyAlgorithm, KeySource, Node};
use crate::pki::csr::check_csr;
use crate::transport::local::LocalTransport;

const NONCE: &str = "certroll-0a1b2c3d4e5f";

/// The layout tests' node without a proof certificate, its keys made on the node.
fn node(dir: &Path, files: FileSettings) -> Node {
    Node {
        proof_cert: None,
        files: FileSettings {
            key_source: KeySource::Node,
            ..files
        },
        ..super::tests::node(dir)
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn store(dir: &Path) -> std::path::PathBuf {
    dir.join("tls/.certroll-internal")
}

fn pending(dir: &Path) -> Vec<String> {
    match fs::read_dir(store(dir)) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".key-"))
            .collect(),
        Err(_) => vec![],
    }
}

/// Makes a key on the "node", checks its request, and installs it with `cert` beside it:
/// returns the request's public key.
fn make_and_install(
    t: &LocalTransport,
    n: &Node,
    alg: KeyAlgorithm,
    run: &str,
    clean: bool,
) -> Vec<u8> {
    let req = keygen(t, n, "internal", alg, NONCE, 0).unwrap_or_else(|e| panic!("keygen: {e}"));
    let csr = check_csr(&req.csr_pem, NONCE, alg, "app1", "internal").unwrap();
    let cert = format!("CERT-FOR-{}", hex::encode(&csr.spki_der[..8]));
    let changes = [
        (Role::Cert, Change::Write(cert.as_bytes())),
        (Role::Key, Change::NodeKey(&req.pending)),
        (Role::Bundle, Change::Write(b"BUNDLE")),
    ];
    let opts = ApplyOptions {
        clean,
        ..ApplyOptions::default()
    };
    apply(t, n, "internal", run, &changes, &opts).unwrap_or_else(|e| panic!("apply: {e}"));
    csr.spki_der
}

#[test]
fn every_algorithm_is_made_on_the_node_and_checked_there() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new("app1", dir.path());
    let n = node(dir.path(), FileSettings::default());
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::Rsa2048,
    ] {
        let spki = make_and_install(&t, &n, alg, "R1", true);
        let key = dir.path().join("tls/key.pem");
        assert_eq!(public_key(&t, &n, &n.key).unwrap(), Some(spki), "{alg:?}");
        assert!(fs::read_to_string(&key).unwrap().contains("PRIVATE KEY"));
        assert_eq!(mode(&key), 0o600);
        assert!(pending(dir.path()).is_empty(), "{:?}", pending(dir.path()));
    }
    let absent = dir.path().join("none.pem").display().to_string();
    assert_eq!(public_key(&t, &n, &absent).unwrap(), None);
}

#[test]
fn a_node_key_follows_the_owner_and_mode_rules_of_a_written_key() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new("app1", dir.path());
    let tls = dir.path().join("tls");
    fs::create_dir_all(&tls).unwrap();
    fs::write(tls.join("cert.pem"), "CERT-A").unwrap();
    fs::write(tls.join("key.pem"), "KEY-A").unwrap();
    fs::write(tls.join("ca.pem"), "BUNDLE").unwrap();
    // A replaced key that every user may read becomes 0600.
    fs::set_permissions(tls.join("key.pem"), fs::Permissions::from_mode(0o644)).unwrap();
    let n = node(dir.path(), FileSettings::default());
    make_and_install(&t, &n, KeyAlgorithm::EcdsaP256, "R1", false);
    assert_eq!(mode(&tls.join("key.pem")), 0o600);
    // A key its group may read keeps that mode.
    let real = fs::canonicalize(tls.join("key.pem")).unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
    make_and_install(&t, &n, KeyAlgorithm::EcdsaP256, "R2", false);
    assert_eq!(mode(&tls.join("key.pem")), 0o640);
    // An explicit key_mode wins.
    let n = node(
        dir.path(),
        FileSettings {
            key_mode: Some(0o400),
            ..FileSettings::default()
        },
    );
    make_and_install(&t, &n, KeyAlgorithm::EcdsaP256, "R3", true);
    assert_eq!(mode(&tls.join("key.pem")), 0o400);
    assert!(pending(dir.path()).is_empty());
}

#[test]
fn a_keygen_stopped_at_any_phase_is_made_again_and_its_leftover_pruned() {
    for stop in 1..=3u8 {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalTransport::new("app1", dir.path());
        let n = node(dir.path(), FileSettings::default());
        let first = make_and_install(&t, &n, KeyAlgorithm::EcdsaP256, "R1", false);
        let err = keygen(&t, &n, "internal", KeyAlgorithm::EcdsaP256, NONCE, stop);
        assert!(err.is_err(), "stopped at {stop} but succeeded");
        assert_eq!(pending(dir.path()).len(), 1, "stop {stop}");
        // What the software reads is untouched: still the first pair.
        assert_eq!(public_key(&t, &n, &n.key).unwrap(), Some(first));
        // The resumed step makes a new key; the run's clean removes the leftover.
        let second = make_and_install(&t, &n, KeyAlgorithm::EcdsaP256, "R2", true);
        assert_eq!(public_key(&t, &n, &n.key).unwrap(), Some(second.clone()));
        let cert = fs::read_to_string(dir.path().join("tls/cert.pem")).unwrap();
        assert_eq!(cert, format!("CERT-FOR-{}", hex::encode(&second[..8])));
        assert!(
            pending(dir.path()).is_empty(),
            "stop {stop}: {:?}",
            pending(dir.path())
        );
    }
}

#[test]
fn an_apply_stopped_before_its_switch_keeps_the_old_pair_and_a_rerun_matches() {
    for stop in [4u8, 5, 7] {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalTransport::new("app1", dir.path());
        let n = node(dir.path(), FileSettings::default());
        let first = make_and_install(&t, &n, KeyAlgorithm::Ed25519, "R1", false);
        let req = keygen(&t, &n, "internal", KeyAlgorithm::Ed25519, NONCE, 0).unwrap();
        let changes = [
            (Role::Cert, Change::Write(b"CERT-X".as_slice())),
            (Role::Key, Change::NodeKey(&req.pending)),
        ];
        let opts = ApplyOptions {
            stop_at: stop,
            ..ApplyOptions::default()
        };
        assert!(apply(&t, &n, "internal", "R2", &changes, &opts).is_err());
        assert_eq!(public_key(&t, &n, &n.key).unwrap(), Some(first));
        let second = make_and_install(&t, &n, KeyAlgorithm::Ed25519, "R2", true);
        assert_eq!(public_key(&t, &n, &n.key).unwrap(), Some(second));
        assert!(pending(dir.path()).is_empty(), "stop {stop}");
    }
}

#[test]
fn a_missing_pending_key_fails_before_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new("app1", dir.path());
    let n = node(dir.path(), FileSettings::default());
    let first = make_and_install(&t, &n, KeyAlgorithm::EcdsaP256, "R1", false);
    let changes = [
        (Role::Cert, Change::Write(b"CERT-X".as_slice())),
        (Role::Key, Change::NodeKey(".key-0000")),
    ];
    let err = apply(&t, &n, "internal", "R2", &changes, &ApplyOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("the key made on the node is missing"),
        "{err}"
    );
    assert_eq!(public_key(&t, &n, &n.key).unwrap(), Some(first));
}

#[test]
fn an_rsa_request_of_another_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new("app1", dir.path());
    let n = node(dir.path(), FileSettings::default());
    let req = keygen(&t, &n, "internal", KeyAlgorithm::Rsa2048, NONCE, 0).unwrap();
    let err = check_csr(
        &req.csr_pem,
        NONCE,
        KeyAlgorithm::Rsa3072,
        "app1",
        "internal",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the certificate request node app1 made for CA internal carries a rsa-2048 key, not the rsa-3072 key the leaf needs"
    );
    // The distribution's openssl.cnf added nothing: no attributes, no extension request.
    assert!(check_csr(
        &req.csr_pem,
        NONCE,
        KeyAlgorithm::Rsa2048,
        "app1",
        "internal"
    )
    .is_ok());
}
