//! Keystores, truststores and combined PEM files (docs/layout.md#other-forms) written over
//! SSH as files of the node's versioned set: bootstrap and rotation keep them equal to the
//! PEM files they stand for, `keytool` reads them with the node's password, the PEM key of
//! a node that reads only a keystore is linked nowhere, `verify` opens them, and a bad
//! password file or a store that the password does not open stops `apply` with exit 78
//! before anything changes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use certroll::stores::{keystore_form, truststore_form, Password, Pkcs12Profile, TruststoreFormat};

use crate::on_node;
use crate::support::cli::{pem_certs, Control};
use crate::support::inventory::{FleetInventory, BUNDLE, CERT, KEY};
use crate::support::Fleet;

pub(crate) const DIR: &str = "/srv/certroll-node/tls";
pub(crate) const PASS: &str = "/srv/certroll-node/store.pass";
pub(crate) const KEYSTORE: &str = "/srv/certroll-node/tls/app.p12";
pub(crate) const TRUSTSTORE: &str = "/srv/certroll-node/tls/trust.p12";
const JKS: &str = "/srv/certroll-node/tls/trust.jks";
pub(crate) const COMBINED: &str = "/srv/certroll-node/tls/app-combined.pem";

/// app1 serves from a keystore and a combined PEM and trusts a PKCS#12 truststore (its
/// password in a file on the node); lb1 trusts a JKS truststore under `changeit`.
pub(crate) fn inventory<'a>(fleet: &'a Fleet, profile: &str) -> FleetInventory<'a> {
    FleetInventory::new(fleet)
        .without_default("key")
        .node_key("lb1", "key", &format!("{DIR}/key.pem"))
        .node_key("lb1", "truststore", JKS)
        .node_key("lb1", "truststore_format", "jks")
        .node_key("app1", "keystore", KEYSTORE)
        .node_key("app1", "truststore", TRUSTSTORE)
        .node_key("app1", "combined_pem", COMBINED)
        .node_key("app1", "store_password_file", PASS)
        .node_key("app1", "pkcs12_profile", profile)
        .mutual_link("lb1", "app1")
}

pub(crate) fn write_password(fleet: &Fleet, text: &str, mode: u32) {
    let p = on_node(fleet, "app1", PASS);
    fs::create_dir_all(p.parent().expect("a directory")).expect("node directory");
    fs::write(&p, text).expect("write the password file");
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn keytool_list(path: &std::path::Path, password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("keytool")
        .args(["-list", "-keystore"])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("keytool is installed (openjdk-17-jdk-headless)");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(format!("{password}\n").as_bytes())
        .expect("password");
    drop(input);
    let out = child.wait_with_output().expect("keytool");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "keytool -list {}: {text}",
        path.display()
    );
    text
}

/// The node's stores hold the PEM files' leaf, key and anchors; Java reads them.
fn assert_stores_match(fleet: &Fleet, generation_anchors: usize) {
    let pw = Password::new("app1-secret");
    let ks = fs::read(on_node(fleet, "app1", KEYSTORE)).expect("the keystore is there");
    let held = keystore_form(Pkcs12Profile::Modern)
        .read(&ks, &pw)
        .expect("the keystore opens with the node's password");
    let cert = pem_certs(&on_node(fleet, "app1", CERT));
    assert_eq!(
        held.chain[0], cert[0].der,
        "the keystore holds the served leaf"
    );
    let combined = fs::read_to_string(on_node(fleet, "app1", COMBINED)).expect("combined PEM");
    assert!(combined.contains("PRIVATE KEY") && combined.starts_with("-----BEGIN CERTIFICATE"));
    assert_eq!(
        fs::metadata(on_node(fleet, "app1", KEYSTORE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600,
        "a keystore is a key: 0600"
    );
    let listed = keytool_list(&on_node(fleet, "app1", KEYSTORE), "app1-secret");
    assert!(listed.contains("PrivateKeyEntry"), "{listed}");
    let ts = keytool_list(&on_node(fleet, "app1", TRUSTSTORE), "app1-secret");
    assert_eq!(
        ts.matches("trustedCertEntry").count(),
        generation_anchors,
        "{ts}"
    );
    let jks = fs::read(on_node(fleet, "lb1", JKS)).expect("lb1's JKS truststore");
    let anchors = truststore_form(TruststoreFormat::Jks, Pkcs12Profile::Modern)
        .read(&jks, &Password::new("changeit"))
        .expect("a truststore without a password file uses changeit");
    let bundle = pem_certs(&on_node(fleet, "lb1", BUNDLE));
    assert_eq!(anchors.anchors.len(), bundle.len());
    // app1 reads its key only from its stores: no PEM key is linked at any path.
    assert!(
        !on_node(fleet, "app1", KEY).exists()
            && fs::symlink_metadata(on_node(fleet, "app1", KEY)).is_err(),
        "app1 has no PEM key beside its keystore"
    );
}

#[test]
fn stores_follow_their_pem_files_through_bootstrap_and_rotation_and_verify_opens_them() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    write_password(&fleet, "app1-secret\n", 0o600);
    let ctl = Control::new(&fleet, &inventory(&fleet, "modern"));
    // Every command certroll sends, traced: the password is never in one of them.
    let trace = ctl.dir.join("transport.trace");
    let run = crate::support::run::certroll(&ctl.inventory, &["apply", "--yes"], |c| {
        c.current_dir(&ctl.dir)
            .env("CERTROLL_TRACE_TRANSPORT", &trace);
    });
    run.expect_code(0).expect_output("complete");
    let traced =
        String::from_utf8_lossy(&fs::read(&trace).expect("the transport trace")).into_owned();
    let commands: Vec<&str> = traced
        .split("--- command\n")
        .skip(1)
        .map(|c| c.split("\n--- ").next().unwrap_or_default())
        .collect();
    assert!(
        commands.iter().any(|c| c.contains(PASS)),
        "the password file was read"
    );
    assert!(
        commands.iter().all(|c| !c.contains("app1-secret")),
        "the password is in no command line"
    );
    assert!(
        !run.output().contains("app1-secret"),
        "nor in any message\n{run}"
    );
    let journal = serde_json::to_string(&ctl.journal()).expect("journal");
    assert!(!journal.contains("app1-secret"), "nor in the journal");
    assert_stores_match(&fleet, 1);
    ctl.certroll(&["verify"]).expect_code(0);

    let run = ctl.apply_ok(&["--rotate"]);
    run.expect_output("rotation of CA internal complete");
    assert_stores_match(&fleet, 1);
    ctl.certroll(&["verify"]).expect_code(0);

    // A password file that no longer opens the stores: a finding naming the file, in JSON.
    write_password(&fleet, "another-password\n", 0o600);
    let v = ctl.certroll(&["verify", "--format", "json"]);
    assert_ne!(v.code, 0, "{v}");
    assert!(
        v.stdout.contains("store-unopened") && v.stdout.contains(KEYSTORE),
        "{v}"
    );
    assert!(
        !v.output().contains("another-password"),
        "the password is never shown\n{v}"
    );
}

#[test]
fn a_bad_password_file_or_store_stops_apply_with_exit_78_before_anything_changes() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let ctl = Control::new(&fleet, &inventory(&fleet, "legacy"));
    for (setup, want) in [
        (Some(("pw\n", 0o644)), "readable by every user"),
        (Some(("", 0o600)), "is empty"),
        (None, "does not exist"),
    ] {
        let p = on_node(&fleet, "app1", PASS);
        let _ = fs::remove_file(&p);
        if let Some((text, mode)) = setup {
            write_password(&fleet, text, mode);
        }
        let run = ctl.certroll(&["apply", "--yes"]);
        run.expect_code(78).expect_output(PASS).expect_output(want);
        assert!(
            !on_node(&fleet, "app1", CERT).exists(),
            "nothing was written\n{run}"
        );
        assert!(
            !on_node(&fleet, "lb1", BUNDLE).exists(),
            "nothing was written\n{run}"
        );
    }
    // A store that is a directory, or not a store at all.
    write_password(&fleet, "pw\n", 0o600);
    let ks = on_node(&fleet, "app1", KEYSTORE);
    fs::create_dir_all(&ks).expect("a directory in the keystore's place");
    let run = ctl.certroll(&["apply", "--yes"]);
    run.expect_code(78).expect_output(KEYSTORE);
    fs::remove_dir(&ks).expect("remove the directory");
    fs::write(&ks, "not a keystore").expect("junk keystore");
    let run = ctl.certroll(&["apply", "--yes"]);
    run.expect_code(78)
        .expect_output(KEYSTORE)
        .expect_output("not a PKCS#12");
    assert!(
        !on_node(&fleet, "lb1", BUNDLE).exists(),
        "nothing was written\n{run}"
    );
    fs::remove_file(&ks).expect("remove the junk");
    ctl.apply_ok(&[]).expect_output("complete");
    assert_stores_ok_legacy(&fleet);
}

/// The legacy profile: 3DES/SHA-1, still read by keytool and by certroll.
fn assert_stores_ok_legacy(fleet: &Fleet) {
    let ks = fs::read(on_node(fleet, "app1", KEYSTORE)).expect("the keystore");
    keystore_form(Pkcs12Profile::Legacy)
        .read(&ks, &Password::new("pw"))
        .expect("opens");
    let listed = keytool_list(&on_node(fleet, "app1", KEYSTORE), "pw");
    assert!(listed.contains("PrivateKeyEntry"), "{listed}");
}

#[test]
fn with_keys_made_on_the_node_the_keystore_and_combined_pem_are_assembled_there() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    write_password(&fleet, "app1-secret\n", 0o600);
    let inv = inventory(&fleet, "modern").node_key("app1", "key_source", "node");
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]).expect_output("complete");
    let run = ctl.apply_ok(&["--rotate"]);
    run.expect_output("rotation of CA internal complete");
    assert_stores_match(&fleet, 1);
    // The keystore's and the combined PEM's key is the served certificate's.
    let ks = fs::read(on_node(&fleet, "app1", KEYSTORE)).expect("keystore");
    let held = keystore_form(Pkcs12Profile::Modern)
        .read(&ks, &Password::new("app1-secret"))
        .expect("opens");
    let combined = fs::read(on_node(&fleet, "app1", COMBINED)).expect("combined");
    let in_combined = certroll::stores::pem_key(&combined).expect("a key in the combined PEM");
    assert_eq!(
        held.key.as_deref(),
        Some(&*in_combined),
        "one key in both forms"
    );
    let pair = rcgen::KeyPair::try_from(in_combined.as_slice()).expect("a PKCS#8 key");
    use rcgen::PublicKeyData;
    let spki = pair.subject_public_key_info();
    let cert = pem_certs(&on_node(&fleet, "app1", CERT));
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&spki)),
        cert[0].spki_sha256
    );
    // Made on the node, not sent: the journal records the keystore as assembled there.
    let journal = fs::read_to_string(ctl.state_dir().join("journal.ndjson")).unwrap_or_default()
        + &serde_json::to_string(&ctl.journal()).unwrap_or_default();
    assert!(journal.contains(certroll::executor::ASSEMBLED), "{journal}");
    ctl.certroll(&["verify"]).expect_code(0);
}

#[test]
fn through_sudo_a_root_only_password_file_opens_root_owned_stores() {
    use crate::support::cli::mode;
    use crate::support::users::{self, owner, OPERATOR};
    let fleet = users::sudo_fleet(&["lb1", "app1"]);
    // root's password file, 0600: the unprivileged login cannot read it, sudo can.
    write_password(&fleet, "app1-secret\n", 0o600);
    let inv = inventory(&fleet, "modern")
        .login_user("app1", OPERATOR)
        .node_key("app1", "become", "sudo");
    let ctl = Control::new(&fleet, &inv);
    let run = ctl.apply_ok(&[]);
    for remote in [KEYSTORE, TRUSTSTORE, COMBINED] {
        let p = on_node(&fleet, "app1", remote);
        assert_eq!(owner(&p), (0, 0), "{} is root's\n{run}", p.display());
    }
    assert_eq!(mode(&on_node(&fleet, "app1", KEYSTORE)), 0o600);
    assert_stores_match(&fleet, 1);
    ctl.apply_ok(&["--rotate"]);
    assert_stores_match(&fleet, 1);
    // verify reads the password and the root-only stores through sudo too.
    ctl.certroll(&["verify"]).expect_code(0);
}

#[test]
fn a_rotation_killed_with_sigkill_mid_run_resumes_and_leaves_matching_stores() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    write_password(&fleet, "app1-secret\n", 0o600);
    // Slow reloads, so that the kill lands between steps of the rotation.
    let inv = inventory(&fleet, "legacy").default_key(
        "reload",
        &format!("sleep 0.5; touch {}", crate::support::inventory::RELOADED),
    );
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]).expect_output("complete");
    let journal = ctl.state_dir().join("journal.jsonl");
    let done = || {
        fs::read_to_string(&journal)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"record\":\"step-done\""))
            .count()
    };
    let before = done();
    let bg = ctl.spawn(&["apply", "--yes", "--rotate"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while done() < before + 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no rotation step was done in 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let killed = Command::new("kill")
        .args(["-9", &bg.pid().to_string()])
        .status()
        .expect("kill -9");
    assert!(killed.success());
    let first = bg.wait();
    assert!(
        !first.output().contains("rotation of CA internal complete"),
        "{first}"
    );
    let resumed = ctl.apply_ok(&[]);
    resumed.expect_output("complete");
    let ks = fs::read(on_node(&fleet, "app1", KEYSTORE)).expect("keystore");
    let held = keystore_form(Pkcs12Profile::Legacy)
        .read(&ks, &Password::new("app1-secret"))
        .expect("the keystore opens after the resume");
    let cert = pem_certs(&on_node(&fleet, "app1", CERT));
    assert_eq!(
        held.chain[0], cert[0].der,
        "the keystore holds the served leaf\n{resumed}"
    );
    assert_eq!(ctl.current_generation(), 2, "{resumed}");
    ctl.certroll(&["verify"]).expect_code(0);
    // No old version (no old key, in any form) is left on the node.
    let store = crate::rotate::store_entries(&fleet, "app1");
    assert_eq!(store.len(), 2, "current and its version only: {store:?}");
}

/// The block of docs/recipes.md that starts with `# recipe: NAME`.
pub fn recipe(name: &str) -> String {
    let doc = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/recipes.md"))
        .expect("docs/recipes.md");
    let marker = format!("# recipe: {name}\n");
    let start = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("no recipe {name}"))
        + marker.len();
    let len = doc[start..].find("```").expect("the block ends");
    doc[start..start + len].to_string()
}

#[test]
fn the_haproxy_combined_pem_recipe_loads_in_haproxy_through_a_rotation() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let host_tls = on_node(&fleet, "app1", DIR);
    // The recipe's node table, as app1 of the fleet: its paths under the fleet's root,
    // its reload the fleet's.
    let table: toml::Table = toml::from_str(&recipe("haproxy-combined")).expect("TOML");
    let edge = table["nodes"]["edge1"].as_table().expect("[nodes.edge1]");
    let mut inv = FleetInventory::new(&fleet)
        .without_default("key")
        .node_key("lb1", "key", &format!("{DIR}/key.pem"))
        .link("lb1", "app1");
    for (k, v) in edge {
        match (k.as_str(), v) {
            ("ssh" | "reload", _) => {}
            (_, toml::Value::String(s)) => {
                inv = inv.node_key("app1", k, &s.replace("/etc/haproxy/tls", DIR));
            }
            (_, other) => inv = inv.node_raw("app1", k, &other.to_string()),
        }
    }
    let cfg = ctl_dir_file(&fleet, "haproxy.cfg");
    let text = recipe("haproxy-combined.cfg")
        .replace("/etc/haproxy/tls", &host_tls.display().to_string())
        .replace(
            "/run/haproxy.pid",
            &ctl_dir_file(&fleet, "haproxy.pid").display().to_string(),
        );
    fs::write(&cfg, text).expect("write haproxy.cfg");
    let ctl = Control::new(&fleet, &inv);
    for args in [&[][..], &["--rotate"][..]] {
        ctl.apply_ok(args).expect_output("complete");
        let out = Command::new("haproxy")
            .args(["-c", "-f"])
            .arg(&cfg)
            .output()
            .expect("haproxy is installed");
        assert!(
            out.status.success(),
            "haproxy -c: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let combined = fs::read_to_string(host_tls.join("edge1.pem")).expect("combined PEM");
        assert!(combined.contains("BEGIN CERTIFICATE") && combined.contains("PRIVATE KEY"));
        assert!(
            fs::symlink_metadata(on_node(&fleet, "app1", KEY)).is_err(),
            "no PEM key"
        );
    }
    ctl.certroll(&["verify"]).expect_code(0);
}

fn ctl_dir_file(fleet: &Fleet, name: &str) -> std::path::PathBuf {
    let dir = fleet.dir().join("haproxy");
    fs::create_dir_all(&dir).expect("a directory for haproxy");
    dir.join(name)
}
