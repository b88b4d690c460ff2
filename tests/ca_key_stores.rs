//! CA keys protected at rest, through the real binary on local-transport nodes
//! (docs/keys.md#ca-keys): a bootstrap and a whole rotation with `key_store =
//! "encrypted"` and with `key_store = "pkcs11"` (a SoftHSM2 token made per test), no plain
//! private key anywhere in the state directory, every wrong secret or missing token
//! refused with exit 78 and nothing changed, a takeover of a CA whose key is already in
//! the token (`ca import --pkcs11-key-label`), and the manual move of a `file` store to
//! `encrypted` that docs/keys.md describes.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::run::{certroll, Run};

const MODULE: &str = support::pki::SOFTHSM_MODULE;
const PIN: &str = "5678";
const PASSPHRASE: &str = "correct horse battery";
const NODES: [&str; 3] = ["lb", "app", "db"];

/// A control directory with local nodes lb → app (one-way) and app ⇄ db (mutual), and the
/// `[ca.internal]` keys of the test.
struct Local {
    dir: tempfile::TempDir,
    /// `SOFTHSM2_CONF` for the runs, when the test has a token.
    softhsm_conf: Option<PathBuf>,
}

impl Local {
    fn new(ca_keys: &str) -> Local {
        let local = Local {
            dir: tempfile::tempdir().unwrap(),
            softhsm_conf: None,
        };
        local.write_inventory(ca_keys);
        for n in NODES {
            std::fs::create_dir_all(local.path("nodes").join(n)).unwrap();
        }
        local
    }

    fn write_inventory(&self, ca_keys: &str) {
        self.write_inventory_with(ca_keys, "touch nodes/{node}/reloaded", "");
    }

    /// The inventory with the nodes' `reload` command and `more` (e.g. another CA) at its
    /// end; the links name CA internal.
    fn write_inventory_with(&self, ca_keys: &str, reload: &str, more: &str) {
        let text = format!(
            "[ca.internal]\nsubject = \"CN=Key Store CA\"\n{ca_keys}\n\n\
             [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{{node}}/ca.pem\"\n\
             cert = \"nodes/{{node}}/cert.pem\"\nkey = \"nodes/{{node}}/key.pem\"\n\
             reload = '{reload}'\nconfirm = \"test -e nodes/{{node}}/reloaded\"\n\n\
             [nodes.lb]\ndns_names = [\"lb.test\"]\n[nodes.app]\ndns_names = [\"app.test\"]\n\
             [nodes.db]\ndns_names = [\"db.test\"]\n\n\
             [[links]]\nclient = \"lb\"\nserver = \"app\"\nca = \"internal\"\n\n\
             [[links]]\nclient = \"app\"\nserver = \"db\"\nmutual = true\nca = \"internal\"\n\n\
             {more}"
        );
        std::fs::write(self.path("certroll.toml"), text).unwrap();
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn state(&self) -> PathBuf {
        self.path(".certroll")
    }

    /// Writes a secret file, mode `mode`.
    fn secret(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn certroll(&self, args: &[&str]) -> Run {
        self.certroll_with_env(args, &[])
    }

    /// Runs certroll with the environment variables `vars` set.
    fn certroll_with_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        certroll(&self.path("certroll.toml"), args, |cmd| {
            cmd.current_dir(self.dir.path());
            if let Some(conf) = &self.softhsm_conf {
                cmd.env("SOFTHSM2_CONF", conf);
            }
            cmd.envs(vars.iter().copied());
        })
    }

    /// Every file of the state directory and of the nodes, by path.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        for root in [self.state(), self.path("nodes")] {
            collect(&root, &mut files);
        }
        files
    }

    /// Bootstrap, rotation to the end, verify.
    fn bootstrap_rotate_verify(&self) {
        self.certroll(&["apply", "--yes"]).expect_code(0);
        self.certroll(&["verify"]).expect_code(0);
        self.certroll(&["apply", "--rotate", "--yes"])
            .expect_code(0);
        let status = self.certroll(&["status", "--format", "json"]);
        status.expect_code(0);
        let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        assert_eq!(status["status"], "complete", "{status:#}");
        assert_eq!(status["generations"], serde_json::json!([1, 2]));
        let g2 = std::fs::read_to_string(self.state().join("ca/internal/g2/ca.pem")).unwrap();
        for n in NODES {
            let bundle = std::fs::read_to_string(self.path("nodes").join(n).join("ca.pem"));
            assert_eq!(bundle.unwrap().trim(), g2.trim(), "bundle of {n}");
        }
        self.certroll(&["verify"]).expect_code(0);
    }

    /// Makes a SoftHSM2 token labelled `label` for this test's runs.
    fn softhsm(&mut self, label: &str) -> PathBuf {
        let conf = support::pki::softhsm_token(self.dir.path(), label, PIN);
        self.softhsm_conf = Some(conf.clone());
        conf
    }

    fn pkcs11_keys(&self, token: &str, pin_file: &Path) -> String {
        format!(
            "key_store = \"pkcs11\"\npkcs11_module = \"{MODULE}\"\npkcs11_token = \"{token}\"\n\
             pkcs11_key_label = \"internal ca\"\npin_file = \"{}\"",
            pin_file.display()
        )
    }
}

fn collect(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
}

/// No file of the state directory holds a plain private key.
fn assert_no_plain_key(local: &Local) {
    let files = local.snapshot();
    let state = local.state();
    let mut seen = 0;
    for (path, bytes) in files.iter().filter(|(p, _)| p.starts_with(&state)) {
        seen += 1;
        let text = String::from_utf8_lossy(bytes);
        for plain in [
            "BEGIN PRIVATE KEY",
            "BEGIN EC PRIVATE KEY",
            "BEGIN RSA PRIVATE KEY",
        ] {
            assert!(
                !text.contains(plain),
                "{} holds a plain key",
                path.display()
            );
        }
    }
    assert!(seen > 5, "the state directory is nearly empty");
}

#[test]
fn encrypted_store_bootstraps_rotates_and_refuses_a_wrong_passphrase() {
    let local = Local::new("");
    let pass = local.secret("ca.pass", &format!("{PASSPHRASE}\n"), 0o600);
    local.write_inventory(&format!(
        "key_store = \"encrypted\"\npassphrase_file = \"{}\"",
        pass.display()
    ));
    local.bootstrap_rotate_verify();
    assert_no_plain_key(&local);

    // openssl, the second implementation, decrypts the key with the passphrase file and
    // finds the certificate's public key.
    let g2 = local.state().join("ca/internal/g2");
    let key = std::fs::read_to_string(g2.join("ca.key")).unwrap();
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let from_key = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(g2.join("ca.key"))
        .arg("-passin")
        .arg(format!("file:{}", pass.display()))
        .output()
        .expect("openssl");
    assert!(from_key.status.success(), "{from_key:?}");
    let from_cert = Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(g2.join("ca.pem"))
        .output()
        .unwrap();
    assert_eq!(from_key.stdout, from_cert.stdout);

    // A wrong passphrase: exit 78, the CA, the generation and the file named, nothing
    // changed.
    let before = local.snapshot();
    local.secret("ca.pass", "not the passphrase\n", 0o600);
    let run = local.certroll(&["apply", "--rotate", "--yes"]);
    run.expect_code(78).expect_output(&format!(
        "cannot use the key of CA internal G2 ({}): wrong passphrase",
        g2.join("ca.key").display()
    ));
    assert_eq!(local.snapshot(), before, "a refused run changed files");

    // A passphrase file others may read is refused.
    local.secret("ca.pass", &format!("{PASSPHRASE}\n"), 0o644);
    local
        .certroll(&["apply", "--yes"])
        .expect_code(78)
        .expect_output("a secret file must not be readable by group or other");
    assert_eq!(local.snapshot(), before);

    // No passphrase source and no terminal: refused, precisely.
    local.write_inventory("key_store = \"encrypted\"");
    local
        .certroll(&["apply", "--yes"])
        .expect_code(78)
        .expect_output(
            "CA internal has key_store = \"encrypted\" and neither passphrase_env nor \
             passphrase_file, and there is no terminal to ask for its passphrase on; \
             nothing was written",
        );
    assert_eq!(local.snapshot(), before);

    // Read-only commands need no passphrase.
    local.certroll(&["status"]).expect_code(0);
    local.certroll(&["verify"]).expect_code(0);
}

#[test]
fn node_commands_do_not_inherit_the_passphrase_or_pin_variables() {
    const PASS_VAR: &str = "CERTROLL_TEST_CA_PASSPHRASE";
    const PIN_VAR: &str = "CERTROLL_TEST_EDGE_PIN";
    const EDGE_PIN: &str = "edge-pin-73915";
    let local = Local::new("");
    // Every reload saves its environment; a second CA takes its PIN from the environment.
    local.write_inventory_with(
        &format!("key_store = \"encrypted\"\npassphrase_env = \"{PASS_VAR}\""),
        "env > nodes/{node}/env.txt && touch nodes/{node}/reloaded",
        &format!(
            "[ca.edge]\nsubject = \"CN=Edge CA\"\nkey_store = \"pkcs11\"\n\
             pkcs11_module = \"{MODULE}\"\npkcs11_token = \"edge\"\npkcs11_key_label = \"edge\"\n\
             pin_env = \"{PIN_VAR}\"\n"
        ),
    );
    let vars = [
        (PASS_VAR, PASSPHRASE),
        (PIN_VAR, EDGE_PIN),
        ("CERTROLL_TEST_PLAIN", "inherited"),
    ];
    for args in [
        &["apply", "--ca", "internal", "--yes"][..],
        &["apply", "--ca", "internal", "--rotate", "--yes"][..],
    ] {
        for n in NODES {
            let _ = std::fs::remove_file(local.path("nodes").join(n).join("env.txt"));
        }
        local.certroll_with_env(args, &vars).expect_code(0);
        for n in NODES {
            let env = std::fs::read_to_string(local.path("nodes").join(n).join("env.txt"))
                .unwrap_or_else(|e| panic!("node {n} did not reload ({e})"));
            assert!(
                env.contains("CERTROLL_TEST_PLAIN=inherited"),
                "the reload of {n} saw no environment:\n{env}"
            );
            for secret in [PASS_VAR, PASSPHRASE, PIN_VAR, EDGE_PIN] {
                assert!(
                    !env.contains(secret),
                    "the reload of {n} inherited {secret}:\n{env}"
                );
            }
        }
    }
}

#[test]
fn a_file_store_moved_to_encrypted_by_hand_keeps_working() {
    let local = Local::new("");
    local.certroll(&["apply", "--yes"]).expect_code(0);
    let pass = local.secret("ca.pass", &format!("{PASSPHRASE}\n"), 0o600);
    // docs/keys.md: encrypt each generation's ca.key in place with openssl.
    let g1 = local.state().join("ca/internal/g1");
    let tmp = g1.join("ca.key.new");
    let out = Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-v2prf",
            "hmacWithSHA256",
        ])
        .args(["-iter", "600000", "-in"])
        .arg(g1.join("ca.key"))
        .arg("-out")
        .arg(&tmp)
        .arg("-passout")
        .arg(format!("file:{}", pass.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, g1.join("ca.key")).unwrap();
    local.write_inventory(&format!(
        "key_store = \"encrypted\"\npassphrase_file = \"{}\"",
        pass.display()
    ));
    local
        .certroll(&["apply", "--rotate", "--yes"])
        .expect_code(0);
    local.certroll(&["verify"]).expect_code(0);
    assert_no_plain_key(&local);
}

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
