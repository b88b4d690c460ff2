//! The prune of a cross-signed rotation drops the cross certificate from every form the node
//! serves its chain in, not only from the certificate file: the keystore and the combined PEM
//! are made again on the node, in the new version, from the pruned chain and the key the
//! store already holds (the control host no longer has it), so that after the run they hold
//! exactly the leaf and its new chain, with the same key. `openssl` reads them, independent
//! of certroll's own reader, and `verify` reports a store that still carries more than the
//! certificate file.

use std::fs;
use std::path::Path;

use certroll::stores::{keystore_form, truststore_form, Password, Pkcs12Profile, TruststoreFormat};

use crate::on_node;
use crate::stores::{inventory, write_password, COMBINED, KEYSTORE, PASS, TRUSTSTORE};
use crate::support::cli::{mode, openssl, pem_certs, Control};
use crate::support::inventory::CERT;
use crate::support::Fleet;

/// The DER certificates of a PEM text, in order.
fn ders(text: &str) -> Vec<Vec<u8>> {
    certroll::stores::pem_certs(text.as_bytes())
}

/// The subjects of the certificates of a PEM text, for messages.
fn subjects(text: &str) -> Vec<String> {
    certroll::pki::parse_pem_certs(text.as_bytes())
        .map(|c| c.into_iter().map(|c| c.subject).collect())
        .unwrap_or_default()
}

/// The public key (PEM) of the private key in a PEM text, as openssl derives it.
fn public_key_of(dir: &Path, key_pem: &str) -> String {
    let file = dir.join("extracted-key.pem");
    fs::write(&file, key_pem).expect("write the extracted key");
    let public = openssl(
        Path::new("."),
        &["pkey", "-pubout", "-in", &file.display().to_string()],
    );
    fs::remove_file(&file).expect("remove the extracted key");
    public
}

/// Bootstraps app1 (keystore, combined PEM, PKCS#12 truststore) with `key_source`, rotates
/// with cross-signed chains, and checks that every form holds exactly the pruned chain.
fn cross_signed_rotation_leaves_stores_without_the_cross_certificate(key_source: &str) {
    let fleet = Fleet::start(&["lb1", "app1"]);
    write_password(&fleet, "app1-secret\n", 0o600);
    let inv = inventory(&fleet, "modern").node_key("app1", "key_source", key_source);
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]).expect_output("complete");
    let run = ctl.apply_ok(&["--rotate", "--chain", "cross-signed"]);
    run.expect_output("rotation of CA internal complete");
    assert_eq!(ctl.status()["chain"], "cross-signed");

    let cross = pem_certs(&ctl.ca_dir().join("g2/cross.pem"))[0].der.clone();
    let cert = pem_certs(&on_node(&fleet, "app1", CERT));
    assert_eq!(
        cert.len(),
        1,
        "the certificate file holds the leaf alone\n{run}"
    );
    let leaf = cert[0].der.clone();
    let cert_public = openssl(
        Path::new("."),
        &[
            "x509",
            "-pubkey",
            "-noout",
            "-in",
            &on_node(&fleet, "app1", CERT).display().to_string(),
        ],
    );

    // The keystore, as OpenSSL 3 reads it (no -legacy): the leaf alone, the served key.
    let ks = on_node(&fleet, "app1", KEYSTORE).display().to_string();
    let pass = format!("file:{}", on_node(&fleet, "app1", PASS).display());
    let certs = openssl(
        Path::new("."),
        &["pkcs12", "-info", "-nokeys", "-in", &ks, "-passin", &pass],
    );
    assert!(
        ders(&certs) == [leaf.clone()],
        "the keystore holds exactly the leaf, no cross certificate: it holds {:?}\n{run}",
        subjects(&certs)
    );
    let key = openssl(
        Path::new("."),
        &["pkcs12", "-nocerts", "-nodes", "-in", &ks, "-passin", &pass],
    );
    assert_eq!(
        public_key_of(&ctl.dir, &key),
        cert_public,
        "the keystore's key is the certificate's"
    );
    assert_eq!(mode(&on_node(&fleet, "app1", KEYSTORE)), 0o600);

    // The combined PEM: the leaf alone, then the same key.
    let combined_path = on_node(&fleet, "app1", COMBINED);
    let combined = fs::read_to_string(&combined_path).expect("the combined PEM");
    assert!(
        ders(&combined) == [leaf.clone()],
        "the combined PEM {combined_path:?} holds exactly the leaf: it holds {:?}",
        subjects(&combined)
    );
    let key_at = combined
        .find("-----BEGIN PRIVATE KEY")
        .expect("a key after the chain");
    assert!(
        combined[..key_at].contains("END CERTIFICATE"),
        "chain, then key"
    );
    assert_eq!(public_key_of(&ctl.dir, &combined[key_at..]), cert_public);
    assert_eq!(mode(&combined_path), 0o600, "made with the key's mode");

    // The truststore holds the new anchor alone.
    let ts = fs::read(on_node(&fleet, "app1", TRUSTSTORE)).expect("the truststore");
    let anchors = truststore_form(TruststoreFormat::Pkcs12, Pkcs12Profile::Modern)
        .read(&ts, &Password::new("app1-secret"))
        .expect("the truststore opens");
    let g2 = pem_certs(&ctl.ca_pem(2))[0].der.clone();
    let held: Vec<Vec<u8>> = anchors.anchors.into_iter().map(|a| a.der).collect();
    assert_eq!(held, vec![g2]);
    ctl.certroll(&["verify"]).expect_code(0);

    if key_source == "control" {
        // A keystore that still carries the cross certificate, as the prune used to leave
        // it: `verify` reports it.
        let pw = Password::new("app1-secret");
        let form = keystore_form(Pkcs12Profile::Modern);
        let mut contents = form
            .read(&fs::read(&ks).expect("keystore"), &pw)
            .expect("opens");
        contents.chain.push(cross);
        fs::write(&ks, form.render(&contents, &pw).expect("render")).expect("write keystore");
        let v = ctl.certroll(&["verify", "--format", "json"]);
        assert_ne!(v.code, 0, "{v}");
        assert!(
            v.stdout.contains("store-differs") && v.stdout.contains(KEYSTORE),
            "{v}"
        );
        assert!(v.stdout.contains("cross certificate"), "{v}");
    }
}

/// With keys made on the control host (the default), the control host no longer holds the
/// leaf's key at the prune: the keystore and the combined PEM used to keep the retired cross
/// certificate after it.
#[test]
fn a_cross_signed_prune_drops_the_cross_certificate_from_the_keystore_and_combined_pem() {
    cross_signed_rotation_leaves_stores_without_the_cross_certificate("control");
}

#[test]
fn a_cross_signed_prune_drops_the_cross_certificate_from_stores_of_a_node_made_key() {
    cross_signed_rotation_leaves_stores_without_the_cross_certificate("node");
}
