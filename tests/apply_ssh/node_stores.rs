//! `verify` on a node whose key is made there (`key_source = "node"`) and which reads a
//! PKCS#12 keystore and a combined PEM, both assembled on the node by `apply`: the node
//! opens them itself and sends back only their certificates and the public key of their
//! key (docs/inventory.md#stores), so `verify` checks them fully while no private key
//! crosses SSH (the debug-build transport trace records every byte that does).
//!
//! - after the bootstrap, `verify` is clean and its JSON lists both stores as opened on the
//!   node; the trace holds their public material and no `PRIVATE KEY` text;
//! - a keystore replaced by one holding another key and leaf (made with openssl here), and
//!   a combined PEM whose key is not its certificate's, are findings naming each file;
//! - a password file that no longer opens the keystore is a `store-unopened` finding
//!   naming it, never a crash, and the password is shown nowhere; `apply` then refuses
//!   to rotate (exit 78) rather than rewrite it under that password;
//! - through `become = "sudo"`, root-owned stores in the legacy profile and a root-only
//!   password file are opened on the node as well.

use std::fs;

use certroll::stores::{keystore_form, Password, Pkcs12Profile};
use serde_json::Value;

use crate::on_node;
use crate::stores::{inventory, write_password, COMBINED, KEYSTORE};
use crate::support::cli::{Control, Run};
use crate::support::Fleet;

/// lb1 and app1 bootstrapped, app1's key (and so its keystore and combined PEM) made on
/// app1, its store password `app1-secret`.
fn bootstrapped(fleet: &Fleet) -> Control {
    write_password(fleet, "app1-secret\n", 0o600);
    let inv = inventory(fleet, "modern").node_key("app1", "key_source", "node");
    let ctl = Control::new(fleet, &inv);
    ctl.apply_ok(&[]).expect_output("complete");
    ctl
}

/// `verify --format json`, traced to `trace` when given: the run and node app1's report.
fn verify_app1(ctl: &Control, trace: Option<&std::path::Path>) -> (Run, Value) {
    let run = crate::support::run::certroll(&ctl.inventory, &["verify", "--format", "json"], |c| {
        c.current_dir(&ctl.dir);
        if let Some(t) = trace {
            c.env("CERTROLL_TRACE_TRANSPORT", t);
        }
    });
    let json: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("verify printed no JSON ({e})\n{run}"));
    let app1 = json["cas"][0]["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["node"] == "app1"))
        .unwrap_or_else(|| panic!("no node app1 in the report\n{run}"))
        .clone();
    (run, app1)
}

/// The findings of `kind` in a node report.
fn findings<'a>(node: &'a Value, kind: &str) -> Vec<&'a Value> {
    node["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["kind"] == kind)
        .collect()
}

#[test]
fn verify_opens_node_made_stores_on_the_node_and_no_private_key_crosses_ssh() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let ctl = bootstrapped(&fleet);
    let trace = ctl.dir.join("verify.trace");
    let (run, app1) = verify_app1(&ctl, Some(&trace));
    assert_eq!(run.code, 0, "{run}");
    let stores: Vec<(String, String, String)> = app1["stores"]
        .as_array()
        .unwrap_or_else(|| panic!("no stores in the node report\n{run}"))
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (text("file"), text("path"), text("opened_on"))
        })
        .collect();
    for (file, path) in [("keystore", KEYSTORE), ("combined-pem", COMBINED)] {
        assert!(
            stores.contains(&(file.into(), path.into(), "node".into())),
            "{file} {path} checked on the node: {stores:?}\n{run}"
        );
    }
    let raw = fs::read(&trace).expect("the transport trace");
    // lb1's key is made on the control host and read back as always: app1's records only.
    let records: Vec<String> = String::from_utf8_lossy(&raw)
        .split("=== node ")
        .filter(|record| record.starts_with("app1 "))
        .map(str::to_string)
        .collect();
    let traced = records.concat();
    assert!(
        traced.matches("certroll: store follows").count() >= 2
            && traced.contains("BEGIN PUBLIC KEY"),
        "the trace shows both stores' public material: the hook traced the inspection"
    );
    if let Some(at) = traced.find("PRIVATE KEY") {
        let from = traced[..at].rfind("=== node").unwrap_or(0);
        panic!(
            "a private key crossed SSH during verify, in:\n{}",
            &traced[from..(at + 40).min(traced.len())]
        );
    }
    // Nor the key's bytes in any other form: its DER (the last 32 bytes, the private
    // scalar's neighbourhood) or its base64.
    let ks = fs::read(on_node(&fleet, "app1", KEYSTORE)).expect("the keystore");
    let key = keystore_form(Pkcs12Profile::Modern)
        .read(&ks, &Password::new("app1-secret"))
        .expect("the keystore opens here, in the test")
        .key
        .expect("it holds a key");
    let tail = &key[key.len() - 32..];
    assert!(
        !raw.windows(tail.len()).any(|w| w == tail),
        "the key's DER crossed SSH"
    );
    let b64 = pem::encode(&pem::Pem::new("K", key.to_vec()));
    let line = b64.lines().nth(1).expect("a base64 line");
    if let Some(at) = traced.find(line) {
        let from = traced[..at].rfind("--- path").unwrap_or(0);
        panic!(
            "the key's base64 crossed SSH, in:\n{}",
            &traced[from.saturating_sub(300)..(at + 80).min(traced.len())]
        );
    }
    // The password crosses only as before, for the truststore certroll opens itself:
    // never in an inspection.
    let inspections: Vec<&String> = records
        .iter()
        .filter(|r| r.contains("set -- 'inspect'"))
        .collect();
    assert_eq!(inspections.len(), 2, "keystore and combined PEM inspected");
    assert!(
        inspections.iter().all(|r| !r.contains("app1-secret")),
        "the password crossed SSH in an inspection"
    );
}

#[test]
fn a_node_made_keystore_or_combined_pem_holding_another_key_is_a_finding_naming_the_file() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let ctl = bootstrapped(&fleet);
    // Another key and leaf, in a keystore under the node's own password, over app1's.
    let work = ctl.dir.join("other");
    fs::create_dir_all(&work).expect("a work directory");
    fs::write(work.join("pass"), "app1-secret\n").expect("password");
    crate::support::cli::openssl(
        &work,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-subj",
            "/CN=app1",
            "-days",
            "2",
        ],
    );
    let keystore = on_node(&fleet, "app1", KEYSTORE);
    crate::support::cli::openssl(
        &work,
        &[
            "pkcs12",
            "-export",
            "-in",
            "other.pem",
            "-inkey",
            "other.key",
            "-name",
            "certroll",
            "-passout",
            "file:pass",
            "-out",
        ]
        .into_iter()
        .chain([keystore.to_str().expect("a UTF-8 path")])
        .collect::<Vec<_>>(),
    );
    // The combined PEM keeps its chain, with the other key in place of its own.
    let combined = on_node(&fleet, "app1", COMBINED);
    let text = fs::read_to_string(&combined).expect("the combined PEM");
    let chain = &text[..text.find("-----BEGIN PRIVATE KEY").expect("its key block")];
    let other_key = fs::read_to_string(work.join("other.key")).expect("the other key");
    fs::write(&combined, format!("{chain}{other_key}")).expect("rewrite the combined PEM");

    let (run, app1) = verify_app1(&ctl, None);
    assert_ne!(run.code, 0, "{run}");
    let differs = findings(&app1, "store-differs");
    assert!(
        differs.iter().any(|f| f["path"] == KEYSTORE
            && f["message"]
                .as_str()
                .is_some_and(|m| m.contains("another leaf"))),
        "the keystore's other leaf is named: {differs:?}\n{run}"
    );
    let mismatch = findings(&app1, "key-mismatch");
    assert!(
        mismatch.iter().any(|f| f["key"] == COMBINED),
        "the combined PEM's key is not its certificate's: {mismatch:?}\n{run}"
    );
}

#[test]
fn a_password_file_that_no_longer_opens_a_node_made_keystore_is_a_store_unopened_finding() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let ctl = bootstrapped(&fleet);
    write_password(&fleet, "another-password\n", 0o600);
    let (run, app1) = verify_app1(&ctl, None);
    assert_ne!(run.code, 0, "{run}");
    let unopened = findings(&app1, "store-unopened");
    assert!(
        unopened.iter().any(|f| f["path"] == KEYSTORE
            && f["detail"]
                .as_str()
                .is_some_and(|d| d.contains("password does not open it"))),
        "the keystore is named as not opening: {unopened:?}\n{run}"
    );
    assert!(
        unopened.iter().all(|f| f["path"] != COMBINED),
        "the combined PEM has no password: {unopened:?}\n{run}"
    );
    assert!(
        !run.output().contains("another-password"),
        "the password is never shown\n{run}"
    );
    // Nor does a rotation rewrite it under a password its application does not use: the
    // run stops before anything changes, as for a keystore certroll makes itself.
    let before = fs::read(on_node(&fleet, "app1", KEYSTORE)).expect("the keystore");
    let rotate = ctl.certroll(&["apply", "--yes", "--rotate"]);
    rotate.expect_code(78).expect_output(KEYSTORE);
    assert_eq!(
        fs::read(on_node(&fleet, "app1", KEYSTORE)).expect("the keystore"),
        before,
        "the keystore is unchanged\n{rotate}"
    );
}

#[test]
fn through_sudo_verify_opens_root_owned_node_made_stores_with_a_root_only_password_file() {
    use crate::support::users::{self, OPERATOR};
    let fleet = users::sudo_fleet(&["lb1", "app1"]);
    write_password(&fleet, "app1-secret\n", 0o600);
    let inv = inventory(&fleet, "legacy")
        .node_key("app1", "key_source", "node")
        .login_user("app1", OPERATOR)
        .node_key("app1", "become", "sudo");
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]).expect_output("complete");
    let (run, app1) = verify_app1(&ctl, None);
    assert_eq!(run.code, 0, "{run}");
    let on_node = app1["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["opened_on"] == "node")
        .count();
    assert_eq!(
        on_node, 2,
        "keystore and combined PEM opened on the node\n{run}"
    );
    // A password that does not open the root-only keystore: found through sudo too.
    write_password(&fleet, "another-password\n", 0o600);
    let (run, app1) = verify_app1(&ctl, None);
    assert!(
        findings(&app1, "store-unopened")
            .iter()
            .any(|f| f["path"] == KEYSTORE),
        "{run}"
    );
}
