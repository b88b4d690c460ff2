//! The defect "a server that sends no CA names can never be confirmed": Redis, MariaDB and
//! mosquitto ask for a client certificate with an empty list of CA names, which certroll
//! used to read as "has not loaded the bundle" (a takeover stopped at trust-add, `verify
//! --live` said CRITICAL of a healthy server). Through the real binary on local nodes,
//! against rustls servers that name no CA (`support::hostile_tls`): a throwaway client
//! certificate of the new generation is accepted after trust-add, one of the old
//! generation refused at trust-prune, a server that never loaded its new bundle stops the
//! trust-add, a public-only old generation gets "cannot be proven; relying on the node's
//! confirm command", an `encrypted` CA key and one in a PKCS#11 token (SoftHSM2) sign
//! throwaways with the run's one unlock, and the journal, `status` and `verify --live` say
//! which proof each step got.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use certroll::pki::{issue_leaf, new_ca};
use time::OffsetDateTime;

mod support;
use support::hostile_tls::{
    certroll, db_failure, db_proofs, node_dir, write_mutual_inventory, Behaviour, Tls, TlsServer,
};

/// What every proof of a server that names no CA starts its trust part with.
const TESTED: &str =
    "it names no CA in its CertificateRequest, so trust was tested with throwaway client \
     certificates: ";

#[test]
fn a_server_that_sends_no_ca_names_is_confirmed_by_throwaway_client_certificates() {
    for tls in [Tls::V12, Tls::V13] {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = TlsServer::start(&node_dir(dir.path(), "db"), tls, Behaviour::NamesNoCa);
        write_mutual_inventory(dir.path(), Some(server.port), "20s", "", "");
        certroll(dir.path(), &["apply", "--yes"]).expect_code(0);
        let proofs = db_proofs(dir.path());
        assert!(
            !proofs.is_empty()
                && proofs
                    .iter()
                    .all(|p| p.ends_with(&format!("{TESTED}G1's accepted"))),
            "{tls:?}: {proofs:?}"
        );
        certroll(dir.path(), &["apply", "--rotate", "--yes"]).expect_code(0);
        let proofs = db_proofs(dir.path());
        // After trust-add both generations are accepted; after trust-prune the new one is
        // accepted and the old one refused (the alert of a TLS 1.2 refusal may be lost to
        // the reset of the server's close: "it sent alert …" or "it closed …").
        assert!(
            proofs
                .iter()
                .any(|p| p.ends_with(&format!("{TESTED}G1's accepted, G2's accepted"))),
            "{tls:?}: {proofs:?}"
        );
        let pruned = format!("{TESTED}G2's accepted, G1's refused (it ");
        assert!(
            proofs.iter().any(|p| p.contains(&pruned)),
            "{tls:?}: {proofs:?}"
        );
        // status shows the proof of every done step of db.
        certroll(dir.path(), &["status"])
            .expect_code(0)
            .expect_output(&pruned);
        // verify --live: no CRITICAL, and a finding that says which proof was used.
        certroll(dir.path(), &["verify", "--live"])
            .expect_code(0)
            .expect_output(&format!(
                "node db at 127.0.0.1:{} (as reached from the node): {TESTED}G2's accepted",
                server.port
            ));
    }
}

#[test]
fn a_server_that_sends_no_ca_names_and_never_loaded_the_new_bundle_stops_the_trust_add() {
    for tls in [Tls::V12, Tls::V13] {
        let dir = tempfile::tempdir().expect("temp dir");
        write_mutual_inventory(dir.path(), None, "5s", "", "");
        certroll(dir.path(), &["apply", "--yes"]).expect_code(0);
        let g1_bundle = std::fs::read(node_dir(dir.path(), "db").join("ca.pem")).expect("bundle");
        let server = TlsServer::start(
            &node_dir(dir.path(), "db"),
            tls,
            Behaviour::NamesNoCaTrusting(g1_bundle),
        );
        write_mutual_inventory(dir.path(), Some(server.port), "3s", "", "");
        let run = certroll(dir.path(), &["apply", "--rotate", "--yes"]);
        run.expect_code(75);
        let error = db_failure(dir.path(), &run);
        assert!(
            error.contains("it names no CA in its CertificateRequest and refuses a throwaway client certificate of G2")
                && error.contains("has not loaded that bundle"),
            "{tls:?}: {error}"
        );
        // verify --live says the same of the server, as CRITICAL.
        certroll(dir.path(), &["verify", "--live"])
            .expect_code(2)
            .expect_output("refuses a throwaway client certificate of G2");
    }
}

#[test]
fn a_public_only_old_generation_cannot_be_proven_refused_at_prune_and_relies_on_confirm() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The operator's fleet: a CA certroll did not make, its leaves on app and db.
    let spec = support::pki::spec(
        certroll::inventory::KeyAlgorithm::EcdsaP256,
        "CN=Operator CA",
    );
    let now = OffsetDateTime::now_utc();
    let operator = new_ca(&spec, 1, now).expect("operator CA");
    for node in ["app", "db"] {
        let files = node_dir(dir.path(), node);
        std::fs::create_dir_all(&files).expect("node dir");
        let leaf =
            issue_leaf(&spec, &operator, node, &[format!("{node}.test")], now).expect("leaf");
        std::fs::write(files.join("cert.pem"), &leaf.cert_pem).expect("cert");
        std::fs::write(files.join("key.pem"), &leaf.key_pem).expect("key");
        std::fs::write(files.join("ca.pem"), &operator.cert_pem).expect("bundle");
    }
    std::fs::write(dir.path().join("operator.pem"), &operator.cert_pem).expect("operator.pem");
    let server = TlsServer::start(&node_dir(dir.path(), "db"), Tls::V13, Behaviour::NamesNoCa);
    write_mutual_inventory(
        dir.path(),
        Some(server.port),
        "20s",
        "",
        "confirm = \"true\"",
    );
    certroll(
        dir.path(),
        &["ca", "import", "internal", "--cert", "operator.pem"],
    )
    .expect_code(0);
    certroll(dir.path(), &["apply", "--rotate", "--yes"]).expect_code(0);
    let proofs = db_proofs(dir.path());
    let unproven = format!(
        "{TESTED}G2's accepted, G1's refusal cannot be proven (generation G1 was imported \
         without its private key (public-only): certroll cannot issue from it); relying on \
         the node's confirm command"
    );
    assert!(proofs.iter().any(|p| p.ends_with(&unproven)), "{proofs:?}");
    // While G1 is in db's bundle, its acceptance cannot be proven either.
    assert!(
        proofs
            .iter()
            .any(|p| p.contains("G1's acceptance cannot be proven (generation G1 was imported")),
        "{proofs:?}"
    );
    certroll(dir.path(), &["status"])
        .expect_code(0)
        .expect_output(&unproven);
}

#[test]
fn an_encrypted_ca_key_signs_the_throwaways_with_the_runs_one_unlock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pass = dir.path().join("ca.pass");
    std::fs::write(&pass, "correct horse battery\n").expect("passphrase file");
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let server = TlsServer::start(&node_dir(dir.path(), "db"), Tls::V13, Behaviour::NamesNoCa);
    let keys = format!(
        "key_store = \"encrypted\"\npassphrase_file = \"{}\"",
        pass.display()
    );
    write_mutual_inventory(dir.path(), Some(server.port), "20s", &keys, "");
    certroll(dir.path(), &["apply", "--yes"]).expect_code(0);
    certroll(dir.path(), &["apply", "--rotate", "--yes"]).expect_code(0);
    let proofs = db_proofs(dir.path());
    assert!(
        proofs.iter().any(|p| p.contains(&format!(
            "{TESTED}G2's accepted, G1's refused (it sent alert"
        ))),
        "{proofs:?}"
    );
    // verify never unlocks a key: it says the generation could not be tested, and is not
    // CRITICAL about it.
    certroll(dir.path(), &["verify", "--live"])
        .expect_code(0)
        .expect_output("G2's acceptance cannot be proven (the key ")
        .expect_output("is encrypted and this command was given no passphrase for it)");
    assert_no_throwaway_anywhere(dir.path());
}

#[test]
fn a_ca_key_in_a_pkcs11_token_signs_the_throwaways_through_the_runs_one_login() {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = support::pki::softhsm_token(dir.path(), "no names ca", "5678");
    let pin = dir.path().join("pin");
    std::fs::write(&pin, "5678\n").expect("pin file");
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let server = TlsServer::start(&node_dir(dir.path(), "db"), Tls::V13, Behaviour::NamesNoCa);
    let keys = format!(
        "key_store = \"pkcs11\"\npkcs11_module = \"{}\"\npkcs11_token = \"no names ca\"\n\
         pkcs11_key_label = \"internal ca\"\npin_file = \"{}\"",
        support::pki::SOFTHSM_MODULE,
        pin.display()
    );
    write_mutual_inventory(dir.path(), Some(server.port), "20s", &keys, "");
    let run = |args: &[&str]| {
        support::run::certroll(&dir.path().join("certroll.toml"), args, |cmd| {
            cmd.current_dir(dir.path())
                .env_remove("CERTROLL_INVENTORY")
                .env("SOFTHSM2_CONF", &conf);
        })
    };
    run(&["apply", "--yes"]).expect_code(0);
    run(&["apply", "--rotate", "--yes"]).expect_code(0);
    let proofs = db_proofs(dir.path());
    assert!(
        proofs.iter().any(|p| p.contains(&format!(
            "{TESTED}G2's accepted, G1's refused (it sent alert"
        ))),
        "{proofs:?}"
    );
    // verify does not log in to the token: the generation is reported as not tested.
    run(&["verify", "--live"]).expect_code(0).expect_output(
        "G2's acceptance cannot be proven (the key \"internal ca G2\" is in PKCS#11 token",
    );
    assert_no_throwaway_anywhere(dir.path());
}

/// No file of the control directory (state, journal, nodes) holds a throwaway: no
/// certificate names one, and no key is there beyond the CA's own and the nodes'.
fn assert_no_throwaway_anywhere(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            seen += 1;
            assert!(seen < 10_000, "too many files under {}", dir.display());
            let bytes = std::fs::read(&path).expect("read file");
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("throwaway client of"),
                "{} names a throwaway",
                path.display()
            );
            for cert in certroll::pki::parse_pem_certs(&bytes).unwrap_or_default() {
                assert!(
                    !cert.subject.contains("throwaway"),
                    "{} holds a throwaway certificate",
                    path.display()
                );
            }
        }
    }
}
