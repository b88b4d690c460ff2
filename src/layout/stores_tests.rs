//! Keystores, truststores and combined PEM files as files of the versioned set: switched
//! with the PEM files by the one rename, never seen half-written by a stopped step, their
//! modes those of the files they stand for, old versions (old keys) removed; and the PEM
//! key of a node that reads only its keystore stays inside the store, linked nowhere.

use std::fs;
use std::path::Path;

use super::tests::{apply_at, holding, mode, node, read};
use super::*;
use crate::inventory::Node;
use crate::transport::local::LocalTransport;

fn with_stores(dir: &Path) -> Node {
    let mut n = node(dir);
    let at = |f: &str| dir.join("tls").join(f).display().to_string();
    n.stores.keystore = Some(at("app.p12"));
    n.stores.truststore = Some(at("trust.jks"));
    n.stores.combined_pem = Some(at("app-combined.pem"));
    n.stores.store_password_file = Some(at("pass"));
    n.stores.key_defaulted = true;
    n
}

fn set(tag: &str) -> Vec<(Role, Vec<u8>)> {
    [
        (Role::Bundle, "BUNDLE"),
        (Role::Cert, "CERT"),
        (Role::Key, "KEY"),
        (Role::Keystore, "KS"),
        (Role::Truststore, "TS"),
        (Role::Combined, "COMBINED"),
    ]
    .into_iter()
    .map(|(r, what)| (r, format!("{what}-{tag}").into_bytes()))
    .collect()
}

fn changes(set: &[(Role, Vec<u8>)]) -> Vec<(Role, Change<'_>)> {
    set.iter().map(|(r, d)| (*r, Change::Write(d))).collect()
}

/// What the store forms' paths show now.
fn shown(dir: &Path) -> [String; 3] {
    ["app.p12", "trust.jks", "app-combined.pem"].map(|f| read(&dir.join("tls").join(f)))
}

#[test]
fn stores_switch_with_the_pem_files_in_one_rename_and_a_stopped_step_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (t, n) = (
        LocalTransport::new("app1", dir.path()),
        with_stores(dir.path()),
    );
    let a = set("A");
    apply_at(&t, &n, "R1", &changes(&a), 0);
    assert_eq!(shown(dir.path()), ["KS-A", "TS-A", "COMBINED-A"]);
    let tls = dir.path().join("tls");
    for f in ["app.p12", "trust.jks", "app-combined.pem"] {
        let link = fs::read_link(tls.join(f)).unwrap();
        assert!(
            link.starts_with(".certroll-internal/current/"),
            "{f} -> {}",
            link.display()
        );
    }
    assert_eq!(mode(&tls.join("app.p12")), 0o600, "a keystore is a key");
    assert_eq!(mode(&tls.join("app-combined.pem")), 0o600);
    assert_eq!(mode(&tls.join("trust.jks")), 0o644);
    // The PEM key is in the store's version, and at no path the software reads.
    assert!(
        fs::symlink_metadata(tls.join("key.pem")).is_err(),
        "no PEM key link"
    );
    let paths = n.paths("internal");
    assert_eq!(read(Path::new(&paths.key)), "KEY-A", "{}", paths.key);

    // A step stopped before its switch (as kill -9 there would) shows the old set; the
    // resumed step switches everything at once.
    let b = set("B");
    apply_at(&t, &n, "R2", &changes(&b), 7);
    assert_eq!(shown(dir.path()), ["KS-A", "TS-A", "COMBINED-A"]);
    apply_at(&t, &n, "R2", &changes(&b), 0);
    assert_eq!(shown(dir.path()), ["KS-B", "TS-B", "COMBINED-B"]);
    assert_eq!(read(&tls.join("cert.pem")), "CERT-B");

    // A step that writes only the bundle and the truststore carries the keystore over.
    let trust = [
        (Role::Bundle, Change::Write(b"BUNDLE-C")),
        (Role::Truststore, Change::Write(b"TS-C")),
    ];
    apply_at(&t, &n, "R3", &trust, 0);
    assert_eq!(shown(dir.path()), ["KS-B", "TS-C", "COMBINED-B"]);

    cleanup(&t, &n, "internal").unwrap();
    assert!(
        holding(dir.path(), "KS-A").is_empty(),
        "no old keystore is left"
    );
    assert!(
        holding(dir.path(), "COMBINED-A").is_empty(),
        "no old combined key is left"
    );
}

/// The trust-prune of a cross-signed rotation writes only the certificate (and bundle): the
/// combined PEM is made on the node from the new certificate and the key the current
/// version holds, carried over, even one kept only in the store; with the key's mode.
#[test]
fn a_chain_only_step_makes_the_combined_pem_from_the_new_chain_and_the_carried_key() {
    let dir = tempfile::tempdir().unwrap();
    let (t, n) = (
        LocalTransport::new("app1", dir.path()),
        with_stores(dir.path()),
    );
    apply_at(&t, &n, "R1", &changes(&set("A")), 0);
    let prune = [
        (Role::Cert, Change::Write(b"CERT-P\n")),
        (Role::Combined, Change::Assemble),
    ];
    apply_at(&t, &n, "R2", &prune, 0);
    let tls = dir.path().join("tls");
    assert_eq!(read(&tls.join("app-combined.pem")), "CERT-P\nKEY-A");
    assert_eq!(mode(&tls.join("app-combined.pem")), 0o600);
    assert_eq!(
        read(Path::new(&n.paths("internal").key)),
        "KEY-A",
        "the key stays"
    );
    assert_eq!(
        shown(dir.path())[0],
        "KS-A",
        "a form the step does not name stays"
    );
}
