//! CA keys in a PKCS#11 token (`key_store = "pkcs11"`, a SoftHSM2 token made per test):
//! bootstrap, rotation and rollback signed in the token, a wrong PIN or a missing token
//! refused with exit 78 and nothing changed, an RSA CA, the move from a `file` store by
//! rotating, the takeover of a CA whose key is already in the token, and `ca extend`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::{assert_no_plain_key, Local, MODULE, NODES, PIN};

#[test]
fn pkcs11_store_bootstraps_rotates_and_refuses_a_wrong_pin_or_token() {
    let mut local = Local::new("");
    local.softhsm("certroll ca");
    let pin = local.secret("pin", &format!("{PIN}\n"), 0o600);
    local.write_inventory(&local.pkcs11_keys("certroll ca", &pin));
    local.bootstrap_rotate_verify();
    assert_no_plain_key(&local);
    for g in ["g2", "archive/g1"] {
        let dir = local.state().join("ca/internal").join(g);
        assert!(!dir.join("ca.key").exists(), "{g} has a key file");
        let reference = std::fs::read_to_string(dir.join("ca.key.ref")).unwrap();
        assert!(reference.contains("token = certroll ca"), "{reference}");
    }
    let g2_ref = std::fs::read_to_string(local.state().join("ca/internal/g2/ca.key.ref"));
    assert!(g2_ref.unwrap().contains("label = internal ca G2"));

    let before = local.snapshot();
    local.secret("pin", "0000\n", 0o600);
    local
        .certroll(&["apply", "--rotate", "--yes"])
        .expect_code(78)
        .expect_output(&format!(
            "CA internal: failed to log in to PKCS#11 token \"certroll ca\" of module \
             {MODULE}: wrong PIN; nothing was written"
        ));
    assert_eq!(local.snapshot(), before, "a refused run changed files");

    local.secret("pin", &format!("{PIN}\n"), 0o600);
    local.write_inventory(&local.pkcs11_keys("another token", &pin));
    local
        .certroll(&["apply", "--rotate", "--yes"])
        .expect_code(78)
        .expect_output(&format!(
            "CA internal: PKCS#11 module {MODULE} has no token labelled \"another token\" \
             (tokens found: \"certroll ca\""
        ));
    assert_eq!(local.snapshot(), before);

    let missing = local
        .pkcs11_keys("certroll ca", &pin)
        .replace(MODULE, "/nonexistent/p11.so");
    local.write_inventory(&missing);
    local
        .certroll(&["apply", "--yes"])
        .expect_code(78)
        .expect_output("failed to load PKCS#11 module /nonexistent/p11.so: no such file");
    assert_eq!(local.snapshot(), before);

    // Read-only commands do not log in.
    local.certroll(&["verify"]).expect_code(0);
}

#[test]
fn an_rsa_ca_in_the_token_rotates() {
    let mut local = Local::new("");
    local.softhsm("rsa ca");
    let pin = local.secret("pin", &format!("{PIN}\n"), 0o600);
    let keys = local.pkcs11_keys("rsa ca", &pin);
    local.write_inventory(&format!("key_algorithm = \"rsa-2048\"\n{keys}"));
    local.bootstrap_rotate_verify();
    assert_no_plain_key(&local);
    let g2 = local.state().join("ca/internal/g2/ca.pem");
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&g2)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("sha256WithRSAEncryption") && text.contains("2048 bit"),
        "{text}"
    );
}

#[test]
fn a_file_store_moves_to_pkcs11_by_rotating() {
    let mut local = Local::new("");
    local.certroll(&["apply", "--yes"]).expect_code(0);
    local.softhsm("moved");
    let pin = local.secret("pin", &format!("{PIN}\n"), 0o600);
    local.write_inventory(&local.pkcs11_keys("moved", &pin));
    local
        .certroll(&["apply", "--rotate", "--yes"])
        .expect_code(0);
    local.certroll(&["verify"]).expect_code(0);
    let ca = local.state().join("ca/internal");
    assert!(ca.join("g2/ca.key.ref").exists() && !ca.join("g2/ca.key").exists());
    assert!(
        ca.join("archive/g1/ca.key").exists(),
        "G1 keeps its file until deleted"
    );
}

#[test]
fn a_ca_whose_key_is_in_the_token_is_imported_and_rotated_away_from() {
    use certroll::inventory::{CaSpec, KeyStore, Pkcs11Spec, SecretSource};
    use certroll::pki::token::Token;
    use certroll::pki::{issue_leaf, new_ca_with_key, CaKey, TokenKey};

    let mut local = Local::new("");
    let conf = local.softhsm("operator hsm");
    let pin = local.secret("pin", &format!("{PIN}\n"), 0o600);
    local.write_inventory(&local.pkcs11_keys("operator hsm", &pin));

    // The operator's CA: its key generated in the token, its leaves on the nodes. This
    // test process opens the token once (SoftHSM reads SOFTHSM2_CONF at C_Initialize).
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let p11 = Pkcs11Spec {
        module: MODULE.into(),
        token: "operator hsm".into(),
        key_label: "unused".into(),
        pin: SecretSource::Prompt,
    };
    let spec = CaSpec {
        key_store: KeyStore::Pkcs11(p11.clone()),
        ..CaSpec::new("internal", "CN=Operator CA")
    };
    let now = time::OffsetDateTime::now_utc();
    let (op_pem, other_pem) = {
        let token = Token::open(&p11, PIN).unwrap();
        let key = |label: &str| {
            CaKey::Token(TokenKey::open(
                token.generate(spec.key_algorithm, label).unwrap(),
                token.clone(),
            ))
        };
        let op = new_ca_with_key(&spec, 1, key("operator key"), now).unwrap();
        let other = new_ca_with_key(&spec, 1, key("other key"), now).unwrap();
        for n in NODES {
            let leaf = issue_leaf(&spec, &op, n, &[format!("{n}.test")], now).unwrap();
            let dir = local.path("nodes").join(n);
            std::fs::write(dir.join("cert.pem"), &leaf.cert_pem).unwrap();
            std::fs::write(dir.join("key.pem"), &leaf.key_pem).unwrap();
            std::fs::set_permissions(dir.join("key.pem"), std::fs::Permissions::from_mode(0o600))
                .unwrap();
            std::fs::write(dir.join("ca.pem"), &op.cert_pem).unwrap();
        }
        (op.cert_pem.clone(), other.cert_pem.clone())
    };
    let op_cert = local.secret("op.pem", &op_pem, 0o644);
    let other_cert = local.secret("other.pem", &other_pem, 0o644);

    // A token key that is not the certificate's is refused, and nothing is written.
    let import = |cert: &Path, label: &str| {
        let cert = cert.to_str().unwrap();
        let args = [
            "ca",
            "import",
            "internal",
            "--cert",
            cert,
            "--pkcs11-key-label",
            label,
        ];
        local.certroll(&args)
    };
    import(&other_cert, "operator key")
        .expect_code(78)
        .expect_output(
            "token key \"operator key\" in PKCS#11 token \"operator hsm\" does not belong to",
        );
    assert!(!local.state().join("ca").exists());
    import(&other_cert, "missing")
        .expect_code(78)
        .expect_output("holds no private key labelled \"missing\"");

    import(&op_cert, "operator key").expect_code(0);
    let g1_ref = std::fs::read_to_string(local.state().join("ca/internal/g1/ca.key.ref"));
    assert!(g1_ref.unwrap().contains("label = operator key"));

    // The takeover rotation: the cross certificate is signed by the token's operator key.
    local
        .certroll(&["apply", "--rotate", "--yes"])
        .expect_code(0);
    local.certroll(&["verify"]).expect_code(0);
    assert_no_plain_key(&local);
    let g2_ref = std::fs::read_to_string(local.state().join("ca/internal/g2/ca.key.ref"));
    assert!(g2_ref.unwrap().contains("label = internal ca G2"));
}

/// A rotation signed in the token and stopped by a node that never confirms is rolled back:
/// the rollback's fresh leaves come from G1, signed in the token too; the abandoned G2 is
/// archived as a reference to its token key, never as a key file.
#[test]
fn a_rotation_signed_in_the_token_rolls_back() {
    let mut local = Local::new("");
    local.softhsm("certroll ca");
    let pin = local.secret("pin", &format!("{PIN}\n"), 0o600);
    local.write_inventory(&local.pkcs11_keys("certroll ca", &pin));
    let inventory = local.path("certroll.toml");
    let text = std::fs::read_to_string(&inventory).unwrap();
    let stuck = text.replace(
        "confirm = \"test -e nodes/{node}/reloaded\"",
        "confirm = \"test -e nodes/{node}/reloaded && test ! -e nodes/{node}/stuck\"\n\
         confirm_timeout = \"1s\"",
    );
    assert_ne!(stuck, text, "the inventory's confirm command changed shape");
    std::fs::write(&inventory, stuck).unwrap();

    local.certroll(&["apply", "--yes"]).expect_code(0);
    std::fs::write(local.path("nodes/db/stuck"), "").unwrap();
    let stopped = local.certroll(&["apply", "--rotate", "--yes"]);
    assert_ne!(stopped.code, 0, "the rotation should stop at db\n{stopped}");
    std::fs::remove_file(local.path("nodes/db/stuck")).unwrap();

    local
        .certroll(&["apply", "--rollback", "--yes"])
        .expect_code(0);
    let g1 = std::fs::read_to_string(local.state().join("ca/internal/g1/ca.pem")).unwrap();
    for n in NODES {
        let bundle = std::fs::read_to_string(local.path("nodes").join(n).join("ca.pem"));
        assert_eq!(bundle.unwrap().trim(), g1.trim(), "bundle of {n}: G1 alone");
    }
    let archived = local.state().join("ca/internal/archive/g2");
    assert!(archived.join("ROLLED-BACK").exists());
    assert!(archived.join("ca.key.ref").exists() && !archived.join("ca.key").exists());
    local.certroll(&["verify"]).expect_code(0);
    assert_no_plain_key(&local);
}

#[test]
fn ca_extend_signs_in_the_token_and_is_refused_without_it() {
    let mut local = Local::new("");
    local.softhsm("certroll ca");
    let pin = local.secret("pin", &format!("{PIN}\n"), 0o600);
    local.write_inventory(&local.pkcs11_keys("certroll ca", &pin));
    local.certroll(&["apply", "--yes"]).expect_code(0);

    // Without the token: refused as configuration, nothing written.
    local.write_inventory(&local.pkcs11_keys("another token", &pin));
    let before = local.snapshot();
    local
        .certroll(&["ca", "extend", "internal"])
        .expect_code(78)
        .expect_output("has no token labelled \"another token\"");
    assert_eq!(
        local.snapshot(),
        before,
        "a refused extension changed files"
    );

    // With it: the certificate is re-issued by the token's key and a routine run
    // installs it everywhere.
    local.write_inventory(&local.pkcs11_keys("certroll ca", &pin));
    let old = std::fs::read_to_string(local.state().join("ca/internal/g1/ca.pem")).unwrap();
    local
        .certroll(&["ca", "extend", "internal"])
        .expect_code(0)
        .expect_stdout("extended CA internal G1");
    let new = std::fs::read_to_string(local.state().join("ca/internal/g1/ca.pem")).unwrap();
    assert_ne!(old, new);
    assert_no_plain_key(&local);
    local.certroll(&["verify"]).expect_code(1);
    local.certroll(&["apply", "--yes"]).expect_code(0);
    local.certroll(&["verify"]).expect_code(0);
    for n in NODES {
        let bundle = std::fs::read_to_string(local.path("nodes").join(n).join("ca.pem"));
        assert_eq!(bundle.unwrap().trim(), new.trim(), "bundle of {n}");
    }
}
