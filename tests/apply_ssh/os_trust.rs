//! `os_trust` over SSH (docs/layout.md#the-operating-systems-trust-store): the CA's anchors
//! installed as one file each in the node's anchors directory (here a directory of the test
//! through `os_trust_dir`) and the update command (here a script that records each run)
//! run after the switch and before the reload; the old anchor's file removed at the
//! trust-prune; `verify` finds a directory that differs; a node without the update command
//! refused with exit 78 before anything changes.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::on_node;
use crate::support::cli::{pem_certs, Control};
use crate::support::inventory::{FleetInventory, BUNDLE, CERT};
use crate::support::Fleet;

const ANCHORS: &str = "/srv/certroll-node/os-anchors";
const UPDATE: &str = "/srv/certroll-node/bin/update-trust";
const LOG: &str = "/srv/certroll-node/order.log";

fn inventory<'a>(fleet: &'a Fleet, update: &str) -> FleetInventory<'a> {
    FleetInventory::new(fleet)
        .node_key("lb1", "os_trust", "debian")
        .node_key("lb1", "os_trust_dir", ANCHORS)
        .node_key("lb1", "os_trust_update", update)
        .node_key("lb1", "reload", &format!("echo reload >> {LOG}"))
        .mutual_link("lb1", "app1")
}

/// The recording update command: one line `update N` (N anchor files seen) per run.
fn install_update(fleet: &Fleet) {
    let p = on_node(fleet, "lb1", UPDATE);
    fs::create_dir_all(p.parent().expect("a directory")).expect("bin directory");
    fs::write(
        &p,
        format!("#!/bin/sh\nset -- {ANCHORS}/certroll-internal-anchor-*.crt\necho \"update $#\" >> {LOG}\n"),
    )
    .expect("write the update script");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The anchor files of the directory, sorted, with the DER each holds.
fn anchor_files(fleet: &Fleet) -> Vec<(String, Vec<u8>)> {
    let dir = on_node(fleet, "lb1", ANCHORS);
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .expect("the anchors directory")
        .map(|e| e.expect("entry"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(e.path()).expect("stat");
            assert!(meta.is_file(), "{name} is a regular file");
            assert_eq!(meta.permissions().mode() & 0o777, 0o644, "{name} is 0644");
            let certs = pem_certs(&e.path());
            assert_eq!(certs.len(), 1, "{name} holds one certificate");
            (name, certs[0].der.clone())
        })
        .collect();
    out.sort();
    out
}

fn log(fleet: &Fleet) -> Vec<String> {
    fs::read_to_string(on_node(fleet, "lb1", LOG))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn os_trust_anchors_follow_the_bundle_and_the_update_runs_before_each_reload() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    install_update(&fleet);
    let ctl = Control::new(&fleet, &inventory(&fleet, UPDATE));
    ctl.apply_ok(&[]).expect_output("complete");
    let files = anchor_files(&fleet);
    let bundle = pem_certs(&on_node(&fleet, "lb1", BUNDLE));
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        files[0].1, bundle[0].der,
        "the file holds the bundle's anchor"
    );
    assert!(files[0].0.starts_with("certroll-internal-anchor-") && files[0].0.ends_with(".crt"));
    assert_eq!(
        log(&fleet),
        ["update 1", "reload"],
        "the update ran once, before the reload"
    );
    ctl.certroll(&["verify"]).expect_code(0);

    fs::remove_file(on_node(&fleet, "lb1", LOG)).expect("clear the log");
    let run = ctl.apply_ok(&["--rotate"]);
    run.expect_output("rotation of CA internal complete");
    let after = anchor_files(&fleet);
    let bundle = pem_certs(&on_node(&fleet, "lb1", BUNDLE));
    assert_eq!(
        after.len(),
        1,
        "the old anchor's file went at the prune: {after:?}"
    );
    assert_eq!(after[0].1, bundle[0].der, "the new anchor");
    assert_ne!(after[0].0, files[0].0);
    // trust-add (2 anchors) then, after the leaf's switch (no update: nothing changed),
    // the prune (1 anchor): each update right before that step's reload.
    let l = log(&fleet);
    let updates: Vec<&String> = l.iter().filter(|x| x.starts_with("update")).collect();
    assert_eq!(updates, ["update 2", "update 1"], "{l:?}");
    for (i, line) in l.iter().enumerate() {
        if line.starts_with("update") {
            assert_eq!(l.get(i + 1).map(String::as_str), Some("reload"), "{l:?}");
        }
    }
    assert!(!pem_certs(&on_node(&fleet, "lb1", CERT)).is_empty());
    ctl.certroll(&["verify"]).expect_code(0);

    // A stale certroll file, and a missing one: verify names the directory, in JSON too.
    let stale = on_node(&fleet, "lb1", &format!("{ANCHORS}/{}", files[0].0));
    fs::write(&stale, pem_of(&files[0].1)).expect("plant the old anchor again");
    fs::remove_file(on_node(&fleet, "lb1", &format!("{ANCHORS}/{}", after[0].0)))
        .expect("remove the current one");
    let v = ctl.certroll(&["verify", "--format", "json"]);
    assert_ne!(v.code, 0, "{v}");
    assert!(
        v.stdout.contains("os-trust-differs") && v.stdout.contains(ANCHORS),
        "{v}"
    );
    assert!(
        v.stdout.contains(&files[0].0) && v.stdout.contains(&after[0].0),
        "{v}"
    );
    let v = ctl.certroll(&["verify"]);
    assert_ne!(v.code, 0, "{v}");
    v.expect_output(&format!("OS trust directory {ANCHORS} on node lb1"));
}

fn pem_of(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

#[test]
fn os_trust_without_its_update_command_stops_apply_with_exit_78_before_anything_changes() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let missing = "/srv/certroll-node/bin/no-such-update-ca-certificates";
    let ctl = Control::new(&fleet, &inventory(&fleet, missing));
    let run = ctl.certroll(&["apply", "--yes"]);
    run.expect_code(78)
        .expect_output("lb1")
        .expect_output("no-such-update-ca-certificates");
    assert!(
        !on_node(&fleet, "lb1", BUNDLE).exists(),
        "nothing was written\n{run}"
    );
    assert!(
        !on_node(&fleet, "app1", BUNDLE).exists(),
        "nothing was written\n{run}"
    );
    assert!(
        !on_node(&fleet, "lb1", ANCHORS).exists(),
        "no anchors directory\n{run}"
    );
}
