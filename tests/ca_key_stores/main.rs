//! CA keys protected at rest, through the real binary on local-transport nodes
//! (docs/keys.md#ca-keys): a bootstrap and a whole rotation with `key_store =
//! "encrypted"` and with `key_store = "pkcs11"` (a SoftHSM2 token made per test), no plain
//! private key anywhere in the state directory, every wrong secret or missing token
//! refused with exit 78 and nothing changed, a takeover of a CA whose key is already in
//! the token (`ca import --pkcs11-key-label`), and the manual move of a `file` store to
//! `encrypted` that docs/keys.md describes. The token's tests are in `pkcs11.rs`.

mod pkcs11;
#[path = "../support/mod.rs"]
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
